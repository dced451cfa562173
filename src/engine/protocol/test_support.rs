//! Fixtures the engine's unit tests share: a protocol over an empty regtest chain, and the
//! `version` a peer opens with.

use std::time::Duration;

use bitcoin::p2p::ServiceFlags;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;

use super::{Protocol, ProtocolParams};
use crate::base::chainparams::Network;
use crate::engine::chain::accept::Chain;
use crate::engine::chain::params::ChainParams;

/// A deterministic protocol (seed `seed`) advertising `services`, over regtest genesis, with a
/// 60 s peer timeout.
pub(crate) fn test_protocol(services: ServiceFlags, seed: u64) -> Protocol {
    let chain = Chain::in_memory(ChainParams::new(Network::Regtest), bitcoin::pow::Work::from_be_bytes([0; 32]));
    let params = ProtocolParams {
        user_agent: "/btcloop:test/".into(),
        services,
        peer_timeout: Duration::from_secs(60),
        log_ips: false,
        blocks: false,
    };
    Protocol::seeded(params, chain, seed)
}

/// A full node's `version` (protocol 70016, `NETWORK|WITNESS`, height 0, relay on) with this
/// nonce, timestamp and user agent.
pub(crate) fn peer_version(nonce: u64, timestamp: i64, user_agent: &str) -> NetworkMessage {
    let empty = Address { services: ServiceFlags::NONE, address: [0; 8], port: 0 };
    NetworkMessage::Version(VersionMessage {
        version: 70016,
        services: ServiceFlags::NETWORK | ServiceFlags::WITNESS,
        timestamp,
        receiver: empty.clone(),
        sender: empty,
        nonce,
        user_agent: user_agent.into(),
        start_height: 0,
        relay: true,
    })
}
