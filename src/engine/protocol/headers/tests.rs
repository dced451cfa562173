//! Headers sync, serving and announcements through the protocol's entry points, fake time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::pow::Work;

use super::*;
use crate::base::chainparams::Network;
use crate::base::peer::ConnectionType;
use crate::base::peer::PeerIdentity;
use crate::engine::chain::mine::mine_chain;
use crate::engine::chain::params::ChainParams;
use crate::engine::protocol::{LinkTimes, Protocol, ProtocolParams, Recorder};

fn zero() -> Work {
    Work::from_be_bytes([0; 32])
}

fn protocol_with(headers: &[Header], min_work: Work) -> Protocol {
    protocol_of(headers, min_work, false)
}

/// [`protocol_with`] for a node that downloads blocks (`blocks`) or not.
fn protocol_of(headers: &[Header], min_work: Work, blocks: bool) -> Protocol {
    let p = ChainParams::new(Network::Regtest);
    let mut chain = Chain::in_memory(p, min_work);
    assert_eq!(chain.accept(headers, NOW_UNIX).error, None);
    Protocol::seeded(
        ProtocolParams {
            user_agent: "/t/".into(),
            services: ServiceFlags::NONE,
            peer_timeout: Duration::from_secs(60),
            log_ips: false,
            blocks,
        },
        chain,
        1,
    )
}

const NOW_UNIX: i64 = 2_000_000_000;

fn now(t0: Instant, s: u64) -> Now {
    Now { mono: t0 + Duration::from_secs(s), unix: NOW_UNIX + s as i64 }
}

fn addr() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// An established inbound peer offering `NODE_NETWORK`; `sendheaders` if `prefers_headers`.
fn peer(p: &mut Protocol, id: u64, t0: Instant, prefers_headers: bool) -> Peer {
    peer_as(p, id, t0, prefers_headers, ConnectionType::Inbound, ServiceFlags::NETWORK)
}

/// An established peer of `conn_type` advertising `services`.
fn peer_as(
    p: &mut Protocol,
    id: u64,
    t0: Instant,
    prefers_headers: bool,
    conn_type: ConnectionType,
    services: ServiceFlags,
) -> Peer {
    let mut peer = p.add_peer(PeerIdentity::new(id, addr(), conn_type, t0));
    let empty = Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
    let v = VersionMessage {
        version: 70016,
        services,
        timestamp: NOW_UNIX,
        receiver: empty.clone(),
        sender: empty,
        nonce: 1000 + id,
        user_agent: "/peer/".into(),
        start_height: 0,
        relay: true,
    };
    let mut out = Recorder::default();
    p.deliver(&mut peer, NetworkMessage::Version(v), t0, now(t0, 0), &mut out);
    if prefers_headers {
        p.deliver(&mut peer, NetworkMessage::SendHeaders, t0, now(t0, 0), &mut out);
    }
    p.deliver(&mut peer, NetworkMessage::Verack, t0, now(t0, 0), &mut out);
    peer
}

/// `SendMessages` for `peer` at `at`; the peer answers our pings at once (a live peer).
fn tick(p: &mut Protocol, peer: &mut Peer, at: Now) -> Recorder {
    let mut out = Recorder::default();
    let link = LinkTimes { last_send: Some(at.mono), last_recv: Some(at.mono) };
    p.send_messages(peer, at, link, &mut out);
    for m in &out.sent {
        if let NetworkMessage::Ping(n) = m {
            crate::engine::protocol::ping::on_pong(peer, *n, at.mono);
        }
    }
    out
}

fn deliver(p: &mut Protocol, peer: &mut Peer, msg: NetworkMessage, at: Now) -> Recorder {
    let mut out = Recorder::default();
    p.deliver(peer, msg, at.mono, at, &mut out);
    out
}

fn getheaders_of(out: &Recorder) -> Vec<&GetHeadersMessage> {
    out.sent.iter().filter_map(|m| if let NetworkMessage::GetHeaders(g) = m { Some(g) } else { None }).collect()
}

#[test]
fn serves_2000_headers_after_the_locator_and_honours_hash_stop() {
    let params = ChainParams::new(Network::Regtest);
    let chain = mine_chain(&params, &params.genesis, 2500, 1);
    let mut p = protocol_with(&chain, zero());
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let ask = |locator, stop| {
        NetworkMessage::GetHeaders(GetHeadersMessage { version: 70016, locator_hashes: locator, stop_hash: stop })
    };
    let out = deliver(&mut p, &mut a, ask(vec![params.genesis_hash()], no_stop()), now(t0, 1));
    let [NetworkMessage::Headers(h)] = out.sent.as_slice() else { panic!("{:?}", out.commands()) };
    assert_eq!(h.len(), 2000);
    assert_eq!(h[0], chain[0]);
    assert_eq!(h[1999], chain[1999]);
    let out = deliver(&mut p, &mut a, ask(vec![chain[1999].block_hash()], no_stop()), now(t0, 1));
    let [NetworkMessage::Headers(h)] = out.sent.as_slice() else { panic!() };
    assert_eq!(h.len(), 500);
    let out = deliver(&mut p, &mut a, ask(vec![chain[9].block_hash()], chain[14].block_hash()), now(t0, 1));
    let [NetworkMessage::Headers(h)] = out.sent.as_slice() else { panic!() };
    assert_eq!(h.as_slice(), &chain[10..15]);
    // Empty locator: just the hashStop header.
    let out = deliver(&mut p, &mut a, ask(vec![], chain[7].block_hash()), now(t0, 1));
    assert_eq!(out.sent, vec![NetworkMessage::Headers(vec![chain[7]])]);
    // More than 101 locator entries: disconnect.
    let out = deliver(&mut p, &mut a, ask(vec![chain[0].block_hash(); 102], no_stop()), now(t0, 1));
    assert!(matches!(out.disconnect, Some(DisconnectReason::Misbehaving(_))));
}

#[test]
fn syncs_from_one_peer_in_batches_of_2000() {
    let params = ChainParams::new(Network::Regtest);
    let theirs = mine_chain(&params, &params.genesis, 4500, 2);
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let mut b = peer(&mut p, 2, t0, false);
    let out = tick(&mut p, &mut a, now(t0, 0));
    let gh = getheaders_of(&out);
    assert_eq!(gh.len(), 1, "initial getheaders");
    assert_eq!(gh[0].locator_hashes, vec![params.genesis_hash()]);
    // Far behind (regtest genesis is from 2011): only one sync peer.
    assert!(getheaders_of(&tick(&mut p, &mut b, now(t0, 0))).is_empty());
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(theirs[..2000].to_vec()), now(t0, 1));
    let gh = getheaders_of(&out);
    assert_eq!(gh.len(), 1, "a full batch asks for more");
    assert_eq!(gh[0].locator_hashes[0], theirs[1999].block_hash());
    deliver(&mut p, &mut a, NetworkMessage::Headers(theirs[2000..4000].to_vec()), now(t0, 2));
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(theirs[4000..].to_vec()), now(t0, 3));
    assert!(getheaders_of(&out).is_empty(), "a short batch ends the sync");
    assert_eq!(p.headers.chain.tree().height(), 4500);
    assert_eq!(p.best_height(), 4500);
}

#[test]
fn invalid_header_disconnects_and_is_not_stored() {
    let params = ChainParams::new(Network::Regtest);
    let mut theirs = mine_chain(&params, &params.genesis, 20, 3);
    theirs[5].time = params.genesis.time; // time-too-old, then re-mine so PoW holds
    theirs[5].nonce = 0;
    while !check_proof_of_work(theirs[5].block_hash(), theirs[5].bits, &params) {
        theirs[5].nonce += 1;
    }
    let rest = mine_chain(&params, &theirs[5], 14, 4);
    theirs.truncate(6);
    theirs.extend(rest);
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(theirs.clone()), now(t0, 1));
    assert!(
        matches!(&out.disconnect, Some(DisconnectReason::Misbehaving(m)) if m.contains("time-too-old")),
        "{:?}",
        out.disconnect
    );
    assert_eq!(p.headers.chain.tree().height(), 5);
    // Bad proof of work is caught before anything else.
    let mut bad = mine_chain(&params, &params.genesis, 3, 5);
    while check_proof_of_work(bad[1].block_hash(), bad[1].bits, &params) {
        bad[1].nonce += 1;
    }
    let mut c = peer(&mut p, 2, t0, false);
    let out = deliver(&mut p, &mut c, NetworkMessage::Headers(bad), now(t0, 1));
    assert!(matches!(&out.disconnect, Some(DisconnectReason::Misbehaving(m)) if m.contains("proof of work")));
    // More than 2,000 headers in one message.
    let many = mine_chain(&params, &params.genesis, 2001, 6);
    let mut d = peer(&mut p, 3, t0, false);
    let out = deliver(&mut p, &mut d, NetworkMessage::Headers(many), now(t0, 1));
    assert!(matches!(out.disconnect, Some(DisconnectReason::Misbehaving(_))));
}

#[test]
fn headers_on_an_invalid_block_are_refused_and_their_sender_punished() {
    let params = ChainParams::new(Network::Regtest);
    let chain = mine_chain(&params, &params.genesis, 6, 8);
    let mut p = protocol_with(&chain[..4], zero());
    // The validation thread found block 3 invalid.
    let bad = p.headers.chain.tree().get(&chain[2].block_hash()).map(|(id, _)| id).expect("known");
    p.headers.chain.tree_mut().mark_invalid(bad);
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(chain[4..].to_vec()), now(t0, 1));
    assert!(
        matches!(&out.disconnect, Some(DisconnectReason::Misbehaving(m)) if m.contains("bad-prevblk")),
        "{:?}",
        out.disconnect
    );
    assert!(!p.headers.chain.tree().contains(&chain[4].block_hash()), "not stored");
}

#[test]
fn unconnecting_headers_and_block_inv_ask_for_headers_without_punishment() {
    let params = ChainParams::new(Network::Regtest);
    let theirs = mine_chain(&params, &params.genesis, 30, 7);
    let mut p = protocol_with(&theirs[..10], zero());
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(theirs[20..].to_vec()), now(t0, 1));
    assert_eq!(out.disconnect, None);
    let gh = getheaders_of(&out);
    assert_eq!(gh.len(), 1);
    assert_eq!(gh[0].locator_hashes[0], theirs[9].block_hash());
    // Another unconnecting batch within 2 minutes does not repeat the request.
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(theirs[21..].to_vec()), now(t0, 2));
    assert!(getheaders_of(&out).is_empty());
    // A block inv for something unknown, after the response window.
    let mut b = peer(&mut p, 2, t0, false);
    let inv = NetworkMessage::Inv(vec![Inventory::Block(theirs[29].block_hash())]);
    let out = deliver(&mut p, &mut b, inv, now(t0, 3));
    assert_eq!(getheaders_of(&out).len(), 1);
    // A known one: nothing.
    let mut c = peer(&mut p, 3, t0, false);
    let out = deliver(&mut p, &mut c, NetworkMessage::Inv(vec![Inventory::Block(theirs[3].block_hash())]), now(t0, 3));
    assert!(out.sent.is_empty());
}

#[test]
fn low_work_headers_go_to_presync_and_are_not_stored() {
    let params = ChainParams::new(Network::Regtest);
    let theirs = mine_chain(&params, &params.genesis, 2000, 8);
    let mut huge = [0u8; 32];
    huge[0] = 1;
    let mut p = protocol_with(&[], Work::from_be_bytes(huge));
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(theirs.clone()), now(t0, 1));
    assert_eq!(out.disconnect, None);
    assert_eq!(p.headers.chain.tree().height(), 0, "nothing stored");
    assert!(a.headers.presync.is_some());
    assert_eq!(getheaders_of(&out)[0].locator_hashes[0], theirs[1999].block_hash(), "presync continues");
    // A short low-work batch without a sync in progress is just ignored.
    let mut b = peer(&mut p, 2, t0, false);
    let out = deliver(&mut p, &mut b, NetworkMessage::Headers(theirs[..10].to_vec()), now(t0, 1));
    assert!(out.sent.is_empty() && out.disconnect.is_none() && b.headers.presync.is_none());
}

#[test]
fn new_tip_is_announced_with_headers_or_inv() {
    let params = ChainParams::new(Network::Regtest);
    let chain = mine_chain(&params, &params.genesis, 12, 9);
    let mut p = protocol_with(&chain[..10], zero());
    let t0 = Instant::now();
    let mut h = peer(&mut p, 1, t0, true);
    let mut i = peer(&mut p, 2, t0, false);
    let mut src = peer(&mut p, 3, t0, false);
    // Both peers learn our tip from a getheaders exchange.
    for x in [&mut h, &mut i] {
        deliver(
            &mut p,
            x,
            NetworkMessage::GetHeaders(GetHeadersMessage {
                version: 70016,
                locator_hashes: vec![params.genesis_hash()],
                stop_hash: no_stop(),
            }),
            now(t0, 1),
        );
        tick(&mut p, x, now(t0, 1));
    }
    deliver(&mut p, &mut src, NetworkMessage::Headers(chain[10..].to_vec()), now(t0, 2));
    let out = tick(&mut p, &mut h, now(t0, 3));
    assert!(out.sent.contains(&NetworkMessage::Headers(chain[10..].to_vec())), "{:?}", out.commands());
    let out = tick(&mut p, &mut i, now(t0, 3));
    assert!(
        out.sent.contains(&NetworkMessage::Inv(vec![Inventory::Block(chain[11].block_hash())])),
        "{:?}",
        out.commands()
    );
    // Announced once.
    assert!(!tick(&mut p, &mut h, now(t0, 4)).commands().contains(&"headers"));
}

#[test]
fn stalled_sync_peer_is_dropped_when_others_exist() {
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    let mut a = peer_as(&mut p, 1, t0, false, ConnectionType::OutboundFullRelay, serving());
    let mut b = peer_as(&mut p, 2, t0, false, ConnectionType::OutboundFullRelay, serving());
    tick(&mut p, &mut a, now(t0, 0));
    assert!(a.headers.sync_started);
    let deadline = a.headers.sync_timeout.unwrap();
    let secs = deadline.duration_since(t0).as_secs();
    assert!(secs > 15 * 60, "base 15 min plus 1 ms per missing header");
    assert_eq!(tick(&mut p, &mut a, now(t0, secs)).disconnect, None);
    assert_eq!(tick(&mut p, &mut a, now(t0, secs + 1)).disconnect, Some(DisconnectReason::HeadersTimeout));
    // Once it is gone, the other peer becomes the sync peer.
    p.remove_peer(&a, 0);
    let out = tick(&mut p, &mut b, now(t0, secs + 2));
    assert_eq!(getheaders_of(&out).len(), 1);
}

#[test]
fn misbehaviour_discourages_remote_peers_disconnects_local_ones_and_spares_manual_and_noban_ones() {
    let params = ChainParams::new(Network::Regtest);
    let mut bad = mine_chain(&params, &params.genesis, 2, 10);
    while check_proof_of_work(bad[1].block_hash(), bad[1].bits, &params) {
        bad[1].nonce += 1;
    }
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    // Remote inbound peer: disconnected and its address discouraged.
    let mut remote = peer(&mut p, 1, t0, false);
    remote.reidentify(|w| w.addr = "203.0.113.5:8333".parse().unwrap());
    let out = deliver(&mut p, &mut remote, NetworkMessage::Headers(bad.clone()), now(t0, 1));
    assert!(matches!(out.disconnect, Some(DisconnectReason::Misbehaving(_))));
    assert_eq!(out.discouraged, vec!["203.0.113.5".parse::<std::net::IpAddr>().unwrap()]);
    // Loopback: disconnected, not discouraged (that would hit every local peer).
    let mut local = peer(&mut p, 2, t0, false);
    let out = deliver(&mut p, &mut local, NetworkMessage::Headers(bad.clone()), now(t0, 1));
    assert!(out.disconnect.is_some() && out.discouraged.is_empty());
    // Manual connection: Core never punishes those.
    let mut manual = peer(&mut p, 3, t0, false);
    manual.reidentify(|w| w.conn_type = ConnectionType::Manual);
    manual.reidentify(|w| w.addr = "203.0.113.6:8333".parse().unwrap());
    let out = deliver(&mut p, &mut manual, NetworkMessage::Headers(bad.clone()), now(t0, 1));
    assert!(out.disconnect.is_none() && out.discouraged.is_empty());
    // A --whitelist noban peer: only warned about, as Core.
    let mut noban = peer(&mut p, 4, t0, false);
    noban.reidentify(|w| w.addr = "203.0.113.7:8333".parse().unwrap());
    noban.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::NO_BAN);
    let out = deliver(&mut p, &mut noban, NetworkMessage::Headers(bad), now(t0, 1));
    assert!(out.disconnect.is_none() && out.discouraged.is_empty());
}

/// Re-mines `h` after a change so its proof of work holds again.
fn remine(params: &ChainParams, mut h: Header) -> Header {
    h.nonce = 0;
    while !check_proof_of_work(h.block_hash(), h.bits, params) {
        h.nonce += 1;
    }
    h
}

#[test]
fn every_header_rule_disconnects_the_sender_and_stores_nothing_of_the_bad_header() {
    let params = ChainParams::new(Network::Regtest);
    let base = mine_chain(&params, &params.genesis, 12, 11);
    let tip = base[11];
    let good = crate::engine::chain::mine::mine_child(&params, &tip, tip.time + 1, 77);
    let mut bad_pow = good;
    while check_proof_of_work(bad_pow.block_hash(), bad_pow.bits, &params) {
        bad_pow.nonce += 1;
    }
    let cases: Vec<(&str, Header)> = vec![
        ("proof of work", bad_pow),
        ("bad-diffbits", remine(&params, Header { bits: bitcoin::CompactTarget::from_consensus(0x207ffffe), ..good })),
        ("time-too-old", remine(&params, Header { time: params.genesis.time, ..good })),
        ("bad-version", remine(&params, Header { version: bitcoin::block::Version::from_consensus(1), ..good })),
    ];
    for (rule, header) in cases {
        let mut p = protocol_with(&base, zero());
        let t0 = Instant::now();
        let mut a = peer(&mut p, 1, t0, false);
        let out = deliver(&mut p, &mut a, NetworkMessage::Headers(vec![header]), now(t0, 1));
        assert!(
            matches!(&out.disconnect, Some(DisconnectReason::Misbehaving(m)) if m.contains(rule)),
            "{rule}: {:?}",
            out.disconnect
        );
        assert_eq!(p.headers.chain.tree().height(), 12, "{rule}");
        assert!(!p.headers.chain.tree().contains(&header.block_hash()), "{rule}");
    }
}

#[test]
fn low_work_chain_of_100000_headers_stores_nothing_and_stays_small() {
    let params = ChainParams::new(Network::Regtest);
    let theirs = mine_chain(&params, &params.genesis, 100_000, 12);
    let mut huge = [0u8; 32];
    huge[0] = 1;
    let mut p = protocol_with(&[], Work::from_be_bytes(huge));
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let mut peak = 0;
    for (i, batch) in theirs.chunks(2000).enumerate() {
        let out = deliver(&mut p, &mut a, NetworkMessage::Headers(batch.to_vec()), now(t0, 1 + i as u64));
        assert_eq!(out.disconnect, None);
        assert_eq!(getheaders_of(&out).len(), 1, "batch {i}: presync asks for the next batch");
        peak = peak.max(a.headers.presync.as_ref().map_or(0, |s| s.memory_usage()));
    }
    assert_eq!(p.headers.chain.tree().len(), 1, "only genesis: the header store got nothing");
    assert_eq!(a.headers.presync.as_ref().unwrap().presync_height(), 100_000);
    assert!(peak <= 64, "presync state held {peak} bytes for 100,000 headers");
}

#[test]
fn header_from_the_future_is_refused_without_punishing_its_sender() {
    let params = ChainParams::new(Network::Regtest);
    let base = mine_chain(&params, &params.genesis, 12, 13);
    let tip = base[11];
    // One second past Core's two hours at the time of delivery (now(t0, 1)).
    let future = remine(
        &params,
        crate::engine::chain::mine::mine_child(&params, &tip, (NOW_UNIX + 1 + 2 * 60 * 60 + 1) as u32, 78),
    );
    let at_limit =
        remine(&params, crate::engine::chain::mine::mine_child(&params, &tip, (NOW_UNIX + 1 + 2 * 60 * 60) as u32, 79));
    for conn_type in [ConnectionType::Inbound, ConnectionType::OutboundFullRelay] {
        let mut p = protocol_with(&base, zero());
        let t0 = Instant::now();
        let mut a = peer(&mut p, 1, t0, false);
        a.reidentify(|w| w.conn_type = conn_type);
        a.reidentify(|w| w.addr = "203.0.113.9:8333".parse().unwrap());
        let out = deliver(&mut p, &mut a, NetworkMessage::Headers(vec![future]), now(t0, 1));
        assert_eq!(out.disconnect, None, "{conn_type}: not disconnected");
        assert!(out.discouraged.is_empty(), "{conn_type}: not discouraged");
        assert!(!p.headers.chain.tree().contains(&future.block_hash()), "{conn_type}: refused");
        assert_eq!(p.headers.chain.tree().height(), 12);
        // Exactly two hours ahead is still fine, from the same (unpunished) peer.
        let out = deliver(&mut p, &mut a, NetworkMessage::Headers(vec![at_limit]), now(t0, 1));
        assert_eq!(out.disconnect, None);
        assert_eq!(p.headers.chain.tree().height(), 13, "{conn_type}");
    }
}

#[test]
fn full_batch_stopped_by_a_future_header_does_not_ask_for_it_again() {
    let params = ChainParams::new(Network::Regtest);
    let mut theirs = mine_chain(&params, &params.genesis, 1999, 14);
    let last = theirs[1998];
    theirs.push(remine(
        &params,
        crate::engine::chain::mine::mine_child(&params, &last, (NOW_UNIX + 3 * 60 * 60) as u32, 80),
    ));
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let out = deliver(&mut p, &mut a, NetworkMessage::Headers(theirs), now(t0, 1));
    assert_eq!(out.disconnect, None);
    assert_eq!(p.headers.chain.tree().height(), 1999, "the headers before it are kept");
    assert!(getheaders_of(&out).is_empty(), "no getheaders that would fetch the refused header again");
}

#[test]
fn initial_download_follows_max_tip_age_and_latches() {
    let params = ChainParams::new(Network::Regtest);
    let chain = mine_chain(&params, &params.genesis, 5, 15);
    let tip_time = i64::from(chain[4].time);
    let age = NOW_UNIX - tip_time;
    // Default 24 h: the 2011-era tip is far too old.
    let mut p = protocol_with(&chain, zero());
    assert!(p.headers.in_ibd(NOW_UNIX));
    // A maximum age just under the tip's age: still initial download.
    p.headers.set_max_tip_age(age - 1);
    assert!(p.headers.in_ibd(NOW_UNIX));
    // Just over: over, and it stays over however old the tip becomes (Core's latch).
    p.headers.set_max_tip_age(age);
    assert!(!p.headers.in_ibd(NOW_UNIX));
    assert!(!p.headers.in_ibd(NOW_UNIX + 365 * 86_400));
    let t0 = Instant::now();
    assert!(!p.in_ibd(now(t0, 10 * 86_400)), "the protocol asks the same latch");
    // Too little work keeps it in initial download whatever the age.
    let mut huge = [0u8; 32];
    huge[0] = 1;
    let mut p = protocol_with(&[], Work::from_be_bytes(huge));
    p.headers.set_max_tip_age(i64::from(u32::MAX));
    assert!(p.headers.in_ibd(NOW_UNIX));
}

#[test]
fn a_recent_header_ends_initial_download_when_it_arrives() {
    let params = ChainParams::new(Network::Regtest);
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    let mut a = peer(&mut p, 1, t0, false);
    let recent = crate::engine::chain::mine::mine_child(&params, &params.genesis, NOW_UNIX as u32, 81);
    deliver(&mut p, &mut a, NetworkMessage::Headers(vec![recent]), now(t0, 1));
    // Asked only two days later, with the tip then two days old: the latch was set on arrival.
    assert!(!p.headers.in_ibd(NOW_UNIX + 2 * 86_400));
}

fn serving() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

#[test]
fn far_behind_the_sync_peer_is_an_outbound_peer_that_can_serve_blocks_while_blocks_are_in_flight() {
    // Core's `sync_blocks_and_headers_from_peer`: a non-preferred peer (inbound, or without
    // NODE_NETWORK) may start the one sync only when no preferred peer exists or no block is in
    // flight; an addr-fetch peer never.
    let params = ChainParams::new(Network::Regtest);
    let old = crate::engine::chain::mine::mine_child(&params, &params.genesis, params.genesis.time + 1, 81);
    let mut p = protocol_of(&[old], zero(), true); // a tip from 2011: far behind
    let t0 = Instant::now();
    let mut inbound = peer_as(&mut p, 1, t0, false, ConnectionType::Inbound, serving());
    let mut fetch = peer_as(&mut p, 2, t0, false, ConnectionType::AddrFetch, serving());
    let mut outbound = peer_as(&mut p, 4, t0, false, ConnectionType::OutboundFullRelay, serving());
    assert_eq!(p.headers.preferred_peers, 1);
    // A block in flight from the outbound peer: only it may start the sync.
    let (headers, blocks) = p.headers_and_blocks_mut();
    let (id, _) = headers.chain.tree().get(&old.block_hash()).expect("in the tree");
    assert!(blocks.download.request_from(4, id, old.block_hash(), t0));
    for x in [&mut inbound, &mut fetch] {
        let out = tick(&mut p, x, now(t0, 0));
        assert!(getheaders_of(&out).is_empty(), "{}: not a sync peer while blocks are in flight", x.who.conn_type);
        assert!(!x.headers.sync_started);
    }
    assert_eq!(getheaders_of(&tick(&mut p, &mut outbound, now(t0, 0))).len(), 1);
    assert!(outbound.headers.sync_started);
    assert_eq!(p.headers.sync_peers, 1);
    // With nothing in flight an inbound peer ticked first starts it (and only one peer does).
    let mut p = protocol_of(&[old], zero(), true);
    let mut inbound = peer_as(&mut p, 1, t0, false, ConnectionType::Inbound, serving());
    let mut fetch = peer_as(&mut p, 2, t0, false, ConnectionType::AddrFetch, serving());
    let mut outbound = peer_as(&mut p, 4, t0, false, ConnectionType::OutboundFullRelay, serving());
    assert_eq!(p.blocks().download.total_in_flight(), 0);
    assert!(getheaders_of(&tick(&mut p, &mut fetch, now(t0, 0))).is_empty(), "never an addr-fetch peer");
    assert_eq!(getheaders_of(&tick(&mut p, &mut inbound, now(t0, 0))).len(), 1);
    assert!(getheaders_of(&tick(&mut p, &mut outbound, now(t0, 0))).is_empty(), "one sync peer while far behind");
    assert_eq!(p.headers.sync_peers, 1);
    // A noban inbound peer that can serve blocks is preferred too (Core's fPreferredDownload).
    let mut noban = p.add_peer(PeerIdentity::new(5, addr(), ConnectionType::Inbound, t0));
    noban.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::NO_BAN);
    noban.handshake.remote = inbound.handshake.remote.clone();
    p.headers.on_established(&mut noban);
    assert!(noban.headers.preferred && p.headers.preferred_peers == 2);
    p.remove_peer(&noban, 0);
    assert_eq!(p.headers.preferred_peers, 1);
}

#[test]
fn without_a_preferred_peer_any_peer_but_an_addr_fetch_one_may_sync() {
    let t0 = Instant::now();
    // An inbound peer when no outbound one can serve blocks; never the addr-fetch peer.
    let mut p = protocol_with(&[], zero());
    let mut fetch = peer_as(&mut p, 1, t0, false, ConnectionType::AddrFetch, serving());
    let mut inbound = peer_as(&mut p, 2, t0, false, ConnectionType::Inbound, serving());
    assert!(getheaders_of(&tick(&mut p, &mut fetch, now(t0, 0))).is_empty());
    assert_eq!(getheaders_of(&tick(&mut p, &mut inbound, now(t0, 0))).len(), 1);
    // A btcloopd peer (headers only, no service bits) when it is all there is.
    let mut p = protocol_with(&[], zero());
    let mut bare = peer_as(&mut p, 1, t0, false, ConnectionType::Manual, ServiceFlags::NONE);
    assert_eq!(p.headers.preferred_peers, 0);
    assert_eq!(getheaders_of(&tick(&mut p, &mut bare, now(t0, 0))).len(), 1);
}

#[test]
fn a_node_with_blocks_takes_its_initial_headers_only_from_a_peer_that_can_serve_blocks() {
    // Core's CanServeBlocks: a peer without NODE_NETWORK(_LIMITED) as the only sync peer would
    // leave a node that downloads blocks syncing nothing.
    let t0 = Instant::now();
    let mut p = protocol_of(&[], zero(), true);
    let mut bare = peer_as(&mut p, 1, t0, false, ConnectionType::Inbound, ServiceFlags::NONE);
    assert!(getheaders_of(&tick(&mut p, &mut bare, now(t0, 0))).is_empty());
    assert!(!bare.headers.sync_started);
    let mut server = peer_as(&mut p, 2, t0, false, ConnectionType::Inbound, serving());
    assert_eq!(getheaders_of(&tick(&mut p, &mut server, now(t0, 0))).len(), 1);
    assert!(server.headers.sync_started);
}

#[test]
fn a_stalling_sync_peer_is_dropped_only_for_another_preferred_peer() {
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    // Only inbound peers: the stalling sync peer is kept (Core: nobody better to sync from).
    let mut a = peer_as(&mut p, 1, t0, false, ConnectionType::Inbound, serving());
    let mut b = peer_as(&mut p, 2, t0, false, ConnectionType::Inbound, serving());
    tick(&mut p, &mut a, now(t0, 0));
    tick(&mut p, &mut b, now(t0, 0));
    assert!(a.headers.sync_started && !b.headers.sync_started);
    let secs = a.headers.sync_timeout.unwrap().duration_since(t0).as_secs() + 1;
    assert_eq!(tick(&mut p, &mut a, now(t0, secs)).disconnect, None, "no other preferred peer");
    // An outbound peer that can serve blocks arrives: now the stalling one goes.
    let mut o = peer_as(&mut p, 3, t0, false, ConnectionType::OutboundFullRelay, serving());
    assert!(getheaders_of(&tick(&mut p, &mut o, now(t0, secs))).is_empty(), "one sync peer at a time");
    assert_eq!(tick(&mut p, &mut a, now(t0, secs + 1)).disconnect, Some(DisconnectReason::HeadersTimeout));
    p.remove_peer(&a, 0);
    assert_eq!(getheaders_of(&tick(&mut p, &mut o, now(t0, secs + 2))).len(), 1, "the outbound peer takes over");
    // The dropped peer reconnects: it does not get the sync back (nor does the other inbound one).
    let mut again = peer_as(&mut p, 4, t0, false, ConnectionType::Inbound, serving());
    assert!(getheaders_of(&tick(&mut p, &mut again, now(t0, secs + 3))).is_empty());
    p.remove_peer(&o, 0);
    assert!(getheaders_of(&tick(&mut p, &mut again, now(t0, secs + 4))).len() == 1, "none preferred left: fallback");
}

#[test]
fn a_stalling_noban_sync_peer_loses_its_role_but_stays() {
    let mut p = protocol_with(&[], zero());
    let t0 = Instant::now();
    let mut a = peer_as(&mut p, 1, t0, false, ConnectionType::OutboundFullRelay, serving());
    a.reidentify(|w| w.permissions = crate::engine::policy::permissions::Permissions::NO_BAN);
    let mut b = peer_as(&mut p, 2, t0, false, ConnectionType::OutboundFullRelay, serving());
    tick(&mut p, &mut a, now(t0, 0));
    let secs = a.headers.sync_timeout.unwrap().duration_since(t0).as_secs() + 1;
    let out = tick(&mut p, &mut a, now(t0, secs));
    assert_eq!(out.disconnect, None);
    assert!(!a.headers.sync_started && p.headers.sync_peers == 0);
    assert_eq!(getheaders_of(&tick(&mut p, &mut b, now(t0, secs))).len(), 1, "another peer may sync now");
}

#[test]
fn outbound_peer_behind_our_tip_gets_cores_chain_sync_timeout_then_is_dropped() {
    let params = ChainParams::new(Network::Regtest);
    let chain = mine_chain(&params, &params.genesis, 10, 16);
    let mut p = protocol_with(&chain, zero());
    let t0 = Instant::now();
    let mut o = peer_as(&mut p, 1, t0, false, ConnectionType::OutboundFullRelay, serving());
    let mut i = peer_as(&mut p, 2, t0, false, ConnectionType::Inbound, serving());
    // First round: initial getheaders, and the peer, with no header as good as our tip, gets
    // CHAIN_SYNC_TIMEOUT.
    assert_eq!(getheaders_of(&tick(&mut p, &mut o, now(t0, 0))).len(), 1);
    assert_eq!(o.headers.chain_sync.timeout, Some(NOW_UNIX + 20 * 60));
    assert_eq!(o.headers.chain_sync.work_header, Some(p.headers.chain.tree().tip_id()));
    let out = tick(&mut p, &mut o, now(t0, 20 * 60));
    assert!(getheaders_of(&out).is_empty() && out.disconnect.is_none());
    // Past it: one getheaders from our tip's parent, and HEADERS_RESPONSE_TIME to answer.
    let out = tick(&mut p, &mut o, now(t0, 20 * 60 + 1));
    let gh = getheaders_of(&out);
    assert_eq!(gh.len(), 1);
    assert_eq!(gh[0].locator_hashes[0], chain[8].block_hash());
    assert_eq!(o.headers.chain_sync.timeout, Some(NOW_UNIX + 20 * 60 + 1 + 120));
    let out = tick(&mut p, &mut o, now(t0, 20 * 60 + 1 + 120));
    assert!(getheaders_of(&out).is_empty() && out.disconnect.is_none());
    assert_eq!(tick(&mut p, &mut o, now(t0, 20 * 60 + 122)).disconnect, Some(DisconnectReason::OldChain));
    // An inbound peer never gets the timer.
    tick(&mut p, &mut i, now(t0, 20 * 60 + 122));
    assert_eq!(i.headers.chain_sync, ChainSync::default());
}

#[test]
fn chain_sync_timer_clears_when_the_peer_catches_up_and_restarts_when_we_move_on() {
    let params = ChainParams::new(Network::Regtest);
    let chain = mine_chain(&params, &params.genesis, 13, 17);
    let mut p = protocol_with(&chain[..10], zero());
    let t0 = Instant::now();
    // Block-relay-only peers are never protected, always subject to the timer.
    let mut b = peer_as(&mut p, 1, t0, false, ConnectionType::BlockRelayOnly, serving());
    let mut src = peer_as(&mut p, 2, t0, false, ConnectionType::Inbound, serving());
    tick(&mut p, &mut b, now(t0, 0));
    assert!(b.headers.chain_sync.timeout.is_some());
    // It shows our tip: cleared.
    deliver(&mut p, &mut b, NetworkMessage::Headers(chain[..10].to_vec()), now(t0, 100));
    tick(&mut p, &mut b, now(t0, 100));
    assert_eq!(b.headers.chain_sync, ChainSync::default());
    assert!(!b.headers.chain_sync.protect, "block-relay-only peers are not protected");
    // We move to chain[10] (from another peer): the timer starts against it.
    deliver(&mut p, &mut src, NetworkMessage::Headers(chain[10..11].to_vec()), now(t0, 200));
    tick(&mut p, &mut b, now(t0, 200));
    assert_eq!(b.headers.chain_sync.timeout, Some(NOW_UNIX + 200 + 20 * 60));
    // We move on to chain[11]; then the peer reaches chain[10], the benchmark, but not our tip:
    // a fresh timer against our new tip.
    deliver(&mut p, &mut src, NetworkMessage::Headers(chain[11..12].to_vec()), now(t0, 300));
    deliver(&mut p, &mut b, NetworkMessage::Headers(chain[9..11].to_vec()), now(t0, 400));
    tick(&mut p, &mut b, now(t0, 400));
    assert_eq!(b.headers.chain_sync.timeout, Some(NOW_UNIX + 400 + 20 * 60));
    assert_eq!(b.headers.chain_sync.work_header, Some(p.headers.chain.tree().tip_id()));
    let out = tick(&mut p, &mut b, now(t0, 400 + 20 * 60 + 1));
    assert_eq!(getheaders_of(&out).len(), 1, "last chance");
    // It answers with our tip in time: no disconnect, timer cleared.
    deliver(&mut p, &mut b, NetworkMessage::Headers(chain[10..12].to_vec()), now(t0, 400 + 20 * 60 + 30));
    let out = tick(&mut p, &mut b, now(t0, 400 + 20 * 60 + 200));
    assert_eq!(out.disconnect, None);
    assert_eq!(b.headers.chain_sync, ChainSync::default());
}

#[test]
fn up_to_four_outbound_full_relay_peers_at_our_tip_are_protected_from_the_timer() {
    let params = ChainParams::new(Network::Regtest);
    let chain = mine_chain(&params, &params.genesis, 11, 18);
    let mut p = protocol_with(&chain[..10], zero());
    let t0 = Instant::now();
    let mut peers: Vec<Peer> =
        (1..=5).map(|id| peer_as(&mut p, id, t0, false, ConnectionType::OutboundFullRelay, serving())).collect();
    for x in peers.iter_mut() {
        deliver(&mut p, x, NetworkMessage::Headers(chain[..10].to_vec()), now(t0, 1));
    }
    let protected: Vec<bool> = peers.iter().map(|x| x.headers.chain_sync.protect).collect();
    assert_eq!(protected, [true, true, true, true, false]);
    assert_eq!(p.headers.protected_peers, MAX_OUTBOUND_PEERS_TO_PROTECT_FROM_DISCONNECT);
    // The first is the sync peer; our tip moves past it, yet no timer: it is protected.
    tick(&mut p, &mut peers[0], now(t0, 2));
    assert!(peers[0].headers.sync_started);
    let mut src = peer(&mut p, 9, t0, false);
    deliver(&mut p, &mut src, NetworkMessage::Headers(chain[10..].to_vec()), now(t0, 3));
    tick(&mut p, &mut peers[0], now(t0, 3));
    assert_eq!(peers[0].headers.chain_sync.timeout, None);
    // A protected peer leaving frees its place.
    p.remove_peer(&peers[1], 0);
    assert_eq!(p.headers.protected_peers, 3);
}
