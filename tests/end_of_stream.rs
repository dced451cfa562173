//! End of stream: a peer whose FIN arrives in the same TCP segment as its last message is
//! dropped at once, not at a later write error or the 20-minute inactivity timeout.

mod common;

use std::net::Shutdown;
use std::time::Duration;

use bitcoin::p2p::message::NetworkMessage;
use common::*;

/// Generous bound for "promptly" (the alternative is the 20-minute inactivity timeout).
const PROMPT: Duration = Duration::from_secs(5);

/// Sends `bytes` and the FIN in one segment: `TCP_CORK` holds the bytes back until the
/// shutdown, which piggybacks the FIN on them.
fn send_with_fin(p: &mut RawPeer, bytes: &[u8]) {
    let sock = socket2::SockRef::from(&p.stream);
    sock.set_tcp_cork(true).expect("TCP_CORK");
    p.send_raw(bytes);
    p.stream.shutdown(Shutdown::Write).expect("shutdown");
}

#[test]
fn fin_with_the_last_message_disconnects_promptly() {
    let d = Daemon::start(&[]);
    let mut healthy = d.connect_ready();
    for (n, id) in (1..=3).enumerate() {
        let mut p = d.connect_ready();
        healthy.ping_pong(n as u64);
        let f = p.encode(&NetworkMessage::Ping(7));
        send_with_fin(&mut p, &f);
        // The socket stays half open on our side, so no write by the daemon can fail.
        d.wait_log_all(&[&format!("disconnected peer={id} "), "socket closed by peer"], PROMPT);
        assert_eq!(d.log_count("): socket closed by peer"), n + 1, "{}", d.log());
    }
    healthy.ping_pong(99);
}

#[test]
fn fin_with_a_partial_message_disconnects_promptly() {
    let d = Daemon::start(&[]);
    let mut p = d.connect_ready();
    // All but the last two bytes (over v1 the header and 6 of the nonce's 8 bytes; over v2
    // the packet without the end of its tag).
    let f = p.encode(&NetworkMessage::Ping(8));
    send_with_fin(&mut p, &f[..f.len() - 2]);
    d.wait_log_all(&["disconnected peer=0 ", "socket closed by peer"], PROMPT);
}
