//! Where a node with an empty address book finds its first peers: each network's DNS seeds and
//! fixed seeds, as Bitcoin Core's `chainparams.cpp` lists them. The fixed seeds are Core's
//! `chainparamsseeds.h` bytes (BIP155 tuples), converted by `contrib/gen-fixed-seeds.py` into
//! `src/net/seeds/<network>.bin` and embedded here.

use std::net::{Ipv4Addr, Ipv6Addr};

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::AddrV2;

use crate::base::chainparams::Network;

/// Core's `SeedsServiceFlags`: what DNS seeds are asked for (`x9.`: NETWORK | WITNESS).
pub fn seeds_service_flags() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS
}

/// Core's DNS seeds of `network` (Core master's list; regtest has none that resolve).
pub fn dns_seeds(network: Network) -> &'static [&'static str] {
    match network {
        Network::Main => &[
            "dnsseed.bluematt.me.",
            "seed.bitcoin.jonasschnelli.ch.",
            "seed.btc.petertodd.net.",
            "seed.bitcoin.sprovoost.nl.",
            "dnsseed.emzy.de.",
            "seed.bitcoin.wiz.biz.",
            "seed.mainnet.achownodes.xyz.",
        ],
        Network::Test => &[
            "testnet-seed.bitcoin.jonasschnelli.ch.",
            "seed.tbtc.petertodd.net.",
            "seed.testnet.bitcoin.sprovoost.nl.",
            "testnet-seed.bluematt.me.",
            "seed.testnet.achownodes.xyz.",
        ],
        Network::Testnet4 => &["seed.testnet4.bitcoin.sprovoost.nl.", "seed.testnet4.wiz.biz."],
        Network::Signet => &["seed.signet.bitcoin.sprovoost.nl.", "seed.signet.achownodes.xyz."],
        Network::Regtest => &[],
    }
}

/// The name actually resolved for `seed`: Core asks for peers with these services
/// through the `x<hex flags>.` subdomain ([`seeds_service_flags`]).
pub fn seed_query_host(seed: &str) -> String {
    format!("x{:x}.{seed}", seeds_service_flags().to_u64())
}

fn fixed_seed_bytes(network: Network) -> &'static [u8] {
    match network {
        Network::Main => include_bytes!("seeds/main.bin"),
        Network::Test => include_bytes!("seeds/test.bin"),
        Network::Testnet4 => include_bytes!("seeds/testnet4.bin"),
        Network::Signet => include_bytes!("seeds/signet.bin"),
        Network::Regtest => &[],
    }
}

/// A fixed seed: an address (any BIP155 network) and its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedSeed {
    /// The address.
    pub addr: AddrV2,
    /// The port.
    pub port: u16,
}

/// The fixed seeds of `network`, decoded (an entry that does not decode ends the list; the
/// embedded data is checked by the tests).
pub fn fixed_seeds(network: Network) -> Vec<FixedSeed> {
    decode_seeds(fixed_seed_bytes(network))
}

/// Decodes concatenated BIP155 `(network id, compact-size length, address, port BE)` tuples.
pub fn decode_seeds(mut bytes: &[u8]) -> Vec<FixedSeed> {
    let mut out = Vec::new();
    while let Some((seed, rest)) = decode_one(bytes) {
        out.push(seed);
        bytes = rest;
    }
    out
}

fn decode_one(bytes: &[u8]) -> Option<(FixedSeed, &[u8])> {
    let (&net, rest) = bytes.split_first()?;
    let (&len, rest) = rest.split_first()?;
    // Every BIP155 address is at most 32 bytes: a one-byte compact size always suffices.
    let len = usize::from(len);
    if len > 32 || rest.len() < len + 2 {
        return None;
    }
    let (raw, rest) = rest.split_at(len);
    let (port, rest) = rest.split_at(2);
    let port = u16::from_be_bytes([*port.first()?, *port.get(1)?]);
    let arr16 = || <[u8; 16]>::try_from(raw).ok();
    let arr32 = || <[u8; 32]>::try_from(raw).ok();
    let addr = match net {
        1 => AddrV2::Ipv4(Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?)),
        2 => AddrV2::Ipv6(Ipv6Addr::from(arr16()?)),
        3 => AddrV2::TorV2(<[u8; 10]>::try_from(raw).ok()?),
        4 => AddrV2::TorV3(arr32()?),
        5 => AddrV2::I2p(arr32()?),
        6 => AddrV2::Cjdns(Ipv6Addr::from(arr16()?)),
        other => AddrV2::Unknown(other, raw.to_vec()),
    };
    Some((FixedSeed { addr, port }, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_seed_tables_decode_completely() {
        for (network, min) in
            [(Network::Main, 500), (Network::Test, 40), (Network::Testnet4, 40), (Network::Signet, 40)]
        {
            let bytes = fixed_seed_bytes(network);
            let seeds = fixed_seeds(network);
            assert!(seeds.len() >= min, "{network}: {} seeds", seeds.len());
            // Every byte is used: re-encoding the lengths gives back the table's size.
            let encoded: usize = seeds
                .iter()
                .map(|s| {
                    4 + match &s.addr {
                        AddrV2::Ipv4(_) => 4,
                        AddrV2::Ipv6(_) | AddrV2::Cjdns(_) => 16,
                        AddrV2::TorV2(_) => 10,
                        AddrV2::TorV3(_) | AddrV2::I2p(_) => 32,
                        AddrV2::Unknown(_, b) => b.len(),
                    }
                })
                .sum();
            assert_eq!(encoded, bytes.len(), "{network}");
            assert!(seeds.iter().all(|s| !matches!(s.addr, AddrV2::Unknown(..) | AddrV2::TorV2(_))), "{network}");
        }
        assert!(fixed_seeds(Network::Regtest).is_empty());
        // Mainnet seeds are mostly on the default port and span the clearnet and overlay networks.
        let main = fixed_seeds(Network::Main);
        assert!(main.iter().filter(|s| s.port == 8333).count() * 2 > main.len());
        for kind in [0usize, 1, 2, 3] {
            let has = main.iter().any(|s| match kind {
                0 => matches!(s.addr, AddrV2::Ipv4(_)),
                1 => matches!(s.addr, AddrV2::Ipv6(_)),
                2 => matches!(s.addr, AddrV2::TorV3(_)),
                _ => matches!(s.addr, AddrV2::I2p(_)),
            });
            assert!(has, "mainnet fixed seeds of kind {kind}");
        }
    }

    #[test]
    fn truncated_or_odd_tables_stop_cleanly() {
        let one = [1u8, 4, 1, 2, 3, 4, 0x20, 0x8d];
        assert_eq!(decode_seeds(&one), vec![FixedSeed { addr: AddrV2::Ipv4(Ipv4Addr::new(1, 2, 3, 4)), port: 8333 }]);
        for cut in 0..one.len() {
            assert!(decode_seeds(&one[..cut]).is_empty(), "cut at {cut}");
        }
        assert!(decode_seeds(&[1, 5, 1, 2, 3, 4, 5, 0, 1]).is_empty(), "an IPv4 address of 5 bytes");
        assert!(decode_seeds(&[9, 40]).is_empty(), "longer than any BIP155 address");
    }

    #[test]
    fn dns_seeds_are_cores_with_the_service_subdomain() {
        assert_eq!(dns_seeds(Network::Main).len(), 7);
        assert!(dns_seeds(Network::Regtest).is_empty());
        assert_eq!(seed_query_host("dnsseed.emzy.de."), "x9.dnsseed.emzy.de.");
    }
}
