//! Interop with a real Bitcoin Core on regtest over loopback (`common::bitcoind`): btcloopd
//! syncs the headers of a chain Core mined, and Core dials btcloopd, falls back from v2 to v1
//! and completes the handshake.
//!
//! The bitcoind comes from `BTCLOOP_BITCOIND` (set by `./x test`) or is built once by
//! `scripts/build-bitcoind`; these tests are never skipped.

mod common;

use std::time::Duration;

use common::bitcoind::{Bitcoind, wait_until};
use common::{Daemon, daemon_user_agent};
use serde_json::{Value, json};

/// Bound for a sync or a connection to come about (generous: loaded 2-core machines).
const INTEROP_WAIT: Duration = Duration::from_secs(60);

/// The peers in `peers` whose `subver` starts with `prefix`.
fn with_subver<'a>(peers: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    peers.iter().filter(|p| p["subver"].as_str().is_some_and(|s| s.starts_with(prefix))).collect()
}

/// btcloopd's `getpeerinfo`.
fn daemon_peers(d: &Daemon) -> Vec<Value> {
    let v = d.rpc_ok("getpeerinfo", json!([]));
    v.as_array().unwrap_or_else(|| panic!("getpeerinfo returned {v}")).clone()
}

#[test]
fn btcloopd_syncs_300_headers_from_core() {
    let core = Bitcoind::start(&[]);
    core.generate(300);
    let (height, best) = core.tip();
    assert_eq!(height, 300);

    let node = Daemon::start(&[&format!("--connect={}", core.p2p_addr())]);

    let mut info = json!(null);
    let synced = common::poll_until(INTEROP_WAIT, || {
        info = node.rpc_ok("getblockchaininfo", json!([]));
        info["headers"] == json!(300)
    });
    assert!(synced, "btcloopd did not reach 300 headers within {INTEROP_WAIT:?}: {info}");
    assert_eq!(info["bestblockhash"], json!(best), "btcloopd's best header is not Core's tip");
    assert_eq!(info["chain"], json!("regtest"));

    // Core sees btcloopd as an inbound v1 peer with its user agent and no services.
    let ours = daemon_user_agent(None);
    let mut core_peers = Vec::new();
    wait_until("Core to list btcloopd as a peer", INTEROP_WAIT, || {
        core_peers = core.peers();
        with_subver(&core_peers, &ours).len() == 1
    });
    let p = with_subver(&core_peers, &ours)[0];
    assert_eq!(p["inbound"], json!(true), "{p}");
    assert_eq!(p["connection_type"], json!("inbound"), "{p}");
    assert_eq!(p["transport_protocol_type"], json!("v1"), "{p}");
    assert_eq!(p["services"], json!("0000000000000000"), "{p}");
    // Core answered our getheaders: it counts the 300 headers as sent to us.
    assert!(p["bytessent_per_msg"]["headers"].as_u64().is_some_and(|b| b > 0), "{p}");

    // btcloopd sees Core as its outbound peer with Core's height.
    let peers = daemon_peers(&node);
    let core_seen = with_subver(&peers, "/Satoshi:");
    assert_eq!(core_seen.len(), 1, "{peers:?}");
    assert_eq!(core_seen[0]["inbound"], json!(false), "{}", core_seen[0]);
    assert_eq!(core_seen[0]["startingheight"], json!(300), "{}", core_seen[0]);
    assert_eq!(core_seen[0]["synced_headers"], json!(300), "{}", core_seen[0]);
}

#[test]
fn core_dials_btcloopd_falls_back_to_v1_and_keeps_the_manual_connection() {
    let node = Daemon::start(&[]);
    let core = Bitcoind::start(&[]);
    // Core's default is v2 (BIP324) for outbound connections.
    assert_eq!(
        core.rpc_ok("getnetworkinfo", json!([]))["localservicesnames"].as_array().map(|s| s.contains(&json!("P2P_V2"))),
        Some(true)
    );

    core.addnode(node.addr, "onetry");

    // btcloopd drops the v2 opening; Core's socket handler then queues a v1 retry.
    core.wait_log("retrying with v1 transport protocol for peer=", INTEROP_WAIT);

    let ours = daemon_user_agent(None);
    let mut core_peers = Vec::new();
    wait_until("Core to finish the v1 handshake with btcloopd", INTEROP_WAIT, || {
        core_peers = core.peers();
        with_subver(&core_peers, &ours).iter().any(|p| p["version"].as_u64().is_some_and(|v| v > 0))
    });
    let p = with_subver(&core_peers, &ours)[0];
    assert_eq!(p["inbound"], json!(false), "{p}");
    assert_eq!(p["connection_type"], json!("manual"), "{p}");
    assert_eq!(p["transport_protocol_type"], json!("v1"), "{p}");
    assert_eq!(p["services"], json!("0000000000000000"), "{p}");
    let core_id = p["id"].clone();

    let mut peers = Vec::new();
    wait_until("btcloopd to list Core as an inbound peer", INTEROP_WAIT, || {
        peers = daemon_peers(&node);
        with_subver(&peers, "/Satoshi:").len() == 1
    });
    let d = with_subver(&peers, "/Satoshi:")[0];
    assert_eq!(d["inbound"], json!(true), "{d}");
    assert_eq!(d["connection_type"], json!("inbound"), "{d}");

    // The handshake completed: each side received the other's verack.
    wait_until("verack on both sides", INTEROP_WAIT, || {
        let core_got = core.peers().iter().any(|p| p["id"] == core_id && p["bytesrecv_per_msg"]["verack"].is_u64());
        let ours_got =
            with_subver(&daemon_peers(&node), "/Satoshi:").iter().any(|p| p["bytesrecv_per_msg"]["verack"].is_u64());
        core_got && ours_got
    });

    // Core disconnects outbound peers without NODE_NETWORK only on connections that expect
    // services (automatic full-relay, block-relay, addr-fetch); a manual connection is kept
    // (net.h ExpectServicesFromConn, net_processing.cpp "does not offer the expected
    // services"). Both sides still list the same connection 5 s later.
    std::thread::sleep(Duration::from_secs(5));
    let core_peers = core.peers();
    let still = with_subver(&core_peers, &ours);
    assert_eq!(still.len(), 1, "Core dropped btcloopd: {core_peers:?}");
    assert_eq!(still[0]["id"], core_id, "Core reconnected instead of keeping the connection");
    assert!(!core.log().contains("does not offer the expected services"), "Core disconnected for missing services");
    assert_eq!(with_subver(&daemon_peers(&node), "/Satoshi:").len(), 1);
}
