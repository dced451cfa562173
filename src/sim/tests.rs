//! Properties of the simulated network a user would care about.

use std::time::Duration;

use super::*;

fn small(hours: u64) -> Config {
    Config { duration: Duration::from_secs(hours * 3600), ..Config::default() }
}

#[test]
fn smoke() {
    let t = std::time::Instant::now();
    let r = Sim::run(Config { nodes: 200, ..small(1) });
    eprintln!("{r}\n{:?}", t.elapsed());
}
