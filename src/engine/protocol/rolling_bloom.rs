//! A fixed-size rolling Bloom filter (the structure of Core's `CRollingBloomFilter`): remembers
//! about the last N items with a bounded false-positive rate in memory fixed at creation,
//! whatever is inserted. Used for the addresses a peer is known to have.
//!
//! The items live in three generations of `ceil(N / 2)` insertions each; starting a fourth
//! generation wipes the oldest, so the last N items are always found and items from long ago
//! are forgotten. Every cell holds two bits, the generation (1–3) that last set it, 0 meaning
//! unset; the two bits of 64 neighbouring cells are kept in a pair of words, so a wipe is a
//! few word operations per 64 cells. Positions come from a keyed SipHash-2-4 of the item
//! (a random key per filter and per reset, so a peer cannot aim for collisions), split into
//! k positions by double hashing.

use bitcoin::hashes::siphash24;

/// A rolling Bloom filter of fixed size.
#[derive(Clone)]
pub struct RollingBloom {
    /// Cell bits: words `2i` and `2i + 1` hold the low and high generation bits of cells
    /// `64i..64i + 64`.
    words: Box<[u64]>,
    /// Hash positions per item.
    hashes: u32,
    /// Insertions per generation.
    per_generation: u32,
    /// Insertions into the current generation.
    in_generation: u32,
    /// The current generation, 1–3.
    generation: u8,
    /// SipHash key.
    key: (u64, u64),
    /// Insertions since creation (statistics).
    inserted: u64,
}

impl std::fmt::Debug for RollingBloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingBloom")
            .field("cells", &self.cells())
            .field("hashes", &self.hashes)
            .field("per_generation", &self.per_generation)
            .field("generation", &self.generation)
            .field("inserted", &self.inserted)
            .finish_non_exhaustive()
    }
}

impl RollingBloom {
    /// A filter that always holds the last `items` insertions and answers at most about
    /// `fp_rate` false positives when full, keyed with `key` (take it from a good random
    /// source). `items` is at least 1 and `fp_rate` is clamped into (0, 1).
    pub fn new(items: u32, fp_rate: f64, key: (u64, u64)) -> RollingBloom {
        let fp = if fp_rate.is_finite() { fp_rate.clamp(1e-12, 0.5) } else { 0.001 };
        let ln_fp = fp.ln();
        // Optimal hash count for the rate, kept to 1..=50.
        let hashes = (ln_fp / 0.5f64.ln()).round().clamp(1.0, 50.0) as u32;
        let per_generation = items.max(1).div_ceil(2);
        // Sized for three full generations at the target rate:
        // fp = (1 - e^(-k·n/m))^k  ⇒  m = -k·n / ln(1 - fp^(1/k)).
        let most = f64::from(per_generation) * 3.0;
        let cells = (-f64::from(hashes) * most / (1.0 - (ln_fp / f64::from(hashes)).exp()).ln()).ceil();
        let cells = if cells.is_finite() { cells.clamp(64.0, f64::from(u32::MAX)) as u64 } else { 64 };
        let word_pairs = cells.div_ceil(64) as usize;
        RollingBloom {
            words: vec![0u64; word_pairs * 2].into_boxed_slice(),
            hashes,
            per_generation,
            in_generation: 0,
            generation: 1,
            key,
            inserted: 0,
        }
    }

    /// Number of cells.
    fn cells(&self) -> u64 {
        (self.words.len() / 2) as u64 * 64
    }

    /// Hash positions per item.
    pub fn hash_count(&self) -> u32 {
        self.hashes
    }

    /// Bytes of heap memory the filter holds (fixed at creation).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }

    /// Insertions since creation or the last [`RollingBloom::reset`].
    pub fn inserted(&self) -> u64 {
        self.inserted
    }

    /// The `k` cell positions of `item`: double hashing of one keyed 64-bit hash.
    fn positions(&self, item: &[u8]) -> impl Iterator<Item = (usize, u32)> + use<> {
        let h = siphash24::Hash::hash_to_u64_with_keys(self.key.0, self.key.1, item);
        let (a, b) = (h as u32, ((h >> 32) as u32) | 1);
        let cells = self.cells();
        (0..self.hashes).map(move |i| {
            let g = a.wrapping_add(b.wrapping_mul(i));
            // Multiply-shift maps a 32-bit value onto 0..cells without a division.
            let cell = (u64::from(g) * cells) >> 32;
            ((cell / 64) as usize * 2, (cell % 64) as u32)
        })
    }

    /// Adds `item`.
    pub fn insert(&mut self, item: &[u8]) {
        if self.in_generation >= self.per_generation {
            self.in_generation = 0;
            self.generation = if self.generation >= 3 { 1 } else { self.generation + 1 };
            self.wipe_generation(self.generation);
        }
        self.in_generation += 1;
        self.inserted += 1;
        let (lo, hi) = (u64::from(self.generation & 1), u64::from(self.generation >> 1));
        for (w, bit) in self.positions(item) {
            if let Some([l, h]) = self.words.get_mut(w..w + 2) {
                *l = (*l & !(1 << bit)) | (lo << bit);
                *h = (*h & !(1 << bit)) | (hi << bit);
            }
        }
    }

    /// Clears every cell last set in generation `g`.
    fn wipe_generation(&mut self, g: u8) {
        let (lo, hi) = (0u64.wrapping_sub(u64::from(g & 1)), 0u64.wrapping_sub(u64::from(g >> 1)));
        for pair in self.words.chunks_exact_mut(2) {
            if let [l, h] = pair {
                // A cell survives unless both of its bits equal `g`'s.
                let keep = (*l ^ lo) | (*h ^ hi);
                *l &= keep;
                *h &= keep;
            }
        }
    }

    /// Whether `item` was (probably) inserted recently.
    pub fn contains(&self, item: &[u8]) -> bool {
        self.positions(item).all(|(w, bit)| match self.words.get(w..w + 2) {
            Some([l, h]) => ((l | h) >> bit) & 1 == 1,
            _ => false,
        })
    }

    /// Forgets everything and takes a new key.
    pub fn reset(&mut self, key: (u64, u64)) {
        self.words.fill(0);
        self.in_generation = 0;
        self.generation = 1;
        self.key = key;
        self.inserted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: u64) -> [u8; 8] {
        i.to_le_bytes()
    }

    /// Core's sizing of `CRollingBloomFilter(5000, 0.001)`, computed independently: 10 hashes,
    /// 7,500 items at most, so ceil(-10 · 7500 / ln(1 - 0.001^(1/10))) cells, in 64-cell pairs
    /// of words.
    fn core_bytes_5000() -> usize {
        let cells = (-10.0 * 7500.0 / (1.0 - 0.001f64.powf(0.1)).ln()).ceil() as usize;
        cells.div_ceil(64) * 2 * 8
    }

    #[test]
    fn sized_as_cores_filter_and_fixed_whatever_is_inserted() {
        let mut f = RollingBloom::new(5000, 0.001, (1, 2));
        assert_eq!(f.hash_count(), 10);
        assert_eq!(f.heap_bytes(), core_bytes_5000());
        let total = std::mem::size_of::<RollingBloom>() + f.heap_bytes();
        assert!((26_000..28_000).contains(&total), "{total} bytes");
        for i in 0..100_000u64 {
            f.insert(&[&item(i)[..], &[0xab; 504]].concat());
        }
        assert_eq!(f.heap_bytes(), core_bytes_5000(), "memory does not grow with insertions");
    }

    #[test]
    fn false_positive_rate_is_near_the_target() {
        let mut f = RollingBloom::new(5000, 0.001, (0x1234, 0x5678));
        for i in 0..5000u64 {
            f.insert(&item(i));
        }
        assert!((0..5000u64).all(|i| f.contains(&item(i))), "no false negatives");
        let probes = 200_000u64;
        let fp =
            |f: &RollingBloom| (0..probes).filter(|i| f.contains(&item(1 << 40 | i))).count() as f64 / probes as f64;
        let at_5000 = fp(&f);
        assert!(at_5000 <= 0.001, "fp rate {at_5000} with 5,000 items");
        // Fullest state: three whole generations (7,500 items) before the next wipe.
        for i in 5000..7500u64 {
            f.insert(&item(i));
        }
        let full = fp(&f);
        assert!((0.0003..=0.0015).contains(&full), "fp rate {full} when full (target 0.001)");
    }

    #[test]
    fn the_last_items_stay_and_old_ones_roll_out() {
        let mut f = RollingBloom::new(5000, 0.001, (9, 9));
        for i in 0..5000u64 {
            f.insert(&item(i));
        }
        for round in 1..=4u64 {
            for i in 0..5000u64 {
                f.insert(&item(round << 32 | i));
            }
            assert!((0..5000u64).all(|i| f.contains(&item(round << 32 | i))), "last 5,000 always held");
        }
        let old = (0..5000u64).filter(|&i| f.contains(&item(i))).count();
        assert!(old <= 15, "{old} of 5,000 old items still found");
    }

    #[test]
    fn reset_forgets_and_rekeys() {
        let mut f = RollingBloom::new(100, 0.001, (1, 1));
        f.insert(b"a");
        assert!(f.contains(b"a"));
        f.reset((2, 2));
        assert!(!f.contains(b"a"));
        assert_eq!(f.inserted(), 0);
    }

    #[test]
    fn the_key_decides_the_positions() {
        let a = RollingBloom::new(100, 0.01, (1, 1));
        let b = RollingBloom::new(100, 0.01, (1, 2));
        let pa: Vec<_> = a.positions(b"x").collect();
        let pb: Vec<_> = b.positions(b"x").collect();
        assert_ne!(pa, pb);
    }
}
