//! Proof-of-work rules (Core's `pow.cpp`): required `bits`, PoW check, work per header.
//!
//! The compact-bits arithmetic follows Core's `arith_uint256` bit for bit (`SetCompact` with
//! its negative and overflow flags, `GetCompact`, wrapping 256-bit shifts and products), on a
//! private allocation-free `U256` rather than the `bitcoin` crate's `Target::from_compact`,
//! which differs from Core on malformed bits (see [`derive_target`]).

use std::cmp::Ordering;

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target, Work};

use super::params::ChainParams;

/// The two fields of an earlier header that the difficulty rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderFacts {
    /// The header's timestamp.
    pub time: u32,
    /// The header's compact target.
    pub bits: CompactTarget,
}

impl HeaderFacts {
    /// The facts of `header`.
    pub fn of(header: &Header) -> HeaderFacts {
        HeaderFacts { time: header.time, bits: header.bits }
    }
}

/// Headers of the chain being extended, by height (height <= the tip being extended).
pub trait Ancestry {
    /// The header at `height` on this chain, or `None` if it is not available.
    fn at(&self, height: u32) -> Option<HeaderFacts>;
}

/// Core's `GetNextWorkRequired`: the bits the header after `prev` (at height `prev_height`)
/// must carry, given its time `new_time`.
///
/// Outside period boundaries the bits stay `prev`'s, except where min-difficulty blocks are
/// allowed (testnet3, testnet4, regtest): a header more than twice the target spacing after
/// `prev` must carry `pow_limit`'s bits, any other the bits of the last header that is either
/// at a period boundary, the genesis, or not at `pow_limit`. At a boundary the target is
/// recomputed by [`calculate_next_work_required`] from the period's first and last headers
/// (under BIP94 scaling the first header's bits rather than the last's); regtest never
/// retargets. Returns `None` only if `chain` lacks a header it needs.
pub fn next_work_required(
    params: &ChainParams,
    prev_height: u32,
    prev: HeaderFacts,
    new_time: u32,
    chain: &impl Ancestry,
) -> Option<CompactTarget> {
    let interval = params.difficulty_adjustment_interval();
    if (u64::from(prev_height) + 1) % u64::from(interval) != 0 {
        if !params.allow_min_difficulty_blocks {
            return Some(prev.bits);
        }
        let pow_limit_bits = pow_limit_compact(params);
        if i64::from(new_time) > i64::from(prev.time) + 2 * i64::from(params.pow_target_spacing) {
            return Some(pow_limit_bits);
        }
        let (mut height, mut facts) = (prev_height, prev);
        while height > 0 && height % interval != 0 && facts.bits == pow_limit_bits {
            height -= 1;
            facts = chain.at(height)?;
        }
        return Some(facts.bits);
    }
    if params.no_retargeting {
        return Some(prev.bits);
    }
    // `prev_height + 1` is a positive multiple of the interval, so this does not underflow.
    let first = chain.at(prev_height - (interval - 1))?;
    let base_bits = if params.enforce_bip94 { first.bits } else { prev.bits };
    Some(calculate_next_work_required(params, base_bits, prev.time, first.time))
}

/// Core's `CalculateNextWorkRequired`: the retarget formula. The period took
/// `last_time - first_time` seconds (clamped to a quarter..four times the target timespan);
/// the new target is `base_bits`' target scaled by that over the target timespan, capped at
/// `pow_limit`.
///
/// `base_bits` is what Core reads inside the function: the period's last header's bits, or,
/// under BIP94, the period's first header's bits; [`next_work_required`] chooses. With
/// `no_retargeting` the result is `base_bits` unchanged.
pub fn calculate_next_work_required(
    params: &ChainParams,
    base_bits: CompactTarget,
    last_time: u32,
    first_time: u32,
) -> CompactTarget {
    if params.no_retargeting {
        return base_bits;
    }
    let timespan = i64::from(params.pow_target_timespan);
    let actual = (i64::from(last_time) - i64::from(first_time)).clamp(timespan / 4, timespan * 4);
    let pow_limit = U256::from_target(params.pow_limit);
    let mut target = U256::from_compact(base_bits.to_consensus()).value;
    // Core multiplies by a `uint32_t` (the clamped timespan always fits) and divides exactly.
    target = target.wrapping_mul_u64(actual as u64).div_u64(timespan as u64);
    if target > pow_limit {
        target = pow_limit;
    }
    CompactTarget::from_consensus(target.to_compact(false))
}

/// Core's `CheckProofOfWork`: false if `bits` is negative, overflows, is zero or is easier
/// than `pow_limit`; otherwise whether `hash`, read as a little-endian number, is at most the
/// target.
#[inline]
pub fn check_proof_of_work(hash: BlockHash, bits: CompactTarget, params: &ChainParams) -> bool {
    match derive_target_u256(bits, params.pow_limit) {
        Some(target) => U256::from_le_bytes(hash.to_byte_array()) <= target,
        None => false,
    }
}

/// Core's `DeriveTarget`: the target `bits` encode, or `None` if they are negative, overflow,
/// encode zero or exceed `pow_limit`.
///
/// Unlike `bitcoin::pow::Target::from_compact`, this rejects every negative encoding (the crate
/// keeps the sign bit as mantissa when the exponent is below 3, e.g. `0x02800100` decodes to
/// `0x8001` there but is negative for Core) and every overflowing one (the crate silently wraps).
pub fn derive_target(bits: CompactTarget, pow_limit: Target) -> Option<Target> {
    derive_target_u256(bits, pow_limit).map(U256::to_target)
}

#[inline]
fn derive_target_u256(bits: CompactTarget, pow_limit: Target) -> Option<U256> {
    let decoded = U256::from_compact(bits.to_consensus());
    if decoded.negative || decoded.overflow || decoded.value.is_zero() || decoded.value > U256::from_target(pow_limit) {
        return None;
    }
    Some(decoded.value)
}

/// Core's `GetBlockProof` (`GetBitsProof`): the expected number of hashes to find a header with
/// these bits, `2^256 / (target + 1)`; zero for negative, overflowing or zero targets.
///
/// Differs from `bitcoin::pow::Target::to_work` at the edges: Core gives target 1 a work of
/// `2^255` (the crate: `U256::MAX`) and target 0 a work of 0 (the crate: `U256::MAX`).
#[inline]
pub fn work_of(bits: CompactTarget) -> Work {
    let decoded = U256::from_compact(bits.to_consensus());
    if decoded.negative || decoded.overflow || decoded.value.is_zero() {
        return Work::from_le_bytes([0; 32]);
    }
    let target = decoded.value;
    // 2^256 / (target + 1) == ~target / (target + 1) + 1, without needing 257 bits.
    let work = target.not().div_rem(target.wrapping_add_one()).0.wrapping_add_one();
    Work::from_le_bytes(work.to_le_bytes())
}

/// Core's `PermittedDifficultyTransition`, used by headers presync: at a period boundary
/// `new_bits` must lie within what a retarget from `old_bits` can produce (after rounding to
/// compact form); elsewhere the bits must not change. Always true where min-difficulty blocks
/// are allowed.
pub fn permitted_difficulty_transition(
    params: &ChainParams,
    height: u32,
    old_bits: CompactTarget,
    new_bits: CompactTarget,
) -> bool {
    if params.allow_min_difficulty_blocks {
        return true;
    }
    if height % params.difficulty_adjustment_interval() != 0 {
        return old_bits == new_bits;
    }
    let timespan = u64::from(params.pow_target_timespan);
    let pow_limit = U256::from_target(params.pow_limit);
    let old = U256::from_compact(old_bits.to_consensus()).value;
    let observed = U256::from_compact(new_bits.to_consensus()).value;
    // The extreme targets a retarget can produce, rounded through compact form as a real
    // retarget result would be.
    let bound = |factor_num: u64, factor_den: u64| {
        let mut t = old.wrapping_mul_u64(timespan * factor_num / factor_den).div_u64(timespan);
        if t > pow_limit {
            t = pow_limit;
        }
        U256::from_compact(t.to_compact(false)).value
    };
    let maximum = bound(4, 1);
    let minimum = bound(1, 4);
    observed <= maximum && observed >= minimum
}

/// `pow_limit` in compact form (Core's `UintToArith256(powLimit).GetCompact()`).
#[inline]
fn pow_limit_compact(params: &ChainParams) -> CompactTarget {
    CompactTarget::from_consensus(U256::from_target(params.pow_limit).to_compact(false))
}

/// Result of Core's `SetCompact`: the value and the two flags it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decoded {
    value: U256,
    negative: bool,
    overflow: bool,
}

/// A 256-bit unsigned integer, little-endian 64-bit limbs, with `arith_uint256`'s wrapping
/// semantics for the operations the PoW rules use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct U256([u64; 4]);

impl U256 {
    const ZERO: U256 = U256([0; 4]);

    fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    #[inline]
    fn from_le_bytes(bytes: [u8; 32]) -> U256 {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(le);
        }
        U256(limbs)
    }

    #[inline]
    fn to_le_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        bytes
    }

    #[inline]
    fn from_target(t: Target) -> U256 {
        U256::from_le_bytes(t.to_le_bytes())
    }

    fn to_target(self) -> Target {
        Target::from_le_bytes(self.to_le_bytes())
    }

    #[inline]
    fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// Number of significant bits (Core's `bits()`).
    #[inline]
    fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    fn not(self) -> U256 {
        U256(self.0.map(|l| !l))
    }

    fn wrapping_add_one(self) -> U256 {
        let mut out = self.0;
        for limb in &mut out {
            let (v, carry) = limb.overflowing_add(1);
            *limb = v;
            if !carry {
                break;
            }
        }
        U256(out)
    }

    /// `self << shift`, dropping bits shifted past 256 (any `shift`, like Core's `<<=`).
    #[inline]
    fn shl(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((shift / 64) as usize, shift % 64);
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().skip(limbs) {
            *o = self.0[i - limbs] << bits;
            if bits != 0 && i > limbs {
                *o |= self.0[i - limbs - 1] >> (64 - bits);
            }
        }
        U256(out)
    }

    /// `self >> shift` (any `shift`).
    #[inline]
    fn shr(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((shift / 64) as usize, shift % 64);
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate().take(4 - limbs) {
            *o = self.0[i + limbs] >> bits;
            if bits != 0 && i + limbs + 1 < 4 {
                *o |= self.0[i + limbs + 1] << (64 - bits);
            }
        }
        U256(out)
    }

    /// `self * m` modulo 2^256.
    fn wrapping_mul_u64(self, m: u64) -> U256 {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for (o, &limb) in out.iter_mut().zip(&self.0) {
            let p = u128::from(limb) * u128::from(m) + carry;
            *o = p as u64;
            carry = p >> 64;
        }
        U256(out)
    }

    /// `self / d` for a non-zero `d`.
    fn div_u64(self, d: u64) -> U256 {
        self.div_rem_u64(d).0
    }

    fn div_rem_u64(self, d: u64) -> (U256, u64) {
        assert!(d != 0, "division by zero");
        let mut out = [0u64; 4];
        let mut rem = 0u128;
        for i in (0..4).rev() {
            let cur = (rem << 64) | u128::from(self.0[i]);
            out[i] = (cur / u128::from(d)) as u64;
            rem = cur % u128::from(d);
        }
        (U256(out), rem as u64)
    }

    /// Quotient and remainder of `self / d` for a non-zero `d` (Knuth's algorithm D on 64-bit
    /// digits; the same result as Core's bitwise long division, in a few word operations).
    fn div_rem(self, d: U256) -> (U256, U256) {
        assert!(!d.is_zero(), "division by zero");
        if self < d {
            return (U256::ZERO, self);
        }
        let n = d.0.iter().rposition(|&l| l != 0).expect("non-zero divisor") + 1;
        if n == 1 {
            let (q, r) = self.div_rem_u64(d.0[0]);
            return (q, U256::from_u64(r));
        }
        let m = self.0.iter().rposition(|&l| l != 0).expect("dividend >= divisor > 0") + 1;
        // Normalize so the divisor's top digit has its high bit set.
        let s = d.0[n - 1].leading_zeros();
        let vn = d.shl(s).0;
        let mut un = [0u64; 5];
        un[..4].copy_from_slice(&self.shl(s).0);
        un[4] = if s == 0 { 0 } else { self.0[3] >> (64 - s) };
        let base = 1u128 << 64;
        let mut q = [0u64; 4];
        for j in (0..=m - n).rev() {
            let num = (u128::from(un[j + n]) << 64) | u128::from(un[j + n - 1]);
            let mut qhat = num / u128::from(vn[n - 1]);
            let mut rhat = num % u128::from(vn[n - 1]);
            while qhat >= base || qhat * u128::from(vn[n - 2]) > ((rhat << 64) | u128::from(un[j + n - 2])) {
                qhat -= 1;
                rhat += u128::from(vn[n - 1]);
                if rhat >= base {
                    break;
                }
            }
            // un[j..=j+n] -= qhat * vn
            let mut mul_carry = 0u128;
            let mut borrow = 0u64;
            for i in 0..n {
                let p = qhat * u128::from(vn[i]) + mul_carry;
                mul_carry = p >> 64;
                let (t, b1) = un[i + j].overflowing_sub(p as u64);
                let (t, b2) = t.overflowing_sub(borrow);
                un[i + j] = t;
                borrow = u64::from(b1) + u64::from(b2);
            }
            let (t, b1) = un[j + n].overflowing_sub(mul_carry as u64);
            let (t, b2) = t.overflowing_sub(borrow);
            un[j + n] = t;
            if b1 || b2 {
                // qhat was one too large: add the divisor back.
                qhat -= 1;
                let mut carry = false;
                for i in 0..n {
                    let (t, c1) = un[i + j].overflowing_add(vn[i]);
                    let (t, c2) = t.overflowing_add(u64::from(carry));
                    un[i + j] = t;
                    carry = c1 || c2;
                }
                un[j + n] = un[j + n].wrapping_add(u64::from(carry));
            }
            q[j] = qhat as u64;
        }
        // Denormalize the remainder (it is below the divisor, so it fits in `n` digits).
        let mut r = [0u64; 4];
        for i in 0..n {
            r[i] = if s == 0 { un[i] } else { (un[i] >> s) | (un[i + 1] << (64 - s)) };
        }
        (U256(q), U256(r))
    }

    /// Core's `SetCompact`.
    #[inline]
    fn from_compact(compact: u32) -> Decoded {
        let size = compact >> 24;
        let mut word = compact & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(u64::from(word))
        } else {
            U256::from_u64(u64::from(word)).shl(8 * (size - 3))
        };
        let negative = word != 0 && compact & 0x0080_0000 != 0;
        let overflow = word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        Decoded { value, negative, overflow }
    }

    /// Core's `GetCompact(negative)`.
    fn to_compact(self, negative: bool) -> u32 {
        let mut size = self.bits().div_ceil(8);
        let mut compact =
            if size <= 3 { (self.0[0] << (8 * (3 - size))) as u32 } else { self.shr(8 * (size - 3)).0[0] as u32 };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        debug_assert!(compact & !0x007f_ffff == 0 && size < 256);
        compact |= size << 24;
        if negative && compact & 0x007f_ffff != 0 {
            compact |= 0x0080_0000;
        }
        compact
    }
}

impl Ord for U256 {
    #[inline]
    fn cmp(&self, other: &U256) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for U256 {
    #[inline]
    fn partial_cmp(&self, other: &U256) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests;
