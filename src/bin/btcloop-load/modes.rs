//! The three ping-based load modes: `ping` (pongs/s), `conns` (RSS per idle peer), `latency`
//! (RTT percentiles), each printing readable lines and a final JSON line; the ping protocol
//! they run on the shared event loop; [`Blocking`], the blocking connection (v1 or v2) of
//! `latency`, `headers`' chain walk, `bigflood` and `ibd`.

use super::engine::{Control, Engine, Link, Protocol, everyone_gone};
use super::*;

pub(crate) fn print_node(node: &Option<NodeInfo>) {
    if let Some(n) = node {
        println!("node: version {} user agent {} height {}", n.version, n.user_agent, n.start_height);
    }
}

pub(crate) fn json_node(node: &Option<NodeInfo>) -> String {
    // The user agent went through Core's SanitizeString: no quotes or backslashes remain.
    match node {
        Some(n) => format!(r#","node_version":{},"node_user_agent":"{}""#, n.version, n.user_agent),
        None => String::new(),
    }
}

/// Counters of the ping protocol.
#[derive(Default, Debug)]
pub(crate) struct PingStats {
    pub(crate) pongs: u64,
    pub(crate) pings_sent: u64,
    pub(crate) unmatched_pongs: u64,
    pub(crate) rejected_frames: u64,
    pub(crate) node_pings: u64,
}

/// Per-connection state of the ping protocol.
pub(crate) struct PingConn {
    dec: V1Decoder,
    /// Nonces of our pings not yet answered, oldest first.
    outstanding: VecDeque<u64>,
    /// Next ping sequence number.
    seq: u64,
    /// Matching pongs received.
    pub(crate) pongs: u64,
}

/// The protocol of `ping` and `conns`: complete the handshake, answer the node's pings and, with
/// `inflight > 0`, keep that many pings in flight per connection (a new one for every pong).
pub(crate) struct Pinger {
    magic: [u8; 4],
    /// Pings each connection keeps in flight once handshaken (0: answer pings only).
    inflight: usize,
    pings: PingTable,
    pub(crate) st: PingStats,
    pub(crate) node: Option<NodeInfo>,
}

impl Pinger {
    pub(crate) fn new(magic: [u8; 4], inflight: usize) -> Pinger {
        let pings = if inflight > 0 { PingTable::new(magic, inflight) } else { PingTable::empty() };
        Pinger { magic, inflight, pings, st: PingStats::default(), node: None }
    }
}

/// Appends ping number `seq` (then advances it) to `out` and notes its nonce as outstanding.
#[inline]
fn send_ping(pings: &PingTable, seq: &mut u64, outstanding: &mut VecDeque<u64>, st: &mut PingStats, out: &mut Vec<u8>) {
    outstanding.push_back(pings.push(*seq, out));
    *seq += 1;
    st.pings_sent += 1;
}

impl Protocol for Pinger {
    type State = PingConn;

    fn magic(&self) -> [u8; 4] {
        self.magic
    }

    fn new_state(&self) -> PingConn {
        PingConn { dec: V1Decoder::new(self.magic), outstanding: VecDeque::new(), seq: 0, pongs: 0 }
    }

    /// Feeds received bytes to the connection's decoder and reacts to each frame.
    fn on_bytes(&mut self, state: &mut PingConn, link: &mut Link, data: &[u8]) -> Result<(), String> {
        let PingConn { dec, outstanding, seq, pongs } = state;
        let Pinger { magic, inflight, pings, st, node } = self;
        let (magic, inflight) = (*magic, *inflight);
        let pinging = inflight > 0;
        dec.decode(data, |frame| {
            let Frame { command, payload, .. } = match frame {
                Ok(f) => f,
                Err(_) => {
                    st.rejected_frames += 1;
                    return;
                }
            };
            match command_str(command) {
                "pong" => {
                    let Some(n) = nonce_of(payload) else {
                        st.unmatched_pongs += 1;
                        return;
                    };
                    if outstanding.front() == Some(&n) {
                        outstanding.pop_front();
                    } else if let Some(pos) = outstanding.iter().position(|&x| x == n) {
                        outstanding.remove(pos);
                    } else {
                        st.unmatched_pongs += 1;
                        return;
                    }
                    st.pongs += 1;
                    *pongs += 1;
                    if pinging {
                        send_ping(pings, seq, outstanding, st, &mut link.out);
                    }
                }
                cmd => match link.on_control(magic, cmd, payload) {
                    Some(Control::Ping) => st.node_pings += 1,
                    Some(Control::Version) if node.is_none() => *node = node_info(payload),
                    _ => {}
                },
            }
            if link.try_ready() && pinging {
                for _ in 0..inflight {
                    send_ping(pings, seq, outstanding, st, &mut link.out);
                }
            }
        })
        .map_err(|e| e.to_string())
    }
}

pub(crate) fn ping_mode(addr: SocketAddr, magic: [u8; 4], v2: bool, a: LoadArgs) -> Result<ExitCode, String> {
    let LoadArgs { peers, inflight, duration, warmup } = a;
    btcloop::base::sys::raise_fd_limit(peers as u64 + 100);
    let mut eng = Engine::new(addr, v2, Pinger::new(magic, inflight), READ_BUF)?;
    let hs_ms = eng.handshake_all(peers)?.as_secs_f64() * 1e3;
    println!(
        "{peers} peers handshaken with {addr} over {} in {hs_ms:.1} ms; {inflight} pings in flight per peer",
        transport_name(v2)
    );
    print_node(&eng.core.proto.node);

    eng.run_until(Instant::now() + warmup, everyone_gone)?;
    let (p0, t1) = (eng.core.proto.st.pongs, Instant::now());
    let per_peer0: Vec<u64> = eng.conns.iter().map(|c| c.state.pongs).collect();
    let bytes0 = (eng.core.st.bytes_in, eng.core.st.bytes_out, eng.core.st.write_calls);
    eng.run_until(t1 + duration, everyone_gone)?;
    let (p1, secs) = (eng.core.proto.st.pongs, t1.elapsed().as_secs_f64());

    let (st, ps) = (&eng.core.st, &eng.core.proto.st);
    let transport = transport_name(v2);
    let pongs = p1 - p0;
    let rate = if secs > 0.0 { pongs as f64 / secs } else { 0.0 };
    let per_peer: Vec<f64> =
        eng.conns.iter().zip(&per_peer0).map(|(c, p)| (c.state.pongs - p) as f64 / secs.max(1e-9)).collect();
    let min_peer = per_peer.iter().copied().fold(f64::INFINITY, f64::min);
    let max_peer = per_peer.iter().copied().fold(0.0, f64::max);
    let mib_in = (st.bytes_in - bytes0.0) as f64 / secs.max(1e-9) / (1024.0 * 1024.0);
    let writes = st.write_calls - bytes0.2;
    println!("measured {secs:.3} s (after {:.1} s warm-up): {pongs} pongs, {rate:.0} pongs/s", warmup.as_secs_f64());
    println!("per peer: min {min_peer:.0} / max {max_peer:.0} pongs/s; in {mib_in:.2} MiB/s; {writes} write calls");
    println!(
        "totals: pings sent {} pongs {} unmatched pongs {} node pings {} rejected frames {} partial writes {} disconnects {}",
        ps.pings_sent,
        ps.pongs,
        ps.unmatched_pongs,
        ps.node_pings,
        ps.rejected_frames,
        st.partial_writes,
        st.disconnects
    );
    if let (true, Some(e)) = (st.disconnects > 0, &eng.core.first_error) {
        println!("first disconnect: {e}");
    }
    println!(
        r#"{{"mode":"ping","transport":"{transport}","peers":{peers},"inflight":{inflight},"warmup":{:.3},"secs":{secs:.3},"pongs":{pongs},"pongs_per_sec":{rate:.1},"min_peer_pongs_per_sec":{min_peer:.1},"max_peer_pongs_per_sec":{max_peer:.1},"total_pongs":{},"pings_sent":{},"unmatched_pongs":{},"disconnects":{},"handshake_ms":{hs_ms:.1}{}}}"#,
        warmup.as_secs_f64(),
        ps.pongs,
        ps.pings_sent,
        ps.unmatched_pongs,
        st.disconnects,
        json_node(&eng.core.proto.node)
    );
    Ok(if st.disconnects > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// VmRSS and VmHWM of a process, KiB.
pub(crate) fn read_rss(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        _ => Err(format!("no VmRSS/VmHWM in {path}")),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn conns_mode(
    addr: SocketAddr,
    magic: [u8; 4],
    v2: bool,
    count: usize,
    pid: u32,
    hold: Duration,
    batch: usize,
) -> Result<ExitCode, String> {
    let limit = btcloop::base::sys::raise_fd_limit(count as u64 + 100);
    if limit < count as u64 + 20 {
        return Err(format!("open-file limit is {limit}, too low for {count} connections"));
    }
    let (rss_before, _) = read_rss(pid)?;
    println!("node pid {pid}: VmRSS before {rss_before} KiB; connecting over {}", transport_name(v2));
    let mut eng = Engine::new(addr, v2, Pinger::new(magic, 0), READ_BUF)?;
    let t0 = Instant::now();
    let mut opened = 0;
    while opened < count {
        let n = batch.min(count - opened);
        let tb = Instant::now();
        for _ in 0..n {
            eng.connect();
        }
        opened += n;
        eng.run_until(tb + HANDSHAKE_TIMEOUT, |st| st.ready + st.failed >= opened)?;
        eng.abandon_unfinished("handshake timed out");
        let st = &eng.core.st;
        println!(
            "batch: {n} opened in {:.1} ms; total handshaken {} failed {} disconnected {}",
            tb.elapsed().as_secs_f64() * 1e3,
            st.ready,
            st.failed,
            st.disconnects
        );
        if st.ready == 0 {
            let why = eng.core.first_error.clone().unwrap_or_else(|| "handshake timed out".into());
            return Err(format!("no connection to {addr} completed the handshake: {why}"));
        }
    }
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    print_node(&eng.core.proto.node);

    // Hold the connections (answering pings) and sample RSS once a second.
    let th = Instant::now();
    let mut next = th;
    loop {
        next += Duration::from_secs(1).min(hold.max(Duration::from_millis(1)));
        let end = next.min(th + hold);
        eng.run_until(end, |_| false)?;
        let (rss, _) = read_rss(pid)?;
        println!("hold {:.1} s: VmRSS {rss} KiB, {} peers connected", th.elapsed().as_secs_f64(), eng.alive());
        if end >= th + hold {
            break;
        }
    }
    let (rss_after, hwm) = read_rss(pid)?;
    let st = &eng.core.st;
    let transport = transport_name(v2);
    let handshaken = st.ready;
    let delta = rss_after as i64 - rss_before as i64;
    let per_peer = delta as f64 / handshaken.max(1) as f64;
    println!(
        "{handshaken} of {count} peers handshaken in {setup_ms:.0} ms ({} failed, {} disconnected, {} connected at end)",
        st.failed,
        st.disconnects,
        eng.alive()
    );
    println!("VmRSS before {rss_before} KiB, after {rss_after} KiB (peak {hwm} KiB): {per_peer:.1} KiB per peer");
    if let (true, Some(e)) = (st.failed + st.disconnects > 0, &eng.core.first_error) {
        println!("first failure: {e}");
    }
    if delta <= 0 {
        println!(
            "note: RSS did not grow; the node's allocator is probably reusing memory freed after earlier load, measure a freshly started node"
        );
    }
    println!(
        r#"{{"mode":"conns","transport":"{transport}","count":{count},"handshaken":{handshaken},"failed":{},"disconnects":{},"connected_at_end":{},"setup_ms":{setup_ms:.1},"hold_secs":{:.1},"rss_before_kib":{rss_before},"rss_after_kib":{rss_after},"hwm_kib":{hwm},"kib_per_peer":{per_peer:.2},"node_pings":{}{}}}"#,
        st.failed,
        st.disconnects,
        eng.alive(),
        hold.as_secs_f64(),
        eng.core.proto.st.node_pings,
        json_node(&eng.core.proto.node)
    );
    Ok(if st.failed + st.disconnects > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Blocking reader for the latency mode: reads into `buf` and feeds `dec`, answering the node's
/// pings, until `done` reports the awaited frame arrived.
pub(crate) struct Blocking {
    stream: std::net::TcpStream,
    dec: V1Decoder,
    /// The BIP324 codec when speaking v2 (frames are encrypted on send, decrypted on read).
    v2: Option<Box<btcloop::base::transport::v2::V2Transport>>,
    /// Encrypted bytes to write (v2).
    wire: Vec<u8>,
    buf: Vec<u8>,
    reply: Vec<u8>,
    magic: [u8; 4],
}

impl Blocking {
    /// Connects to `addr` and completes the version handshake (answering the node's pings),
    /// over BIP324 v2 when `v2` (its handshake first, as the initiator); returns the connection,
    /// what the node said about itself and how long it took. Every mode's blocking connections
    /// are made here, so each speaks the transport `--v2` asks for.
    pub(crate) fn handshake(
        addr: SocketAddr,
        magic: [u8; 4],
        v2: bool,
    ) -> Result<(Blocking, Option<NodeInfo>, Duration), String> {
        let stream = std::net::TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(|e| format!("set_read_timeout: {e}"))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).map_err(|e| format!("set_write_timeout: {e}"))?;
        let mut b = Blocking {
            stream,
            dec: V1Decoder::new(magic),
            v2: None,
            wire: Vec::new(),
            buf: vec![0u8; READ_BUF],
            reply: Vec::new(),
            magic,
        };
        let t0 = Instant::now();
        if v2 {
            b.v2_handshake(t0 + HANDSHAKE_TIMEOUT)?;
        }
        let mut out = Vec::new();
        push_version(magic, &mut out);
        b.send(&out)?;
        let (mut got_version, mut got_verack) = (false, false);
        let mut node = None;
        b.read_until(t0 + HANDSHAKE_TIMEOUT, |cmd, payload, reply| {
            match cmd {
                "version" if !got_version => {
                    got_version = true;
                    node = node_info(payload);
                    encode_message(magic, &NetworkMessage::Verack, reply);
                }
                "verack" => got_verack = true,
                _ => {}
            }
            got_version && got_verack
        })?;
        let took = t0.elapsed();
        if took > HANDSHAKE_TIMEOUT {
            return Err(format!("handshake with {addr} took longer than {}s", HANDSHAKE_TIMEOUT.as_secs()));
        }
        Ok((b, node, took))
    }

    /// BIP324's handshake as the initiator: our key and garbage, the node's, then the
    /// terminators and version packets, until application messages may flow.
    fn v2_handshake(&mut self, deadline: Instant) -> Result<(), String> {
        use btcloop::base::transport::v2::{Role, V2Transport};
        let mut codec = Box::new(V2Transport::new(self.magic, Role::Initiator).map_err(|e| e.to_string())?);
        let mut out = Vec::new();
        codec.take_handshake(&mut out);
        self.stream.write_all(&out).map_err(|e| format!("write: {e}"))?;
        while !codec.is_ready() {
            if Instant::now() > deadline {
                return Err("no v2 handshake from the node in time".into());
            }
            let n = match self.stream.read(&mut self.buf) {
                Ok(0) => return Err("connection closed by the node during the v2 handshake".into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            };
            let mut early = 0usize;
            codec.decode_owned(&self.buf[..n], |_| early += 1).map_err(|e| format!("v2: {e}"))?;
            if early > 0 {
                return Err("the node sent a message before its v2 handshake ended".into());
            }
            out.clear();
            codec.take_handshake(&mut out);
            self.stream.write_all(&out).map_err(|e| format!("write: {e}"))?;
        }
        self.v2 = Some(codec);
        Ok(())
    }

    /// Writes all of `bytes` (whole v1 frames; encrypted first over v2, where a type without a
    /// BIP324 short ID goes in the long form: a 0 byte and the 12-byte type). Returns the bytes
    /// written to the socket.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<usize, String> {
        match self.v2.as_mut() {
            None => {
                self.stream.write_all(bytes).map_err(|e| format!("write: {e}"))?;
                Ok(bytes.len())
            }
            Some(codec) => {
                self.wire.clear();
                let used = codec.encrypt_frames(bytes, &mut self.wire).map_err(|e| format!("v2: {e}"))?;
                if used != bytes.len() {
                    return Err(format!(
                        "v2: {} of {} bytes to send are not whole frames",
                        bytes.len() - used,
                        bytes.len()
                    ));
                }
                self.stream.write_all(&self.wire).map_err(|e| format!("write: {e}"))?;
                Ok(self.wire.len())
            }
        }
    }

    /// Reads until `want` has returned true for some frame; `want` may append replies to its
    /// third argument, written once the read batch is decoded.
    /// Fails once `deadline` has passed, even if the node keeps sending other messages.
    pub(crate) fn read_until(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(&str, &[u8], &mut Vec<u8>) -> bool,
    ) -> Result<(), String> {
        let mut found = false;
        while !found {
            if Instant::now() > deadline {
                return Err(format!("no reply from the node within {}s", REPLY_TIMEOUT.as_secs()));
            }
            let n = match self.stream.read(&mut self.buf) {
                Ok(0) => return Err("connection closed by the node".into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(format!("no reply from the node within {}s", REPLY_TIMEOUT.as_secs()));
                }
                Err(e) => return Err(format!("read: {e}")),
            };
            let magic = self.magic;
            let reply = &mut self.reply;
            let mut on_frame = |frame: Result<Frame<'_>, btcloop::base::transport::Rejected<'_>>| {
                let Ok(Frame { command, payload, .. }) = frame else { return };
                let cmd = command_str(command);
                if cmd == "ping" {
                    if let Some(nonce) = nonce_of(payload) {
                        encode_message(magic, &NetworkMessage::Pong(nonce), reply);
                    }
                }
                if want(cmd, payload, reply) {
                    found = true;
                }
            };
            match self.v2.as_mut() {
                None => self.dec.decode(&self.buf[..n], on_frame).map_err(|e| format!("protocol error: {e}"))?,
                Some(codec) => codec
                    .decode_owned(&self.buf[..n], |d| d.lend(&mut on_frame))
                    .map_err(|e| format!("protocol error: {e}"))?,
            }
            if !self.reply.is_empty() {
                let reply = std::mem::take(&mut self.reply);
                self.send(&reply)?;
                self.reply = reply;
                self.reply.clear();
            }
        }
        Ok(())
    }
}

pub(crate) fn latency_mode(
    addr: SocketAddr,
    magic: [u8; 4],
    v2: bool,
    count: usize,
    warmup: usize,
) -> Result<ExitCode, String> {
    let (mut b, node, took) = Blocking::handshake(addr, magic, v2)?;
    let transport = transport_name(v2);
    println!("handshaken with {addr} over {transport} in {:.1} ms", took.as_secs_f64() * 1e3);
    print_node(&node);

    let pings = PingTable::new(magic, 1);
    let mut rtts_ns: Vec<u64> = Vec::with_capacity(count);
    let mut frame = Vec::with_capacity(32);
    let tm = Instant::now();
    for i in 0..(warmup + count) as u64 {
        frame.clear();
        let nonce = pings.push(i, &mut frame);
        let t = Instant::now();
        b.send(&frame)?;
        b.read_until(t + REPLY_TIMEOUT, |cmd, payload, _| cmd == "pong" && nonce_of(payload) == Some(nonce))?;
        let rtt = t.elapsed();
        if i as usize >= warmup {
            rtts_ns.push(rtt.as_nanos() as u64);
        }
    }
    let total = tm.elapsed().as_secs_f64();
    rtts_ns.sort_unstable();
    let us = |ns: u64| ns as f64 / 1e3;
    let pct = |p: f64| {
        let rank = ((p / 100.0) * rtts_ns.len() as f64).ceil() as usize;
        us(rtts_ns[rank.clamp(1, rtts_ns.len()) - 1])
    };
    let (p50, p90, p99) = (pct(50.0), pct(90.0), pct(99.0));
    let (min, max) = (us(rtts_ns[0]), us(rtts_ns[rtts_ns.len() - 1]));
    let mean = rtts_ns.iter().sum::<u64>() as f64 / rtts_ns.len() as f64 / 1e3;
    println!("{count} round trips (after {warmup} warm-up) in {total:.2} s");
    println!("rtt us: p50 {p50:.1} p90 {p90:.1} p99 {p99:.1} min {min:.1} max {max:.1} mean {mean:.1}");
    println!(
        r#"{{"mode":"latency","transport":"{transport}","count":{count},"warmup":{warmup},"p50_us":{p50:.1},"p90_us":{p90:.1},"p99_us":{p99:.1},"min_us":{min:.1},"max_us":{max:.1},"mean_us":{mean:.1},"secs":{total:.3}{}}}"#,
        json_node(&node)
    );
    Ok(ExitCode::SUCCESS)
}
