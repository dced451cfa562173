//! The `bigflood` mode: N handshaken peers each send maximum-size messages of a type the node
//! does not know, back to back, while one more peer measures ping round trips; reports the
//! node's RSS before, at its peak, after the flood (peers still connected, idle) and after they
//! left, the flood's throughput and the ping percentiles during the flood.
//!
//! With `--v2` every connection (the flooders and the pinging peer) speaks BIP324 v2: each
//! flood message is encrypted as it is sent, its type in the long form (a 0 byte and the
//! 12-byte type: no short ID exists for it), so the node decrypts and authenticates it before
//! dropping it as an unknown type. The throughput is then the bytes written to the sockets
//! (packets), and includes this tool's encryption time on the same machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::modes::{Blocking, json_node, print_node, read_rss};
use super::*;

/// What the flood mode is given.
pub(crate) struct FloodArgs {
    pub(crate) peers: usize,
    pub(crate) size: usize,
    pub(crate) duration: Duration,
    pub(crate) settle: Duration,
    pub(crate) pid: u32,
    /// Speak BIP324 v2 on every connection.
    pub(crate) v2: bool,
}

/// The message type the flood uses (no node knows it).
const FLOOD_CMD: &[u8] = b"bigflood";
/// How often the node's RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// One frame of `size` payload bytes of [`FLOOD_CMD`] with a correct checksum.
fn flood_frame(magic: [u8; 4], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + size);
    btcloop::base::transport::encode_frame(magic, "bigflood", &mut out, |b| {
        b.extend((0..size).map(|i| (i as u8) ^ 0x5a));
    });
    debug_assert_eq!(&out[4..4 + FLOOD_CMD.len()], FLOOD_CMD);
    out
}

/// The nearest-rank `p`th percentile of sorted nanoseconds, in microseconds (0 when empty).
pub(crate) fn percentile(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e3
}

/// Samples the node's RSS until `stop`, keeping the largest.
fn sample_peak(pid: u32, stop: &AtomicBool, peak: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok((rss, _)) = read_rss(pid) {
            peak.fetch_max(rss, Ordering::Relaxed);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

pub(crate) fn bigflood_mode(addr: SocketAddr, magic: [u8; 4], a: FloodArgs) -> Result<ExitCode, String> {
    let frame = Arc::new(flood_frame(magic, a.size));
    let (rss_before, _) = read_rss(a.pid)?;
    println!("node pid {}: VmRSS before {rss_before} KiB", a.pid);
    let transport = transport_name(a.v2);
    let (mut pinger, node, _) = Blocking::handshake(addr, magic, a.v2)?;
    print_node(&node);
    let mut flooders = Vec::with_capacity(a.peers);
    for _ in 0..a.peers {
        let (b, _, _) = Blocking::handshake(addr, magic, a.v2)?;
        flooders.push(b);
    }
    println!("{} flooding peers and 1 pinging peer handshaken over {transport}", a.peers);

    let stop_flood = AtomicBool::new(false);
    let stop_sampler = AtomicBool::new(false);
    let peak = AtomicU64::new(rss_before);
    let sent = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let pings = PingTable::new(magic, 1);
    let mut rtts_ns: Vec<u64> = Vec::new();
    let mut ping_error = None;
    let flood_start = Instant::now();
    let flood_secs;
    let (rss_end, rss_settled);
    {
        let (stop_flood, stop_sampler, peak, sent, failures) = (&stop_flood, &stop_sampler, &peak, &sent, &failures);
        let result = std::thread::scope(|s| {
            s.spawn(move || sample_peak(a.pid, stop_sampler, peak));
            let handles: Vec<_> = flooders
                .iter_mut()
                .map(|b| {
                    let frame = frame.clone();
                    s.spawn(move || {
                        while !stop_flood.load(Ordering::Relaxed) {
                            match b.send(&frame) {
                                Ok(n) => sent.fetch_add(n as u64, Ordering::Relaxed),
                                Err(_) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            };
                        }
                    })
                })
                .collect();
            let deadline = flood_start + a.duration;
            let mut seq = 0u64;
            let mut frame_buf = Vec::with_capacity(32);
            while Instant::now() < deadline {
                frame_buf.clear();
                let nonce = pings.push(seq, &mut frame_buf);
                seq += 1;
                let t = Instant::now();
                let r = pinger.send(&frame_buf).and_then(|_| {
                    pinger.read_until(t + REPLY_TIMEOUT, |cmd, payload, _| {
                        cmd == "pong" && nonce_of(payload) == Some(nonce)
                    })
                });
                if let Err(e) = r {
                    ping_error = Some(e);
                    break;
                }
                rtts_ns.push(t.elapsed().as_nanos() as u64);
            }
            stop_flood.store(true, Ordering::Relaxed);
            for h in handles {
                let _ = h.join();
            }
            let secs = flood_start.elapsed().as_secs_f64();
            let end = read_rss(a.pid);
            // The flooders stay connected, idle, while the node settles.
            std::thread::sleep(a.settle);
            let settled = read_rss(a.pid);
            stop_sampler.store(true, Ordering::Relaxed);
            (secs, end, settled)
        });
        flood_secs = result.0;
        rss_end = result.1?.0;
        rss_settled = result.2?.0;
    }
    drop(flooders);
    std::thread::sleep(a.settle);
    let (rss_closed, hwm) = read_rss(a.pid)?;
    let peak = peak.load(Ordering::Relaxed).max(rss_end);
    let mb = sent.load(Ordering::Relaxed) as f64 / 1e6;
    rtts_ns.sort_unstable();
    let (p50, p90, p99) = (percentile(&rtts_ns, 50.0), percentile(&rtts_ns, 90.0), percentile(&rtts_ns, 99.0));
    let max = percentile(&rtts_ns, 100.0);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "flood: {} peers × {}-byte messages over {transport} for {flood_secs:.1} s: {mb:.0} MB taken by the node ({:.0} MB/s), {} flooder write failures",
        a.peers,
        a.size,
        mb / flood_secs,
        failures.load(Ordering::Relaxed)
    );
    println!(
        "VmRSS MiB: before {:.1}, peak {:.1}, end of flood {:.1}, {:.0} s later (peers idle) {:.1}, after they left {:.1} (VmHWM {:.1})",
        mib(rss_before),
        mib(peak),
        mib(rss_end),
        a.settle.as_secs_f64(),
        mib(rss_settled),
        mib(rss_closed),
        mib(hwm)
    );
    println!(
        "ping rtt us during the flood ({} pings): p50 {p50:.0} p90 {p90:.0} p99 {p99:.0} max {max:.0}",
        rtts_ns.len()
    );
    if let Some(e) = &ping_error {
        println!("pinging peer failed: {e}");
    }
    println!(
        r#"{{"mode":"bigflood","transport":"{transport}","peers":{},"size":{},"secs":{flood_secs:.2},"mb_sent":{mb:.1},"rss_before_kib":{rss_before},"rss_peak_kib":{peak},"rss_end_kib":{rss_end},"rss_settled_kib":{rss_settled},"rss_closed_kib":{rss_closed},"hwm_kib":{hwm},"pings":{},"p50_us":{p50:.1},"p90_us":{p90:.1},"p99_us":{p99:.1},"max_us":{max:.1},"flooder_failures":{}{}}}"#,
        a.peers,
        a.size,
        rtts_ns.len(),
        failures.load(Ordering::Relaxed),
        json_node(&node)
    );
    Ok(if ping_error.is_some() || rtts_ns.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
