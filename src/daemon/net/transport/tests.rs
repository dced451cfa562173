//! Two connection ends over loopback, each a [`ConnTransport`] with its [`PeerQueues`]: what one
//! end's queue writes is read from the other end's socket and fed to its transport.

use std::io::Read;
use std::net::{TcpListener, TcpStream as StdStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::*;
use crate::base::totals::NetTotals;
use crate::base::transport::{Command, encode_frame};

const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// One end: its queues (over the socket it writes to) and the socket it reads from.
struct End {
    queues: PeerQueues,
    transport: ConnTransport,
    /// The other end's writes arrive here.
    read: StdStream,
    got: Vec<(Command, Vec<u8>)>,
}

/// Two loopback connections, one per direction, so each end reads what the other's queue wrote.
fn ends(a: impl FnOnce(&PeerQueues) -> ConnTransport, b: impl FnOnce(&PeerQueues) -> ConnTransport) -> (End, End) {
    let link = || {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = StdStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        client.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        (server, client)
    };
    let (a_out, b_in) = link();
    let (b_out, a_in) = link();
    let qa = PeerQueues::new(1, TcpStream::from_std(a_out), 1 << 20, 1 << 20, Arc::new(NetTotals::default()));
    let qb = PeerQueues::new(2, TcpStream::from_std(b_out), 1 << 20, 1 << 20, Arc::new(NetTotals::default()));
    let ta = a(&qa);
    let tb = b(&qb);
    (
        End { queues: qa, transport: ta, read: a_in, got: Vec::new() },
        End { queues: qb, transport: tb, read: b_in, got: Vec::new() },
    )
}

fn frame(command: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(MAGIC, command, &mut out, |b| b.extend_from_slice(payload));
    out
}

impl End {
    fn send(&self, command: &str, payload: &[u8]) {
        let f = frame(command, payload);
        self.queues.queue_send(|b| b.extend_from_slice(&f));
    }

    /// Writes what the queue lets out; reads what arrived (in chunks of `chunk` bytes) and feeds
    /// it to the transport. Whether anything moved.
    fn pump(&mut self, chunk: usize) -> Result<bool, TransportError> {
        let _ = self.queues.flush_from_socket(0);
        let mut buf = vec![0u8; 64 * 1024];
        let mut moved = false;
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    moved = true;
                    for piece in buf[..n].chunks(chunk) {
                        let got = &mut self.got;
                        let r = self.transport.receive(MAGIC, piece, &self.queues, |d| match d {
                            Delivery::Frame(f) => got.push((*f.command, f.payload.to_vec())),
                            Delivery::Owned(o) => got.push((o.command, o.payload)),
                            Delivery::Rejected(_) => {}
                        })?;
                        if r.write {
                            let _ = self.queues.flush_from_socket(0);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        Ok(moved)
    }
}

/// Pumps both ends until `done` or 10 s.
fn run(a: &mut End, b: &mut End, chunk: usize, mut done: impl FnMut(&End, &End) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(a, b) {
        assert!(Instant::now() < deadline, "stuck: a {:?}, b {:?}", a.transport.kind(), b.transport.kind());
        a.pump(chunk).expect("a receives");
        b.pump(chunk).expect("b receives");
    }
}

fn cmd(name: &str) -> Command {
    let mut c = [0u8; 12];
    c[..name.len()].copy_from_slice(name.as_bytes());
    c
}

#[test]
fn two_ends_agree_on_v2_and_frames_queued_before_the_handshake_arrive_in_order() {
    for chunk in [1, 7, 64 * 1024] {
        let (mut a, mut b) =
            ends(|q| ConnTransport::outbound_v2(MAGIC, q).expect("key"), |q| ConnTransport::inbound(MAGIC, true, q));
        assert_eq!(b.transport.kind(), TransportKind::Detecting);
        // The dialer's version goes into the queue at once, as the message handler does.
        a.send("version", &[1; 100]);
        a.send("ping", &[2; 8]);
        run(&mut a, &mut b, chunk, |_, b| b.got.len() == 2);
        assert_eq!(b.got, vec![(cmd("version"), vec![1; 100]), (cmd("ping"), vec![2; 8])], "chunk {chunk}");
        b.send("pong", &[2; 8]);
        b.send("block", &vec![3; 300_000]);
        run(&mut a, &mut b, chunk, |a, _| a.got.len() == 2);
        assert_eq!(a.got[0], (cmd("pong"), vec![2; 8]));
        assert_eq!(a.got[1], (cmd("block"), vec![3; 300_000]));
        assert_eq!((a.transport.kind(), b.transport.kind()), (TransportKind::V2, TransportKind::V2));
        assert!(a.transport.session_id().is_some());
        assert_eq!(a.transport.session_id(), b.transport.session_id());
        assert!(!a.transport.should_reconnect_v1(), "it received bytes");
    }
}

#[test]
fn an_inbound_v1_peer_is_detected_byte_by_byte_and_gets_its_answers_as_they_are() {
    let (mut a, mut b) = ends(|_| ConnTransport::v1(MAGIC), |q| ConnTransport::inbound(MAGIC, true, q));
    // What b queued before knowing the transport waits, then goes out as v1.
    b.send("verack", &[]);
    a.send("version", &[5; 90]);
    run(&mut a, &mut b, 1, |a, b| b.got.len() == 1 && a.got.len() == 1);
    assert_eq!(b.transport.kind(), TransportKind::V1);
    assert_eq!(b.got, vec![(cmd("version"), vec![5; 90])]);
    assert_eq!(a.got, vec![(cmd("verack"), vec![])]);
}

#[test]
fn with_v2_off_an_inbound_v2_key_is_a_wrong_magic_and_an_unanswered_dial_asks_for_v1() {
    let (a, mut b) =
        ends(|q| ConnTransport::outbound_v2(MAGIC, q).expect("key"), |q| ConnTransport::inbound(MAGIC, false, q));
    assert_eq!(b.transport.kind(), TransportKind::V1);
    assert!(a.transport.should_reconnect_v1(), "nothing received yet");
    let _ = a.queues.flush_from_socket(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(Instant::now() < deadline, "the v1 end refuses the key");
        if let Err(e) = b.pump(64 * 1024) {
            break e;
        }
    };
    assert!(matches!(err, TransportError::WrongMagic { .. }), "{err}");
    assert!(a.transport.should_reconnect_v1(), "still nothing received: worth a v1 retry");
}

#[test]
fn a_v2_peer_that_sends_garbage_without_a_terminator_is_refused() {
    let (a, mut b) = ends(|_| ConnTransport::v1(MAGIC), |q| ConnTransport::inbound(MAGIC, true, q));
    // A key (any 64 bytes not starting like v1), then more than 4,095 bytes of garbage plus a
    // 16-byte terminator's worth, none of it the terminator.
    a.queues.queue_send(|buf| buf.extend(std::iter::repeat_n(0x11u8, 64 + 4095 + 16 + 1)));
    let _ = a.queues.flush_from_socket(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(Instant::now() < deadline, "refused");
        if let Err(e) = b.pump(64 * 1024) {
            break e;
        }
    };
    assert_eq!(err.to_string(), "v2 garbage terminator not found within 4095 bytes");
    assert_eq!(b.transport.kind(), TransportKind::V2);
}
