//! Per-network constants the network layer needs: message start (magic), default P2P port and
//! data-directory name, as in Bitcoin Core's `kernel/chainparams.cpp` and `chainparamsbase.cpp`.

use std::fmt;
use std::str::FromStr;

use bitcoin::p2p::Magic;

/// The Bitcoin networks btcloopd can join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Network {
    /// Bitcoin mainnet.
    #[default]
    Main,
    /// testnet3.
    Test,
    /// testnet4 (BIP94).
    Testnet4,
    /// The default signet.
    Signet,
    /// Local regression-test network.
    Regtest,
}

impl Network {
    /// Every network, in Core's order.
    pub const ALL: [Network; 5] = [Network::Main, Network::Test, Network::Testnet4, Network::Signet, Network::Regtest];

    /// The four message-start bytes that open every v1 frame on this network.
    pub fn magic(self) -> [u8; 4] {
        let magic = match self {
            Network::Main => Magic::BITCOIN,
            Network::Test => Magic::TESTNET3,
            Network::Testnet4 => Magic::TESTNET4,
            Network::Signet => Magic::SIGNET,
            Network::Regtest => Magic::REGTEST,
        };
        magic.to_bytes()
    }

    /// Default P2P listening / dialing port.
    pub fn default_port(self) -> u16 {
        match self {
            Network::Main => 8333,
            Network::Test => 18333,
            Network::Testnet4 => 48333,
            Network::Signet => 38333,
            Network::Regtest => 18444,
        }
    }

    /// Default JSON-RPC port: the P2P port + 2, so that it collides with none of Bitcoin
    /// Core's ports (P2P, RPC = P2P − 1, onion = P2P + 1).
    pub fn default_rpc_port(self) -> u16 {
        self.default_port() + 2
    }

    /// Sub-directory of the data directory used for this network (`None` for mainnet), named
    /// as Bitcoin Core names it.
    pub fn datadir_name(self) -> Option<&'static str> {
        match self {
            Network::Main => None,
            Network::Test => Some("testnet3"),
            Network::Testnet4 => Some("testnet4"),
            Network::Signet => Some("signet"),
            Network::Regtest => Some("regtest"),
        }
    }

    /// The name used on the command line (`--network=NAME`) and in Core's `-chain=`.
    pub fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    /// The matching network of the `bitcoin` crate.
    pub fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Main => bitcoin::Network::Bitcoin,
            Network::Test => bitcoin::Network::Testnet,
            Network::Testnet4 => bitcoin::Network::Testnet4,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A network name that is not one of `main`, `test`, `testnet4`, `signet`, `regtest`.
#[derive(Debug, thiserror::Error)]
#[error("unknown network '{0}' (expected main, test, testnet4, signet or regtest)")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" | "mainnet" | "bitcoin" => Ok(Network::Main),
            "test" | "testnet" | "testnet3" => Ok(Network::Test),
            "testnet4" => Ok(Network::Testnet4),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            other => Err(UnknownNetwork(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_and_ports_match_core() {
        assert_eq!(Network::Main.magic(), [0xf9, 0xbe, 0xb4, 0xd9]);
        assert_eq!(Network::Test.magic(), [0x0b, 0x11, 0x09, 0x07]);
        assert_eq!(Network::Testnet4.magic(), [0x1c, 0x16, 0x3f, 0x28]);
        assert_eq!(Network::Signet.magic(), [0x0a, 0x03, 0xcf, 0x40]);
        assert_eq!(Network::Regtest.magic(), [0xfa, 0xbf, 0xb5, 0xda]);
        let ports: Vec<u16> = Network::ALL.iter().map(|n| n.default_port()).collect();
        assert_eq!(ports, [8333, 18333, 48333, 38333, 18444]);
    }

    #[test]
    fn names_round_trip() {
        for n in Network::ALL {
            assert_eq!(n.name().parse::<Network>().unwrap(), n);
        }
        assert!("mainnet2".parse::<Network>().is_err());
    }
}
