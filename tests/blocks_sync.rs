//! Blocks end to end over loopback: regtest chains of real blocks (made here with the crate's
//! block builder, with spending transactions) submitted to one btcloopd, downloaded, validated
//! by Core's kernel and stored by others, served onward, invalid blocks refused, a reorg to a
//! heavier branch, and a `kill -9` in the middle of a download.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::consensus::serialize;
use bitcoin::hex::DisplayHex;
use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use btcloop::base::chainparams::Network;
use btcloop::engine::chain::blockgen::{BlockGen, assemble, coinbase, subsidy};
use btcloop::engine::chain::params::ChainParams;
use common::*;
use serde_json::{Value, json};

/// Long enough for a few thousand regtest blocks on a busy 2-core machine.
const SYNC: Duration = Duration::from_secs(240);

fn now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// `n` blocks on regtest's genesis, the last one about now (so the chain ends initial
/// download), with up to `spends` spending transactions each once coinbases mature.
fn chain(n: u32, spends: usize) -> Vec<bitcoin::Block> {
    let mut g = BlockGen::new(ChainParams::new(Network::Regtest));
    let t0 = now() - n;
    (0..n).map(|i| g.next_block(t0 + i, spends)).collect()
}

fn submit(d: &Daemon, blocks: &[bitcoin::Block]) {
    for b in blocks {
        let got = d.rpc_ok("submitblock", json!([serialize(b).to_lower_hex_string()]));
        assert_eq!(got, Value::Null, "submitblock {} at {}", b.block_hash(), tail(&d.log(), 10));
    }
}

fn tip(d: &Daemon) -> (u64, String) {
    let info = d.rpc_ok("getblockchaininfo", json!([]));
    (info["blocks"].as_u64().unwrap_or(0), info["bestblockhash"].as_str().unwrap_or_default().to_string())
}

fn wait_tip(d: &Daemon, height: u64, hash: &bitcoin::BlockHash, timeout: Duration) {
    let want = (height, hash.to_string());
    let ok = poll_until(timeout, || tip(d) == want);
    assert!(ok, "tip {:?}, want {want:?}\n{}", tip(d), tail(&d.log(), 40));
}

/// Lines of `d`'s log that show it sent a `block` to someone.
fn blocks_served(d: &Daemon) -> usize {
    d.log_count("sending block (")
}

#[test]
fn a_fresh_node_downloads_validates_and_serves_the_chain() {
    let blocks = chain(2000, 2);
    let last = blocks.last().map(|b| b.block_hash()).expect("blocks");
    let a = Daemon::start(&[]);
    submit(&a, &blocks);
    assert_eq!(tip(&a), (2000, last.to_string()));
    let info = a.rpc_ok("getblockchaininfo", json!([]));
    assert_eq!(info["headers"], 2000);
    assert!(info["size_on_disk"].as_u64().unwrap_or(0) > 500_000, "{info}");

    // B knows only A; C knows only B, so everything it gets B served.
    let b = Daemon::start(&[&format!("--connect={}", a.addr)]);
    wait_tip(&b, 2000, &last, SYNC);
    let c = Daemon::start(&[&format!("--connect={}", b.addr)]);
    wait_tip(&c, 2000, &last, SYNC);
    assert!(blocks_served(&b) >= 2000, "B served {} blocks", blocks_served(&b));
    // The node advertises that it serves blocks.
    let peers = c.rpc_ok("getpeerinfo", json!([]));
    let services = peers[0]["servicesnames"].as_array().cloned().unwrap_or_default();
    assert!(services.contains(&json!("NETWORK")) && services.contains(&json!("WITNESS")), "{peers}");

    // D downloads from A and B at once: both serve part of the chain.
    let (from_a, from_b) = (blocks_served(&a), blocks_served(&b));
    let d = Daemon::start(&[&format!("--connect={}", a.addr), &format!("--connect={}", b.addr)]);
    wait_tip(&d, 2000, &last, SYNC);
    let (more_a, more_b) = (blocks_served(&a) - from_a, blocks_served(&b) - from_b);
    assert!(more_a > 0 && more_b > 0, "served to D: A {more_a}, B {more_b}");
    assert!(more_a + more_b >= 2000, "served to D: A {more_a}, B {more_b}");
}

/// A raw peer that offers blocks: it announces `headers` and answers `getdata` from `blocks`.
struct Server {
    peer: RawPeer,
}

impl Server {
    fn connect(d: &Daemon) -> Server {
        let mut peer = d.connect();
        let mut v = version_msg(PROTOCOL_VERSION, "/blockserver:1.0/", random_u64());
        v.services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
        peer.send(&NetworkMessage::Version(v));
        peer.expect("version");
        assert!(peer.recv_until("verack", WAIT).is_some(), "no verack");
        peer.send(&NetworkMessage::Verack);
        Server { peer }
    }

    /// Announces `blocks`' headers and serves what is asked until `until` blocks were sent or
    /// the daemon hangs up; returns how many were sent.
    fn serve(&mut self, blocks: &[bitcoin::Block], until: usize) -> usize {
        self.peer.send(&NetworkMessage::Headers(blocks.iter().map(|b| b.header).collect()));
        let mut sent = 0;
        while sent < until {
            match self.peer.recv_timeout(Duration::from_secs(20)) {
                Some(NetworkMessage::GetData(inv)) => {
                    for i in inv {
                        let want = match i {
                            Inventory::WitnessBlock(h) | Inventory::Block(h) => h,
                            _ => continue,
                        };
                        if let Some(b) = blocks.iter().find(|b| b.block_hash() == want) {
                            self.peer.send(&NetworkMessage::Block(b.clone()));
                            sent += 1;
                        }
                    }
                }
                Some(NetworkMessage::Ping(n)) => self.peer.send(&NetworkMessage::Pong(n)),
                Some(_) => {}
                None => break,
            }
        }
        sent
    }
}

#[test]
fn invalid_blocks_disconnect_their_sender_and_are_never_connected() {
    let params = ChainParams::new(Network::Regtest);
    let good = chain(5, 0);
    let tip5 = good[4].header;
    // A coinbase paying one satoshi more than it may.
    let greedy =
        assemble(&params, &tip5, tip5.time + 1, vec![coinbase(6, subsidy(&params, 6) + bitcoin::Amount::from_sat(1))]);
    // A block whose merkle root does not commit to its transactions.
    let mut mutated = assemble(&params, &tip5, tip5.time + 2, vec![coinbase(6, subsidy(&params, 6))]);
    mutated.txdata.push(mutated.txdata[0].clone());
    let d = Daemon::start(&[]);
    for bad in [greedy, mutated] {
        let mut s = Server::connect(&d);
        let mut all = good.clone();
        all.push(bad.clone());
        s.serve(&all, all.len());
        assert!(s.peer.is_closed(Duration::from_secs(30)), "the sender of {} stays connected", bad.block_hash());
        wait_tip(&d, 5, &good[4].block_hash(), Duration::from_secs(30));
        assert!(d.log().contains(&format!("block {} invalid", bad.block_hash())), "{}", tail(&d.log(), 30));
    }
    // A child of the invalid block is refused with it.
    assert_eq!(tip(&d).0, 5);
}

#[test]
fn a_heavier_branch_reorganises_the_chain() {
    let params = ChainParams::new(Network::Regtest);
    let main = chain(60, 1);
    // A branch from height 30 that ends 10 blocks higher.
    let mut branch = main[..30].to_vec();
    let mut prev = main[29].header;
    for h in 31..=70u32 {
        let b = assemble(&params, &prev, prev.time + 1, vec![coinbase(h, subsidy(&params, h))]);
        prev = b.header;
        branch.push(b);
    }
    let a = Daemon::start(&[]);
    submit(&a, &main);
    let f = Daemon::start(&[]);
    submit(&f, &branch);
    let c = Daemon::start(&[&format!("--addnode={}", a.addr)]);
    wait_tip(&c, 60, &main[59].block_hash(), SYNC);
    c.rpc_ok("addnode", json!([f.addr.to_string(), "onetry"]));
    let top = branch.last().map(|b| b.block_hash()).expect("branch");
    wait_tip(&c, 70, &top, SYNC);
    // The old chain's blocks above the fork are no longer on the active chain.
    let h = c.rpc_ok("getblockhash", json!([45]));
    assert_eq!(h, json!(branch[44].block_hash().to_string()));
}

#[test]
fn kill_9_during_download_loses_nothing_validated() {
    let blocks = chain(3000, 0);
    let last = blocks.last().map(|b| b.block_hash()).expect("blocks");
    let a = Daemon::start_quiet(&[]);
    submit(&a, &blocks);
    let args = [format!("--connect={}", a.addr)];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let b = Daemon::start(&args);
    assert!(poll_until(SYNC, || tip(&b).0 >= 1200), "B reached {:?}", tip(&b));
    let before = tip(&b).0;
    let b = b.kill9_and_restart(&args);
    // Right after the restart, before any new download, the chain is where it was.
    let restarted = tip(&b).0;
    let startup: Vec<&str> = Vec::new();
    let log = b.log();
    let startup: Vec<&str> = log
        .lines()
        .filter(|l| {
            ["Recover", "Validated chain", "Loaded", "recovery", "block database"].iter().any(|k| l.contains(k))
        })
        .chain(startup)
        .collect();
    assert!(restarted >= before, "after kill -9: height {restarted}, before {before}\n{}", startup.join("\n"));
    wait_tip(&b, 3000, &last, SYNC);
}

/// Lines of `d`'s log that show it received a message of type `command`.
fn received(d: &Daemon, command: &str) -> usize {
    d.log_count(&format!("received: {command} ("))
}

#[test]
fn a_new_block_reaches_a_third_node_through_a_second_by_compact_block() {
    // 110 blocks ending about now, so every node leaves initial download with them.
    let mut g = BlockGen::new(ChainParams::new(Network::Regtest));
    let t0 = now() - 200;
    let blocks: Vec<bitcoin::Block> = (0..110).map(|i| g.next_block(t0 + i, 0)).collect();
    let a = Daemon::start(&[]);
    submit(&a, &blocks);
    let b = Daemon::start(&[&format!("--connect={}", a.addr), "--listen=1"]);
    let c = Daemon::start(&[&format!("--connect={}", b.addr)]);
    let last = blocks[109].block_hash();
    wait_tip(&b, 110, &last, SYNC);
    wait_tip(&c, 110, &last, SYNC);
    // Each node chose its source as a high-bandwidth compact-block peer once a new block came
    // from it with nothing else in flight (Core's MaybeSetPeerAsAnnouncingHeaderAndIDs); one
    // more block makes sure of it.
    let next = g.next_block(now(), 0);
    submit(&a, std::slice::from_ref(&next));
    wait_tip(&c, 111, &next.block_hash(), Duration::from_secs(30));
    assert!(
        poll_until(Duration::from_secs(10), || a.log().contains("received: sendcmpct (9 bytes)")),
        "A was never asked for compact blocks"
    );

    // A block with spending transactions: A pushes its cmpctblock to B at once, B asks for the
    // transactions it lacks (no mempool), rebuilds the block, validates it and pushes it on to C
    // the same way.
    let (b_cmpct, c_cmpct) = (received(&b, "cmpctblock"), received(&c, "cmpctblock"));
    let (b_txn, c_txn) = (received(&b, "blocktxn"), received(&c, "blocktxn"));
    let spends = g.next_block(now() + 1, 5);
    assert!(spends.txdata.len() > 1, "the block spends");
    submit(&a, std::slice::from_ref(&spends));
    wait_tip(&c, 112, &spends.block_hash(), Duration::from_secs(30));
    assert!(received(&b, "cmpctblock") > b_cmpct, "B got no cmpctblock\n{}", tail(&b.log(), 30));
    assert!(received(&c, "cmpctblock") > c_cmpct, "C got no cmpctblock\n{}", tail(&c.log(), 30));
    assert!(
        received(&b, "blocktxn") > b_txn && received(&c, "blocktxn") > c_txn,
        "the missing transactions came by blocktxn"
    );
    // Neither downloaded the block whole.
    assert!(!c.log().contains(&format!("Requesting block {}", spends.block_hash())), "{}", tail(&c.log(), 30));
}

#[test]
fn a_damaged_block_database_is_a_clear_error_naming_its_path() {
    let mut d = Daemon::start(&[]);
    submit(&d, &chain(5, 0));
    assert!(d.sigterm_and_wait(Duration::from_secs(20)).success());
    let net = d.net_dir();
    std::fs::write(net.join("chainstate/CURRENT"), "garbage\n").expect("damage");
    let datadir = format!("--datadir={}", d.data_dir().display());
    let (status, stderr) = run_to_exit(&["--regtest", &datadir, "--connect=0"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the block database") && stderr.contains(&net.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("Corruption"), "the kernel's own words: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
