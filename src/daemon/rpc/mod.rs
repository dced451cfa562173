//! The JSON-RPC server (Core's `httpserver` + `httprpc`): HTTP listeners on localhost (or
//! `--rpcbind` with `--rpcallowip`); clients outside the allow list are dropped at accept, and
//! a request must arrive whole within `--rpcservertimeout` ([`crate::daemon::http`]). Worker threads
//! check the credentials and run each call against an [`RpcContext`], which reaches the message
//! handler through [`crate::daemon::inspect`] (typed snapshots, rendered as JSON by
//! [`render`]) and owns nothing of the node's state itself.

pub mod auth;
pub mod block;
pub mod jsonrpc;
pub mod methods;
pub mod params;
pub mod render;
pub mod script;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tracing::{debug, info, warn};

use self::auth::{AllowList, AuthError, Cookie, Credentials};
use crate::base::totals::NetTotals;
use crate::daemon::config::Config;
use crate::daemon::http::{AllowFn, Handler, HttpRequest, HttpResponse, HttpServer, MAX_CLIENTS, ServerOptions};
use crate::daemon::inspect::{Reply, Request, RpcError};
use crate::daemon::logging::LogControl;
use crate::daemon::net::dialer::DialerCommand;
use crate::daemon::net::wake::{MsgWake, SocketControl};
use crate::daemon::validation::Queries;
use crate::engine::policy::banman::BanMan;

/// Core's delay before answering a wrong password (deters brute force).
const AUTH_FAIL_DELAY: Duration = Duration::from_millis(250);

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
    /// Questions for the validation thread (reading stored blocks for `getblock`); `None`
    /// when the node runs without one.
    pub blocks: Option<Queries>,
    /// The network (for addresses in `getblock`).
    pub network: bitcoin::Network,
    /// Whether the node speaks BIP324 v2 (`--v2transport`; `addnode`'s `v2transport`).
    pub v2transport: bool,
    /// The proxies (`getnetworkinfo`'s `networks`).
    pub proxy: crate::daemon::net::proxy::ProxyConfig,
}

impl RpcContext {
    /// Asks the message handler and waits for its answer, typed by the request:
    /// `ctx.ask(Request::PeerInfo)` is a `Vec<PeerSnapshot>`.
    pub fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, RpcError> {
        self.wake.ask(make)
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
    http: HttpServer,
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
    /// Sets up authentication, binds and starts the workers. `on_stop` is called when the
    /// `stop` method has run; shutdown then waits for its answer to be written.
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
        let mut listeners = Vec::new();
        for addr in endpoints(cfg)? {
            info!("Binding RPC on address {} port {}", addr.ip(), addr.port());
            match TcpListener::bind(addr) {
                Ok(l) => {
                    if addr.ip().is_unspecified() {
                        warn!("The RPC server is not safe to expose to untrusted networks such as the public internet");
                    }
                    listeners.push(l);
                }
                Err(e) => warn!("Binding RPC on address {addr} failed: {e}"),
            }
        }
        if listeners.is_empty() {
            return Err(RpcStartError::NoEndpoint);
        }
        debug!(target: "http", "Allowing HTTP connections from: {allow}");
        let allow: AllowFn = Arc::new(move |ip| allow.allows(ip));
        let shared = Arc::new(Shared { ctx, credentials, on_stop });
        let handler: Handler = Arc::new(move |req: &HttpRequest| serve(req, &shared));
        let opts = ServerOptions {
            workers: cfg.rpc.threads,
            timeout: cfg.rpc.server_timeout,
            max_clients: MAX_CLIENTS,
            allow: Some(allow),
        };
        let http = HttpServer::start("btcloop-http", listeners, opts, handler)?;
        for a in http.bound() {
            info!("RPC listening on {a}");
        }
        Ok(RpcServer { http, _cookie: cookie })
    }

    /// The addresses actually bound (with the real port when `--rpcport=0`).
    pub fn bound(&self) -> &[SocketAddr] {
        self.http.bound()
    }

    /// Closes every client connection, lets the workers finish the requests they have (their
    /// answers written for at most [`crate::daemon::http::STOP_GRACE`]), and removes the cookie. Never
    /// waits on a client.
    pub fn stop(self) {
        self.http.stop();
    }
}

struct Shared {
    ctx: RpcContext,
    credentials: Credentials,
    on_stop: Arc<dyn Fn() + Send + Sync>,
}

/// One HTTP request: Core's `MaybeDispatchRequestToWorker` (the allow list was checked at
/// accept) and `HTTPReq_JSONRPC`.
fn serve(req: &HttpRequest, shared: &Shared) -> HttpResponse {
    let peer = req.peer.map_or_else(|| "?".to_string(), |p| p.to_string());
    debug!(target: "http", "Received a {} request for {} from {peer}", req.method.escape_debug(), req.path.escape_debug());
    if req.path != "/" {
        return HttpResponse::empty(404);
    }
    if req.method != "POST" {
        return HttpResponse::with_body(405, "text/plain", "JSONRPC server handles only POST requests");
    }
    let unauthorized = || HttpResponse::empty(401).header("WWW-Authenticate", "Basic realm=\"jsonrpc\"");
    let Some(authorization) = req.header("Authorization") else { return unauthorized() };
    if !shared.credentials.check(authorization) {
        warn!("ThreadRPCServer incorrect password attempt from {peer}");
        std::thread::sleep(AUTH_FAIL_DELAY);
        return unauthorized();
    }
    let ctx = &shared.ctx;
    let out = jsonrpc::handle(&req.body, &mut |call| {
        debug!(target: "rpc", "ThreadRPCServer method={}", call.method.escape_debug());
        methods::execute(ctx, &call.method, &call.params)
    });
    if ctx.stop_requested.load(Ordering::Acquire) {
        (shared.on_stop)();
    }
    match out.body {
        Some(body) => HttpResponse::with_body(out.status, "application/json", body),
        None => HttpResponse::empty(out.status),
    }
}
