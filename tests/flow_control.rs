//! Flow control (Core's `fPauseSend`/`fPauseRecv`): a peer that floods pings but never reads
//! its socket stalls itself, not the node: memory stays bounded, other peers are served, and
//! once the peer reads again the node resumes where it stopped, losing nothing.

mod common;

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bitcoin::p2p::message::NetworkMessage;
use common::*;

/// Pings per write.
const BATCH: u64 = 1000;
/// Upper bound on the pings the flooder sends (64 MB): far more than kernel buffers and the
/// node's 100 kB queues can hold, so the writes must block long before.
const MAX_PINGS: u64 = 2_000_000;
/// The flood counts as stalled when less than this many bytes went out in [`STALL_TIME`].
const STALL_BYTES: usize = 32 * 1024;
/// See [`STALL_BYTES`].
const STALL_TIME: Duration = Duration::from_secs(2);
/// RSS growth allowed while the stuck peer floods.
const MAX_RSS_GROWTH_KIB: u64 = 30 * 1024;

enum Flood {
    /// Writes (almost) made no progress for 2 s; the last nonce of the batch being written (the
    /// flooder finishes that batch once the socket drains).
    Stalled { last_nonce: u64 },
    /// All pings were written without ever blocking.
    Finished,
}

#[test]
fn stuck_peer_is_paused_and_resumes() {
    let d = Daemon::start_quiet(&["--maxsendbuffer=100", "--maxreceivebuffer=100"]);
    // Small kernel buffers on our side so the flood backs up soon.
    let mut stuck = RawPeer::connect_small_buffers(d.addr, 64 * 1024);
    let hs = stuck.handshake();
    stuck.send(&NetworkMessage::Pong(hs.ping_nonce));
    stuck.ping_pong(u64::MAX);
    let rss_before = d.rss_kib();

    let mut writer = stuck.stream.try_clone().expect("clone stream");
    // The flooder encodes over the peer's transport (over v2 it encrypts; nobody else writes
    // to this peer until it is done).
    let encoder = stuck.encoder();
    writer.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
    let (tx, rx) = mpsc::channel();
    let flooder = thread::spawn(move || {
        // Stalled: less than STALL_BYTES written during the last STALL_TIME (a blocked write, or a
        // trickle through zero-window probes).
        let mut mark = (Instant::now(), 0usize);
        let mut total = 0usize;
        let mut next = 1u64;
        while next <= MAX_PINGS {
            let frames: Vec<u8> = (next..next + BATCH).flat_map(|n| frame(&NetworkMessage::Ping(n))).collect();
            let batch = encoder.encode_frames(&frames);
            let last_nonce = next + BATCH - 1;
            next += BATCH;
            let mut off = 0;
            while off < batch.len() {
                match writer.write(&batch[off..]) {
                    Ok(n) => {
                        off += n;
                        total += n;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => panic!("flood write failed: {e}"),
                }
                if mark.0.elapsed() >= STALL_TIME {
                    if total - mark.1 < STALL_BYTES {
                        let _ = tx.send(Flood::Stalled { last_nonce });
                        // Finish the frame stream cleanly once the reader drains the socket.
                        writer.set_write_timeout(None).unwrap();
                        writer.write_all(&batch[off..]).expect("finish batch");
                        return;
                    }
                    mark = (Instant::now(), total);
                }
            }
        }
        let _ = tx.send(Flood::Finished);
    });

    // Sample memory while the flood runs.
    let mut rss_max = rss_before;
    let deadline = Instant::now() + Duration::from_secs(120);
    let last_nonce = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Flood::Stalled { last_nonce }) => break last_nonce,
            Ok(Flood::Finished) => panic!(
                "{MAX_PINGS} pings written without blocking: the node kept reading a peer that does not read (RSS {} -> {} KiB)",
                rss_before,
                d.rss_kib()
            ),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                rss_max = rss_max.max(d.rss_kib());
                assert!(Instant::now() < deadline, "flood neither stalled nor finished within 120 s");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("flooder thread died"),
        }
    };
    rss_max = rss_max.max(d.rss_kib());
    assert!(
        rss_max < rss_before + MAX_RSS_GROWTH_KIB,
        "RSS grew from {rss_before} KiB to {rss_max} KiB while a peer flooded without reading"
    );

    // The node still serves others while the first peer is stuck.
    let mut other = d.connect_ready();
    for n in 1..=5 {
        other.ping_pong(n);
    }
    rss_max = rss_max.max(d.rss_kib());
    assert!(rss_max < rss_before + MAX_RSS_GROWTH_KIB, "RSS {rss_before} -> {rss_max} KiB");

    // The stuck peer reads again: every ping gets its pong, in order, and nothing else.
    for expected in 1..=last_nonce {
        match stuck.recv() {
            Some(NetworkMessage::Pong(n)) if n == expected => {}
            other => panic!("expected pong({expected}) of {last_nonce}, got {other:?}"),
        }
    }
    flooder.join().expect("flooder");
    // Fully resumed: a fresh ping is answered right away.
    stuck.ping_pong(u64::MAX - 1);
    other.ping_pong(6);
    assert!(d.log_count("disconnected peer=") == 0, "{}", tail(&d.log(), 20));
    eprintln!("flooded {last_nonce} pings; RSS {rss_before} -> max {rss_max} KiB");
}
