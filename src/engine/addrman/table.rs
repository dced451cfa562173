//! The address manager's internal structures and their invariants: the fixed-size new and tried
//! bucket tables, the keyed placement hashes (Core's `GetTriedBucket`, `GetNewBucket`,
//! `GetBucketPosition`), the low-level moves between tables (`Create`, `Delete`, `SwapRandom`,
//! `ClearNew`, `MakeTried`) and the consistency check (`CheckAddrman`).

use bitcoin::hashes::{Hash, HashEngine, sha256d};
use bitcoin::p2p::address::AddrV2;

use super::{
    ADDRMAN_BUCKET_SIZE, ADDRMAN_NEW_BUCKET_COUNT, ADDRMAN_NEW_BUCKETS_PER_ADDRESS,
    ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP, ADDRMAN_TRIED_BUCKET_COUNT, ADDRMAN_TRIED_BUCKETS_PER_GROUP, AddrEntry,
    AddrMan, EntryInfo, Inconsistency, NetCounts,
};
use crate::base::netgroup::{NetGroupRule, View};

/// An entry's identifier (Core's `nid_type`); never reused while the manager lives.
pub(super) type Id = u64;

/// An entry with the bookkeeping Core keeps in memory only (`AddrInfo`'s `nRefCount`,
/// `fInTried`, `nRandomPos`).
#[derive(Clone, Debug)]
pub(super) struct Slot {
    /// The gossiped fields and the statistics.
    pub(super) info: EntryInfo,
    /// In how many new buckets it is (0 when in tried).
    pub(super) ref_count: u8,
    /// Whether it is in the tried table.
    pub(super) in_tried: bool,
    /// Its index in [`AddrMan::random`].
    pub(super) random_pos: usize,
}

/// One table: `buckets` buckets of [`ADDRMAN_BUCKET_SIZE`] positions.
#[derive(Clone, Debug)]
pub(super) struct Table {
    slots: Vec<Option<Id>>,
}

impl Table {
    pub(super) fn new(buckets: usize) -> Table {
        Table { slots: vec![None; buckets * ADDRMAN_BUCKET_SIZE] }
    }

    /// The entry at `bucket`, `position` (`None` outside the table).
    pub(super) fn get(&self, bucket: usize, position: usize) -> Option<Id> {
        if position >= ADDRMAN_BUCKET_SIZE {
            return None;
        }
        self.slots.get(bucket * ADDRMAN_BUCKET_SIZE + position).copied().flatten()
    }

    pub(super) fn set(&mut self, bucket: usize, position: usize, id: Option<Id>) {
        debug_assert!(position < ADDRMAN_BUCKET_SIZE);
        if let Some(s) = self.slots.get_mut(bucket * ADDRMAN_BUCKET_SIZE + position) {
            *s = id;
        }
    }

    /// Every occupied position as (bucket, position, id), in table order.
    pub(super) fn occupied(&self) -> impl Iterator<Item = (usize, usize, Id)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|id| (i / ADDRMAN_BUCKET_SIZE, i % ADDRMAN_BUCKET_SIZE, id)))
    }
}

/// Core's `HashWriter{} << ... ).GetCheapHash()`: the first 8 bytes (little-endian) of the
/// double SHA-256 of the concatenated serialisations.
fn cheap_hash(parts: &[&[u8]]) -> u64 {
    let mut engine = sha256d::Hash::engine();
    for p in parts {
        engine.input(p);
    }
    let hash = sha256d::Hash::from_engine(engine).to_byte_array();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}

/// Core's serialisation of a byte vector: a CompactSize length, then the bytes.
fn ser_vec(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 9);
    match bytes.len() {
        n @ 0..=252 => out.push(n as u8),
        n @ 253..=0xffff => {
            out.push(253);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        n => {
            out.push(254);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(bytes);
    out
}

/// Core's `CService::GetKey`: the address bytes (`GetAddrBytes`) and the port, big-endian.
pub(super) fn service_key(addr: &AddrV2, port: u16) -> Vec<u8> {
    let mut key = View::of(addr).addr_bytes();
    key.extend_from_slice(&port.to_be_bytes());
    key
}

/// Core's `GetTriedBucket`: the address's group picks [`ADDRMAN_TRIED_BUCKETS_PER_GROUP`]
/// buckets, the full address and port one of them.
pub(super) fn tried_bucket(key: &[u8; 32], addr: &AddrV2, port: u16, rule: NetGroupRule) -> usize {
    let h1 = cheap_hash(&[key, &ser_vec(&service_key(addr, port))]);
    let group = ser_vec(&View::of(addr).group(rule));
    let h2 = cheap_hash(&[key, &group, &(h1 % ADDRMAN_TRIED_BUCKETS_PER_GROUP).to_le_bytes()]);
    (h2 % ADDRMAN_TRIED_BUCKET_COUNT as u64) as usize
}

/// Core's `GetNewBucket`: the source's group picks [`ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP`]
/// buckets, the address's group one of them (the port plays no part).
pub(super) fn new_bucket(key: &[u8; 32], addr: &AddrV2, source: &AddrV2, rule: NetGroupRule) -> usize {
    let source_group = ser_vec(&View::of(source).group(rule));
    let h1 = cheap_hash(&[key, &ser_vec(&View::of(addr).group(rule)), &source_group]);
    let h2 = cheap_hash(&[key, &source_group, &(h1 % ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP).to_le_bytes()]);
    (h2 % ADDRMAN_NEW_BUCKET_COUNT as u64) as usize
}

/// Core's `GetBucketPosition`: where in `bucket` of the new (`'N'`) or tried (`'K'`) table the
/// address and port go.
pub(super) fn bucket_position(key: &[u8; 32], new: bool, bucket: usize, addr: &AddrV2, port: u16) -> usize {
    let table = [if new { b'N' } else { b'K' }];
    let bucket = (bucket as i32).to_le_bytes();
    let h = cheap_hash(&[key, &table, &bucket, &ser_vec(&service_key(addr, port))]);
    (h % ADDRMAN_BUCKET_SIZE as u64) as usize
}

impl AddrMan {
    pub(super) fn slot(&self, id: Id) -> Option<&Slot> {
        self.map_info.get(&id)
    }

    pub(super) fn slot_mut(&mut self, id: Id) -> Option<&mut Slot> {
        self.map_info.get_mut(&id)
    }

    /// Core's `Find`: the entry for a canonical address and port.
    pub(super) fn find(&self, addr: &AddrV2, port: u16) -> Option<Id> {
        self.map_addr.get(&(addr.clone(), port)).copied()
    }

    fn counts_mut(&mut self, id: Id) -> Option<&mut NetCounts> {
        let net = self.slot(id)?.info.entry.addr.clone();
        let net = View::of(&net).network(self.rule);
        self.network_counts.get_mut(net.index())
    }

    /// The tried position of an entry.
    pub(super) fn tried_position(&self, entry: &AddrEntry) -> (usize, usize) {
        let bucket = tried_bucket(&self.key, &entry.addr, entry.port, self.rule);
        (bucket, bucket_position(&self.key, false, bucket, &entry.addr, entry.port))
    }

    /// The new position of an entry as its primary source would place it.
    pub(super) fn primary_new_position(&self, info: &EntryInfo) -> (usize, usize) {
        let bucket = new_bucket(&self.key, &info.entry.addr, &info.source, self.rule);
        (bucket, bucket_position(&self.key, true, bucket, &info.entry.addr, info.entry.port))
    }

    /// Core's `Create`: a new entry, referenced by no bucket yet but counted as new.
    pub(super) fn create(&mut self, entry: AddrEntry, source: AddrV2) -> Id {
        let id = self.id_count;
        self.id_count += 1;
        let key = (entry.addr.clone(), entry.port);
        let info = EntryInfo { entry, source, last_try: 0, last_count_attempt: 0, last_success: 0, attempts: 0 };
        self.map_info.insert(id, Slot { info, ref_count: 0, in_tried: false, random_pos: self.random.len() });
        self.map_addr.insert(key, id);
        self.random.push(id);
        self.n_new += 1;
        if let Some(c) = self.counts_mut(id) {
            c.new += 1;
        }
        id
    }

    /// Core's `SwapRandom`.
    pub(super) fn swap_random(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let (Some(&id_a), Some(&id_b)) = (self.random.get(a), self.random.get(b)) else { return };
        self.random.swap(a, b);
        if let Some(s) = self.slot_mut(id_a) {
            s.random_pos = b;
        }
        if let Some(s) = self.slot_mut(id_b) {
            s.random_pos = a;
        }
    }

    /// Core's `Delete`: removes a new entry that no bucket references any more.
    pub(super) fn delete(&mut self, id: Id) {
        let Some(slot) = self.slot(id) else { return };
        debug_assert!(!slot.in_tried && slot.ref_count == 0);
        let last = self.random.len().saturating_sub(1);
        self.swap_random(slot.random_pos, last);
        if let Some(c) = self.counts_mut(id) {
            c.new -= 1;
        }
        self.random.pop();
        if let Some(slot) = self.map_info.remove(&id) {
            self.map_addr.remove(&(slot.info.entry.addr, slot.info.entry.port));
        }
        self.n_new -= 1;
    }

    /// Core's `ClearNew`: empties a new position, deleting its entry if that was its last one.
    pub(super) fn clear_new(&mut self, bucket: usize, position: usize) {
        let Some(id) = self.new_table.get(bucket, position) else { return };
        self.new_table.set(bucket, position, None);
        let Some(slot) = self.slot_mut(id) else { return };
        debug_assert!(slot.ref_count > 0);
        slot.ref_count = slot.ref_count.saturating_sub(1);
        if slot.ref_count == 0 {
            self.delete(id);
        }
    }

    /// Core's `MakeTried`: takes a new entry out of every new bucket and puts it in its tried
    /// position; an entry already there goes back to its primary new position (deleting what
    /// occupies that).
    pub(super) fn make_tried(&mut self, id: Id) {
        let Some(slot) = self.slot(id) else { return };
        let info = slot.info.clone();
        let mut refs = slot.ref_count;
        let (start, _) = self.primary_new_position(&info);
        for n in 0..ADDRMAN_NEW_BUCKET_COUNT {
            if refs == 0 {
                break;
            }
            let bucket = (start + n) % ADDRMAN_NEW_BUCKET_COUNT;
            let pos = bucket_position(&self.key, true, bucket, &info.entry.addr, info.entry.port);
            if self.new_table.get(bucket, pos) == Some(id) {
                self.new_table.set(bucket, pos, None);
                refs -= 1;
            }
        }
        debug_assert_eq!(refs, 0);
        self.n_new -= 1;
        if let Some(c) = self.counts_mut(id) {
            c.new -= 1;
        }
        if let Some(s) = self.slot_mut(id) {
            s.ref_count = 0;
        }

        let (bucket, pos) = self.tried_position(&info.entry);
        if let Some(evict) = self.tried_table.get(bucket, pos) {
            self.tried_table.set(bucket, pos, None);
            self.n_tried -= 1;
            if let Some(c) = self.counts_mut(evict) {
                c.tried -= 1;
            }
            let Some(old) = self.slot_mut(evict) else { return };
            old.in_tried = false;
            let old_info = old.info.clone();
            let (new_bucket, new_pos) = self.primary_new_position(&old_info);
            self.clear_new(new_bucket, new_pos);
            if let Some(old) = self.slot_mut(evict) {
                old.ref_count = 1;
            }
            self.new_table.set(new_bucket, new_pos, Some(evict));
            self.n_new += 1;
            if let Some(c) = self.counts_mut(evict) {
                c.new += 1;
            }
        }
        self.tried_table.set(bucket, pos, Some(id));
        self.n_tried += 1;
        if let Some(s) = self.slot_mut(id) {
            s.in_tried = true;
        }
        if let Some(c) = self.counts_mut(id) {
            c.tried += 1;
        }
    }

    /// Core's `CheckAddrman`: every index agrees with the tables, every entry sits where its
    /// hashes place it, and the counters match. The error carries Core's code.
    pub fn check(&self) -> Result<(), Inconsistency> {
        let fail = |code: i32, what: &'static str| Err(Inconsistency { code, what });
        if self.random.len() != self.n_tried + self.n_new {
            return fail(-7, "the random order does not hold every entry");
        }
        let mut tried_ids = std::collections::BTreeSet::new();
        let mut new_refs = std::collections::BTreeMap::new();
        let mut counts = [NetCounts::default(); 7];
        for (&id, slot) in &self.map_info {
            let net = View::of(&slot.info.entry.addr).network(self.rule).index();
            if slot.in_tried {
                if slot.info.last_success == 0 {
                    return fail(-1, "a tried entry never succeeded");
                }
                if slot.ref_count != 0 {
                    return fail(-2, "a tried entry is in a new bucket");
                }
                tried_ids.insert(id);
                counts[net].tried += 1;
            } else {
                if slot.ref_count > ADDRMAN_NEW_BUCKETS_PER_ADDRESS {
                    return fail(-3, "a new entry is in too many buckets");
                }
                if slot.ref_count == 0 {
                    return fail(-4, "a new entry is in no bucket");
                }
                new_refs.insert(id, slot.ref_count);
                counts[net].new += 1;
            }
            if self.find(&slot.info.entry.addr, slot.info.entry.port) != Some(id) {
                return fail(-5, "the address index does not point at the entry");
            }
            if self.random.get(slot.random_pos) != Some(&id) {
                return fail(-14, "the random order does not point at the entry");
            }
            if slot.info.last_try < 0 {
                return fail(-6, "a last try before 1970");
            }
            if slot.info.last_success < 0 {
                return fail(-8, "a last success before 1970");
            }
        }
        if self.map_addr.len() != self.map_info.len() {
            return fail(-5, "the address index holds stale addresses");
        }
        if tried_ids.len() != self.n_tried {
            return fail(-9, "the tried count is wrong");
        }
        if new_refs.len() != self.n_new {
            return fail(-10, "the new count is wrong");
        }
        for (bucket, pos, id) in self.tried_table.occupied() {
            if !tried_ids.remove(&id) {
                return fail(-11, "a tried position holds an entry not in tried");
            }
            let Some(slot) = self.slot(id) else { return fail(-17, "a tried position holds a missing entry") };
            let entry = &slot.info.entry;
            if tried_bucket(&self.key, &entry.addr, entry.port, self.rule) != bucket {
                return fail(-17, "a tried entry is in the wrong bucket");
            }
            if bucket_position(&self.key, false, bucket, &entry.addr, entry.port) != pos {
                return fail(-18, "a tried entry is in the wrong position");
            }
        }
        for (bucket, pos, id) in self.new_table.occupied() {
            let Some(refs) = new_refs.get_mut(&id) else { return fail(-12, "a new position holds a tried entry") };
            let Some(slot) = self.slot(id) else { return fail(-19, "a new position holds a missing entry") };
            if bucket_position(&self.key, true, bucket, &slot.info.entry.addr, slot.info.entry.port) != pos {
                return fail(-19, "a new entry is in the wrong position");
            }
            *refs -= 1;
            if *refs == 0 {
                new_refs.remove(&id);
            }
        }
        if !tried_ids.is_empty() {
            return fail(-13, "a tried entry is in no tried position");
        }
        if !new_refs.is_empty() {
            return fail(-15, "a new entry's reference count exceeds its positions");
        }
        if self.key == [0; 32] {
            return fail(-16, "the key is null");
        }
        if counts != self.network_counts {
            return fail(-21, "the per-network counts are wrong");
        }
        if self.tried_collisions.len() > super::ADDRMAN_SET_TRIED_COLLISION_SIZE {
            return fail(-22, "too many tried collisions");
        }
        Ok(())
    }
}
