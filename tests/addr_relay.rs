//! Address relay end to end: the daemon asks the peer it dials for addresses, stores the
//! answer in its address book (`getnodeaddresses`), and answers an inbound peer's `getaddr`
//! once, with at most 23% of the book.

mod common;

use std::net::{SocketAddr, TcpListener};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use common::*;
use serde_json::json;

#[test]
fn addresses_learnt_from_an_outbound_peer_are_stored_and_served_to_inbound_ones() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // --connect: the book gets routable addresses, which must never be dialed here.
    // The scripted peer speaks v1 only (a v1-only peer would hang up on a v2 key).
    let d = Daemon::start(&["--v2transport=0", &format!("--connect=127.0.0.1:{port}")]);
    let mut seed = RawPeer::from_stream(accept_within(&listener, WAIT));
    seed.expect("version");
    seed.send(&NetworkMessage::Version(version_msg(70016, "/seed:1.0/", random_u64())));
    seed.expect("wtxidrelay");
    seed.expect("sendaddrv2");
    seed.expect("verack");
    seed.expect("getaddr");
    seed.send(&NetworkMessage::Verack);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let list: Vec<(u32, Address)> = (0..400u32)
        .map(|i| {
            let sa = SocketAddr::from(([20 + (i % 50) as u8, (i / 50) as u8, 7, 1], 8333));
            (now - 3600, Address::new(&sa, ServiceFlags::NETWORK | ServiceFlags::WITNESS))
        })
        .collect();
    seed.send(&NetworkMessage::Addr(list));
    assert!(
        poll_until(WAIT, || d.rpc_ok("getaddrmaninfo", json!([]))["ipv4"]["total"].as_u64().unwrap_or(0) > 300),
        "{}",
        d.rpc_ok("getaddrmaninfo", json!([]))
    );
    let known = d.rpc_ok("getnodeaddresses", json!([0, "ipv4"]));
    let first = &known[0];
    assert_eq!(first["port"], json!(8333));
    assert_eq!(first["services"], json!(9));
    assert_eq!(first["network"], json!("ipv4"));
    let peers = d.rpc_ok("getpeerinfo", json!([]));
    assert_eq!(peers[0]["addr_processed"], json!(400), "{peers}");
    assert_eq!(peers[0]["addr_relay_enabled"], json!(true));

    // v1 too: this node speaks v1 only (--v2transport=0, for its dial to the v1 seed).
    let mut asker = d.connect_ready_v1();
    asker.send(&NetworkMessage::GetAddr);
    let Some(NetworkMessage::Addr(answer)) = asker.recv_until("addr", WAIT) else { panic!("no addr answer") };
    let book = known.as_array().unwrap().len();
    assert!(!answer.is_empty() && answer.len() <= book * 23 / 100, "{} of {book}", answer.len());
    // Only one answer per connection.
    asker.send(&NetworkMessage::GetAddr);
    asker.ping_pong(5);
    assert!(asker.recv_until("addr", std::time::Duration::from_millis(300)).is_none());
}
