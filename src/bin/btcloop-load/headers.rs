//! The `headers` mode: how fast the node serves `getheaders`.
//!
//! One blocking connection first walks the node's best chain (2,000 headers per `getheaders`)
//! to learn every best-chain hash by height. Then K handshaken peers on one mio event loop each
//! keep W `getheaders` in flight, each for the 2,000 headers after a random best-chain height;
//! every response that arrives sends the next request on that connection.
//!
//! The hot path does not decode `headers` responses nor hash them: [`Scanner`] reads the frame
//! header and the count varint and skips the rest of the payload (checking that the length
//! matches the count and the count matches the request). One response in [`SAMPLE_EVERY`] per
//! connection is collected, checksummed, decoded and checked against the walked chain; with
//! `--verify` every response is.
//!
//! With `--v2` the walk and every measuring connection speak BIP324 v2: the engine decrypts
//! each read and hands the scanner the messages re-framed as v1 (with a checksum computed for
//! the re-framing), so the tool does more work per response than over v1.

use bitcoin::BlockHash;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use btcloop::base::transport::encode_frame;
use btcloop::engine::chain::params::ChainParams;

use super::engine::{Control, Engine, Link, Protocol, everyone_gone};
use super::modes::{Blocking, json_node, print_node};
use super::scan::{HEADER_ENTRY, HEADERS_CMD, Scanned, Scanner, varint_len};
use super::*;

/// Core's `MAX_HEADERS_RESULTS`: headers per full response.
pub(crate) const MAX_HEADERS: u32 = 2000;
/// Without `--verify`, one `headers` response in this many per connection is fully checked.
const SAMPLE_EVERY: u64 = 1000;
/// Read buffer of the measuring event loop.
const HEADERS_READ_BUF: usize = 1 << 20;

/// Appends a `getheaders` frame with locator `[from]` and no stop hash.
pub(crate) fn push_getheaders(magic: [u8; 4], from: &BlockHash, out: &mut Vec<u8>) {
    encode_frame(magic, "getheaders", out, |p| {
        p.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        p.push(1);
        p.extend_from_slice(from.as_byte_array());
        p.extend_from_slice(&[0u8; 32]);
    });
}

/// Appends an empty `headers` frame (our answer to the node's own `getheaders`: we have
/// nothing beyond genesis to offer).
fn push_empty_headers(magic: [u8; 4], out: &mut Vec<u8>) {
    encode_frame(magic, "headers", out, |p| p.push(0));
}

/// Decodes a `headers` payload whose length is exactly the count varint plus 81 bytes a header.
fn decode_headers_exact(payload: &[u8]) -> Result<Vec<Header>, String> {
    let headers = match decode_payload("headers", payload) {
        Ok(NetworkMessage::Headers(h)) => h,
        Ok(_) => return Err("not a headers message".into()),
        Err(e) => return Err(e.to_string()),
    };
    let want = payload.first().map_or(0, |&b| varint_len(b)) + headers.len() * HEADER_ENTRY;
    if payload.len() != want {
        return Err(format!("{} headers in a payload of {} bytes (expected {want})", headers.len(), payload.len()));
    }
    Ok(headers)
}

/// The best chain as walked: hash by height.
pub(crate) struct BestChain {
    hashes: Vec<BlockHash>,
}

impl BestChain {
    fn tip(&self) -> u32 {
        (self.hashes.len() - 1) as u32
    }

    /// Headers the node must return for a request starting after height `h`.
    fn expected(&self, h: u32) -> u64 {
        u64::from(MAX_HEADERS.min(self.tip() - h))
    }

    /// Checks a response to the request after height `h`: the expected number of headers, the
    /// first linking to the hash at `h`, each to the one before, each the best chain's.
    fn check(&self, h: u32, payload: &[u8]) -> Result<u64, String> {
        let headers = decode_headers_exact(payload)?;
        let expected = self.expected(h);
        if headers.len() as u64 != expected {
            return Err(format!("asked for the headers after height {h}: got {}, expected {expected}", headers.len()));
        }
        let mut prev = self.hashes[h as usize];
        for (i, header) in headers.iter().enumerate() {
            let height = h as usize + 1 + i;
            if header.prev_blockhash != prev {
                return Err(format!(
                    "request after height {h}: header {i} (height {height}) has parent {}, expected {prev}",
                    header.prev_blockhash
                ));
            }
            let hash = header.block_hash();
            if hash != self.hashes[height] {
                return Err(format!(
                    "request after height {h}: header at height {height} is {hash}, the best chain has {}",
                    self.hashes[height]
                ));
            }
            prev = hash;
        }
        Ok(expected)
    }
}

/// Walks the node's best chain from genesis on one blocking connection (v2 when `v2`).
fn walk_chain(addr: SocketAddr, network: Network, v2: bool) -> Result<(BestChain, Option<NodeInfo>, u32), String> {
    let magic = network.magic();
    let (mut b, node, _) = Blocking::handshake(addr, magic, v2)?;
    let mut hashes = vec![ChainParams::new(network).genesis_hash()];
    let mut req = Vec::with_capacity(128);
    let mut round_trips = 0u32;
    loop {
        let from = *hashes.last().unwrap_or(&BlockHash::all_zeros());
        req.clear();
        push_getheaders(magic, &from, &mut req);
        b.send(&req)?;
        round_trips += 1;
        let mut got: Option<Result<Vec<Header>, String>> = None;
        b.read_until(Instant::now() + REPLY_TIMEOUT, |cmd, payload, reply| match cmd {
            "headers" => {
                got = Some(decode_headers_exact(payload));
                true
            }
            "getheaders" => {
                push_empty_headers(magic, reply);
                false
            }
            _ => false,
        })?;
        let headers = got.unwrap_or_else(|| Err("no headers".into())).map_err(|e| format!("walking the chain: {e}"))?;
        if headers.len() > MAX_HEADERS as usize {
            return Err(format!("walking the chain: {} headers in one response", headers.len()));
        }
        for h in &headers {
            let parent = *hashes.last().unwrap_or(&BlockHash::all_zeros());
            if h.prev_blockhash != parent {
                return Err(format!("walking the chain: header at height {} does not link to {parent}", hashes.len()));
            }
            hashes.push(h.block_hash());
        }
        if headers.len() < MAX_HEADERS as usize {
            break;
        }
    }
    Ok((BestChain { hashes }, node, round_trips))
}

/// Per-connection state of the headers protocol.
struct HConn {
    scan: Scanner,
    /// Start heights of our requests not yet answered, oldest first.
    pending: VecDeque<u32>,
    /// Headers received.
    headers: u64,
    /// When the last response arrived (to the read that carried its end).
    last_response: Option<Instant>,
    /// Longest time between two responses (reset when the measurement starts).
    max_gap: Duration,
}

/// Counters of the headers protocol.
#[derive(Default, Debug)]
struct HStats {
    requests: u64,
    responses: u64,
    headers: u64,
    /// Responses fully decoded and checked.
    checked: u64,
    /// Responses that failed the fast (count/length) or the full check.
    bad_responses: u64,
    bad_checksums: u64,
    /// `headers` frames with no request outstanding.
    unsolicited: u64,
    node_pings: u64,
    node_getheaders: u64,
}

/// What requests are made of.
struct Plan {
    magic: [u8; 4],
    inflight: usize,
    best: BestChain,
    /// Largest request start height: tip - 2000 (0 for a shorter chain).
    max_start: u32,
    /// Check every response (else one in [`SAMPLE_EVERY`]).
    verify: bool,
}

/// The `headers` protocol: once handshaken, keep `inflight` `getheaders` in flight per
/// connection, sending the next for every response.
struct HCore {
    plan: Plan,
    rng: u64,
    st: HStats,
    first_bad: Option<String>,
}

/// xorshift64*: cheap random start heights on the hot path.
fn next_rand(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Sends one request after a random height in `0..=max_start`.
fn request(plan: &Plan, rng: &mut u64, st: &mut HStats, pending: &mut VecDeque<u32>, out: &mut Vec<u8>) {
    let h = (next_rand(rng) % (u64::from(plan.max_start) + 1)) as u32;
    push_getheaders(plan.magic, &plan.best.hashes[h as usize], out);
    pending.push_back(h);
    st.requests += 1;
}

fn note(slot: &mut Option<String>, msg: impl FnOnce() -> String) {
    if slot.is_none() {
        *slot = Some(msg());
    }
}

impl Protocol for HCore {
    type State = HConn;

    fn magic(&self) -> [u8; 4] {
        self.plan.magic
    }

    fn new_state(&self) -> HConn {
        let collect_every = if self.plan.verify { 1 } else { SAMPLE_EVERY };
        HConn {
            scan: Scanner::new(self.plan.magic, collect_every),
            pending: VecDeque::new(),
            headers: 0,
            last_response: None,
            max_gap: Duration::ZERO,
        }
    }

    fn on_bytes(&mut self, c: &mut HConn, link: &mut Link, data: &[u8]) -> Result<(), String> {
        let HConn { scan, pending, headers, last_response, max_gap } = c;
        let HCore { plan, rng, st, first_bad } = self;
        let magic = plan.magic;
        let now = Instant::now();
        let mut answered = false;
        scan.scan(data, |s| match s {
            Scanned::Skipped { count, len, consistent } => {
                let Some(h) = pending.pop_front() else {
                    st.unsolicited += 1;
                    return;
                };
                let expected = plan.best.expected(h);
                if !consistent || count != expected {
                    st.bad_responses += 1;
                    note(first_bad, || {
                        format!("request after height {h}: {count} headers in {len} bytes, expected {expected}")
                    });
                }
                *headers += count;
                st.headers += count;
                st.responses += 1;
                answered = true;
                request(plan, rng, st, pending, &mut link.out);
            }
            Scanned::Frame { command, payload } if *command == HEADERS_CMD => {
                let Some(h) = pending.pop_front() else {
                    st.unsolicited += 1;
                    return;
                };
                st.checked += 1;
                let count = match plan.best.check(h, payload) {
                    Ok(n) => n,
                    Err(e) => {
                        st.bad_responses += 1;
                        note(first_bad, || e);
                        0
                    }
                };
                *headers += count;
                st.headers += count;
                st.responses += 1;
                answered = true;
                request(plan, rng, st, pending, &mut link.out);
            }
            Scanned::Frame { command, payload } => match command_str(command) {
                "getheaders" => {
                    push_empty_headers(magic, &mut link.out);
                    st.node_getheaders += 1;
                }
                cmd => {
                    if let Some(Control::Ping) = link.on_control(magic, cmd, payload) {
                        st.node_pings += 1;
                    }
                }
            },
            Scanned::BadChecksum { command } => {
                st.bad_checksums += 1;
                if *command == HEADERS_CMD && pending.pop_front().is_some() {
                    // The response is lost: keep the window full.
                    st.bad_responses += 1;
                    note(first_bad, || "a headers response failed its checksum".into());
                    request(plan, rng, st, pending, &mut link.out);
                }
            }
        })?;
        if answered {
            if let Some(last) = *last_response {
                *max_gap = (*max_gap).max(now - last);
            }
            *last_response = Some(now);
        }
        if link.try_ready() {
            for _ in 0..self.plan.inflight {
                request(&self.plan, &mut self.rng, &mut self.st, &mut c.pending, &mut link.out);
            }
        }
        Ok(())
    }
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass, which is plain old data.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32).saturating_mul(1000));
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs the `headers` mode over BIP324 v2 when `v2`; `verify` checks every response.
pub(crate) fn headers_mode(
    addr: SocketAddr,
    network: Network,
    v2: bool,
    a: LoadArgs,
    verify: bool,
) -> Result<ExitCode, String> {
    let LoadArgs { peers, inflight, duration, warmup } = a;
    let magic = network.magic();
    btcloop::base::sys::raise_fd_limit(peers as u64 + 100);

    let tw = Instant::now();
    let transport = transport_name(v2);
    let (best, node, round_trips) = walk_chain(addr, network, v2)?;
    let walk_ms = tw.elapsed().as_secs_f64() * 1e3;
    let tip = best.tip();
    println!(
        "walked the node's best chain over {transport} with {round_trips} getheaders in {walk_ms:.1} ms: tip height {tip} ({})",
        best.hashes[tip as usize]
    );
    print_node(&node);
    if tip == 0 {
        return Err(
            "the node's chain is only genesis: nothing to serve (a node serves the headers of the blocks it has validated: load it with `mkblocks` and `submit`)"
                .into(),
        );
    }
    if tip < MAX_HEADERS {
        println!("note: the chain is shorter than {MAX_HEADERS} headers; every request asks for all {tip}");
    }
    let max_start = tip.saturating_sub(MAX_HEADERS);

    let proto = HCore {
        plan: Plan { magic, inflight, best, max_start, verify },
        rng: rand::rng().random::<u64>() | 1,
        st: HStats::default(),
        first_bad: None,
    };
    let mut eng = Engine::new(addr, v2, proto, HEADERS_READ_BUF)?;
    let hs_ms = eng.handshake_all(peers)?.as_secs_f64() * 1e3;
    let check = if verify {
        "every response decoded and checked".to_string()
    } else {
        format!("1 response in {SAMPLE_EVERY} per peer decoded and checked")
    };
    println!(
        "{peers} peers handshaken over {transport} in {hs_ms:.1} ms; {inflight} getheaders in flight per peer, random starts in 0..={max_start}; {check}"
    );

    eng.run_until(Instant::now() + warmup, everyone_gone)?;
    let (hs, ls) = (&eng.core.proto.st, &eng.core.st);
    let st0 = (hs.headers, hs.responses, ls.bytes_in, ls.write_calls);
    let per_peer0: Vec<u64> = eng.conns.iter().map(|c| c.state.headers).collect();
    for c in &mut eng.conns {
        c.state.max_gap = Duration::ZERO;
    }
    let (t1, cpu1) = (Instant::now(), cpu_time());
    eng.run_until(t1 + duration, everyone_gone)?;
    let (secs, cpu) = (t1.elapsed().as_secs_f64(), (cpu_time().saturating_sub(cpu1)).as_secs_f64());

    let (st, ls) = (&eng.core.proto.st, &eng.core.st);
    let s = secs.max(1e-9);
    let headers = st.headers - st0.0;
    let responses = st.responses - st0.1;
    let (hps, rps) = (headers as f64 / s, responses as f64 / s);
    let mb_s = (ls.bytes_in - st0.2) as f64 / s / 1e6;
    let writes = ls.write_calls - st0.3;
    let per_peer: Vec<f64> =
        eng.conns.iter().zip(&per_peer0).map(|(c, h0)| (c.state.headers - h0) as f64 / s).collect();
    let min_peer = per_peer.iter().copied().fold(f64::INFINITY, f64::min);
    let max_peer = per_peer.iter().copied().fold(0.0, f64::max);
    let cpu_pct = 100.0 * cpu / s;
    let max_gap_ms = eng.conns.iter().map(|c| c.state.max_gap).max().unwrap_or_default().as_secs_f64() * 1e3;
    println!(
        "measured {secs:.3} s (after {:.1} s warm-up): {headers} headers in {responses} responses: {hps:.0} headers/s, {rps:.1} responses/s, {mb_s:.1} MB/s in",
        warmup.as_secs_f64()
    );
    println!(
        "per peer: min {min_peer:.0} / max {max_peer:.0} headers/s, longest wait between two responses {max_gap_ms:.1} ms; {writes} write calls; this tool used {cpu_pct:.0}% of a core"
    );
    println!(
        "totals: requests {} responses {} headers {} checked {} bad responses {} bad checksums {} unsolicited {} node pings {} node getheaders {} partial writes {} disconnects {}",
        st.requests,
        st.responses,
        st.headers,
        st.checked,
        st.bad_responses,
        st.bad_checksums,
        st.unsolicited,
        st.node_pings,
        st.node_getheaders,
        ls.partial_writes,
        ls.disconnects
    );
    if let Some(e) = &eng.core.proto.first_bad {
        println!("first bad response: {e}");
    }
    if let (true, Some(e)) = (ls.disconnects > 0, &eng.core.first_error) {
        println!("first disconnect: {e}");
    }
    println!(
        r#"{{"mode":"headers","transport":"{transport}","peers":{peers},"inflight":{inflight},"verify":{verify},"tip_height":{tip},"warmup":{:.3},"secs":{secs:.3},"headers":{headers},"responses":{responses},"headers_per_sec":{hps:.1},"responses_per_sec":{rps:.1},"mb_per_sec":{mb_s:.2},"min_peer_headers_per_sec":{min_peer:.1},"max_peer_headers_per_sec":{max_peer:.1},"requests":{},"checked":{},"bad_responses":{},"bad_checksums":{},"unsolicited":{},"disconnects":{},"max_response_gap_ms":{max_gap_ms:.1},"tool_cpu_pct":{cpu_pct:.1},"walk_ms":{walk_ms:.1},"handshake_ms":{hs_ms:.1}{}}}"#,
        warmup.as_secs_f64(),
        st.requests,
        st.checked,
        st.bad_responses,
        st.bad_checksums,
        st.unsolicited,
        ls.disconnects,
        json_node(&node)
    );
    let ok = ls.disconnects == 0 && st.bad_responses == 0 && st.bad_checksums == 0;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use bitcoin::p2p::message_blockdata::GetHeadersMessage;
    use btcloop::engine::chain::mine::mine_chain;

    use super::*;

    #[test]
    fn getheaders_frame_matches_the_codec() {
        let magic = Network::Regtest.magic();
        let from = ChainParams::new(Network::Regtest).genesis_hash();
        let mut ours = Vec::new();
        push_getheaders(magic, &from, &mut ours);
        let msg = GetHeadersMessage {
            version: PROTOCOL_VERSION,
            locator_hashes: vec![from],
            stop_hash: BlockHash::all_zeros(),
        };
        let mut theirs = Vec::new();
        encode_message(magic, &NetworkMessage::GetHeaders(msg), &mut theirs);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn check_accepts_the_right_range_only() {
        let params = ChainParams::new(Network::Regtest);
        let chain = mine_chain(&params, &params.genesis, 30, 1);
        let mut hashes = vec![params.genesis_hash()];
        hashes.extend(chain.iter().map(|h| h.block_hash()));
        let best = BestChain { hashes };
        let payload = |hs: &[Header]| {
            let mut out = Vec::new();
            encode_message([0; 4], &NetworkMessage::Headers(hs.to_vec()), &mut out);
            out.split_off(24)
        };
        // After height 5 come heights 6..=30 (chain[5..]).
        assert_eq!(best.expected(5), 25);
        assert_eq!(best.check(5, &payload(&chain[5..])), Ok(25));
        assert!(best.check(4, &payload(&chain[5..])).is_err(), "wrong start");
        assert!(best.check(5, &payload(&chain[5..29])).is_err(), "short");
        let mut gap = chain[5..].to_vec();
        gap.remove(3);
        assert!(best.check(5, &payload(&gap)).is_err(), "gap");
        let other = mine_chain(&params, &params.genesis, 30, 2);
        let mut forked = chain[5..].to_vec();
        forked[3] = other[8];
        assert!(best.check(5, &payload(&forked)).is_err(), "not linked");
        let mut extra = payload(&chain[5..]);
        extra.push(0);
        assert!(best.check(5, &extra).is_err(), "trailing bytes");
    }
}
