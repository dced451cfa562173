//! Outbound connects of the socket handler: the non-blocking TCP connect, the SOCKS5 proxy
//! handshake when a proxy is set ([`super::super::proxy`]), the connect timeout, and the moment
//! the connection becomes a peer.

use super::*;

impl SocketHandler {
    /// Opens an outbound connection to `addr`, or to `name` through the proxy for it (an onion
    /// address through the onion proxy, a host name through `--proxy`; names are never looked
    /// up here, and without a proxy for one there is nothing to dial).
    pub(super) fn connect(
        &mut self,
        addr: SocketAddr,
        name: Option<String>,
        conn_type: ConnectionType,
        target: Option<usize>,
        v2: bool,
    ) {
        let onion = name.as_deref().is_some_and(|n| n.ends_with(".onion"));
        let proxy = if onion { self.cfg.proxy.for_onion() } else { self.cfg.proxy.for_ip() };
        if let (Some(n), None) = (&name, proxy) {
            let why = format!("no proxy to reach {n} through");
            debug!(target: "net", "not connecting: {why}");
            self.connect_failed(target, addr, conn_type, why);
            return;
        }
        let refusal = if !self.network_active.load(Ordering::Acquire) {
            Some("network activity disabled")
        } else if self.banman.is_banned(addr.ip(), unix_now()) {
            Some("address banned")
        } else {
            None
        };
        if let Some(why) = refusal {
            debug!(target: "net", "not connecting to {}: {why}", if self.cfg.log_ips { addr.to_string() } else { "peer".into() });
            self.connect_failed(target, addr, conn_type, why.to_string());
            return;
        }
        // Through the proxy when one is set: the destination goes to it as text, never looked up.
        let dest = name.clone().unwrap_or_else(|| addr.ip().to_string());
        let proxied = proxy.map(|p| Box::new(ProxiedDial::new(p, dest, addr.port())));
        let stream = match TcpStream::connect(proxied.as_ref().map_or(addr, |p| p.proxy)) {
            Ok(s) => s,
            Err(e) => {
                debug!(target: "net", "connect to {} failed: {e}", if self.cfg.log_ips { addr.to_string() } else { "peer".into() });
                self.connect_failed(target, addr, conn_type, e.to_string());
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let queues = self.new_queues(stream);
        let id = queues.id;
        let fd = queues.stream().as_raw_fd();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut SourceFd(&fd), Token(id as usize), interest) {
            queues.close();
            self.connect_failed(target, addr, conn_type, e.to_string());
            return;
        }
        let shown = match &name {
            Some(n) if self.cfg.log_ips => format!("peer={id}, peeraddr={n}:{}", addr.port()),
            _ => self.peer_label(id, &addr),
        };
        debug!(target: "net", "trying connection {shown} ({conn_type})");
        let deadline = crate::base::time::instant_after(Instant::now(), self.cfg.connect_timeout);
        self.connecting.insert(id, deadline);
        let permissions = permissions_for(&self.cfg.whitelist, addr.ip(), false);
        let mut who = self.identity(id, addr, None, conn_type, permissions);
        who.name = name;
        if onion {
            who.net = NetKind::Onion;
        }
        let who = Arc::new(who);
        self.conns.insert(
            id,
            Connection {
                queues,
                transport: ConnTransport::v1(self.cfg.magic),
                dial_v2: v2,
                proxied,
                who,
                target,
                state: ConnState::Connecting,
                write_registered: true,
                read_pending: false,
            },
        );
    }

    /// Reports a failed dial: to the dialer for its targets, to the message handler (which
    /// planned it) for automatic connections.
    pub(super) fn connect_failed(
        &mut self,
        target: Option<usize>,
        addr: SocketAddr,
        conn_type: ConnectionType,
        error: String,
    ) {
        if target.is_none() && !matches!(conn_type, ConnectionType::Manual | ConnectionType::Inbound) {
            self.events.push(NetEvent::ConnectFailed { addr, conn_type });
        }
        self.tell_dialer(target, |target| DialerEvent::Failed { target, error });
    }

    pub(super) fn finish_connect(&mut self, id: PeerId) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        let stream = conn.queues.stream();
        let result = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => stream.peer_addr().map(|_| ()),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // spurious wake-up
            Err(e) => {
                let error = match &conn.proxied {
                    Some(p) => format!("cannot connect to proxy {}: {e}", p.proxy),
                    None => e.to_string(),
                };
                return self.give_up_connect(id, error);
            }
        }
        if let Some(p) = conn.proxied.as_mut() {
            let auth = self.credentials.next_credentials();
            debug!(target: "net", "SOCKS5 connecting {}", if self.cfg.log_ips { p.label() } else { "peer".into() });
            let step = p.start(conn.queues.stream(), auth.as_ref());
            conn.state = ConnState::Proxy;
            let fd = conn.queues.stream().as_raw_fd();
            let _ = self.poll.registry().reregister(&mut SourceFd(&fd), Token(id as usize), Interest::READABLE);
            conn.write_registered = false;
            let deadline = crate::base::time::instant_after(Instant::now(), SOCKS5_TIMEOUT);
            self.connecting.insert(id, deadline);
            return self.proxy_step(id, step);
        }
        self.opened(id);
    }

    /// The proxy's socket is readable: the next step of its handshake.
    pub(super) fn proxy_readable(&mut self, id: PeerId) {
        let Some(p) = self.conns.get_mut(&id).and_then(|c| c.proxied.as_mut().map(|p| (p, c.queues.clone()))) else {
            return;
        };
        let step = p.0.on_readable(p.1.stream());
        self.proxy_step(id, step);
    }

    pub(super) fn proxy_step(&mut self, id: PeerId, step: ProxyStep) {
        match step {
            ProxyStep::Pending => {}
            ProxyStep::Connected => {
                if let Some(p) = self.conns.get_mut(&id).and_then(|c| c.proxied.take()) {
                    debug!(target: "net", "SOCKS5 connected {}", if self.cfg.log_ips { p.label() } else { "peer".into() });
                }
                self.opened(id);
            }
            ProxyStep::Failed(why) => {
                let label = self.conns.get(&id).and_then(|c| c.proxied.as_ref()).map(|p| p.label());
                let label = if self.cfg.log_ips { label.unwrap_or_default() } else { "peer".into() };
                info!("Socks5() connect to {label} failed: {why}");
                self.give_up_connect(id, format!("proxy: {why}"));
            }
        }
    }

    /// An outbound connection that will not become a peer.
    pub(super) fn give_up_connect(&mut self, id: PeerId, error: String) {
        let Some((target, addr, conn_type)) = self.conns.get(&id).map(|c| (c.target, c.who.addr, c.who.conn_type))
        else {
            return;
        };
        debug!(target: "net", "connect to {} failed: {error}", if self.cfg.log_ips { addr.to_string() } else { "peer".into() });
        let reason = DisconnectReason::ConnectFailed(error);
        self.drop_conn(id);
        self.connect_failed(target, addr, conn_type, reason.to_string());
    }

    /// The connection is open to the peer (directly, or through the proxy): it becomes a peer.
    pub(super) fn opened(&mut self, id: PeerId) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.state = ConnState::Open;
        conn.write_registered = false;
        self.connecting.remove(&id);
        let fd = conn.queues.stream().as_raw_fd();
        let _ = self.poll.registry().reregister(&mut SourceFd(&fd), Token(id as usize), Interest::READABLE);
        let local_addr = conn.queues.stream().local_addr().ok();
        // The connection is a peer from now on: its identity, complete, made once.
        let pending = &conn.who;
        let who = PeerIdentity { local_addr, connected_at: Instant::now(), ..PeerIdentity::clone(pending) };
        let who = Arc::new(who);
        conn.who = who.clone();
        let (queues, target) = (conn.queues.clone(), conn.target);
        if conn.dial_v2 {
            match ConnTransport::outbound_v2(self.cfg.magic, &queues) {
                Ok(t) => conn.transport = t,
                Err(e) => warn!(target: "net", "cannot start a v2 handshake ({e}); speaking v1 to peer={id}"),
            }
            set_transport_stats(&queues, &conn.transport);
        }
        debug!(target: "net", "connection to {} opened, transport {}", who.label(self.cfg.log_ips), conn.transport.kind().name());
        self.tell_dialer(target, |target| DialerEvent::Connected { target, id });
        self.events.push(NetEvent::Connected(Box::new(NewPeer { queues, who })));
        self.write(id);
    }

    pub(super) fn expire_connects(&mut self) {
        if self.connecting.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<PeerId> = self.connecting.iter().filter(|&(_, &d)| d <= now).map(|(&id, _)| id).collect();
        for id in expired {
            let in_proxy = self.conns.get(&id).is_some_and(|c| matches!(c.state, ConnState::Proxy));
            let error = if in_proxy { "proxy: no answer in time" } else { "connection timeout" };
            self.give_up_connect(id, error.into());
        }
    }

    /// Removes a connection that never became a peer (no event for the message handler).
    pub(super) fn drop_conn(&mut self, id: PeerId) {
        self.connecting.remove(&id);
        if let Some(conn) = self.conns.remove(&id) {
            let fd = conn.queues.stream().as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            conn.queues.close();
        }
    }
}
