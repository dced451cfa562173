//! `ibd`: watches a node's initial block download. From a given start time (the node's
//! launch), polls its `getblockchaininfo` until `blocks` reaches the expected tip, while one
//! peer connected to the node (v1, or BIP324 v2 with `--v2`) sends pings (one in flight, a fixed gap after each pong) and
//! records their round trips; then reports the download time, the ping percentiles and the
//! node's CPU time per thread (from `/proc/PID/task/*/stat`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::bigflood::percentile;
use super::modes::{Blocking, json_node, print_node};
use super::rpc::Rpc;
use super::*;

/// What the `ibd` mode is given.
pub(crate) struct IbdArgs {
    /// The node's P2P address (the pinging peer connects there).
    pub(crate) p2p: SocketAddr,
    /// The pinging peer speaks BIP324 v2.
    pub(crate) v2: bool,
    pub(crate) rpc: SocketAddr,
    pub(crate) cookie: PathBuf,
    /// Height of the tip to reach.
    pub(crate) height: u64,
    /// Hash of that tip, checked when given.
    pub(crate) tip: Option<String>,
    /// When the node was launched (unix time).
    pub(crate) since: SystemTime,
    /// The node's process id: its liveness is checked and its threads' CPU time read.
    pub(crate) pid: Option<u32>,
    pub(crate) timeout: Duration,
    /// The download has failed once `blocks` stays the same (above 0) this long.
    pub(crate) stall: Duration,
    pub(crate) poll: Duration,
    /// Pause after each pong before the next ping.
    pub(crate) ping_gap: Duration,
    /// Nice values to give the node's threads whose names start with a prefix (an experiment:
    /// how much of the ping latency is the scheduler's), applied at every poll to new threads.
    pub(crate) renice: Vec<(String, i32)>,
    /// Connect the pinging peer only once the node has headers (it has synced from its
    /// source first); otherwise as soon as the node listens.
    pub(crate) ping_after_headers: bool,
}

/// What the pinging peer saw.
#[derive(Default)]
struct PingLog {
    /// (send time since the node's start in seconds, round trip in ns), in order.
    rtts: Vec<(f64, u64)>,
    /// Seconds from the node's start to the completed handshake.
    handshake_at: Option<f64>,
    /// Connection attempts until the handshake succeeded.
    attempts: u32,
    node: Option<NodeInfo>,
    /// Why pinging stopped early.
    error: Option<String>,
}

/// Seconds from `since` to now (0 if the clock went backwards).
fn secs_since(since: SystemTime) -> f64 {
    SystemTime::now().duration_since(since).map_or(0.0, |d| d.as_secs_f64())
}

/// Polls the node's RPC every 2 ms until it has a header beyond genesis; false if `stop` or
/// `deadline` came first.
fn wait_for_headers(a: &IbdArgs, stop: &AtomicBool, deadline: Instant) -> bool {
    let mut rpc = Rpc::new(a.rpc, a.cookie.clone(), Duration::from_secs(10));
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if let Ok(info) = rpc.call("getblockchaininfo", json!([])) {
            if info.get("headers").and_then(|v| v.as_u64()).is_some_and(|h| h > 0) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Connects to the node as soon as it listens (or has headers, see
/// [`IbdArgs::ping_after_headers`]), then pings until `stop` (a ping in flight is still
/// awaited) or `deadline`.
fn pinger(a: &IbdArgs, magic: [u8; 4], stop: &AtomicBool, deadline: Instant) -> PingLog {
    let mut log = PingLog::default();
    if a.ping_after_headers && !wait_for_headers(a, stop, deadline) {
        if !stop.load(Ordering::Relaxed) {
            log.error = Some("the node had no headers before the deadline".into());
        }
        return log;
    }
    let mut conn = loop {
        if stop.load(Ordering::Relaxed) {
            return log;
        }
        log.attempts += 1;
        match Blocking::handshake(a.p2p, magic, a.v2) {
            Ok((b, node, _)) => {
                log.node = node;
                break b;
            }
            Err(e) if Instant::now() >= deadline => {
                log.error = Some(format!("no handshake with {} before the deadline: {e}", a.p2p));
                return log;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    log.handshake_at = Some(secs_since(a.since));
    let pings = PingTable::new(magic, 1);
    let mut frame = Vec::with_capacity(32);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        frame.clear();
        let nonce = pings.push(seq, &mut frame);
        seq += 1;
        let at = secs_since(a.since);
        let t = Instant::now();
        let r = conn.send(&frame).and_then(|_| {
            conn.read_until(t + REPLY_TIMEOUT, |cmd, payload, _| cmd == "pong" && nonce_of(payload) == Some(nonce))
        });
        if let Err(e) = r {
            log.error = Some(format!("ping {seq} sent at {at:.3} s: {e}"));
            break;
        }
        log.rtts.push((at, t.elapsed().as_nanos() as u64));
        if !a.ping_gap.is_zero() {
            std::thread::sleep(a.ping_gap);
        }
    }
    log
}

/// The node's progress as polled: (seconds since start, blocks, headers).
type Progress = Vec<(f64, u64, u64)>;

/// What [`wait_for_tip`] saw.
struct Watched {
    /// Seconds from the node's start to the poll that saw the tip, or to the failure.
    secs: f64,
    /// Why the tip was not reached (timeout, stall, the node gone, another tip).
    error: Option<String>,
    /// Every poll's answer.
    progress: Progress,
    /// The threads reniced, as `name=nice`.
    reniced: Vec<String>,
}

/// Polls the node until its tip is `a.height` (and `a.tip`), it stalls (`blocks` unchanged
/// for `a.stall`), it exits, or `deadline` passes.
fn wait_for_tip(a: &IbdArgs, deadline: Instant) -> Watched {
    let mut rpc = Rpc::new(a.rpc, a.cookie.clone(), Duration::from_secs(30));
    let mut w = Watched { secs: 0.0, error: None, progress: Progress::new(), reniced: Vec::new() };
    let mut next = Instant::now();
    let mut last_error = String::new();
    let mut reniced = BTreeMap::new();
    // The last height seen and when it was first seen.
    let mut moved = (0u64, Instant::now());
    let error = loop {
        if let (Some(pid), false) = (a.pid, a.renice.is_empty()) {
            if let Err(e) = renice_threads(pid, &a.renice, &mut reniced) {
                break Some(e);
            }
        }
        match rpc.call("getblockchaininfo", json!([])) {
            Ok(info) => {
                last_error.clear();
                let get = |k: &str| info.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                let (blocks, headers) = (get("blocks"), get("headers"));
                w.secs = secs_since(a.since);
                w.progress.push((w.secs, blocks, headers));
                let best = info.get("bestblockhash").and_then(|v| v.as_str()).unwrap_or_default();
                if blocks >= a.height {
                    break match &a.tip {
                        Some(tip) if tip != best => {
                            Some(format!("the node's tip at height {blocks} is {best}, not {tip}"))
                        }
                        _ => None,
                    };
                }
                if blocks != moved.0 {
                    moved = (blocks, Instant::now());
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        w.secs = secs_since(a.since);
        if let Some(pid) = a.pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                break Some(format!("the node (pid {pid}) exited during the download"));
            }
        }
        let last = w.progress.last().map_or(0, |p| p.1);
        if moved.0 > 0 && moved.1.elapsed() >= a.stall {
            break Some(format!("stalled: height {last} for {} s", a.stall.as_secs()));
        }
        if Instant::now() >= deadline {
            break Some(format!(
                "the node reached height {last}, not {}, within {} s (last RPC error: {last_error})",
                a.height,
                a.timeout.as_secs()
            ));
        }
        next += a.poll;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    };
    w.error = error;
    w.reniced = reniced.into_values().collect();
    w
}

/// Gives each thread of `pid` not yet in `done` whose name starts with a prefix in `rules` that
/// rule's nice value (Linux: nice is per thread).
fn renice_threads(pid: u32, rules: &[(String, i32)], done: &mut BTreeMap<u32, String>) -> Result<(), String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Ok(()) };
    for entry in tasks.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        if done.contains_key(&tid) {
            continue;
        }
        let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        let name = name.trim_end().to_string();
        let Some((_, nice)) = rules.iter().find(|(prefix, _)| name.starts_with(prefix.as_str())) else { continue };
        // SAFETY: setpriority takes plain integers; a thread that has gone is an error return.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, *nice) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("cannot set nice {nice} on thread {tid} ({name}): {e}"));
        }
        done.insert(tid, format!("{name}={nice}"));
    }
    Ok(())
}

/// CPU seconds (user + system) per thread name of process `pid`, threads of the same name
/// summed, and the process's total.
fn thread_cpu(pid: u32) -> Result<(BTreeMap<String, f64>, f64), String> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let dir = format!("/proc/{pid}/task");
    let mut per_name = BTreeMap::new();
    let mut total = 0.0;
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("read {dir}: {e}"))? {
        let Ok(entry) = entry else { continue };
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((name, secs)) = parse_stat(&stat, ticks) else { continue };
        *per_name.entry(name).or_insert(0.0) += secs;
        total += secs;
    }
    Ok((per_name, total))
}

/// A `/proc/*/stat` line's name and utime + stime in seconds.
fn parse_stat(stat: &str, ticks: f64) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    // After the name: state is field 3, utime 14 and stime 15.
    let mut rest = stat.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((name, (utime + stime) as f64 / ticks))
}

/// Seconds at which the node first had at least `frac` of `height` blocks.
fn reached(progress: &Progress, height: u64, frac: f64) -> Option<f64> {
    let want = (height as f64 * frac).ceil() as u64;
    progress.iter().find(|p| p.1 >= want).map(|p| p.0)
}

pub(crate) fn ibd_mode(magic: [u8; 4], a: IbdArgs) -> Result<ExitCode, String> {
    let deadline = Instant::now() + a.timeout;
    let stop = AtomicBool::new(false);
    let (tip, log) = std::thread::scope(|s| {
        let pinging = s.spawn(|| pinger(&a, magic, &stop, deadline));
        let tip = wait_for_tip(&a, deadline);
        stop.store(true, Ordering::Relaxed);
        (tip, pinging.join())
    });
    let log = log.map_err(|_| "the pinging thread panicked".to_string())?;
    // The node may be gone (that is then the error reported).
    let (threads, cpu_total) = a.pid.and_then(|pid| thread_cpu(pid).ok()).unwrap_or_default();
    let Watched { secs, error, progress, reniced } = tip;

    print_node(&log.node);
    let headers_at = progress.iter().find(|p| p.2 >= a.height).map(|p| p.0);
    let fmt = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.1}"));
    let reached_height = progress.last().map_or(0, |p| p.1);
    let outcome = match &error {
        None => format!("height {} reached {secs:.2} s after the node started", a.height),
        Some(e) => format!("FAILED after {secs:.2} s at height {reached_height} of {}: {e}", a.height),
    };
    println!(
        "{outcome} ({} polls; all headers at {} s; 25/50/75% of blocks at {}/{}/{} s)",
        progress.len(),
        fmt(headers_at),
        fmt(reached(&progress, a.height, 0.25)),
        fmt(reached(&progress, a.height, 0.5)),
        fmt(reached(&progress, a.height, 0.75)),
    );

    // Pings until the tip was seen.
    let mut during: Vec<(f64, u64)> = log.rtts.iter().copied().filter(|r| r.0 <= secs).collect();
    let mut ns: Vec<u64> = during.iter().map(|r| r.1).collect();
    ns.sort_unstable();
    let (p50, p90, p99, p999, max) = (
        percentile(&ns, 50.0),
        percentile(&ns, 90.0),
        percentile(&ns, 99.0),
        percentile(&ns, 99.9),
        percentile(&ns, 100.0),
    );
    let over = |us: u64| ns.iter().filter(|&&n| n > us * 1000).count();
    let (over_1ms, over_10ms) = (over(1_000), over(10_000));
    let from = if a.ping_after_headers { "once the node had headers" } else { "from the node's start" };
    println!(
        "pings during the download: {} (over {}, connected {from}, handshake at {} s after {} attempts, gap {} us): rtt us p50 {p50:.0} p90 {p90:.0} p99 {p99:.0} p99.9 {p999:.0} max {max:.0}; {over_1ms} over 1 ms, {over_10ms} over 10 ms",
        ns.len(),
        transport_name(a.v2),
        fmt(log.handshake_at),
        log.attempts,
        a.ping_gap.as_micros()
    );
    during.sort_unstable_by_key(|r| std::cmp::Reverse(r.1));
    let slowest: Vec<String> =
        during.iter().take(5).map(|(at, rtt)| format!("{:.1} ms at {at:.2} s", *rtt as f64 / 1e6)).collect();
    println!("slowest pings: {}", slowest.join(", "));
    if let Some(e) = &log.error {
        println!("pinging stopped early: {e}");
    }
    if !reniced.is_empty() {
        println!("threads reniced: {}", reniced.join(", "));
    }
    if a.pid.is_some() {
        let mut by_cpu: Vec<(&String, &f64)> = threads.iter().filter(|t| *t.1 >= 0.01).collect();
        by_cpu.sort_by(|x, y| y.1.total_cmp(x.1));
        let list: Vec<String> = by_cpu.iter().map(|(n, s)| format!("{n} {s:.2}")).collect();
        println!("node CPU: {cpu_total:.2} s in all; per thread (s): {}", list.join(", "));
    }
    let threads_json: Vec<String> = threads.iter().map(|(n, s)| format!("{}:{s:.2}", json!(n))).collect();
    println!(
        r#"{{"mode":"ibd","transport":"{}","height":{},"ok":{},"reached":{reached_height},"error":{},"secs":{secs:.3},"headers_secs":{},"pings":{},"p50_us":{p50:.1},"p90_us":{p90:.1},"p99_us":{p99:.1},"p999_us":{p999:.1},"max_us":{max:.1},"over_1ms":{over_1ms},"over_10ms":{over_10ms},"ping_from":"{}","reniced":{},"handshake_secs":{},"ping_error":{},"cpu_secs":{cpu_total:.2},"threads":{{{}}}{}}}"#,
        transport_name(a.v2),
        a.height,
        error.is_none(),
        error.as_ref().map_or("null".to_string(), |e| json!(e).to_string()),
        headers_at.map_or("null".to_string(), |t| format!("{t:.3}")),
        ns.len(),
        if a.ping_after_headers { "headers" } else { "start" },
        json!(reniced),
        log.handshake_at.map_or("null".to_string(), |t| format!("{t:.3}")),
        log.error.as_ref().map_or("null".to_string(), |e| json!(e).to_string()),
        threads_json.join(","),
        json_node(&log.node)
    );
    Ok(if error.is_some() || log.error.is_some() || ns.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_names() {
        let line = "1234 (b-msg (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line, 100.0), Some(("b-msg (x) y".to_string(), 3.0)));
        assert_eq!(parse_stat("1 (x) S 1 2", 100.0), None);
        let progress = vec![(1.0, 0, 10), (2.0, 5, 10), (3.0, 10, 10)];
        assert_eq!(reached(&progress, 10, 0.5), Some(2.0));
        assert_eq!(reached(&progress, 10, 1.0), Some(3.0));
        assert_eq!(reached(&progress, 20, 1.0), None);
    }
}
