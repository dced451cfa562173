//! A small SOCKS5 proxy for the tests (RFC 1928 CONNECT, RFC 1929 username/password), on
//! loopback: it records every request, reaches only loopback addresses and the names the test
//! maps to them (never a DNS lookup), answers the others "host unreachable", and relays bytes
//! both ways. Stopped (and its accept thread joined) when dropped; relays end with their
//! connections.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One CONNECT request the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The methods the client offered.
    pub methods: Vec<u8>,
    /// Username and password, when the client authenticated.
    pub auth: Option<(String, String)>,
    /// Address type of the request: 1 IPv4, 3 domain name, 4 IPv6.
    pub atyp: u8,
    /// The destination as text (a name as sent, or the IP).
    pub dest: String,
    /// The destination port.
    pub port: u16,
}

/// The proxy.
pub struct Socks5Server {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<ProxyRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Socks5Server {
    /// Starts a proxy that resolves `names` (name → address) and reaches loopback IPs.
    pub fn start(names: &[(&str, SocketAddr)]) -> Socks5Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy address");
        let names: HashMap<String, SocketAddr> = names.iter().map(|(n, a)| (n.to_string(), *a)).collect();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (names, reqs) = (names.clone(), reqs.clone());
                        std::thread::spawn(move || serve(client, &names, &reqs));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Socks5Server { addr, requests, stop, thread: Some(thread) }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Socks5Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).ok()?;
    Some(b)
}

/// One client: the handshake, then the relay.
fn serve(mut client: TcpStream, names: &HashMap<String, SocketAddr>, reqs: &Mutex<Vec<ProxyRequest>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(head) = read_n(&mut client, 2) else { return };
    if head[0] != 5 {
        return;
    }
    let Some(methods) = read_n(&mut client, usize::from(head[1])) else { return };
    let mut auth = None;
    if methods.contains(&2) {
        let _ = client.write_all(&[5, 2]);
        let Some(v) = read_n(&mut client, 2) else { return };
        let Some(user) = read_n(&mut client, usize::from(v[1])) else { return };
        let Some(plen) = read_n(&mut client, 1) else { return };
        let Some(pass) = read_n(&mut client, usize::from(plen[0])) else { return };
        auth = Some((String::from_utf8_lossy(&user).into_owned(), String::from_utf8_lossy(&pass).into_owned()));
        let _ = client.write_all(&[1, 0]);
    } else if methods.contains(&0) {
        let _ = client.write_all(&[5, 0]);
    } else {
        let _ = client.write_all(&[5, 0xff]);
        return;
    }
    let Some(req) = read_n(&mut client, 4) else { return };
    let dest = match req[3] {
        1 => read_n(&mut client, 4).map(|b| IpAddr::from([b[0], b[1], b[2], b[3]]).to_string()),
        4 => read_n(&mut client, 16).map(|b| {
            let a: [u8; 16] = b.try_into().unwrap_or([0; 16]);
            IpAddr::from(a).to_string()
        }),
        3 => read_n(&mut client, 1)
            .and_then(|n| read_n(&mut client, usize::from(n[0])))
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    };
    let (Some(dest), Some(port)) = (dest, read_n(&mut client, 2)) else { return };
    let port = u16::from_be_bytes([port[0], port[1]]);
    if let Ok(mut r) = reqs.lock() {
        r.push(ProxyRequest { methods, auth, atyp: req[3], dest: dest.clone(), port });
    }
    let target = names
        .get(&dest)
        .copied()
        .or_else(|| dest.parse::<IpAddr>().ok().filter(|ip| ip.is_loopback()).map(|ip| SocketAddr::new(ip, port)));
    let Some(target) = target else {
        let _ = client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
        return;
    };
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        let _ = client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
        return;
    };
    let _ = client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
    let _ = client.set_read_timeout(None);
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else { return };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Both);
    });
    let (mut s3, mut c3) = (server, client);
    let _ = std::io::copy(&mut s3, &mut c3);
    let _ = c3.shutdown(Shutdown::Both);
    let _ = up.join();
}
