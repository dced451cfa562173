//! `--capturemessages` writes Core's capture format per peer, and `btcloop-cli decode-capture`
//! reads it back as JSON lines merged by time.

mod common;

use std::process::Command;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use btcloop::daemon::capture::parse_records;
use common::Daemon;

#[test]
fn capture_is_written_in_cores_format_and_decodes_back() {
    let d = Daemon::start(&["--capturemessages"]);
    let mut p = d.connect();
    let hs = p.handshake();
    p.send(&NetworkMessage::Pong(hs.ping_nonce));
    p.ping_pong(0x5151);
    d.wait_log("received: pong", Duration::from_secs(10));
    let dir = d.net_dir().join("message_capture").join(format!("127.0.0.1_{}", p.stream.local_addr().unwrap().port()));
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (recv, torn) = {
        let bytes = read("msgs_recv.dat");
        let (r, t) = parse_records(&bytes);
        (r.into_iter().map(|r| (r.command, r.payload.to_vec())).collect::<Vec<_>>(), t)
    };
    assert_eq!(torn, None);
    let types: Vec<&str> = recv.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(&types[..4], &["version", "verack", "pong", "ping"], "{types:?}");
    assert_eq!(recv[3].1, 0x5151u64.to_le_bytes());
    let sent = read("msgs_sent.dat");
    let (sent, _) = parse_records(&sent);
    let types: Vec<&str> = sent.iter().map(|r| r.command.as_str()).collect();
    assert_eq!(&types[..5], &["version", "wtxidrelay", "sendaddrv2", "verack", "sendheaders"], "{types:?}");
    assert!(sent.iter().any(|r| r.command == "pong" && r.payload == 0x5151u64.to_le_bytes()));
    assert!(sent.windows(2).all(|w| w[0].time_us <= w[1].time_us));

    let out = Command::new(env!("CARGO_BIN_EXE_btcloop-cli"))
        .arg("decode-capture")
        .arg(d.net_dir().join("message_capture"))
        .output()
        .expect("run btcloop-cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 10);
    assert!(lines.windows(2).all(|w| w[0]["time"].as_u64() <= w[1]["time"].as_u64()), "not merged by time");
    let pong = lines.iter().find(|l| l["msgtype"] == "pong" && l["direction"] == "sent").expect("sent pong");
    assert_eq!(pong["size"], 8);
    assert!(pong["body"].as_str().unwrap().contains(&0x5151u64.to_string()));

    let bad = Command::new(env!("CARGO_BIN_EXE_btcloop-cli"))
        .args(["decode-capture", "/nonexistent/x.dat"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn debugpeer_logs_only_the_selected_peers_traffic_decoded() {
    // Without --debug=net: only the selected peer's lines appear, decoded.
    let d = Daemon::start_quiet(&["--debugpeer=1"]);
    let mut first = d.connect();
    let hs = first.handshake();
    first.send(&NetworkMessage::Pong(hs.ping_nonce));
    let mut second = d.connect();
    let hs = second.handshake();
    second.send(&NetworkMessage::Pong(hs.ping_nonce));
    second.ping_pong(0x4242);
    first.ping_pong(0x1717);
    d.wait_log(&format!("peer=1 received ping (8 bytes): Ping({})", 0x4242), Duration::from_secs(10));
    d.wait_log(&format!("peer=1 sent pong (8 bytes): Pong({})", 0x4242), Duration::from_secs(10));
    let log = d.log();
    assert!(!log.contains("peer=0 received"), "peer 0 was not selected");
    assert!(!log.contains(&format!("Ping({})", 0x1717)), "peer 0's ping was logged");
    assert!(!log.contains("[net] received:"), "--debug=net lines without --debug=net");
}
