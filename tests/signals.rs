//! Process lifecycle: SIGTERM/SIGINT stop the node cleanly (exit 0) with peers connected; bad
//! command-line values fail with exit code 1 and a one-line `Error:` message; a panic in any
//! thread stops the whole process (exit 101) and frees its port.

mod common;

use std::time::Duration;

use common::*;

/// Generous bound for a clean stop (it takes milliseconds).
const STOP: Duration = Duration::from_secs(2);

fn stop_with_peers(sig: i32) {
    let mut d = Daemon::start(&[]);
    let mut a = d.connect_ready();
    let mut b = d.connect_ready();
    let mut c = d.connect(); // mid-handshake: connected, no version yet
    a.ping_pong(1);
    b.ping_pong(2);
    let status = d.signal_and_wait(sig, STOP);
    assert_eq!(status.code(), Some(0), "exit status {status} after signal {sig}");
    for p in [&mut a, &mut b, &mut c] {
        assert!(p.is_closed(WAIT), "peer connection still open after the daemon exited");
    }
    let log = d.log();
    assert!(log.contains(&format!("Shutdown requested (signal {sig})")), "{}", tail(&log, 20));
    assert!(log.contains("Shutdown done"), "{}", tail(&log, 20));
    assert_eq!(d.stderr(), "", "unexpected stderr output");
}

#[test]
fn sigterm_exits_cleanly_with_peers() {
    stop_with_peers(libc::SIGTERM);
}

#[test]
fn sigint_exits_cleanly_with_peers() {
    stop_with_peers(libc::SIGINT);
}

#[test]
fn sigterm_with_outbound_and_inbound_peers() {
    let mut a = Daemon::start(&[]);
    let a_port = a.port;
    let mut b = Daemon::start_with(true, |_| vec![format!("--connect=127.0.0.1:{a_port}")]);
    b.wait_log("New manual peer connected", WAIT);
    a.wait_log("New inbound peer connected", WAIT);
    assert_eq!(b.sigterm_and_wait(STOP).code(), Some(0));
    assert_eq!(a.sigterm_and_wait(STOP).code(), Some(0));
}

fn assert_bad_args(args: &[&str]) {
    let (status, stderr) = run_to_exit(args);
    assert_eq!(status.code(), Some(1), "{args:?}: exit status {status}, stderr {stderr:?}");
    assert!(stderr.starts_with("Error:"), "{args:?}: stderr {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: stderr is not one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{args:?}: stderr {stderr:?}");
}

#[test]
fn bad_listen_value() {
    assert_bad_args(&["--regtest", "--listen=2"]);
}

#[test]
fn bad_port_value() {
    assert_bad_args(&["--regtest", "--port=x"]);
}

#[test]
fn two_networks() {
    assert_bad_args(&["--regtest", "--signet"]);
}

#[test]
fn more_bad_values() {
    for args in [
        &["--regtest", "--peertimeout=0"][..],
        &["--regtest", "--connect=host:notaport"],
        &["--regtest", "--uacomment=a/b"],
        &["--regtest", "--debug=bogus"],
        &["--regtest", "--bind=nope"],
        &["--network=mars"],
        &["--regtest", "--no-such-flag"],
    ] {
        assert_bad_args(args);
    }
}

#[test]
fn second_instance_on_the_same_datadir_fails() {
    let d = Daemon::start(&[]);
    let datadir = d.log_path().parent().unwrap().parent().unwrap().to_path_buf();
    let (status, stderr) =
        run_to_exit(&["--regtest", &format!("--datadir={}", datadir.display()), "--bind=127.0.0.1:0"]);
    assert_eq!(status.code(), Some(1), "stderr {stderr:?}");
    assert!(stderr.starts_with("Error:") && stderr.contains("lock"), "stderr {stderr:?}");
}

#[test]
fn sigterm_with_a_stuck_flooding_peer() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use bitcoin::p2p::message::NetworkMessage;

    let mut d = Daemon::start_quiet(&["--maxsendbuffer=100", "--maxreceivebuffer=100"]);
    let mut p = RawPeer::connect_small_buffers(d.addr, 64 * 1024);
    let hs = p.handshake();
    p.send(&NetworkMessage::Pong(hs.ping_nonce));
    // Flood pings and never read. The thread stops on a write error or when told to (the
    // kernel may keep a zero-window connection to a dead process alive for minutes).
    let mut w = p.stream.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let batch: Vec<u8> = (0..1000u64).flat_map(|n| frame(&NetworkMessage::Ping(n))).collect();
    let flooder = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            match w.write(&batch) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    });
    let mut other = d.connect_ready();
    other.ping_pong(1);
    std::thread::sleep(Duration::from_millis(500));
    let status = d.sigterm_and_wait(STOP);
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(other.is_closed(WAIT));
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    drop(p);
}

/// A panic in a thread (forced with the hidden `--test=panic-msghand` or `--test=panic-net`, at
/// the first connection) is logged with the thread, message and location and stops the whole
/// process: non-zero exit, connections closed, listening port free. Before, the socket handler
/// kept accepting peers nobody served.
fn panic_stops_the_process(switch: &str, thread: &str, file: &str) {
    let mut d = Daemon::start(&[&format!("--test={switch}")]);
    let mut p = d.connect();
    let mut status = None;
    let exited = poll_until(WAIT, || {
        status = d.try_wait();
        status.is_some()
    });
    assert!(exited, "btcloopd still running after {thread} panicked:\n{}", tail(&d.log(), 20));
    let status = status.expect("exit status");
    assert_eq!(status.code(), Some(101), "exit status {status}");
    assert!(p.is_closed(WAIT), "the peer's connection outlived the process");
    let log = d.log();
    let line = log.lines().find(|l| l.contains(&format!("Thread {thread} panicked at "))).unwrap_or_else(|| {
        panic!("no panic line in debug.log:\n{}", tail(&log, 20));
    });
    assert!(line.contains(&format!("{file}:")) && line.contains("test-only panic"), "{line}");
    assert!(log.contains("Shutdown after a thread panicked"), "{}", tail(&log, 20));
    assert!(log.contains("Exiting with status 101 after a thread panicked"), "{}", tail(&log, 20));
    std::net::TcpListener::bind(d.addr).expect("the listening port is still taken after the exit");
}

#[test]
fn a_message_handler_panic_stops_the_process_and_frees_its_port() {
    panic_stops_the_process("panic-msghand", "btcloop-msghand", "src/daemon/msg_handler/mod.rs");
}

#[test]
fn a_socket_handler_panic_stops_the_process_and_frees_its_port() {
    panic_stops_the_process("panic-net", "btcloop-net", "src/daemon/net/socket_handler.rs");
}
