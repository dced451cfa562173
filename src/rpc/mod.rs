//! The JSON-RPC server (Core's `httpserver` + `httprpc`): HTTP listeners on localhost (or
//! `--rpcbind` with `--rpcallowip`), worker threads that check the client's network and its
//! credentials, and run each call against an [`RpcContext`], which reaches the message handler
//! through [`crate::inspect`] and owns nothing of the node's state itself.

pub mod auth;
pub mod jsonrpc;
pub mod methods;
pub mod params;

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use tracing::{debug, info, warn};

use self::auth::{AllowList, AuthError, Cookie, Credentials};
use crate::config::Config;
use crate::inspect::{ANSWER_TIMEOUT, Answer, Query, Request, RpcError, code};
use crate::logging::LogControl;
use crate::net::banman::BanMan;
use crate::net::dialer::DialerCommand;
use crate::net::totals::NetTotals;
use crate::net::wake::{MsgWake, NetEvent, SocketControl};

/// Core's `MAX_SIZE`: the largest request body read.
const MAX_BODY: u64 = 0x0200_0000;
/// Core's delay before answering a wrong password (deters brute force).
const AUTH_FAIL_DELAY: Duration = Duration::from_millis(250);
/// How often idle workers look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// What the methods reach: handles to the threads that own the node's state, and fixed facts.
pub struct RpcContext {
    /// The message handler's wake-up, to post queries on.
    pub wake: Arc<MsgWake>,
    /// The socket handler's control handle.
    pub ctl: SocketControl,
    /// The dialer thread's commands.
    pub dialer: Sender<DialerCommand>,
    /// Manual bans.
    pub banman: Arc<BanMan>,
    /// Node-wide byte counters.
    pub totals: Arc<NetTotals>,
    /// Run-time logging control, when logging was set up.
    pub log: Option<Arc<LogControl>>,
    /// Whether P2P networking is on (`setnetworkactive`).
    pub network_active: Arc<AtomicBool>,
    /// Set by `stop`; the server then asks the node to shut down.
    pub stop_requested: AtomicBool,
    /// When the node started.
    pub started: Instant,
    /// Our user agent.
    pub user_agent: String,
    /// Core-style version number (10000 × major + 100 × minor + patch).
    pub version_number: u32,
    /// Default P2P port of the network (for `addnode`).
    pub default_port: u16,
    /// Default `setban` duration in seconds.
    pub ban_time_secs: i64,
    /// Addresses we listen on, shown as `localaddresses`.
    pub local_addresses: Vec<SocketAddr>,
}

impl RpcContext {
    /// Asks the message handler and waits for its answer.
    pub fn ask(&self, query: Query) -> Answer {
        let (reply, answer) = bounded(1);
        self.wake.post_event(NetEvent::Inspect(Box::new(Request { query, reply })));
        answer
            .recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| RpcError::new(code::IN_WARMUP, "the message handler did not answer (shutting down?)"))?
    }
}

/// Core's version number of this crate's version.
pub fn version_number() -> u32 {
    let mut parts = env!("CARGO_PKG_VERSION").split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    a * 10_000 + b * 100 + c
}

/// Starting the RPC server failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcStartError {
    /// Credentials or the allow list could not be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An `--rpcbind` value is not an address.
    #[error("invalid --rpcbind address '{0}'")]
    BadBind(String),
    /// No listening address could be bound.
    #[error("Unable to bind any endpoint for RPC server")]
    NoEndpoint,
    /// A worker thread could not be spawned.
    #[error("cannot start RPC threads: {0}")]
    Thread(#[from] std::io::Error),
}

/// The running server. [`RpcServer::stop`] joins its threads and removes the cookie.
pub struct RpcServer {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    bound: Vec<SocketAddr>,
    _cookie: Option<Cookie>,
}

/// Core's endpoint choice: localhost unless both `--rpcbind` and `--rpcallowip` are given.
fn endpoints(cfg: &Config) -> Result<Vec<SocketAddr>, RpcStartError> {
    let port = cfg.rpc_port();
    let rpc = &cfg.rpc;
    if rpc.allow_ip.is_empty() || rpc.bind.is_empty() {
        if !rpc.allow_ip.is_empty() {
            warn!("Option -rpcallowip was specified without -rpcbind; this doesn't usually make sense");
        }
        if !rpc.bind.is_empty() {
            warn!(
                "Option -rpcbind was ignored because -rpcallowip was not specified, refusing to allow everyone to connect"
            );
        }
        return Ok(vec![
            SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), port),
            SocketAddr::from(([127, 0, 0, 1], port)),
        ]);
    }
    rpc.bind
        .iter()
        .map(|b| {
            b.parse::<SocketAddr>()
                .or_else(|_| {
                    b.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, port))
                })
                .map_err(|_| RpcStartError::BadBind(b.clone()))
        })
        .collect()
}

impl RpcServer {
    /// Sets up authentication, binds and starts the workers. `on_stop` is called after the
    /// `stop` method has answered.
    pub fn start(
        cfg: &Config,
        ctx: RpcContext,
        on_stop: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<RpcServer, RpcStartError> {
        let allow = AllowList::new(&cfg.rpc.allow_ip)?;
        let (credentials, cookie) = match &cfg.rpc.password {
            Some(p) if !p.is_empty() => (Credentials::new(cfg.rpc.user.clone().unwrap_or_default(), p.clone()), None),
            _ => {
                let cookie = Cookie::generate(&cfg.cookie_path())?;
                info!("Generated RPC authentication cookie {}", cookie.path().display());
                (cookie.credentials.clone(), Some(cookie))
            }
        };
        let mut servers = Vec::new();
        for addr in endpoints(cfg)? {
            info!("Binding RPC on address {} port {}", addr.ip(), addr.port());
            match tiny_http::Server::http(addr) {
                Ok(s) => {
                    if addr.ip().is_unspecified() {
                        warn!("The RPC server is not safe to expose to untrusted networks such as the public internet");
                    }
                    servers.push(Arc::new(s));
                }
                Err(e) => warn!("Binding RPC on address {addr} failed: {e}"),
            }
        }
        if servers.is_empty() {
            return Err(RpcStartError::NoEndpoint);
        }
        let bound: Vec<SocketAddr> = servers.iter().filter_map(|s| s.server_addr().to_ip()).collect();
        for a in &bound {
            info!("RPC listening on {a}");
        }
        let shared = Arc::new(Shared { ctx, credentials, allow, on_stop });
        let stop = Arc::new(AtomicBool::new(false));
        let per_server = cfg.rpc.threads.max(1).div_ceil(servers.len());
        let mut threads = Vec::new();
        for server in &servers {
            for _ in 0..per_server {
                let (server, shared, stop) = (server.clone(), shared.clone(), stop.clone());
                threads.push(
                    std::thread::Builder::new()
                        .name("btcloop-httpworker".into())
                        .spawn(move || worker(&server, &shared, &stop))?,
                );
            }
        }
        Ok(RpcServer { threads, stop, bound, _cookie: cookie })
    }

    /// The addresses actually bound (with the real port when `--rpcport=0`).
    pub fn bound(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// Stops the workers (each finishes its request) and removes the cookie.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Shared {
    ctx: RpcContext,
    credentials: Credentials,
    allow: AllowList,
    on_stop: Arc<dyn Fn() + Send + Sync>,
}

fn worker(server: &tiny_http::Server, shared: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match server.recv_timeout(POLL) {
            Ok(Some(req)) => serve(req, shared),
            Ok(None) => {}
            Err(e) => {
                debug!(target: "http", "RPC accept error: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn reply(req: tiny_http::Request, status: u16, body: Option<String>, extra: Option<tiny_http::Header>) {
    let json = body.is_some();
    let mut resp = tiny_http::Response::from_string(body.unwrap_or_default()).with_status_code(status);
    if json {
        if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", "application/json") {
            resp = resp.with_header(h);
        }
    }
    if let Some(h) = extra {
        resp = resp.with_header(h);
    }
    // The client may already be gone; nothing to do then.
    let _ = req.respond(resp);
}

/// One HTTP request: Core's `MaybeDispatchRequestToWorker` and `HTTPReq_JSONRPC`.
fn serve(mut req: tiny_http::Request, shared: &Shared) {
    let peer = req.remote_addr().copied();
    debug!(target: "http", "Received a {} request for {} from {}", req.method(), req.url(), peer.map_or_else(|| "?".into(), |p| p.to_string()));
    if !peer.is_some_and(|p| shared.allow.allows(p.ip())) {
        debug!(target: "http", "HTTP request from {peer:?} rejected: Client network is not allowed RPC access");
        return reply(req, 403, None, None);
    }
    if req.url() != "/" {
        return reply(req, 404, None, None);
    }
    if *req.method() != tiny_http::Method::Post {
        let resp = tiny_http::Response::from_string("JSONRPC server handles only POST requests").with_status_code(405);
        let _ = req.respond(resp);
        return;
    }
    let auth_header = tiny_http::Header::from_bytes("WWW-Authenticate", "Basic realm=\"jsonrpc\"").ok();
    let authorization = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
    let Some(authorization) = authorization else { return reply(req, 401, None, auth_header) };
    if !shared.credentials.check(&authorization) {
        warn!("ThreadRPCServer incorrect password attempt from {}", peer.map_or_else(|| "?".into(), |p| p.to_string()));
        std::thread::sleep(AUTH_FAIL_DELAY);
        return reply(req, 401, None, auth_header);
    }
    let mut body = Vec::new();
    if req.as_reader().take(MAX_BODY + 1).read_to_end(&mut body).is_err() {
        return reply(req, 400, None, None);
    }
    if body.len() as u64 > MAX_BODY {
        return reply(req, 413, None, None);
    }
    let ctx = &shared.ctx;
    let out = jsonrpc::handle(&body, &mut |call| {
        debug!(target: "rpc", "ThreadRPCServer method={}", call.method.escape_debug());
        methods::execute(ctx, &call.method, &call.params)
    });
    reply(req, out.status, out.body, None);
    if ctx.stop_requested.load(Ordering::Acquire) {
        (shared.on_stop)();
    }
}
