//! Tests of the proof-of-work rules: Core's `pow_tests.cpp` and `arith_uint256_tests.cpp`
//! vectors, hand-built testnet/regtest chains, and the real mainnet and signet headers.

use bitcoin::consensus::deserialize;
use proptest::prelude::*;

use super::*;
use crate::base::chainparams::Network;

fn bits(v: u32) -> CompactTarget {
    CompactTarget::from_consensus(v)
}

fn facts(time: u32, b: u32) -> HeaderFacts {
    HeaderFacts { time, bits: bits(b) }
}

fn zero_work() -> Work {
    Work::from_le_bytes([0; 32])
}

/// A chain given as a function of height.
struct FnChain<F: Fn(u32) -> Option<HeaderFacts>>(F);

impl<F: Fn(u32) -> Option<HeaderFacts>> Ancestry for FnChain<F> {
    fn at(&self, height: u32) -> Option<HeaderFacts> {
        (self.0)(height)
    }
}

/// A prefix of an in-memory chain: heights `0..=tip` only, as a caller extending `tip` sees it.
struct Prefix<'a> {
    facts: &'a [HeaderFacts],
    tip: u32,
}

impl Ancestry for Prefix<'_> {
    fn at(&self, height: u32) -> Option<HeaderFacts> {
        if height > self.tip {
            return None;
        }
        self.facts.get(height as usize).copied()
    }
}

fn no_chain() -> FnChain<impl Fn(u32) -> Option<HeaderFacts>> {
    FnChain(|_| None)
}

// ---------------------------------------------------------------------------------------------
// Compact encoding (Core's arith_uint256_tests.cpp, bignum_SetCompact)
// ---------------------------------------------------------------------------------------------

fn hex_u256(hex: &str) -> U256 {
    let mut be = [0u8; 32];
    let hex = format!("{hex:0>64}");
    for (i, b) in be.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    be.reverse();
    U256::from_le_bytes(be)
}

#[test]
fn set_compact_and_get_compact_match_core_vectors() {
    // (compact, value hex, GetCompact(negative) round trip, negative, overflow)
    let vectors: [(u32, &str, u32, bool, bool); 20] = [
        (0x00000000, "0", 0, false, false),
        (0x00123456, "0", 0, false, false),
        (0x01003456, "0", 0, false, false),
        (0x02000056, "0", 0, false, false),
        (0x03000000, "0", 0, false, false),
        (0x04000000, "0", 0, false, false),
        (0x00923456, "0", 0, false, false),
        (0x01803456, "0", 0, false, false),
        (0x02800056, "0", 0, false, false),
        (0x03800000, "0", 0, false, false),
        (0x04800000, "0", 0, false, false),
        (0x01123456, "12", 0x01120000, false, false),
        (0x01fedcba, "7e", 0x01fe0000, true, false),
        (0x02123456, "1234", 0x02123400, false, false),
        (0x03123456, "123456", 0x03123456, false, false),
        (0x04123456, "12345600", 0x04123456, false, false),
        (0x04923456, "12345600", 0x04923456, true, false),
        (0x05009234, "92340000", 0x05009234, false, false),
        (0x20123456, "1234560000000000000000000000000000000000000000000000000000000000", 0x20123456, false, false),
        (0xff123456, "0", 0, false, true),
    ];
    for (compact, value, round_trip, negative, overflow) in vectors {
        let d = U256::from_compact(compact);
        assert_eq!((d.negative, d.overflow), (negative, overflow), "flags of {compact:#010x}");
        if !overflow {
            assert_eq!(d.value, hex_u256(value), "value of {compact:#010x}");
            assert_eq!(d.value.to_compact(negative), round_trip, "GetCompact of {compact:#010x}");
        }
    }
    // GetCompact never sets the sign bit for a positive number.
    assert_eq!(U256::from_u64(0x80).to_compact(false), 0x02008000);
}

#[test]
fn set_compact_overflow_flags_and_truncation() {
    // Size 34 with a one-byte mantissa is still in range: 1 << 248.
    let d = U256::from_compact(0x22000001);
    assert!(!d.overflow && d.value == U256::from_u64(1).shl(248));
    // Size 35: overflow, and Core's shift drops everything.
    let d = U256::from_compact(0x23000001);
    assert!(d.overflow && d.value.is_zero());
    // Two mantissa bytes at size 34: overflow; the low byte still lands at bit 248.
    let d = U256::from_compact(0x22000101);
    assert!(d.overflow && d.value == U256::from_u64(1).shl(248));
    // Three bytes at size 33: overflow.
    assert!(U256::from_compact(0x21010000).overflow);
    assert!(!U256::from_compact(0x2100ffff).overflow);
    // A zero mantissa never overflows or is negative, whatever the exponent.
    let d = U256::from_compact(0xff800000);
    assert!(!d.overflow && !d.negative && d.value.is_zero());
}

/// For every non-negative, non-overflowing encoding, the `bitcoin` crate decodes the same
/// target as Core; it differs only on the malformed ones our own arithmetic exists for.
#[test]
fn bitcoin_crate_agrees_on_well_formed_bits_only() {
    for compact in [0x1d00ffffu32, 0x1b0404cb, 0x1e0377ae, 0x207fffff, 0x1c05a3f4, 0x03123456, 0x01120000] {
        let ours = U256::from_compact(compact).value.to_target();
        assert_eq!(ours, Target::from_compact(bits(compact)), "{compact:#010x}");
        assert_eq!(U256::from_target(ours).to_compact(false), ours.to_compact_lossy().to_consensus());
    }
    // Negative with exponent < 3: the crate keeps the sign bit as part of the mantissa.
    let d = U256::from_compact(0x02800100);
    assert!(d.negative && d.value == U256::from_u64(1));
    assert_eq!(Target::from_compact(bits(0x02800100)), U256::from_u64(0x8001).to_target());
    assert!(derive_target(bits(0x02800100), Target::MAX_ATTAINABLE_REGTEST).is_none());
}

// ---------------------------------------------------------------------------------------------
// 256-bit arithmetic
// ---------------------------------------------------------------------------------------------

/// Core's `operator/=`: bitwise long division.
fn bitwise_div(num: U256, div: U256) -> U256 {
    let (num_bits, div_bits) = (num.bits(), div.bits());
    assert!(div_bits > 0);
    if div_bits > num_bits {
        return U256::ZERO;
    }
    let mut shift = num_bits - div_bits;
    let mut d = div.shl(shift);
    let mut n = num;
    let mut q = U256::ZERO;
    loop {
        if n >= d {
            n = wrapping_sub(n, d);
            q.0[(shift / 64) as usize] |= 1 << (shift % 64);
        }
        d = d.shr(1);
        if shift == 0 {
            return q;
        }
        shift -= 1;
    }
}

fn wrapping_sub(a: U256, b: U256) -> U256 {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for (o, (x, y)) in out.iter_mut().zip(a.0.iter().zip(&b.0)) {
        let (t, b1) = x.overflowing_sub(*y);
        let (t, b2) = t.overflowing_sub(u64::from(borrow));
        *o = t;
        borrow = b1 || b2;
    }
    U256(out)
}

/// A number with about `bits` significant bits, built from `limbs`, some limbs forced to the
/// extreme values that exercise Knuth D's correction steps.
fn shaped(limbs: [u64; 4], bits: u32, extremes: u8) -> U256 {
    let mut v = limbs;
    for (i, limb) in v.iter_mut().enumerate() {
        match (extremes >> (2 * i)) & 3 {
            1 => *limb = u64::MAX,
            2 => *limb = 0,
            3 => *limb = 1 << 63,
            _ => {}
        }
    }
    U256(v).shr(256 - bits.clamp(1, 256))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn knuth_division_matches_cores_bitwise_division(
        a in any::<[u64; 4]>(), abits in 1u32..=256, aext in any::<u8>(),
        b in any::<[u64; 4]>(), bbits in 1u32..=256, bext in any::<u8>(),
    ) {
        let num = shaped(a, abits, aext);
        let div = shaped(b, bbits, bext);
        prop_assume!(!div.is_zero());
        let (q, r) = num.div_rem(div);
        prop_assert_eq!(q, bitwise_div(num, div));
        prop_assert!(r < div);
    }

    #[test]
    fn work_matches_the_crate_for_targets_above_one(size in 1u32..=32, mantissa in 1u32..=0x7f_ffff) {
        let compact = (size << 24) | mantissa;
        let d = U256::from_compact(compact);
        prop_assume!(!d.negative && !d.overflow && d.value > U256::from_u64(1));
        prop_assert_eq!(work_of(bits(compact)), d.value.to_target().to_work());
    }

    #[test]
    fn compact_round_trips_through_the_crate(limbs in any::<[u64; 4]>(), b in 0u32..=256) {
        let v = if b == 0 { U256::ZERO } else { U256(limbs).shr(256 - b) };
        prop_assert_eq!(v.to_compact(false), v.to_target().to_compact_lossy().to_consensus());
        // Decoding the compact form gives back the value rounded down to 3 significant bytes.
        let back = U256::from_compact(v.to_compact(false));
        prop_assert!(!back.negative && !back.overflow && back.value <= v);
    }
}

#[test]
fn shifts_and_products_wrap_like_core() {
    let one = U256::from_u64(1);
    assert_eq!(one.shl(255).shr(255), one);
    assert!(one.shl(256).is_zero());
    assert_eq!(one.shl(64), U256([0, 1, 0, 0]));
    assert_eq!(U256([u64::MAX; 4]).shr(193), U256([u64::MAX >> 1, 0, 0, 0]));
    assert_eq!(U256([0, 0, 0, 1 << 63]).wrapping_mul_u64(2), U256::ZERO);
    assert_eq!(U256([u64::MAX, 0, 0, 0]).wrapping_mul_u64(u64::MAX), U256([1, u64::MAX - 1, 0, 0]));
    assert_eq!(U256([0, 1, 0, 0]).div_u64(3), U256([0x5555_5555_5555_5555, 0, 0, 0]));
    assert_eq!(U256([u64::MAX; 4]).wrapping_add_one(), U256::ZERO);
    assert_eq!(U256([u64::MAX; 4]).bits(), 256);
    assert_eq!(U256::ZERO.bits(), 0);
}

// ---------------------------------------------------------------------------------------------
// Core's pow_tests.cpp
// ---------------------------------------------------------------------------------------------

/// (last retarget time, last height, last time, last bits, expected bits)
const RETARGET_VECTORS: [(u32, u32, u32, u32, u32); 4] = [
    // get_next_work: blocks #30240..#32255, no constraint applies (mainnet's first real retarget).
    (1261130161, 32255, 1262152739, 0x1d00ffff, 0x1d00d86a),
    // get_next_work_pow_limit: blocks #0..#2015 took longer; capped at powLimit.
    (1231006505, 2015, 1233061996, 0x1d00ffff, 0x1d00ffff),
    // get_next_work_lower_limit_actual: blocks #66528..#68543, clamped to a quarter timespan.
    (1279008237, 68543, 1279297671, 0x1c05a3f4, 0x1c0168fd),
    // get_next_work_upper_limit_actual: a made-up first time, clamped to four timespans.
    (1263163443, 46367, 1269211443, 0x1c387f6f, 0x1d00e1fd),
];

#[test]
fn core_retarget_vectors() {
    let p = ChainParams::new(Network::Main);
    for (first_time, height, last_time, last_bits, expected) in RETARGET_VECTORS {
        let got = calculate_next_work_required(&p, bits(last_bits), last_time, first_time);
        assert_eq!(got, bits(expected), "height {height}");
        assert!(permitted_difficulty_transition(&p, height + 1, bits(last_bits), got), "height {height}");
        // The same through next_work_required, with a chain that knows only the period's first header.
        let first_height = height - 2015;
        let chain = FnChain(|h| (h == first_height).then(|| facts(first_time, last_bits)));
        let via_chain = next_work_required(&p, height, facts(last_time, last_bits), last_time + 600, &chain);
        assert_eq!(via_chain, Some(bits(expected)), "height {height}");
    }
}

#[test]
fn core_permitted_transition_rejects_one_step_beyond_the_limits() {
    let p = ChainParams::new(Network::Main);
    // get_next_work_lower_limit_actual: one less than the minimum is too hard.
    assert!(!permitted_difficulty_transition(&p, 68544, bits(0x1c05a3f4), bits(0x1c0168fd - 1)));
    // get_next_work_upper_limit_actual: one more than the maximum is too easy.
    assert!(!permitted_difficulty_transition(&p, 46368, bits(0x1c387f6f), bits(0x1d00e1fd + 1)));
    // Off a boundary the bits may not change at all; on it, staying the same is fine.
    assert!(permitted_difficulty_transition(&p, 46367, bits(0x1c387f6f), bits(0x1c387f6f)));
    assert!(!permitted_difficulty_transition(&p, 46367, bits(0x1c387f6f), bits(0x1c387f6e)));
    assert!(permitted_difficulty_transition(&p, 46368, bits(0x1c387f6f), bits(0x1c387f6f)));
    // Networks that allow min-difficulty blocks permit anything.
    for n in [Network::Test, Network::Testnet4, Network::Regtest] {
        assert!(permitted_difficulty_transition(&ChainParams::new(n), 5, bits(0x1c387f6f), bits(0x1d00ffff)));
    }
}

fn main_pow_limit() -> U256 {
    U256::from_target(ChainParams::new(Network::Main).pow_limit)
}

#[test]
fn check_proof_of_work_negative_target() {
    let p = ChainParams::new(Network::Main);
    let negative = main_pow_limit().to_compact(true);
    assert_eq!(negative, 0x1d80ffff);
    assert!(!check_proof_of_work(hash_of(U256::from_u64(1)), bits(negative), &p));
}

#[test]
fn check_proof_of_work_overflow_target() {
    let p = ChainParams::new(Network::Main);
    assert!(!check_proof_of_work(hash_of(U256::from_u64(1)), bits(!0x0080_0000), &p));
}

#[test]
fn check_proof_of_work_too_easy_target() {
    let p = ChainParams::new(Network::Main);
    let too_easy = main_pow_limit().wrapping_mul_u64(2).to_compact(false);
    assert!(!check_proof_of_work(hash_of(U256::from_u64(1)), bits(too_easy), &p));
}

#[test]
fn check_proof_of_work_bigger_hash_than_target() {
    let p = ChainParams::new(Network::Main);
    let limit = main_pow_limit();
    assert!(!check_proof_of_work(hash_of(limit.wrapping_mul_u64(2)), bits(limit.to_compact(false)), &p));
    // The boundary itself: hash == target passes, target + 1 fails.
    let target = U256::from_compact(0x1d00ffff).value;
    assert!(check_proof_of_work(hash_of(target), bits(0x1d00ffff), &p));
    assert!(!check_proof_of_work(hash_of(target.wrapping_add_one()), bits(0x1d00ffff), &p));
}

#[test]
fn check_proof_of_work_zero_target() {
    let p = ChainParams::new(Network::Main);
    assert_eq!(U256::ZERO.to_compact(false), 0);
    assert!(!check_proof_of_work(hash_of(U256::ZERO), bits(0), &p));
}

fn hash_of(v: U256) -> BlockHash {
    BlockHash::from_byte_array(v.to_le_bytes())
}

#[test]
fn work_of_matches_core() {
    // Difficulty 1: 2^256 / (0xffff << 208 + 1) = 0x100010001.
    assert_eq!(work_of(bits(0x1d00ffff)), Work::from_le_bytes(U256::from_u64(0x1_0001_0001).to_le_bytes()));
    // Regtest's easiest target 0x7fffff << 232: 2^256 / (target + 1) = 2.
    assert_eq!(work_of(bits(0x207fffff)), Work::from_le_bytes(U256::from_u64(2).to_le_bytes()));
    // Target 1: Core gives 2^255 (the crate's Target::to_work gives U256::MAX).
    let t1 = 0x01010000;
    assert_eq!(U256::from_compact(t1).value, U256::from_u64(1));
    assert_eq!(work_of(bits(t1)), Work::from_le_bytes(U256::from_u64(1).shl(255).to_le_bytes()));
    // Zero, negative and overflowing bits add no work.
    for invalid in [0, 0x03000000, 0x1d80ffff, 0x04923456, 0xff123456, 0x23000001] {
        assert_eq!(work_of(bits(invalid)), zero_work(), "{invalid:#010x}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built chains: testnet3's min-difficulty rule, testnet4's BIP94, regtest
// ---------------------------------------------------------------------------------------------

const LIMIT: u32 = 0x1d00ffff;
const REAL: u32 = 0x1c0ffff0;

/// A chain of `len` headers spaced 600 s apart from time `T0`, with `bits_at(height)` bits.
fn built_chain(len: u32, bits_at: impl Fn(u32) -> u32) -> Vec<HeaderFacts> {
    (0..len).map(|h| facts(T0 + 600 * h, bits_at(h))).collect()
}

const T0: u32 = 1_700_000_000;

fn required(p: &ChainParams, chain: &[HeaderFacts], new_time: u32) -> Option<CompactTarget> {
    let tip = chain.len() as u32 - 1;
    next_work_required(p, tip, chain[tip as usize], new_time, &Prefix { facts: chain, tip })
}

#[test]
fn testnet3_header_more_than_20_minutes_late_may_use_pow_limit() {
    let p = ChainParams::new(Network::Test);
    let chain = built_chain(3000, |_| REAL);
    let prev_time = chain[2999].time;
    assert_eq!(required(&p, &chain, prev_time + 1201), Some(bits(LIMIT)));
    // Exactly 20 minutes is not "more than": the real difficulty applies.
    assert_eq!(required(&p, &chain, prev_time + 1200), Some(bits(REAL)));
    assert_eq!(required(&p, &chain, prev_time + 1), Some(bits(REAL)));
    // Mainnet has no such rule.
    assert_eq!(required(&ChainParams::new(Network::Main), &chain, prev_time + 100_000), Some(bits(REAL)));
}

#[test]
fn testnet3_walks_back_to_the_last_real_difficulty() {
    let p = ChainParams::new(Network::Test);
    // Heights 2016..=2500 real, 2501..=2999 min-difficulty.
    let chain = built_chain(3000, |h| if h <= 2500 { REAL } else { LIMIT });
    assert_eq!(required(&p, &chain, chain[2999].time + 600), Some(bits(REAL)));
    // The walk stops at a period boundary even if that header is at pow_limit.
    let chain = built_chain(3000, |h| if h < 2016 { REAL } else { LIMIT });
    assert_eq!(required(&p, &chain, chain[2999].time + 600), Some(bits(LIMIT)));
    // ... and at the genesis.
    let chain = built_chain(100, |_| LIMIT);
    assert_eq!(required(&p, &chain, chain[99].time + 600), Some(bits(LIMIT)));
    // The walk needs the ancestors: without them there is no answer.
    let chain = built_chain(3000, |h| if h <= 2500 { REAL } else { LIMIT });
    let prefix_without_ancestors = FnChain(|h| (h > 2990).then(|| chain[h as usize]));
    assert_eq!(next_work_required(&p, 2999, chain[2999], chain[2999].time + 600, &prefix_without_ancestors), None);
    // The 20-minute rule needs no ancestors at all.
    assert_eq!(next_work_required(&p, 2999, chain[2999], chain[2999].time + 1201, &no_chain()), Some(bits(LIMIT)));
}

#[test]
fn testnet3_retarget_ignores_min_difficulty_rule_and_scales_the_last_header() {
    let p = ChainParams::new(Network::Test);
    // A period mined in exactly two weeks: 2015 gaps of 600 s plus the final gap stretched so
    // that last.time - first.time == timespan. The last header is a min-difficulty block.
    let mut chain = built_chain(4032, |h| if h == 4031 { LIMIT } else { REAL });
    chain[4031].time = chain[2016].time + 1_209_600;
    // Even a late header at the boundary gets the retarget result, not pow_limit... which,
    // scaling the last (min-difficulty) header's bits by 1, is pow_limit: testnet3's
    // well-known difficulty reset.
    assert_eq!(required(&p, &chain, chain[4031].time + 600), Some(bits(LIMIT)));
    // With a real-difficulty last header the same period keeps the real difficulty.
    chain[4031].bits = bits(REAL);
    assert_eq!(required(&p, &chain, chain[4031].time + 100_000), Some(bits(REAL)));
}

#[test]
fn testnet4_bip94_retargets_from_the_periods_first_header() {
    let p = ChainParams::new(Network::Testnet4);
    let mut chain = built_chain(4032, |h| if h == 4031 { LIMIT } else { REAL });
    chain[4031].time = chain[2016].time + 1_209_600;
    // BIP94: the base is the first header of the period (height 2016), so no reset.
    assert_eq!(required(&p, &chain, chain[4031].time + 600), Some(bits(REAL)));
    // Half the timespan: twice as hard, from the first header's bits.
    chain[4031].time = chain[2016].time + 604_800;
    let expected = U256::from_compact(REAL).value.div_u64(2).to_compact(false);
    assert_eq!(required(&p, &chain, chain[4031].time + 600), Some(bits(expected)));
    assert_eq!(calculate_next_work_required(&p, bits(REAL), chain[4031].time, chain[2016].time), bits(expected));
    // The min-difficulty rule still applies off the boundary.
    let chain = built_chain(3000, |_| REAL);
    assert_eq!(required(&p, &chain, chain[2999].time + 1201), Some(bits(LIMIT)));
}

#[test]
fn regtest_never_retargets() {
    let p = ChainParams::new(Network::Regtest);
    assert_eq!(p.difficulty_adjustment_interval(), 144);
    let chain = built_chain(144, |_| 0x207fffff);
    // At the boundary (height 144) without needing any ancestor.
    assert_eq!(next_work_required(&p, 143, chain[143], chain[143].time + 1, &no_chain()), Some(bits(0x207fffff)));
    assert_eq!(
        next_work_required(&p, 143, facts(0, 0x1d00ffff), 5_000_000, &no_chain()),
        Some(bits(0x1d00ffff)),
        "keeps the previous bits however long the period took"
    );
    assert_eq!(calculate_next_work_required(&p, bits(0x1d00ffff), 10_000_000, 0), bits(0x1d00ffff));
    // Off the boundary, the min-difficulty rules apply.
    assert_eq!(required(&p, &chain[..100], chain[99].time + 1201), Some(bits(0x207fffff)));
}

#[test]
fn mainnet_boundary_needs_the_periods_first_header() {
    let p = ChainParams::new(Network::Main);
    assert_eq!(next_work_required(&p, 4031, facts(T0, LIMIT), T0 + 600, &no_chain()), None);
    // Off the boundary nothing is read.
    assert_eq!(next_work_required(&p, 4030, facts(T0, REAL), T0 + 999_999, &no_chain()), Some(bits(REAL)));
}

#[test]
fn retarget_clamps_negative_and_huge_timespans() {
    let p = ChainParams::new(Network::Main);
    let quarter = U256::from_compact(REAL).value.wrapping_mul_u64(302_400).div_u64(1_209_600).to_compact(false);
    // A last time before the first time: the timespan is clamped to a quarter.
    assert_eq!(calculate_next_work_required(&p, bits(REAL), 1000, 5000), bits(quarter));
    assert_eq!(calculate_next_work_required(&p, bits(REAL), 0, u32::MAX), bits(quarter));
    let fourfold = U256::from_compact(REAL).value.wrapping_mul_u64(4).to_compact(false);
    assert_eq!(calculate_next_work_required(&p, bits(REAL), u32::MAX, 0), bits(fourfold));
}

// ---------------------------------------------------------------------------------------------
// Real chains
// ---------------------------------------------------------------------------------------------

use crate::engine::chain::testdata::load_headers;

/// Every check a header at `height` fails when extending `chain[..height]` (whose facts are
/// `facts`): its link to the parent, its proof of work, the bits rule.
fn failed_checks(
    p: &ChainParams,
    chain: &[Header],
    facts: &[HeaderFacts],
    height: u32,
    header: &Header,
) -> Vec<&'static str> {
    let mut failed = Vec::new();
    if header.prev_blockhash != chain[height as usize - 1].block_hash() {
        failed.push("linkage");
    }
    if !check_proof_of_work(header.block_hash(), header.bits, p) {
        failed.push("pow");
    }
    let prefix = Prefix { facts, tip: height - 1 };
    if next_work_required(p, height - 1, facts[height as usize - 1], header.time, &prefix) != Some(header.bits) {
        failed.push("bits");
    }
    failed
}

/// Validates every header of a real chain; returns the heights at which a retarget computed
/// (`height % 2016 == 0`) and the total work.
fn validate_real_chain(network: Network, file: &str, expected_len: usize) -> (Vec<u32>, Work) {
    let p = ChainParams::new(network);
    let headers = load_headers(file);
    assert_eq!(headers.len(), expected_len);
    assert_eq!(headers[0], p.genesis, "the file starts at {network}'s genesis");
    assert!(check_proof_of_work(headers[0].block_hash(), headers[0].bits, &p));
    let facts: Vec<HeaderFacts> = headers.iter().map(HeaderFacts::of).collect();
    let mut retargets = Vec::new();
    let mut total = work_of(headers[0].bits);
    for height in 1..headers.len() as u32 {
        let header = &headers[height as usize];
        let failed = failed_checks(&p, &headers, &facts, height, header);
        assert!(failed.is_empty(), "{network} height {height} fails {failed:?}");
        let old = headers[height as usize - 1].bits;
        assert!(permitted_difficulty_transition(&p, height, old, header.bits), "{network} height {height}");
        assert!(header.version.to_consensus() >= p.min_version_at(height), "{network} height {height}");
        if height % p.difficulty_adjustment_interval() == 0 {
            retargets.push(height);
        }
        total = total + work_of(header.bits);
    }
    (retargets, total)
}

#[test]
fn real_mainnet_headers_0_to_10236_validate() {
    let (retargets, total) = validate_real_chain(Network::Main, "mainnet-headers-0-10236.bin", 10_237);
    assert_eq!(retargets, [2016, 4032, 6048, 8064, 10080]);
    // Every one of those periods took longer than two weeks, so each retarget is capped at
    // powLimit and all 10,237 headers carry difficulty 1 (0x100010001 work each); mainnet's first
    // real change is at 32256 (Core's get_next_work vector).
    assert_eq!(total, Work::from_le_bytes(U256::from_u64(10_237 * 0x1_0001_0001).to_le_bytes()));
}

#[test]
fn real_signet_headers_0_to_2015_validate() {
    let (retargets, _) = validate_real_chain(Network::Signet, "signet-headers-0-2015.bin", 2016);
    assert!(retargets.is_empty(), "the file ends just before signet's first retarget");
    // The first retarget (height 2016) is computable from these headers alone: the period took
    // 413,777 s (less than two weeks), so the target shrinks by that ratio.
    let p = ChainParams::new(Network::Signet);
    let headers = load_headers("signet-headers-0-2015.bin");
    let facts: Vec<HeaderFacts> = headers.iter().map(HeaderFacts::of).collect();
    let prefix = Prefix { facts: &facts, tip: 2015 };
    let next = next_work_required(&p, 2015, facts[2015], facts[2015].time + 600, &prefix).unwrap();
    assert_eq!(facts[2015].time - facts[0].time, 413_777);
    // (0x0377ae << 216) * 413777 / 1209600, rounded to compact form (worked out independently).
    assert_eq!(next, bits(0x1e012fa7));
    assert!(permitted_difficulty_transition(&p, 2016, facts[2015].bits, next));
}

/// Flipping any single byte of a real header is caught: a changed prev hash by linkage, changed
/// bits by the bits rule, and anything at all by proof of work (the hash changes, and a random
/// hash does not meet difficulty 1) and by the child no longer linking to it.
#[test]
fn altered_header_bytes_are_caught() {
    let p = ChainParams::new(Network::Main);
    let headers = load_headers("mainnet-headers-0-10236.bin");
    let facts: Vec<HeaderFacts> = headers.iter().map(HeaderFacts::of).collect();
    for height in [1u32, 2015, 2016, 4032, 5000, 10_080, 10_235] {
        let original = bitcoin::consensus::serialize(&headers[height as usize]);
        let child = &headers[height as usize + 1];
        for pos in 0..80 {
            for flip in [0x01u8, 0x80] {
                let mut bytes = original.clone();
                bytes[pos] ^= flip;
                let altered: Header = deserialize(&bytes).unwrap();
                let failed = failed_checks(&p, &headers, &facts, height, &altered);
                let what = format!("height {height}, byte {pos} ^ {flip:#04x}: {failed:?}");
                assert!(failed.contains(&"pow"), "{what}");
                assert_ne!(child.prev_blockhash, altered.block_hash(), "{what}");
                assert_eq!(failed.contains(&"linkage"), (4..36).contains(&pos), "{what}");
                assert_eq!(failed.contains(&"bits"), (72..76).contains(&pos), "{what}");
            }
        }
    }
}

#[test]
fn knuth_division_add_back_case() {
    // A division where the estimated quotient digit is one too large even after the two-digit
    // correction, so algorithm D's add-back step runs.
    let num = U256([0, 0, 0xffff_ffe0_0000_0000, 0x1f_ffff_ffff]);
    let div = U256([0x10, 0x10, 0xffff_ffff_ffff_ffe0, 0x1f]);
    let (q, r) = num.div_rem(div);
    assert_eq!(q, bitwise_div(num, div));
    assert!(r < div);
}
