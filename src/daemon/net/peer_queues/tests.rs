use std::io::Read;
use std::net::{TcpListener, TcpStream as StdStream};
use std::time::Duration;

use super::*;

/// Queues around one end of a loopback connection, and the other end.
fn pair(recv_limit: usize, send_limit: usize) -> (PeerQueues, StdStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = StdStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let q = PeerQueues::new(9, TcpStream::from_std(server), recv_limit, send_limit, Arc::new(NetTotals::default()));
    (q, client)
}

const CMD: Command = *b"ping\0\0\0\0\0\0\0\0";

#[test]
fn process_queue_signals_ready_once_and_pauses_at_limit() {
    let (q, _peer) = pair(100, 1000);
    let p = q.push_frames(|a| a.push(&CMD, &[1; 40], [0; 4], 5));
    assert!(p.newly_ready && !p.paused);
    let p = q.push_frames(|a| a.push(&CMD, &[2; 40], [0; 4], 6));
    assert!(!p.newly_ready, "already in the work set");
    assert!(p.paused, "2 × (24 + 40) bytes > 100");
    assert!(q.recv_paused());
    assert_eq!(q.stats.pause_recv_events.load(Ordering::Relaxed), 1);

    let mut payload = Vec::new();
    let m = q.pop_message(&mut payload).unwrap();
    assert_eq!((m.command, m.recv_time_us, m.more, m.resumed), (CMD, 5, true, true));
    assert_eq!(payload, vec![1; 40]);
    assert!(!q.recv_paused());
    let m = q.pop_message(&mut payload).unwrap();
    assert_eq!((m.recv_time_us, m.more, m.resumed), (6, false, false));
    assert_eq!(payload, vec![2; 40]);
    assert!(q.pop_message(&mut payload).is_none());
    // Empty again: the next push makes it ready again.
    assert!(q.push_frames(|a| a.push(&CMD, &[], [0; 4], 7)).newly_ready);
}

#[test]
fn send_queue_pauses_over_limit_and_handler_writes_optimistically() {
    let (q, mut peer) = pair(1000, 100);
    q.queue_send(|b| b.extend_from_slice(&[7; 150]));
    assert!(q.send_paused());
    let (w, needs_socket) = q.flush_from_handler(10).unwrap();
    assert_eq!((w.bytes, w.left, w.unpaused, needs_socket), (150, 0, true, false));
    assert!(!q.send_paused());
    assert_eq!(q.stats.bytes_sent.load(Ordering::Relaxed), 150);
    assert_eq!(q.stats.last_send_us.load(Ordering::Relaxed), 10);
    let mut got = [0u8; 150];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(got, [7; 150]);
}

#[test]
fn full_socket_hands_writing_to_socket_handler_and_memory_stays_bounded() {
    let (q, mut peer) = pair(1000, 64 * 1024);
    // The peer does not read: fill its receive window and our socket buffer.
    let mut queued_total = 0usize;
    let mut handed_over = false;
    for _ in 0..1000 {
        queued_total += 64 * 1024;
        q.queue_send(|b| b.extend_from_slice(&[1; 64 * 1024]));
        let (_, needs_socket) = q.flush_from_handler(1).unwrap();
        if needs_socket {
            handed_over = true;
            break;
        }
    }
    assert!(handed_over, "kernel buffers never filled");
    let left = q.send_queued();
    assert!(left > 0);
    // While the socket handler owns the queue, the message handler does not write.
    let (w, needs) = q.flush_from_handler(2).unwrap();
    assert_eq!((w.bytes, needs), (0, false));
    // The handler sees the pause and would stop producing for this peer.
    q.queue_send(|b| b.extend_from_slice(&[1; 64 * 1024]));
    assert!(q.send_paused());
    // The peer drains; the socket handler finishes the queue.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let total = queued_total + 64 * 1024;
    let mut read = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    while read < total {
        read += peer.read(&mut buf).unwrap();
        let w = q.flush_from_socket(3).unwrap();
        if w.left == 0 {
            assert!(!q.send_paused());
        }
    }
    assert_eq!(q.send_queued(), 0);
    // Write duty is back with the message handler.
    q.queue_send(|b| b.push(9));
    let (w, needs) = q.flush_from_handler(4).unwrap();
    assert_eq!((w.bytes, needs), (1, false));
}

#[test]
fn closed_queue_accepts_and_writes_nothing() {
    let (q, _peer) = pair(1000, 1000);
    q.close();
    assert_eq!(q.queue_send(|b| b.push(1)), 0);
    assert_eq!(q.flush_from_handler(1).unwrap().0.bytes, 0);
}

#[test]
fn large_payloads_wait_out_of_line_in_order_and_count_toward_the_limit() {
    let (q, _peer) = pair(100_000, 1000);
    let big = vec![9u8; 70_000];
    let big_ptr = big.as_ptr();
    let p = q.push_frames(|a| {
        a.push(&CMD, &[1; 8], [1; 4], 1);
        a.push_owned(&CMD, big, [2; 4], 2);
        a.push(&CMD, &[3; 8], [3; 4], 3);
    });
    assert!(p.newly_ready && !p.paused);
    assert_eq!(q.recv_queued(), 3 * ENTRY_HEADER + 8 + 70_000 + 8);
    let p = q.push_frames(|a| a.push_owned(&CMD, vec![4u8; 40_000], [4; 4], 4));
    assert!(p.paused, "out-of-line bytes count toward the receive limit");

    let mut payload = Vec::new();
    let m = q.pop_message(&mut payload).unwrap();
    assert_eq!((m.recv_time_us, m.checksum, payload.as_slice()), (1, [1; 4], &[1u8; 8][..]));
    let m = q.pop_message(&mut payload).unwrap();
    assert_eq!((m.recv_time_us, m.checksum, payload.len()), (2, [2; 4], 70_000));
    assert_eq!(payload.as_ptr(), big_ptr, "handed over, not copied");
    assert!(m.resumed, "back under the limit");
    let m = q.pop_message(&mut payload).unwrap();
    assert_eq!((m.recv_time_us, payload.as_slice()), (3, &[3u8; 8][..]));
    assert!(payload.capacity() <= KEEP_CAPACITY, "the large buffer was let go for a small payload");
    let m = q.pop_message(&mut payload).unwrap();
    assert_eq!((m.recv_time_us, m.more, payload.len()), (4, false, 40_000));
    assert_eq!(q.recv_queued(), 0);
    assert!(q.pop_message(&mut payload).is_none());
}

/// A stand-in for the v2 encryption: each whole v1 frame becomes `S` + its bytes reversed.
#[derive(Debug, Default)]
struct Reverse;

impl Seal for Reverse {
    fn seal(&mut self, frames: &[u8], wire: &mut Vec<u8>, budget: usize) -> Result<usize, String> {
        let start = wire.len();
        let mut used = 0;
        while let Some(head) = frames.get(used..used + 24) {
            let len = u32::from_le_bytes([head[16], head[17], head[18], head[19]]) as usize;
            let Some(frame) = frames.get(used..used + 24 + len) else { break };
            wire.push(b'S');
            wire.extend(frame.iter().rev());
            used += frame.len();
            if wire.len() - start > budget {
                break;
            }
        }
        Ok(used)
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::base::transport::encode_frame([1, 2, 3, 4], "ping", &mut out, |b| b.extend_from_slice(payload));
    out
}

fn read_n(peer: &mut StdStream, n: usize) -> Vec<u8> {
    peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = vec![0u8; n];
    peer.read_exact(&mut got).unwrap();
    got
}

#[test]
fn held_frames_wait_for_the_handshake_then_go_out_sealed_in_order() {
    let (q, mut peer) = pair(1000, 1 << 20);
    q.hold_frames();
    let (a, b) = (frame(&[1; 10]), frame(&[2; 3000]));
    q.queue_send(|buf| {
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
    });
    q.push_wire(b"KEY+GARBAGE".to_vec());
    let (w, needs_socket) = q.flush_from_handler(1).unwrap();
    assert_eq!((w.bytes, w.left, needs_socket), (11, 0, false), "only the handshake bytes go out");
    assert_eq!(read_n(&mut peer, 11), b"KEY+GARBAGE");
    assert_eq!(q.send.lock().wire.buf.capacity(), 0, "written handshake bytes are freed at once");
    assert_eq!(q.send_queued(), a.len() + b.len(), "the frames still count toward the send limit");
    q.push_wire(b"TERMINATOR".to_vec());
    q.start_sealing(Box::new(Reverse));
    let (w, _) = q.flush_from_socket(2).map(|w| (w, ())).unwrap();
    let mut want = b"TERMINATOR".to_vec();
    for f in [&a, &b] {
        want.push(b'S');
        want.extend(f.iter().rev());
    }
    assert_eq!((w.bytes, w.left), (want.len(), 0));
    assert_eq!(read_n(&mut peer, want.len()), want);
    assert_eq!(q.stats.bytes_sent.load(Ordering::Relaxed), (11 + want.len()) as u64, "wire bytes are counted");
}

#[test]
fn after_sealing_an_inbound_peer_detected_as_v1_gets_frames_unchanged() {
    let (q, mut peer) = pair(1000, 1 << 20);
    let f = frame(&[9; 100]);
    q.hold_frames();
    q.queue_send(|buf| buf.extend_from_slice(&f));
    assert_eq!(q.flush_from_handler(1).unwrap().0.bytes, 0, "nothing before the transport is known");
    q.send_plain();
    q.flush_from_handler(2).unwrap();
    assert_eq!(read_n(&mut peer, f.len()), f);
}

#[test]
fn sealing_goes_in_batches_and_a_full_socket_keeps_the_rest() {
    // 1,024 frames of 32 KiB: sealed a batch at a time, the socket fills, the socket handler
    // takes over and drains the rest in order.
    let (q, mut peer) = pair(1000, 64 << 20);
    q.start_sealing(Box::new(Reverse));
    let frames: Vec<Vec<u8>> = (0..1024u32).map(|i| frame(&vec![i as u8; 32 * 1024])).collect();
    q.queue_send(|buf| frames.iter().for_each(|f| buf.extend_from_slice(f)));
    let total: usize = frames.iter().map(|f| f.len() + 1).sum();
    let (w, needs_socket) = q.flush_from_handler(1).unwrap();
    assert!(needs_socket && w.left > 0, "the socket buffer takes less than 32 MiB");
    let reader = std::thread::spawn(move || read_n(&mut peer, total));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while q.send_queued() > 0 {
        q.flush_from_socket(2).unwrap();
        assert!(std::time::Instant::now() < deadline, "drained");
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = reader.join().unwrap();
    let mut want = Vec::new();
    for f in &frames {
        want.push(b'S');
        want.extend(f.iter().rev());
    }
    assert!(got == want, "every frame, sealed, in order");
}
