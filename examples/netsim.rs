//! Runs the deterministic network simulation (`btcloop::sim`) and prints its report, hour by
//! hour and in full at the end:
//!
//! `cargo run --release --example netsim -- --nodes 200 --attackers 5 --hours 6 --seed 1`

use std::time::Duration;

use btcloop::sim::{Config, Sim};
use clap::Parser;

/// Simulate many nodes' peer management on fake time.
#[derive(Parser, Debug)]
struct Args {
    /// Honest nodes at the start.
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// Address-flooding attackers.
    #[arg(long, default_value_t = 5)]
    attackers: usize,
    /// /16 ranges the attackers control.
    #[arg(long, default_value_t = 4)]
    attacker_groups: usize,
    /// Honest nodes each attacker connects to.
    #[arg(long, default_value_t = 20)]
    attacker_dials: usize,
    /// Seconds between two floods of an attacker.
    #[arg(long, default_value_t = 30)]
    flood_secs: u64,
    /// Simulated hours.
    #[arg(long, default_value_t = 6.0)]
    hours: f64,
    /// RNG seed (the same seed gives the same report).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of honest nodes restarting per hour.
    #[arg(long, default_value_t = 0.10)]
    restarts: f64,
    /// Control run: attacker connections get the `addr` permission (no token bucket).
    #[arg(long)]
    whitelist_attackers: bool,
}

fn main() {
    let a = Args::parse();
    let duration = Duration::from_secs_f64(a.hours * 3600.0);
    let cfg = Config {
        nodes: a.nodes,
        attackers: a.attackers,
        attacker_groups: a.attacker_groups,
        attacker_dials: a.attacker_dials,
        flood_interval: Duration::from_secs(a.flood_secs.max(1)),
        duration,
        seed: a.seed,
        restarts_per_hour: a.restarts,
        whitelist_attackers: a.whitelist_attackers,
        ..Config::default()
    };
    println!("{cfg:?}");
    let mut sim = Sim::new(cfg);
    let hour = Duration::from_secs(3600);
    let mut t = Duration::ZERO;
    while t < duration {
        t = (t + hour).min(duration);
        sim.run_until(t);
        let r = sim.report();
        println!(
            "{:>5.1} h: {} online, full-relay {:.2}/8, component {}/{}, attacker share of books {:.1}%, with attacker outbound {:.1}%",
            t.as_secs_f64() / 3600.0,
            r.honest_online,
            r.full_relay_mean,
            r.largest_component,
            r.honest_settled,
            r.attacker_share_mean * 100.0,
            r.with_attacker_outbound * 100.0
        );
    }
    println!();
    println!("{}", sim.report());
}
