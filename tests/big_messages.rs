//! Floods of maximum-size messages: the memory they take is given back once they are processed
//! (no partial-payload buffer, queue buffer or freed allocation kept), and another peer's small
//! messages are served while they last.

mod common;

use std::borrow::Cow;
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

/// Flooding peers and the maximum-size messages each sends: over v1 20 × 8; over v2 6 × 3, as
/// ChaCha20-Poly1305 in a debug build (the test's encryption, the node's decryption) goes at
/// about 4 MB/s: a 4 MB packet holds the node's socket thread for a second when it completes.
/// Still more than [`MAX_KEPT_KIB`] if every flooder's 4 MB packet buffer were kept.
fn flood_size() -> (usize, usize) {
    match Transport::from_env() {
        Transport::V1 => (20, 8),
        Transport::V2 => (6, 3),
    }
}
/// How long the node may take to work through the flood (debug build, shared machine).
const FLOOD_WAIT: Duration = Duration::from_secs(180);
/// RSS the node may keep once the flood is processed, beyond what it had before.
const MAX_KEPT_KIB: u64 = 16 * 1024;

#[test]
fn memory_taken_by_a_flood_of_big_messages_is_given_back() {
    let (peers, msgs) = flood_size();
    let d = Daemon::start_quiet(&[]);
    let mut pinger = d.connect_ready();
    let mut flooders: Vec<RawPeer> = (0..peers).map(|_| d.connect_ready()).collect();
    pinger.ping_pong(1);
    let before = d.rss_kib();
    let big = raw_frame(MAGIC, b"bigjunk", &vec![0x5a; 4_000_000], None);
    let ready = Barrier::new(peers);
    let pongs = thread::scope(|s| {
        let handles: Vec<_> = flooders
            .iter_mut()
            .enumerate()
            .map(|(i, f)| {
                let (big, ready) = (&big, &ready);
                s.spawn(move || {
                    // Encoded first (over v2 encrypted, in order), all flooders then start together.
                    let wire: Vec<Cow<[u8]>> = (0..msgs)
                        .map(|_| match f.transport() {
                            Transport::V1 => Cow::Borrowed(big.as_slice()),
                            Transport::V2 => Cow::Owned(f.encode_frames(big)),
                        })
                        .collect();
                    ready.wait();
                    for w in &wire {
                        f.send_raw(w);
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
