//! Floods of maximum-size messages: the memory they take is given back once they are processed
//! (no partial-payload buffer, queue buffer or freed allocation kept), and another peer's small
//! messages are served while they last.

mod common;

use std::thread;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

/// Flooding peers.
const PEERS: usize = 20;
/// Maximum-size messages each sends.
const MSGS: usize = 8;
/// How long the node may take to work through the flood (debug build, shared machine).
const FLOOD_WAIT: Duration = Duration::from_secs(180);
/// RSS the node may keep once the flood is processed, beyond what it had before.
const MAX_KEPT_KIB: u64 = 16 * 1024;

#[test]
fn memory_taken_by_a_flood_of_big_messages_is_given_back() {
    let d = Daemon::start_quiet(&[]);
    let mut pinger = d.connect_ready();
    let mut flooders: Vec<RawPeer> = (0..PEERS).map(|_| d.connect_ready()).collect();
    pinger.ping_pong(1);
    let before = d.rss_kib();
    let big = raw_frame(MAGIC, b"bigjunk", &vec![0x5a; 4_000_000], None);
    let pongs = thread::scope(|s| {
        let handles: Vec<_> = flooders
            .iter_mut()
            .enumerate()
            .map(|(i, f)| {
                let big = &big;
                s.spawn(move || {
                    for _ in 0..MSGS {
                        f.send_raw(big);
                    }
                    // Answered only after the big messages before it were processed.
                    let nonce = 1000 + i as u64;
                    f.send(&NetworkMessage::Ping(nonce));
                    f.recv_until("pong", FLOOD_WAIT)
                })
            })
            .collect();
        // Meanwhile the other peer keeps being answered.
        let mut n = 2;
        while !handles.iter().all(|h| h.is_finished()) && n < 10_000 {
            pinger.ping_pong(n);
            n += 1;
            thread::sleep(Duration::from_millis(20));
        }
        handles.into_iter().map(|h| h.join().expect("flooder thread")).collect::<Vec<_>>()
    });
    for (i, p) in pongs.iter().enumerate() {
        assert_eq!(p, &Some(NetworkMessage::Pong(1000 + i as u64)), "flooder {i}: its ping after the flood");
    }
    pinger.ping_pong(99_999);
    // Every peer is still connected and idle: what the flood took must be back.
    let settled = poll_until(Duration::from_secs(10), || d.rss_kib() <= before + MAX_KEPT_KIB);
    assert!(settled, "RSS {} KiB before the flood, {} KiB after it was processed", before, d.rss_kib());
    assert_eq!(d.log_count("disconnected peer="), 0, "{}", d.log());
}
