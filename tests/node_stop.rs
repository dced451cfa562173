//! `Node::stop`, in process: it checks every thread's join result and reports the threads that
//! ended by panicking (here the message handler, made to panic by the test-only switch).

use std::net::{SocketAddr, TcpStream};

use std::time::{Duration, Instant};

use btcloop::base::chainparams::Network;
use btcloop::daemon::config::{Config, LogConfig, RpcConfig};
use btcloop::daemon::node::{Hooks, Node, ThreadPanic};
use btcloop::daemon::panics::TestPanic;

fn config(dir: &std::path::Path, test_panic: Option<TestPanic>) -> Config {
    Config {
        network: Network::Regtest,
        datadir: dir.to_path_buf(),
        bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        connect: vec!["0".into()],
        dnsseed: false,
        fixed_seeds: false,
        rpc: RpcConfig { server: false, ..RpcConfig::default() },
        log: LogConfig { print_to_console: false, to_file: false, ..LogConfig::default() },
        test_panic,
        ..Config::default()
    }
}

#[test]
fn stop_reports_a_thread_that_panicked() {
    // The process-wide hook main.rs installs; here it only tells when the panic has happened.
    let watch = btcloop::daemon::panics::install(|| {});
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(TestPanic::MsgHandConnected));
    std::fs::create_dir_all(cfg.net_dir()).unwrap();
    let node = Node::start(&cfg, Hooks::default()).unwrap();
    let _peer = TcpStream::connect(node.listen_addrs()[0]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watch.panicked() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(watch.panicked(), "the message handler did not panic at the connection");
    let panics = node.stop();
    assert_eq!(panics.len(), 1, "{panics:?}");
    let ThreadPanic { thread, message } = &panics[0];
    assert_eq!(thread, "btcloop-msghand");
    assert!(message.starts_with("test-only panic (MsgHandConnected"), "{message}");
}
