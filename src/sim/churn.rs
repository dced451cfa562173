//! Churn: honest nodes restart (keeping `peers.dat` and `anchors.dat`), leave for good, and
//! new nodes join with an empty address book and only the seed nodes.

use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;

use super::{Brain, ConnIdx, Ev, Node, NodeIdx, Sim};
use crate::base::peer::{DisconnectReason, PeerId};

impl Sim {
    /// One churn period: restarts, leaves and joins.
    pub(super) fn churn(&mut self) {
        let periods = 3600.0 / PERIOD.as_secs_f64();
        let p_restart = self.cfg.restarts_per_hour / periods;
        let candidates: Vec<NodeIdx> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].seed && matches!(self.nodes[i].brain, Brain::Honest(_)))
            .collect();
        for &i in &candidates {
            if self.rng.random_bool(p_restart.clamp(0.0, 1.0)) {
                self.shut_down(i, false);
                let min = Duration::from_secs(60);
                let span = self.cfg.max_downtime.saturating_sub(min).as_millis() as u64;
                let down = min + Duration::from_millis(self.rng.random_range(0..=span));
                self.at(down, Ev::Restart { node: i });
            }
        }
        for _ in 0..poisson_count(&mut self.rng, self.cfg.leaves_per_hour / periods) {
            let online: Vec<NodeIdx> = (0..self.nodes.len())
                .filter(|&i| !self.nodes[i].seed && matches!(self.nodes[i].brain, Brain::Honest(_)))
                .collect();
            if let Some(&i) = online.get(self.rng.random_range(0..online.len().max(1))) {
                self.shut_down(i, true);
            }
        }
        for _ in 0..poisson_count(&mut self.rng, self.cfg.joins_per_hour / periods) {
            let addr = self.fresh_addr();
            let idx = self.nodes.len();
            self.by_addr.insert(addr, idx);
            self.nodes.push(Node { addr, seed: false, boot: 0, up_since: self.now, brain: Brain::Gone });
            let h = self.new_honest(idx, None, None);
            self.nodes[idx].brain = Brain::Honest(Box::new(h));
            self.schedule_node_timers(idx);
        }
    }

    /// Takes an honest node offline: every connection closes; unless it leaves for good, its
    /// book and anchors are kept as `peers.dat` and `anchors.dat` would keep them.
    pub(super) fn shut_down(&mut self, node: NodeIdx, gone: bool) {
        let unix = self.now().unix;
        let brain = std::mem::replace(&mut self.nodes[node].brain, Brain::Gone);
        let Brain::Honest(mut h) = brain else {
            self.nodes[node].brain = brain;
            return;
        };
        // Core dumps peers.dat and anchors.dat before it closes the connections.
        let saved = h.save(unix);
        let peers: Vec<(PeerId, ConnIdx, usize)> = h.links.iter().map(|(id, l)| (*id, l.conn, l.side)).collect();
        let now = self.now();
        for (id, conn, side) in peers {
            self.close_end(conn, side);
            if let Some((_, p)) = h.remove(id, &DisconnectReason::Shutdown, now) {
                self.stats.count(&p, self.cfg.attacker_groups);
            }
        }
        self.nodes[node].boot += 1;
        if !gone {
            self.nodes[node].brain = Brain::Down(saved);
        }
    }

    pub(super) fn restart(&mut self, node: NodeIdx) {
        let Brain::Down(saved) = std::mem::replace(&mut self.nodes[node].brain, Brain::Gone) else { return };
        let h = self.new_honest(node, None, Some(saved));
        self.nodes[node].brain = Brain::Honest(Box::new(h));
        self.nodes[node].up_since = self.now;
        self.stats.restarts += 1;
        self.schedule_node_timers(node);
    }
}

/// Churn is decided every six minutes (a tenth of an hour).
pub(super) const PERIOD: Duration = Duration::from_secs(360);

/// A Poisson-distributed count with mean `mean` (Knuth's method; small means only).
fn poisson_count(rng: &mut StdRng, mean: f64) -> usize {
    let limit = (-mean).exp();
    let mut p = 1.0;
    let mut k = 0;
    loop {
        p *= rng.random::<f64>();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}
