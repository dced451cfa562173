//! Property test of the block download scheduler: random sequences of peers arriving and
//! leaving, fetches, deliveries, `notfound`s, connected blocks, invalid blocks, time passing and
//! timeout checks, with the scheduler's promises checked after every step.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::pow::Work;
use proptest::prelude::*;

use super::tests::{branch, chain};
use super::*;
use crate::engine::chain::tree::{BlockStatus, EntryId, HeaderTree};

const PEERS: u64 = 4;
const MAIN: u32 = 1300;
const SEGWIT: u32 = 700;

#[derive(Clone, Debug)]
enum Event {
    Add(u64),
    Remove(u64),
    /// Fetch with the peer's best known block chosen among a few, limited and witness flags.
    Fetch(u64, usize, bool, bool),
    DirectFetch(u64, usize),
    /// The peer delivers its `k`-th request; the block is stored.
    Deliver(u64, usize),
    /// The peer delivers every request but its first; they are stored.
    DeliverAllButFirst(u64),
    /// The peer fetches (full, witness, best known block chosen) and delivers what it fetched,
    /// again and again until it gets nothing: it fills the window around other peers' requests.
    Pump(u64, usize),
    /// Another peer sends the peer's `k`-th request (not stored).
    FromOther(u64, u64, usize),
    NotFound(u64, usize),
    /// The kernel connects every stored block following the active tip on the main chain.
    Connect,
    /// A block above the active tip is found invalid (main chain height or side branch index).
    Invalidate(bool, u32),
    Advance(u64),
    Check(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => (0..PEERS).prop_map(Event::Add),
        1 => (0..PEERS).prop_map(Event::Remove),
        6 => (0..PEERS, 0..5usize, any::<bool>(), prop::bool::weighted(0.9))
            .prop_map(|(p, b, l, w)| Event::Fetch(p, b, l, w)),
        1 => (0..PEERS, 0..5usize).prop_map(|(p, b)| Event::DirectFetch(p, b)),
        3 => (0..PEERS, 0..16usize).prop_map(|(p, k)| Event::Deliver(p, k)),
        3 => (0..PEERS).prop_map(Event::DeliverAllButFirst),
        2 => (0..PEERS, 0..5usize).prop_map(|(p, b)| Event::Pump(p, b)),
        1 => (0..PEERS, 0..PEERS, 0..16usize).prop_map(|(p, q, k)| Event::FromOther(p, q, k)),
        1 => (0..PEERS, 0..16usize).prop_map(|(p, k)| Event::NotFound(p, k)),
        2 => Just(Event::Connect),
        1 => (any::<bool>(), 0..MAIN).prop_map(|(s, h)| Event::Invalidate(s, h)),
        2 => (0..5_000u64).prop_map(Event::Advance),
        1 => (0..1_200_000u64).prop_map(Event::Advance),
        4 => (0..PEERS).prop_map(Event::Check),
    ]
}

struct World {
    tree: HeaderTree,
    main: Vec<EntryId>,
    side: Vec<EntryId>,
    bd: BlockDownload,
    now: Instant,
}

impl World {
    fn new() -> World {
        let (mut tree, main) = chain(MAIN);
        // A heavier branch forking at 1000 and a lighter one at 1200 (index 0 and 1 below).
        let side = branch(&mut tree, main[1000], 400, 50_000_000);
        let params = DownloadParams { segwit_height: SEGWIT, minimum_chain_work: Work::from_le_bytes([0; 32]) };
        World { tree, main, side, bd: BlockDownload::new(params), now: Instant::now() }
    }

    /// The best known blocks peers may announce.
    fn best(&self, i: usize) -> EntryId {
        let choices = [self.main[5], self.main[300], self.main[MAIN as usize], self.side[399], self.side[100]];
        choices[i % choices.len()]
    }

    fn hash(&self, id: EntryId) -> BlockHash {
        self.tree.entry(id).map(|e| e.hash).unwrap_or_else(|| panic!("entry {id}"))
    }

    fn store(&mut self, hash: &BlockHash) {
        if let Some((id, _)) = self.tree.get(hash) {
            self.tree.add_status(id, BlockStatus::HAVE_DATA);
        }
        self.bd.forget(hash, self.now);
    }

    /// Highest height on `best`'s chain up to which every block is stored or active.
    fn complete_height(&self, best: EntryId) -> u32 {
        let top = self.tree.entry(best).map_or(0, |e| e.height);
        let mut done = 0;
        for h in 1..=top {
            let Some(id) = self.tree.ancestor(best, h) else { break };
            let e = &self.tree.entries()[id as usize];
            if !(self.tree.on_active_chain(id) || e.status.has(BlockStatus::HAVE_DATA)) {
                break;
            }
            done = h;
        }
        done
    }

    /// Every promise about a batch of new requests made of `peer`.
    fn check_requests(&self, before: &HashSet<BlockHash>, blocks: &[(EntryId, BlockHash)], facts: Option<FetchFacts>) {
        let complete = facts.and_then(|f| f.best_known).map(|b| self.complete_height(b));
        for &(id, hash) in blocks {
            let e = &self.tree.entries()[id as usize];
            assert_eq!(e.hash, hash);
            assert!(!before.contains(&hash), "block {} requested twice", e.height);
            assert!(!self.tree.on_active_chain(id), "active block {} requested", e.height);
            assert!(!e.status.has(BlockStatus::HAVE_DATA), "stored block {} requested", e.height);
            assert!(!e.status.failed(), "invalid block {} requested", e.height);
            if let (Some(f), Some(best)) = (facts, facts.and_then(|f| f.best_known)) {
                let b = &self.tree.entries()[best as usize];
                assert_eq!(self.tree.ancestor(best, e.height), Some(id), "not on the peer's chain");
                assert!(!b.status.failed());
                assert!(
                    b.chain_work
                        >= self.tree.entry(self.tree.active_tip_id()).map(|a| a.chain_work).unwrap_or(b.chain_work)
                );
                assert!(
                    e.height <= complete.unwrap_or(0) + BLOCK_DOWNLOAD_WINDOW,
                    "block {} past the window",
                    e.height
                );
                if f.limited {
                    assert!(b.height - e.height < NODE_NETWORK_LIMITED_MIN_BLOCKS - 2, "too deep for a limited peer");
                }
                if !f.witness {
                    assert!(e.height < SEGWIT, "segwit block from a legacy peer");
                }
            }
        }
    }

    /// The bookkeeping counters agree with the maps.
    fn check_books(&self) {
        let mut all = HashSet::new();
        let mut downloading = 0;
        for p in 0..PEERS {
            let reqs = self.bd.requests(p);
            assert!(reqs.len() <= MAX_BLOCKS_IN_TRANSIT_PER_PEER, "peer {p} has {} in flight", reqs.len());
            assert_eq!(reqs.len(), self.bd.in_flight(p));
            downloading += usize::from(!reqs.is_empty());
            for h in reqs {
                assert_eq!(self.bd.requested_from(&h), Some(p));
                assert!(all.insert(h), "a hash in flight twice");
            }
        }
        assert_eq!(all.len(), self.bd.total_in_flight());
        assert_eq!(downloading, self.bd.peers_downloading_from());
        assert!(self.bd.stalling_timeout() >= BLOCK_STALLING_TIMEOUT_DEFAULT);
        assert!(self.bd.stalling_timeout() <= BLOCK_STALLING_TIMEOUT_MAX);
    }

    fn in_flight_set(&self) -> HashSet<BlockHash> {
        (0..PEERS).flat_map(|p| self.bd.requests(p)).collect()
    }

    fn step(&mut self, ev: &Event) {
        let before = self.in_flight_set();
        match *ev {
            Event::Add(p) => self.bd.add_peer(p),
            Event::Remove(p) => {
                let freed = self.bd.remove_peer(p);
                assert!(freed.iter().all(|h| !self.bd.is_requested(h)));
            }
            Event::Fetch(p, b, limited, witness) => {
                let facts = FetchFacts { best_known: Some(self.best(b)), limited, witness, allowed: true };
                let f = self.bd.fetch(&self.tree, p, facts, self.now);
                self.check_requests(&before, &f.blocks, Some(facts));
                if let Some(s) = f.stall_started {
                    assert_ne!(s, p);
                    assert_eq!(self.bd.in_flight(p), 0);
                    assert!(self.bd.in_flight(s) > 0);
                }
            }
            Event::Pump(p, b) => {
                let facts = FetchFacts { best_known: Some(self.best(b)), limited: false, witness: true, allowed: true };
                for _ in 0..80 {
                    let before = self.in_flight_set();
                    let f = self.bd.fetch(&self.tree, p, facts, self.now);
                    self.check_requests(&before, &f.blocks, Some(facts));
                    if f.blocks.is_empty() {
                        break;
                    }
                    for &(_, h) in &f.blocks {
                        assert_eq!(self.bd.received(&h, p, self.now), Received::Requested);
                        self.store(&h);
                    }
                    self.check_books();
                }
            }
            Event::DirectFetch(p, b) => {
                let d = self.bd.direct_fetch(&self.tree, p, self.best(b), true, self.now);
                self.check_requests(&before, &d.blocks, None);
            }
            Event::Deliver(p, k) => {
                let reqs = self.bd.requests(p);
                if let Some(h) = reqs.get(k % reqs.len().max(1)).copied() {
                    assert_eq!(self.bd.received(&h, p, self.now), Received::Requested);
                    self.store(&h);
                }
            }
            Event::DeliverAllButFirst(p) => {
                for h in self.bd.requests(p).into_iter().skip(1) {
                    assert_eq!(self.bd.received(&h, p, self.now), Received::Requested);
                    self.store(&h);
                }
            }
            Event::FromOther(p, q, k) => {
                let reqs = self.bd.requests(p);
                if let Some(h) = reqs.get(k % reqs.len().max(1)).copied() {
                    let r = self.bd.received(&h, q, self.now);
                    assert_eq!(r, if p == q { Received::Requested } else { Received::FromOther(p) });
                }
            }
            Event::NotFound(p, k) => {
                let reqs = self.bd.requests(p);
                if let Some(h) = reqs.get(k % reqs.len().max(1)).copied() {
                    assert_eq!(self.bd.not_found(p, &[h], self.now), 1);
                    assert!(!self.bd.is_requested(&h));
                }
            }
            Event::Connect => {
                let mut tip = self.tree.active_height();
                while let Some(&next) = self.main.get(tip as usize + 1) {
                    let e = &self.tree.entries()[next as usize];
                    if !e.status.has(BlockStatus::HAVE_DATA) || e.status.failed() {
                        break;
                    }
                    tip += 1;
                }
                if tip > self.tree.active_height() {
                    self.tree.set_active_tip(self.main[tip as usize]);
                    self.bd.connected();
                }
            }
            Event::Invalidate(on_side, h) => {
                let id = if on_side { self.side[(h % 400) as usize] } else { self.main[h as usize] };
                if !self.tree.on_active_chain(id) {
                    self.tree.mark_invalid(id);
                    let hash = self.hash(id);
                    self.bd.forget(&hash, self.now);
                }
            }
            Event::Advance(ms) => self.now += Duration::from_millis(ms),
            Event::Check(p) => {
                if self.bd.check(p, self.now, Duration::from_secs(600)).is_some() {
                    self.bd.remove_peer(p);
                }
            }
        }
        self.check_books();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_scheduler_keeps_its_promises(events in prop::collection::vec(event(), 1..250)) {
        let mut world = World::new();
        for ev in &events {
            world.step(ev);
        }
    }
}
