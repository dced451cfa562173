//! A scripted attacker: it completes the handshake (offering full services, so honest nodes
//! keep it as an outbound peer), answers pings and `getheaders`, answers every `getaddr` with
//! 1,000 fake addresses in its own /16s, and floods every peer with unsolicited `addr`
//! messages of 1,000 and of 10 fresh addresses.

use std::collections::BTreeMap;

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_network::VersionMessage;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::honest::full_services;
use super::{ATTACKER_OCTET, ConnIdx, PORT};
use crate::base::peer::PeerId;
use crate::engine::protocol::Now;

/// One connection of an attacker.
pub(super) struct APeer {
    pub conn: ConnIdx,
    pub side: usize,
    /// We accepted it (we answer its `version` with ours).
    accepted: bool,
    /// Its `verack` arrived.
    established: bool,
}

/// An attacker node.
pub(super) struct Attacker {
    pub peers: BTreeMap<PeerId, APeer>,
    next_id: PeerId,
    rng: StdRng,
    groups: usize,
}

impl Attacker {
    /// An attacker owning `groups` /16s.
    pub fn new(seed: u64, groups: usize) -> Attacker {
        Attacker { peers: BTreeMap::new(), next_id: 0, rng: StdRng::seed_from_u64(seed), groups: groups.max(1) }
    }

    pub fn add_peer(&mut self, conn: ConnIdx, side: usize, accepted: bool) -> PeerId {
        let id = self.next_id;
        self.next_id += 1;
        self.peers.insert(id, APeer { conn, side, accepted, established: false });
        id
    }

    pub fn remove(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// Our `version`: full services, the current protocol version.
    pub fn version(&mut self, now: Now) -> NetworkMessage {
        let empty = Address { services: full_services(), address: [0; 8], port: 0 };
        NetworkMessage::Version(VersionMessage {
            version: 70016,
            services: full_services(),
            timestamp: now.unix,
            receiver: empty.clone(),
            sender: empty,
            nonce: self.rng.random::<u64>() | 1,
            user_agent: "/Satoshi:27.0.0/".into(),
            start_height: 0,
            relay: true,
        })
    }

    /// The replies to a message from `peer`.
    pub fn receive(&mut self, peer: PeerId, msg: NetworkMessage, now: Now) -> Vec<NetworkMessage> {
        let Some(p) = self.peers.get_mut(&peer) else { return Vec::new() };
        match msg {
            NetworkMessage::Version(_) => {
                let accepted = p.accepted;
                let mut out = Vec::new();
                if accepted {
                    out.push(self.version(now));
                }
                out.push(NetworkMessage::Verack);
                out
            }
            NetworkMessage::Verack => {
                p.established = true;
                Vec::new()
            }
            NetworkMessage::Ping(n) => vec![NetworkMessage::Pong(n)],
            NetworkMessage::GetHeaders(_) => vec![NetworkMessage::Headers(Vec::new())],
            NetworkMessage::GetAddr => vec![NetworkMessage::Addr(self.fake(1000, now, false))],
            _ => Vec::new(),
        }
    }

    /// The flood: to every established peer, 1,000 addresses and 10 fresh ones (small enough
    /// to be relayed further).
    pub fn flood(&mut self, now: Now) -> Vec<(ConnIdx, usize, NetworkMessage)> {
        let targets: Vec<(ConnIdx, usize)> =
            self.peers.values().filter(|p| p.established).map(|p| (p.conn, p.side)).collect();
        let mut out = Vec::with_capacity(targets.len() * 2);
        for (conn, side) in targets {
            out.push((conn, side, NetworkMessage::Addr(self.fake(1000, now, false))));
            out.push((conn, side, NetworkMessage::Addr(self.fake(10, now, true))));
        }
        out
    }

    /// `n` random addresses in our /16s, seen just now (`fresh`) or within the last two hours.
    fn fake(&mut self, n: usize, now: Now, fresh: bool) -> Vec<(u32, Address)> {
        (0..n)
            .map(|_| {
                let g = 10 + self.rng.random_range(0..self.groups) as u8;
                let ip = std::net::Ipv4Addr::new(ATTACKER_OCTET, g, self.rng.random(), self.rng.random_range(1..=254));
                let seen = if fresh { now.unix } else { now.unix - self.rng.random_range(0..7200) };
                (seen as u32, Address::new(&std::net::SocketAddr::new(ip.into(), PORT), full_services()))
            })
            .collect()
    }
}
