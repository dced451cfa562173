//! Fuzzes the protocol's block and compact-block handling (`protocol::blocks`, `protocol::cmpct`,
//! I/O-free) with the validation thread played by the harness, on regtest with fake time.
//!
//! Set-up: a protocol that carries blocks, whose header tree holds the headers of a 40-block
//! regtest chain with spending transactions (made once per process); its blocks are what peers
//! send and what "disk" reads return. Input: up to 64 steps — connect an established peer
//! (connection type, services, whether it sent `sendcmpct(1|0, 2)`); deliver to a peer a
//! `block` (a chain block, mutated, or raw bytes), a `cmpctblock` (made from a chain block,
//! mutated, or raw), a `blocktxn` (the right answer to the peer's rebuild, a wrong one, or raw),
//! `getblocktxn`, `getdata` (chain blocks, compact, legacy, transactions, unknown; up to 60,000
//! entries), `notfound`, `headers`, `inv`, `tx`, `sendcmpct` raw bytes; run a peer's
//! `SendMessages` with its send queue under or over its limit; answer the validation thread's
//! requests (verdict stored, unconnected, duplicate or invalid of any kind; a tip move; a
//! block read, or not found); a new PoW-valid block; advance the clock; disconnect.
//!
//! Checks, besides never panicking: nothing is sent after a disconnect within a call; no
//! `getdata` we send has more than 1,000 entries and none asks a block in flight from someone
//! else; a peer's serving queue stays within 50,000 entries and its rebuilds within 16; blocks
//! awaiting a verdict stay within the pending limits; the in-flight count per peer stays ≤ 16.

#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bitcoin::bip152::BlockTransactionsRequest;
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_compact_blocks::{BlockTxn, GetBlockTxn, SendCmpct};
use bitcoin::{Block, BlockHash};
use btcloop::base::chainparams::Network;
use btcloop::base::message::encode_payload;
use btcloop::base::peer::{ConnectionType, DisconnectReason, PeerId, PeerIdentity};
use btcloop::engine::blocks::compact::{self, PartialBlock};
use btcloop::engine::blocks::download::MAX_BLOCKS_IN_TRANSIT_PER_PEER;
use btcloop::engine::blocks::validation::{BlockForm, BlockOutcome, Invalid, InvalidKind, ValidationRequest};
use btcloop::engine::chain::accept::Chain;
use btcloop::engine::chain::blockgen::BlockGen;
use btcloop::engine::chain::params::ChainParams;
use btcloop::engine::protocol::blocks::{self, MAX_GETDATA_QUEUE, MAX_GETDATA_SZ, MAX_PENDING_BLOCKS};
use btcloop::engine::protocol::{LinkTimes, Now, Outbox, Peer, Protocol, ProtocolParams, ProtocolParts, cmpct};
use libfuzzer_sys::fuzz_target;

mod common;
use common::Reader;

const CHAIN_LEN: u32 = 40;
const UNIX0: i64 = 1_800_000_000;

/// The chain, made once: regtest blocks with spends, times ending at `UNIX0`.
fn chain() -> &'static [Block] {
    static CHAIN: OnceLock<Vec<Block>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut g = BlockGen::new(ChainParams::new(Network::Regtest));
        (0..CHAIN_LEN).map(|i| g.next_block(UNIX0 as u32 - CHAIN_LEN + i, 2)).collect()
    })
}

#[derive(Default)]
struct Out {
    sent: Vec<NetworkMessage>,
    disconnect: Option<DisconnectReason>,
    sent_after_disconnect: Vec<&'static str>,
    paused: bool,
}

impl Outbox for Out {
    fn send(&mut self, msg: &NetworkMessage) {
        if self.disconnect.is_some() {
            self.sent_after_disconnect.push(msg.cmd());
        }
        self.sent.push(msg.clone());
    }
    fn send_headers<'h>(&mut self, headers: impl ExactSizeIterator<Item = &'h bitcoin::block::Header>) {
        self.send(&NetworkMessage::Headers(headers.copied().collect()));
    }
    fn disconnect(&mut self, reason: DisconnectReason) {
        self.disconnect.get_or_insert(reason);
    }
    fn is_disconnecting(&self) -> bool {
        self.disconnect.is_some()
    }
    fn discourage(&mut self, _ip: std::net::IpAddr) {}
    fn relay_addr(&mut self, _addr: btcloop::engine::addrman::AddrEntry, _reachable: bool) {}
    fn send_paused(&self) -> bool {
        self.paused
    }
}

struct World {
    proto: Protocol,
    peers: BTreeMap<PeerId, Peer>,
    /// The last `getblocktxn` each peer was sent (to answer it right or wrong).
    asked: BTreeMap<PeerId, BlockTransactionsRequest>,
    next_id: PeerId,
    t0: Instant,
    elapsed: Duration,
}

impl World {
    fn new(r: &mut Reader) -> World {
        let params = ChainParams::new(Network::Regtest);
        let mut c = Chain::in_memory(params, bitcoin::pow::Work::from_be_bytes([0; 32]));
        let headers: Vec<_> = chain().iter().map(|b| b.header).collect();
        assert_eq!(c.accept(&headers, UNIX0).error, None);
        let parts = ProtocolParts::seeded(
            ProtocolParams {
                user_agent: "/btcloop:fuzz/".into(),
                services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
                peer_timeout: Duration::from_secs(60),
                log_ips: false,
                blocks: true,
            },
            c,
            r.u64(),
        );
        World {
            proto: Protocol::new(parts),
            peers: BTreeMap::new(),
            asked: BTreeMap::new(),
            next_id: 0,
            t0: Instant::now(),
            elapsed: Duration::ZERO,
        }
    }

    fn now(&self) -> Now {
        Now { mono: self.t0 + self.elapsed, unix: UNIX0 + self.elapsed.as_secs() as i64 }
    }

    fn pick(&self, r: &mut Reader) -> Option<PeerId> {
        if self.peers.is_empty() {
            return None;
        }
        let i = r.below(self.peers.len());
        self.peers.keys().nth(i).copied()
    }

    fn connect(&mut self, r: &mut Reader) {
        if self.peers.len() >= 6 {
            return;
        }
        let conn = [ConnectionType::Inbound, ConnectionType::OutboundFullRelay, ConnectionType::Manual][r.below(3)];
        let services = [
            ServiceFlags::NETWORK | ServiceFlags::WITNESS,
            ServiceFlags::NETWORK_LIMITED | ServiceFlags::WITNESS,
            ServiceFlags::NETWORK,
            ServiceFlags::NONE,
        ][r.below(4)];
        let hb = r.u8();
        let id = self.next_id;
        self.next_id += 1;
        let addr = SocketAddr::from(([10, 0, 0, (id % 250) as u8 + 1], 8333));
        let mut peer = self.proto.add_peer(PeerIdentity::new(id, addr, conn, self.now().mono));
        let empty = bitcoin::p2p::address::Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
        let v = bitcoin::p2p::message_network::VersionMessage {
            version: 70016,
            services,
            timestamp: UNIX0,
            receiver: empty.clone(),
            sender: empty,
            nonce: 1_000 + id,
            user_agent: "/fuzz/".into(),
            start_height: CHAIN_LEN as i32,
            relay: false,
        };
        let now = self.now();
        let mut out = Out::default();
        for msg in [NetworkMessage::Version(v), NetworkMessage::Verack] {
            let (command, payload) = encode_payload(&msg);
            let _ = self.proto.process_message(&mut peer, command, &payload, now.mono, now, &mut out);
        }
        if hb & 1 == 1 {
            let msg = NetworkMessage::SendCmpct(SendCmpct { send_compact: hb & 2 == 2, version: 2 });
            let (command, payload) = encode_payload(&msg);
            let _ = self.proto.process_message(&mut peer, command, &payload, now.mono, now, &mut out);
        }
        self.peers.insert(id, peer);
    }

    /// Delivers a payload of type `command` to `id` and applies what the protocol said.
    fn deliver_raw(&mut self, id: PeerId, command: &str, payload: &[u8]) {
        let now = self.now();
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let mut out = Out::default();
        let _ = self.proto.process_message(peer, command, payload, now.mono, now, &mut out);
        self.check_sent(id, &out);
        self.apply(id, out);
    }

    fn deliver(&mut self, id: PeerId, msg: &NetworkMessage) {
        let (command, payload) = encode_payload(msg);
        self.deliver_raw(id, command, &payload);
    }

    fn send_messages(&mut self, id: PeerId, paused: bool) {
        let now = self.now();
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let mut out = Out { paused, ..Out::default() };
        self.proto.send_messages(peer, now, LinkTimes { last_send: Some(now.mono), last_recv: Some(now.mono) }, &mut out);
        self.check_sent(id, &out);
        self.apply(id, out);
    }

    fn check_sent(&mut self, id: PeerId, out: &Out) {
        assert!(
            out.sent_after_disconnect.is_empty(),
            "sent after disconnect ({:?}): {:?}",
            out.disconnect,
            out.sent_after_disconnect
        );
        for m in &out.sent {
            match m {
                NetworkMessage::GetData(inv) => {
                    assert!(inv.len() <= MAX_GETDATA_SZ, "getdata of {}", inv.len());
                }
                NetworkMessage::GetBlockTxn(GetBlockTxn { txs_request }) => {
                    self.asked.insert(id, txs_request.clone());
                }
                _ => {}
            }
        }
    }

    /// A disconnected peer is forgotten, as the message handler does.
    fn apply(&mut self, id: PeerId, out: Out) {
        if out.disconnect.is_some() {
            self.close(id);
        }
    }

    fn close(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.remove(&id) {
            let unix = self.now().unix;
            self.proto.remove_peer(&peer, unix);
        }
        self.asked.remove(&id);
    }

    /// The validation thread's part: answer up to `n` queued requests.
    fn validate(&mut self, r: &mut Reader, n: usize) {
        let mut reqs = Vec::new();
        self.proto.headers_and_blocks_mut().1.take_requests(&mut reqs);
        let now = self.now();
        let kinds = [
            InvalidKind::Consensus,
            InvalidKind::Mutated,
            InvalidKind::MissingPrev,
            InvalidKind::InvalidPrev,
            InvalidKind::CachedInvalid,
            InvalidKind::TimeFuture,
            InvalidKind::Unset,
        ];
        for req in reqs.into_iter().take(n.max(1)) {
            match req {
                ValidationRequest::Headers(_) => {}
                ValidationRequest::Block { hash, .. } => {
                    let choice = r.u8();
                    let outcome = match choice % 4 {
                        0 => BlockOutcome::Stored,
                        1 => BlockOutcome::Unconnected,
                        2 => BlockOutcome::Duplicate,
                        _ => BlockOutcome::Invalid(Invalid { kind: kinds[r.below(kinds.len())], reason: String::new() }),
                    };
                    let peers = &self.peers;
                    let inbound = |id: PeerId| peers.get(&id).map(|p| p.who.conn_type.is_inbound());
                    let (headers, blocks) = self.proto.headers_and_blocks_mut();
                    let _ = blocks::on_verdict(headers, blocks, hash, &outcome, inbound, now);
                    if matches!(outcome, BlockOutcome::Stored) && choice & 0x10 != 0 {
                        let (headers, blocks) = self.proto.headers_and_blocks_mut();
                        blocks::on_tip(headers, blocks, hash, 0.5, 0, now);
                    }
                }
                ValidationRequest::Read { peer, hash, form } => {
                    let block = chain().iter().find(|b| b.block_hash() == hash);
                    let found = r.u8() % 4 != 0;
                    let Some(p) = self.peers.get_mut(&peer) else { continue };
                    let mut out = Out::default();
                    match (form, block.filter(|_| found)) {
                        (BlockForm::Compact, Some(b)) => {
                            p.blocks.reading = false;
                            let bytes = serialize(b);
                            let (headers, _, c) = self.proto.block_parts_mut();
                            cmpct::on_read(c, headers, p, b, &bytes, None, now, &mut out);
                        }
                        (_, Some(b)) => blocks::on_read(p, hash, form, Some(&serialize(b)), None, &mut out),
                        (_, None) => blocks::on_read(p, hash, form, None, None, &mut out),
                    }
                    self.check_sent(peer, &out);
                    self.apply(peer, out);
                }
            }
        }
    }

    fn check(&mut self) {
        let (headers, blocks) = self.proto.headers_and_blocks_mut();
        let _ = headers;
        assert!(blocks.pending_bytes() <= blocks::MAX_PENDING_BYTES + 4_000_000, "pending bytes");
        for (id, p) in &self.peers {
            assert!(p.blocks.getdata.len() <= MAX_GETDATA_QUEUE, "getdata queue of peer {id}");
            assert!(p.cmpct.partial.len() <= MAX_BLOCKS_IN_TRANSIT_PER_PEER, "rebuilds of peer {id}");
            assert!(blocks.download.in_flight(*id) <= MAX_BLOCKS_IN_TRANSIT_PER_PEER, "in flight from {id}");
        }
        let _ = MAX_PENDING_BLOCKS;
    }
}

/// `bytes` with up to 7 input-chosen bytes overwritten and maybe cut short.
fn mutate(r: &mut Reader, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..r.u8() % 8 {
        if bytes.is_empty() {
            break;
        }
        let i = r.below(bytes.len().min(65_536));
        bytes[i] = r.u8();
    }
    if r.u8() % 4 == 0 {
        let keep = r.below(bytes.len().max(1));
        bytes.truncate(keep);
    }
    bytes
}

fn some_block(r: &mut Reader) -> &'static Block {
    let c = chain();
    &c[r.below(c.len())]
}

fn step(w: &mut World, r: &mut Reader) {
    let op = r.u8() % 20;
    if op == 0 {
        return w.connect(r);
    }
    let Some(id) = w.pick(r) else { return w.connect(r) };
    match op {
        1 => {
            let b = some_block(r);
            let bytes = serialize(b);
            let bytes = if r.bool() { mutate(r, bytes) } else { bytes };
            w.deliver_raw(id, "block", &bytes);
        }
        2 => {
            let b = some_block(r);
            let cmpct = compact::compact_from_block(b, r.u64());
            let bytes = serialize(&cmpct);
            let bytes = if r.bool() { mutate(r, bytes) } else { bytes };
            w.deliver_raw(id, "cmpctblock", &bytes);
        }
        3 => {
            // The right answer to the last getblocktxn, or a wrong one.
            let Some(req) = w.asked.get(&id).cloned() else { return };
            let Some(b) = chain().iter().find(|b| b.block_hash() == req.block_hash) else { return };
            let Ok(txs) = compact::answer_getblocktxn(b, &req) else { return };
            let bytes = serialize(&BlockTxn { transactions: txs });
            let bytes = if r.bool() { mutate(r, bytes) } else { bytes };
            w.deliver_raw(id, "blocktxn", &bytes);
        }
        4 => {
            let b = some_block(r);
            let n = b.txdata.len() as u64 + u64::from(r.u8() % 3);
            let indexes = (0..n).filter(|_| r.bool()).collect();
            let req = BlockTransactionsRequest { block_hash: b.block_hash(), indexes };
            w.deliver(id, &NetworkMessage::GetBlockTxn(GetBlockTxn { txs_request: req }));
        }
        5 => {
            let count = if r.u8() == 0xff { 50_001 + usize::from(r.u8()) } else { usize::from(r.u8() % 40) };
            let inv = (0..count)
                .map(|i| {
                    let h = chain()[i % chain().len()].block_hash();
                    match r.u8() % 6 {
                        0 => Inventory::Block(h),
                        1 => Inventory::WitnessBlock(h),
                        2 => Inventory::CompactBlock(h),
                        3 => Inventory::WitnessTransaction(bitcoin::Txid::all_zeros()),
                        4 => Inventory::WitnessBlock(BlockHash::from_byte_array([7; 32])),
                        _ => Inventory::Unknown { inv_type: 99, hash: [1; 32] },
                    }
                })
                .collect();
            w.deliver(id, &NetworkMessage::GetData(inv));
        }
        6 => {
            let h = some_block(r).block_hash();
            w.deliver(id, &NetworkMessage::NotFound(vec![Inventory::WitnessBlock(h)]));
        }
        7 => {
            let start = r.below(chain().len());
            let end = (start + 1 + r.below(10)).min(chain().len());
            w.deliver(id, &NetworkMessage::Headers(chain()[start..end].iter().map(|b| b.header).collect()));
        }
        8 => {
            let h = some_block(r).block_hash();
            let inv = if r.bool() { Inventory::Block(h) } else { Inventory::Transaction(bitcoin::Txid::all_zeros()) };
            w.deliver(id, &NetworkMessage::Inv(vec![inv]));
        }
        9 => {
            let tx = some_block(r).txdata[0].clone();
            w.deliver(id, &NetworkMessage::Tx(tx));
        }
        10 => {
            let raw = r.bytes(9).to_vec();
            w.deliver_raw(id, "sendcmpct", &raw);
        }
        11 | 12 => {
            let paused = op == 12 && r.bool();
            w.send_messages(id, paused);
        }
        13 | 14 => {
            let n = usize::from(r.u8() % 8);
            w.validate(r, n);
        }
        15 => {
            let b = some_block(r);
            let height = w.proto.headers().chain.tree().get(&b.block_hash()).map_or(0, |(_, e)| e.height);
            let (_, _, c) = w.proto.block_parts_mut();
            let recent = (Arc::new(b.clone()), Arc::new(compact::compact_from_block(b, 1)));
            let _ = cmpct::new_pow_valid_block(c, recent, height, true);
        }
        16 => w.elapsed += Duration::from_secs(u64::from(r.u8()) * 4),
        17 => w.close(id),
        18 => {
            let command = ["block", "cmpctblock", "blocktxn", "getblocktxn", "getdata", "notfound"][r.below(6)];
            let len = r.below(600);
            let raw = r.bytes(len).to_vec();
            w.deliver_raw(id, command, &raw);
        }
        _ => {
            // A compact block rebuilt from what a peer announced: what reconstruction makes
            // of a made block must be that block.
            let b = some_block(r);
            if let Ok(p) = PartialBlock::new(&compact::compact_from_block(b, 1)) {
                if let Ok(txs) = compact::answer_getblocktxn(b, &p.missing()) {
                    let filled = p.fill(&BlockTxn { transactions: txs }, true).expect("fills");
                    assert_eq!(filled.block_hash(), b.block_hash());
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut w = World::new(&mut r);
    for _ in 0..64 {
        if r.is_empty() {
            break;
        }
        step(&mut w, &mut r);
        w.check();
    }
});
