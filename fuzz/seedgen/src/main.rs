//! Writes the seed corpora of the file-loading fuzz targets (`fuzz/seeds/load_*`) with
//! btcloop's own writers, so the seeds are files the daemon really writes. Each seed starts
//! with the control byte its target reads first (see the target's documentation).

use std::fs;
use std::path::{Path, PathBuf};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;
use bitcoin::pow::Work;
use btcloop::engine::addrman::{AddrEntry, AddrMan, NetGroupRule};
use btcloop::engine::chain::accept::Chain;
use btcloop::engine::chain::mine::mine_chain;
use btcloop::engine::chain::params::ChainParams;
use btcloop::base::chainparams::Network;
use btcloop::engine::policy::anchors;
use btcloop::engine::policy::banman::BanMan;

fn seeds_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds").join(target);
    fs::create_dir_all(&dir).expect("seed dir");
    dir
}

fn write(target: &str, name: &str, control: Option<u8>, bytes: &[u8]) {
    let mut out = control.map(|c| vec![c]).unwrap_or_default();
    out.extend_from_slice(bytes);
    fs::write(seeds_dir(target).join(name), out).expect("write seed");
}

fn entry(a: [u8; 4], port: u16, time: i64) -> AddrEntry {
    AddrEntry::new(AddrV2::Ipv4(a.into()), port, ServiceFlags::NETWORK | ServiceFlags::WITNESS, time)
}

fn headers_dat(tmp: &Path) {
    let params = ChainParams::new(Network::Regtest);
    let path = tmp.join("headers.dat");
    let (mut chain, _) = Chain::open(params.clone(), Work::from_be_bytes([0; 32]), &path).expect("open");
    let main = mine_chain(&params, &params.genesis, 30, 1);
    let side = mine_chain(&params, &main[9], 5, 2);
    assert_eq!(chain.accept(&main, 2_000_000_000).error, None);
    assert_eq!(chain.accept(&side, 2_000_000_000).error, None);
    chain.flush().expect("flush");
    let bytes = fs::read(&path).expect("read");
    // As written (checksums already right), and with the checksum fixer on.
    write("load_headers_dat", "store-35", Some(0), &bytes);
    write("load_headers_dat", "store-35-fix", Some(1), &bytes);
    write("load_headers_dat", "store-torn", Some(0), &bytes[..bytes.len() - 30]);
    write("load_headers_dat", "empty", Some(0), &[]);
}

fn peers_dat() {
    let magic = Network::Regtest.magic();
    let now = 1_700_000_000;
    let mut man = AddrMan::new([7; 32], 1, NetGroupRule::Core);
    let src = AddrV2::Ipv4([1, 2, 3, 4].into());
    let new: Vec<AddrEntry> = (0..20u8).map(|i| entry([8, i, 1, 1], 8333, now - 100)).collect();
    man.add(&new, &src, 0, now);
    for i in 0..5u8 {
        let a = AddrV2::Ipv4([8, i, 1, 1].into());
        man.attempt(&a, 8333, true, now);
        man.good(&a, 8333, now);
    }
    let mut v2 =
        vec![AddrEntry::new(AddrV2::Ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 5].into()), 8333, ServiceFlags::NETWORK, now)];
    v2.push(AddrEntry::new(AddrV2::TorV3([9; 32]), 8333, ServiceFlags::NETWORK, now));
    man.add(&v2, &src, 0, now);
    let bytes = man.serialize(magic);
    write("load_peers_dat", "book", Some(0), &bytes);
    // For the fixer: the file without its checksum.
    write("load_peers_dat", "book-fix", Some(1), &bytes[..bytes.len() - 32]);
    let empty = AddrMan::new([0; 32], 1, NetGroupRule::Core).serialize(magic);
    write("load_peers_dat", "empty-book", Some(0), &empty);
}

fn anchors_dat() {
    let magic = Network::Regtest.magic();
    let two = [entry([8, 8, 8, 8], 8333, 1_700_000_000), entry([9, 9, 9, 9], 18444, 1_700_000_000)];
    let bytes = anchors::serialize(magic, &two);
    write("load_anchors_dat", "two", Some(0), &bytes);
    write("load_anchors_dat", "two-fix", Some(1), &bytes[..bytes.len() - 32]);
    let mut onion = two[0].clone();
    onion.addr = AddrV2::TorV3([3; 32]);
    write("load_anchors_dat", "onion", Some(0), &anchors::serialize(magic, &[onion]));
    write("load_anchors_dat", "none", Some(0), &anchors::serialize(magic, &[]));
}

fn banlist(tmp: &Path) {
    let path = tmp.join("banlist.json");
    let now = 1_700_000_000;
    let man = BanMan::open(&path, now).expect("open");
    man.ban("1.2.3.4".parse().expect("net"), now, now + 86_400).expect("ban");
    man.ban("10.0.0.0/8".parse().expect("net"), now, i64::MAX).expect("ban");
    man.ban("2001:db8::/32".parse().expect("net"), now, now + 60).expect("ban");
    man.ban("5.6.7.8".parse().expect("net"), now - 10, now + 1).expect("ban");
    write("load_banlist", "three", None, &fs::read(&path).expect("read"));
    man.clear(now).expect("clear");
    write("load_banlist", "empty", None, &fs::read(&path).expect("read"));
}

fn conf() {
    let files: [(&str, &str); 4] = [
        ("basic", "# btcloop.conf\nregtest=1\nlisten=1\nport=18444\nmaxconnections=20\ndebug=net\n"),
        ("sections", "testnet=0\nconnect=127.0.0.1\n[regtest]\nport=18555\nrpcport=18556\n[main]\nnolisten=1\n"),
        ("prefixed", "regtest.bind=127.0.0.1\nsignet.seednode=127.0.0.1:38333\n  logips = 1  # comment\n\r\n"),
        ("negations", "nodnsseed=1\nnofixedseeds=0\nnoprinttoconsole\n"),
    ];
    for (name, text) in files {
        write("load_conf", name, None, text.as_bytes());
    }
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("btcloop-seedgen-{}", std::process::id()));
    fs::create_dir_all(&tmp).expect("tmp");
    headers_dat(&tmp);
    peers_dat();
    anchors_dat();
    banlist(&tmp);
    conf();
    fs::remove_dir_all(&tmp).expect("cleanup");
}
