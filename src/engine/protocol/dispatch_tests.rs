//! The dispatch (`Protocol::process_message`) is the one list of handled message types: each
//! handled type is decoded and reaches its module, every other type is neither decoded nor an
//! error, and an undecodable payload of a handled type is the error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};

use super::*;
use crate::base::chainparams::Network;
use crate::base::message::encode_payload;
use crate::base::peer::PeerIdentity;
use crate::engine::chain::mine::mine_chain;
use crate::engine::chain::params::ChainParams;
use crate::engine::protocol::test_support::{peer_version, test_protocol};

const UNIX0: i64 = 2_000_000_000;

fn proto() -> Protocol {
    test_protocol(ServiceFlags::NONE, 5)
}

fn now(t0: Instant, secs: u64) -> Now {
    Now { mono: t0 + Duration::from_secs(secs), unix: UNIX0 + secs as i64 }
}

fn version() -> NetworkMessage {
    peer_version(42, UNIX0, "/Satoshi:28.0.0/")
}

/// An inbound peer from a routable address that has sent nothing yet.
fn new_peer(p: &mut Protocol, t0: Instant) -> Peer {
    let from: SocketAddr = "1.2.3.4:8333".parse().unwrap();
    p.add_peer(PeerIdentity::new(1, from, ConnectionType::Inbound, t0))
}

/// Feeds `msg` through the dispatch as its wire bytes; returns what was sent.
fn send(p: &mut Protocol, peer: &mut Peer, msg: NetworkMessage, at: Now) -> Recorder {
    let mut out = Recorder::default();
    p.deliver(peer, msg, at.mono, at, &mut out);
    assert_eq!(out.disconnect, None);
    out
}

#[test]
fn every_handled_type_reaches_its_module() {
    let params = ChainParams::new(Network::Regtest);
    let mined = mine_chain(&params, &params.genesis, 2, 1);
    let mut p = proto();
    let t0 = Instant::now();
    let at = now(t0, 1);
    let mut peer = new_peer(&mut p, t0);

    let out = send(&mut p, &mut peer, version(), at);
    assert!(peer.handshake.remote.is_some(), "version: handshake");
    assert_eq!(out.commands().first(), Some(&"version"));
    send(&mut p, &mut peer, NetworkMessage::WtxidRelay, at);
    assert!(peer.handshake.wtxid_relay, "wtxidrelay: handshake");
    send(&mut p, &mut peer, NetworkMessage::SendAddrV2, at);
    assert!(peer.handshake.wants_addrv2, "sendaddrv2: handshake");
    send(&mut p, &mut peer, NetworkMessage::SendHeaders, at);
    assert!(peer.handshake.prefers_headers, "sendheaders: handshake");
    send(&mut p, &mut peer, NetworkMessage::Verack, at);
    assert!(peer.handshake.successfully_connected, "verack: handshake");

    let out = send(&mut p, &mut peer, NetworkMessage::Ping(7), at);
    assert_eq!(out.sent, [NetworkMessage::Pong(7)], "ping: answered");
    peer.ping.nonce_sent = 9;
    send(&mut p, &mut peer, NetworkMessage::Pong(9), at);
    assert_eq!(peer.ping.nonce_sent, 0, "pong: the ping is answered");

    send(&mut p, &mut peer, NetworkMessage::Headers(vec![mined[0]]), at);
    assert_eq!(p.headers.chain.tree().height(), 1, "headers: accepted");
    let ask = GetHeadersMessage {
        version: 70016,
        locator_hashes: vec![params.genesis_hash()],
        stop_hash: bitcoin::BlockHash::all_zeros(),
    };
    let out = send(&mut p, &mut peer, NetworkMessage::GetHeaders(ask), at);
    assert_eq!(out.sent, [NetworkMessage::Headers(vec![mined[0]])], "getheaders: served");
    let out = send(&mut p, &mut peer, NetworkMessage::Inv(vec![Inventory::Block(mined[1].block_hash())]), at);
    assert_eq!(out.commands(), ["getheaders"], "inv of an unknown block: headers asked for");

    let fresh = (at.unix - 60) as u32;
    let book = p.addrman.size(None, None);
    let v1 = Address::new(&"8.8.8.8:8333".parse().unwrap(), ServiceFlags::NETWORK);
    send(&mut p, &mut peer, NetworkMessage::Addr(vec![(fresh, v1)]), at);
    assert_eq!(p.addrman.size(None, None), book + 1, "addr: into the address book");
    let v2 = AddrV2Message {
        time: fresh,
        services: ServiceFlags::NETWORK,
        addr: AddrV2::Ipv4([9, 9, 9, 9].into()),
        port: 8333,
    };
    // Later, when the rate limit's bucket holds a token again.
    send(&mut p, &mut peer, NetworkMessage::AddrV2(vec![v2]), now(t0, 100));
    assert_eq!(p.addrman.size(None, None), book + 2, "addrv2: into the address book");
    send(&mut p, &mut peer, NetworkMessage::GetAddr, at);
    assert!(peer.addrs.getaddr_recvd, "getaddr: answered");

    let inv = vec![Inventory::WitnessBlock(mined[1].block_hash())];
    send(&mut p, &mut peer, NetworkMessage::GetData(inv.clone()), at);
    assert_eq!(peer.blocks.getdata.len(), 1, "getdata: queued for serving");
    let out = send(&mut p, &mut peer, NetworkMessage::NotFound(inv), at);
    assert!(out.sent.is_empty(), "notfound: taken");
    let block = bitcoin::Block { header: mined[1], txdata: Vec::new() };
    let before = p.blocks.received_bytes;
    send(&mut p, &mut peer, NetworkMessage::Block(block), at);
    assert!(p.blocks.received_bytes > before, "block: reached the blocks module");
    // A transaction to a blocks-only node: the sender goes (Core's -blocksonly).
    let tx = bitcoin::Transaction {
        version: bitcoin::transaction::Version::ONE,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![],
        output: vec![],
    };
    let mut out = Recorder::default();
    p.deliver(&mut peer, NetworkMessage::Tx(tx), at.mono, at, &mut out);
    assert!(out.disconnect.is_some(), "tx: disconnected");
}

/// A new peer, or one through `version` and `verack` unless `before_version`.
fn peer_at_stage(p: &mut Protocol, t0: Instant, at: Now, before_version: bool) -> Peer {
    let mut peer = new_peer(p, t0);
    if !before_version {
        send(p, &mut peer, version(), at);
        send(p, &mut peer, NetworkMessage::Verack, at);
    }
    peer
}

/// Types no module handles, some of them types the `bitcoin` crate would fail to decode.
const UNHANDLED: [&str; 4] = ["feefilter", "filterload", "filteradd", "no-such-type"];

#[test]
fn unhandled_types_are_not_decoded_even_when_garbage() {
    let mut p = proto();
    let t0 = Instant::now();
    let at = now(t0, 1);
    let garbage = [0xff; 3];
    for before_version in [true, false] {
        let mut peer = peer_at_stage(&mut p, t0, at, before_version);
        for command in UNHANDLED {
            assert!(crate::base::message::decode_payload(command, &garbage).is_err() || command == "no-such-type");
            let mut out = Recorder::default();
            let r = p.process_message(&mut peer, command, &garbage, at.mono, at, &mut out);
            assert!(r.is_ok(), "{command}: not decoded, so not an error: {r:?}");
            assert!(out.sent.is_empty() && out.disconnect.is_none(), "{command}: nothing done");
        }
        assert_eq!(peer.handshake.remote.is_some(), !before_version, "state untouched");
        p.remove_peer(&peer, at.unix);
    }
}

#[test]
fn handled_types_with_garbage_are_errors_and_do_nothing() {
    let mut p = proto();
    let t0 = Instant::now();
    let at = now(t0, 1);
    let garbage = [0xff; 3];
    for before_version in [true, false] {
        let mut peer = peer_at_stage(&mut p, t0, at, before_version);
        // Decoded before the peer's state is looked at, as the message handler always did.
        for command in
            ["version", "ping", "headers", "getheaders", "inv", "addr", "addrv2", "block", "getdata", "notfound"]
        {
            let mut out = Recorder::default();
            let r = p.process_message(&mut peer, command, &garbage, at.mono, at, &mut out);
            assert!(matches!(r, Err(PayloadError::Malformed { .. })), "{command}: {r:?}");
            assert!(out.sent.is_empty() && out.disconnect.is_none(), "{command}: nothing done");
        }
        assert_eq!(peer.handshake.remote.is_some(), !before_version, "state untouched");
        // Core's tolerance: a short `pong` reads as nonce 0, and payload-less types ignore
        // whatever follows.
        for command in ["pong", "verack", "sendheaders", "getaddr"] {
            let mut out = Recorder::default();
            let r = p.process_message(&mut peer, command, &garbage, at.mono, at, &mut out);
            assert!(r.is_ok(), "{command}: {r:?}");
        }
        p.remove_peer(&peer, at.unix);
    }
    // A built message always round-trips through the dispatch's decoders.
    let (command, payload) = encode_payload(&NetworkMessage::Ping(3));
    assert_eq!((command, crate::base::message::decode_ping(&payload).unwrap()), ("ping", 3));
}
