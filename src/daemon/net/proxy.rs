//! Outbound connections through a SOCKS5 proxy (Core's `-proxy`, `-onion` and
//! `-proxyrandomize`): which proxy a destination goes through, and the proxy handshake run on
//! the socket handler's non-blocking socket, a step per readiness event (never a blocking call).
//! The handshake's rules are [`crate::base::socks5`]'s; this only moves its bytes.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;

use crate::base::socks5::{Credentials, IsolationCredentials, Progress, Socks5};

/// Core's `g_socks5_recv_timeout`: how long the proxy may take to connect us once the TCP
/// connection to it is open (Tor often needs many seconds to reach an onion service).
pub const SOCKS5_TIMEOUT: Duration = Duration::from_secs(20);

/// The proxies the user set (plain data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `--proxy`: every outbound connection goes through it.
    pub proxy: Option<SocketAddr>,
    /// `--onion`: connections to onion services go through it (the `--proxy` otherwise).
    pub onion: Option<SocketAddr>,
    /// `--proxyrandomize`: new credentials for every connection, so Tor isolates streams.
    pub randomize: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig { proxy: None, onion: None, randomize: true }
    }
}

impl ProxyConfig {
    /// The proxy for connections to IP addresses, if any.
    pub fn for_ip(&self) -> Option<SocketAddr> {
        self.proxy
    }

    /// The proxy for connections to onion services, if any (`--onion`, else `--proxy`).
    pub fn for_onion(&self) -> Option<SocketAddr> {
        self.onion.or(self.proxy)
    }
}

/// Credentials for the next proxied connection (none unless `--proxyrandomize`).
#[derive(Debug)]
pub struct CredentialSource {
    isolation: Option<IsolationCredentials>,
}

impl CredentialSource {
    /// Random per-run credentials when `randomize`.
    pub fn new(randomize: bool) -> Self {
        CredentialSource { isolation: randomize.then(|| IsolationCredentials::new(rand::random())) }
    }

    /// The next connection's credentials.
    pub fn next_credentials(&mut self) -> Option<Credentials> {
        self.isolation.as_mut().map(IsolationCredentials::next_credentials)
    }
}

/// What a step of the proxy handshake came to.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyStep {
    /// Waiting for the proxy.
    Pending,
    /// The proxy connected us to the destination: the socket is the peer's from now on.
    Connected,
    /// The proxy could not or would not connect us (the reason in words).
    Failed(String),
}

/// An outbound connection going through a proxy: to the proxy first, then its handshake.
#[derive(Debug)]
pub struct ProxiedDial {
    /// The proxy's address (what the TCP connection goes to).
    pub proxy: SocketAddr,
    /// The destination as the proxy gets it: a host name, an onion address or an IP literal.
    pub dest: String,
    /// The destination port.
    pub port: u16,
    hs: Option<Socks5>,
}

impl ProxiedDial {
    /// A dial to `dest`:`port` through `proxy`.
    pub fn new(proxy: SocketAddr, dest: String, port: u16) -> Self {
        ProxiedDial { proxy, dest, port, hs: None }
    }

    /// The destination as logs show it.
    pub fn label(&self) -> String {
        format!("{}:{} via proxy {}", self.dest, self.port, self.proxy)
    }

    /// The TCP connection to the proxy is open: sends the method selection.
    pub fn start(&mut self, stream: &TcpStream, auth: Option<&Credentials>) -> ProxyStep {
        match Socks5::start(&self.dest, self.port, auth) {
            Ok((hs, greeting)) => {
                self.hs = Some(hs);
                write_small(stream, &greeting)
            }
            Err(e) => ProxyStep::Failed(e.to_string()),
        }
    }

    /// The socket is readable: takes the proxy's answers (no more than each one's length, so
    /// nothing of the destination's is read here) and sends what they call for.
    pub fn on_readable(&mut self, stream: &TcpStream) -> ProxyStep {
        let Some(hs) = self.hs.as_mut() else { return ProxyStep::Failed("proxy handshake not started".into()) };
        let mut buf = [0u8; 512];
        loop {
            let want = hs.wanted().clamp(1, buf.len());
            let n = match (&*stream).read(&mut buf[..want]) {
                Ok(0) => return ProxyStep::Failed("proxy closed the connection".into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ProxyStep::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return ProxyStep::Failed(format!("reading from proxy: {e}")),
            };
            let mut out = Vec::new();
            match hs.receive(&buf[..n], &mut out) {
                Ok(Progress::NeedMore) => {
                    if !out.is_empty() {
                        if let step @ ProxyStep::Failed(_) = write_small(stream, &out) {
                            return step;
                        }
                    }
                }
                Ok(Progress::Connected { .. }) => return ProxyStep::Connected,
                Err(e) => return ProxyStep::Failed(e.to_string()),
            }
        }
    }
}

/// Writes a handshake message (a few hundred bytes at most) to a socket whose send buffer is
/// empty: all of it goes, or the connection is given up.
fn write_small(stream: &TcpStream, bytes: &[u8]) -> ProxyStep {
    loop {
        match (&*stream).write(bytes) {
            Ok(n) if n == bytes.len() => return ProxyStep::Pending,
            Ok(n) => return ProxyStep::Failed(format!("proxy took {n} of {} handshake bytes", bytes.len())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return ProxyStep::Failed(format!("writing to proxy: {e}")),
        }
    }
}
