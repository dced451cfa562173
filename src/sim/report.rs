//! What a simulation run measured: outbound slot fill, connectivity of the honest graph
//! (components, shortest paths by BFS), attacker peers and attacker addresses in honest books,
//! and the token bucket's effect on attacker `addr` entries.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use super::{Brain, NodeIdx, Sim, honest_graph, is_attacker_ip};
use crate::base::peer::ConnectionType;
use crate::engine::protocol::Peer;

/// Address-relay counters over every honest connection, closed or open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrStats {
    /// Addresses from attacker connections that went through the token bucket.
    pub attacker_processed: u64,
    /// Addresses from attacker connections dropped by the token bucket.
    pub attacker_rate_limited: u64,
    /// The same for connections to honest nodes.
    pub honest_processed: u64,
    /// Addresses from honest connections dropped by the token bucket.
    pub honest_rate_limited: u64,
    /// Addresses discouraged by honest nodes (misbehaviour).
    pub discouraged: u64,
    /// Inbound connections refused (slots full, nobody evictable).
    pub refused: u64,
    /// Inbound connections evicted to make room.
    pub evicted: u64,
    /// Node restarts.
    pub restarts: u64,
}

impl AddrStats {
    pub(super) fn count(&mut self, p: &Peer, groups: usize) {
        let a = &p.addrs;
        if is_attacker_ip(p.who.addr.ip(), groups) {
            self.attacker_processed += a.processed;
            self.attacker_rate_limited += a.rate_limited;
        } else {
            self.honest_processed += a.processed;
            self.honest_rate_limited += a.rate_limited;
        }
    }
}

/// The state of the simulated network at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Simulated time since the start.
    pub elapsed: Duration,
    /// Honest nodes online.
    pub honest_online: usize,
    /// Honest nodes online for at least [`super::SETTLE`]: the fill, graph and attacker-peer
    /// figures are over these.
    pub honest_settled: usize,
    /// Honest nodes that ever existed (initial and joined).
    pub honest_total: usize,
    /// Attacker nodes.
    pub attackers: usize,
    /// Established outbound full-relay peers per settled honest node: mean and minimum.
    pub full_relay_mean: f64,
    /// Minimum of the above.
    pub full_relay_min: usize,
    /// Established block-relay-only peers: mean.
    pub block_relay_mean: f64,
    /// Minimum of the above.
    pub block_relay_min: usize,
    /// Inbound peers per online honest node: mean.
    pub inbound_mean: f64,
    /// Nodes in the largest connected component of the honest graph (settled honest nodes,
    /// established full-relay, block-relay-only and inbound links between them).
    pub largest_component: usize,
    /// Every online honest node is in one component.
    pub connected: bool,
    /// Mean shortest-path length between pairs in the largest component.
    pub avg_path: f64,
    /// Longest shortest path in the largest component.
    pub diameter: usize,
    /// Share of settled honest nodes with at least one attacker outbound peer (full-relay or
    /// block-relay-only).
    pub with_attacker_outbound: f64,
    /// Mean attacker outbound peers per online honest node.
    pub attacker_outbound_mean: f64,
    /// Most attacker outbound peers of one node.
    pub attacker_outbound_max: usize,
    /// Mean address-book size of online honest nodes.
    pub book_mean: f64,
    /// Mean number of attacker addresses in an honest book.
    pub attacker_in_book_mean: f64,
    /// Mean share of attacker addresses in an honest book.
    pub attacker_share_mean: f64,
    /// Most attacker addresses in one honest book.
    pub attacker_in_book_max: usize,
    /// Largest share of attacker addresses in one honest book.
    pub attacker_share_max: f64,
    /// Mean number of attacker addresses in the tried table of an honest book.
    pub attacker_tried_mean: f64,
    /// Address-relay counters.
    pub addr: AddrStats,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in v {
        sum += x;
        n += 1;
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Components of `adj`, largest first.
fn components(adj: &BTreeMap<NodeIdx, Vec<NodeIdx>>) -> Vec<Vec<NodeIdx>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for &start in adj.keys() {
        if !seen.insert(start) {
            continue;
        }
        let mut comp = vec![start];
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for &m in &adj[&n] {
                if seen.insert(m) {
                    comp.push(m);
                    queue.push_back(m);
                }
            }
        }
        out.push(comp);
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.len()));
    out
}

/// Mean shortest path and diameter within `comp` (BFS from every node).
fn paths(adj: &BTreeMap<NodeIdx, Vec<NodeIdx>>, comp: &[NodeIdx]) -> (f64, usize) {
    let (mut sum, mut pairs, mut diameter) = (0u64, 0u64, 0usize);
    for &s in comp {
        let mut dist: BTreeMap<NodeIdx, usize> = BTreeMap::from([(s, 0)]);
        let mut queue = VecDeque::from([s]);
        while let Some(n) = queue.pop_front() {
            let d = dist[&n];
            for &m in &adj[&n] {
                if let std::collections::btree_map::Entry::Vacant(e) = dist.entry(m) {
                    e.insert(d + 1);
                    queue.push_back(m);
                    sum += (d + 1) as u64;
                    pairs += 1;
                    diameter = diameter.max(d + 1);
                }
            }
        }
    }
    (if pairs == 0 { 0.0 } else { sum as f64 / pairs as f64 }, diameter)
}

impl Sim {
    /// Measures the network now.
    pub fn report(&self) -> Report {
        let groups = self.cfg.attacker_groups;
        let honest: Vec<&super::honest::Honest> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.brain {
                Brain::Honest(h) => Some(h.as_ref()),
                _ => None,
            })
            .collect();
        let settled: Vec<&super::honest::Honest> = (0..self.nodes.len())
            .filter(|&i| self.settled(i))
            .filter_map(|i| match &self.nodes[i].brain {
                Brain::Honest(h) => Some(h.as_ref()),
                _ => None,
            })
            .collect();
        let established = |h: &super::honest::Honest, t: ConnectionType| {
            h.peers().filter(|(_, p)| p.who.conn_type == t && p.handshake.successfully_connected).count()
        };
        let full: Vec<usize> = settled.iter().map(|h| established(h, ConnectionType::OutboundFullRelay)).collect();
        let block: Vec<usize> = settled.iter().map(|h| established(h, ConnectionType::BlockRelayOnly)).collect();
        let inbound: Vec<usize> = settled.iter().map(|h| established(h, ConnectionType::Inbound)).collect();
        let attacker_out: Vec<usize> = settled
            .iter()
            .map(|h| {
                h.peers()
                    .filter(|(_, p)| {
                        matches!(p.who.conn_type, ConnectionType::OutboundFullRelay | ConnectionType::BlockRelayOnly)
                            && p.handshake.successfully_connected
                            && is_attacker_ip(p.who.addr.ip(), groups)
                    })
                    .count()
            })
            .collect();
        // (book size, attacker entries, attacker entries in tried)
        let books: Vec<(usize, usize, usize)> = honest
            .iter()
            .map(|h| {
                let mut all = HashSet::new();
                let (mut attackers, mut tried) = (0, 0);
                for from_tried in [true, false] {
                    for (info, _) in h.mgr.protocol().addrman().entries(from_tried) {
                        let attacker = info.entry.socket_addr().is_some_and(|sa| is_attacker_ip(sa.ip(), groups));
                        if all.insert((info.entry.addr, info.entry.port)) && attacker {
                            attackers += 1;
                            tried += usize::from(from_tried);
                        }
                    }
                }
                (all.len(), attackers, tried)
            })
            .collect();
        let share = |b: &(usize, usize, usize)| if b.0 == 0 { 0.0 } else { b.1 as f64 / b.0 as f64 };
        let adj = honest_graph(self);
        let comps = components(&adj);
        let largest = comps.first().cloned().unwrap_or_default();
        let (avg_path, diameter) = paths(&adj, &largest);
        let mut addr = self.stats.clone();
        for h in &honest {
            for (_, p) in h.peers() {
                addr.count(p, groups);
            }
        }
        Report {
            elapsed: self.now,
            honest_online: honest.len(),
            honest_settled: settled.len(),
            honest_total: self.nodes.iter().filter(|n| n.is_honest()).count(),
            attackers: self.attackers.len(),
            full_relay_mean: mean(full.iter().map(|&x| x as f64)),
            full_relay_min: full.iter().copied().min().unwrap_or(0),
            block_relay_mean: mean(block.iter().map(|&x| x as f64)),
            block_relay_min: block.iter().copied().min().unwrap_or(0),
            inbound_mean: mean(inbound.iter().map(|&x| x as f64)),
            largest_component: largest.len(),
            connected: comps.len() <= 1,
            avg_path,
            diameter,
            with_attacker_outbound: mean(attacker_out.iter().map(|&x| f64::from(u8::from(x > 0)))),
            attacker_outbound_mean: mean(attacker_out.iter().map(|&x| x as f64)),
            attacker_outbound_max: attacker_out.iter().copied().max().unwrap_or(0),
            book_mean: mean(books.iter().map(|b| b.0 as f64)),
            attacker_in_book_mean: mean(books.iter().map(|b| b.1 as f64)),
            attacker_share_mean: mean(books.iter().map(share)),
            attacker_in_book_max: books.iter().map(|b| b.1).max().unwrap_or(0),
            attacker_share_max: books.iter().map(share).fold(0.0, f64::max),
            attacker_tried_mean: mean(books.iter().map(|b| b.2 as f64)),
            addr,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.addr;
        let pct = |x: f64| x * 100.0;
        let limited_share = |p: u64, l: u64| if p + l == 0 { 0.0 } else { l as f64 * 100.0 / (p + l) as f64 };
        writeln!(f, "after {:.1} h simulated", self.elapsed.as_secs_f64() / 3600.0)?;
        writeln!(
            f,
            "  nodes            {} honest online ({} settled: up >= 5 min; {} ever), {} attackers; {} restarts",
            self.honest_online, self.honest_settled, self.honest_total, self.attackers, a.restarts
        )?;
        writeln!(
            f,
            "  outbound fill    full-relay mean {:.2}/8 (min {}), block-relay-only mean {:.2}/2 (min {}); inbound mean {:.1}",
            self.full_relay_mean, self.full_relay_min, self.block_relay_mean, self.block_relay_min, self.inbound_mean
        )?;
        writeln!(
            f,
            "  honest graph     largest component {}/{} ({}), mean shortest path {:.2}, diameter {}",
            self.largest_component,
            self.honest_settled,
            if self.connected { "connected" } else { "NOT connected" },
            self.avg_path,
            self.diameter
        )?;
        writeln!(
            f,
            "  attacker peers   {:.1}% of honest nodes have >=1 attacker outbound peer (mean {:.2}, max {})",
            pct(self.with_attacker_outbound),
            self.attacker_outbound_mean,
            self.attacker_outbound_max
        )?;
        writeln!(
            f,
            "  address books    mean {:.0} entries; attacker entries mean {:.0} ({:.1}% of the book, {:.1} in tried), max {} ({:.1}%)",
            self.book_mean,
            self.attacker_in_book_mean,
            pct(self.attacker_share_mean),
            self.attacker_tried_mean,
            self.attacker_in_book_max,
            pct(self.attacker_share_max)
        )?;
        writeln!(
            f,
            "  addr from attackers  {} processed, {} rate-limited ({:.1}% dropped by the token bucket)",
            a.attacker_processed,
            a.attacker_rate_limited,
            limited_share(a.attacker_processed, a.attacker_rate_limited)
        )?;
        writeln!(
            f,
            "  addr from honest     {} processed, {} rate-limited ({:.1}%)",
            a.honest_processed,
            a.honest_rate_limited,
            limited_share(a.honest_processed, a.honest_rate_limited)
        )?;
        write!(f, "  inbound          {} evicted, {} refused; {} discouraged", a.evicted, a.refused, a.discouraged)
    }
}
