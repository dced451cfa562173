//! Binding the listening sockets (Core's `BindListenPort`): dual-stack by default
//! (`0.0.0.0` and `[::]` with `IPV6_V6ONLY`), or the `--bind` addresses.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

/// Listen backlog (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 4096;

/// Binding failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A specific address could not be bound.
    #[error("unable to bind to {addr} on this computer ({source}); btcloopd is probably already running")]
    Address {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Binds one non-blocking listener.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let err = |source| BindError::Address { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(BACKLOG).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Binds the explicit addresses (each must succeed) or, with none, both wildcard addresses on
/// `port` (one of them suffices, as in Core).
pub fn bind_all(explicit: &[SocketAddr], port: u16) -> Result<Vec<TcpListener>, BindError> {
    if !explicit.is_empty() {
        return explicit.iter().map(|&a| bind(a)).collect();
    }
    let v6 = bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    let v4 = bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    match (v4, v6) {
        (Err(e), Err(_)) => Err(e),
        (v4, v6) => Ok(v4.into_iter().chain(v6).collect()),
    }
}
