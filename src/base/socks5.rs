//! The client side of a SOCKS5 proxy handshake (RFC 1928, with RFC 1929 username/password), as
//! Core's `Socks5()`, I/O-free: it says what to send and takes what the proxy answered, in any
//! split, until the proxy has connected us to the destination or refused. The destination
//! always goes to the proxy as a name (`DOMAINNAME`, an IP literal as its text), so no name is
//! ever looked up outside the proxy. Also the stream-isolation credentials Core gives Tor
//! (`-proxyrandomize`): a random per-run prefix and a counter, one pair per connection.

/// SOCKS protocol version 5.
const VERSION: u8 = 0x05;
/// Method: no authentication.
const NO_AUTH: u8 = 0x00;
/// Method: username and password (RFC 1929).
const USER_PASS: u8 = 0x02;
/// The username/password sub-negotiation's version.
const AUTH_VERSION: u8 = 0x01;
/// Command: connect.
const CONNECT: u8 = 0x01;
/// Address types.
const ATYP_IPV4: u8 = 0x01;
const ATYP_NAME: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;
/// The longest reply: header (4), name length (1), name (255), port (2).
const MAX_REPLY: usize = 4 + 1 + 255 + 2;

/// Username and password for the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Username (at most 255 bytes).
    pub username: String,
    /// Password (at most 255 bytes).
    pub password: String,
}

/// Core's `TorStreamIsolationCredentialsGenerator`: a different username and password for every
/// connection, so Tor puts each on a circuit of its own; the random prefix keeps two runs (or
/// two nodes) from sharing circuits.
#[derive(Clone, Debug)]
pub struct IsolationCredentials {
    prefix: String,
    counter: u64,
}

impl IsolationCredentials {
    /// A generator whose prefix is these 8 random bytes, in hex.
    pub fn new(random: [u8; 8]) -> Self {
        let mut prefix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        prefix.push('-');
        IsolationCredentials { prefix, counter: 0 }
    }

    /// The next connection's credentials (username and password the same, as Core).
    pub fn next_credentials(&mut self) -> Credentials {
        let name = format!("{}{}", self.prefix, self.counter);
        self.counter = self.counter.wrapping_add(1);
        Credentials { username: name.clone(), password: name }
    }
}

/// Why a SOCKS5 handshake failed; the text is what the log says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Socks5Error {
    /// The destination name is longer than SOCKS5's 255 bytes.
    #[error("destination name longer than 255 bytes")]
    NameTooLong,
    /// The username or password is longer than RFC 1929's 255 bytes.
    #[error("proxy username or password longer than 255 bytes")]
    CredentialsTooLong,
    /// The proxy's first answer is not SOCKS5.
    #[error("proxy failed to initialize (not a SOCKS5 proxy)")]
    NotSocks5,
    /// The proxy chose an authentication method we did not offer.
    #[error("proxy requested wrong authentication method {0:02x}")]
    AuthMethod(u8),
    /// The proxy refused our username and password.
    #[error("proxy authentication unsuccessful")]
    AuthFailed,
    /// The proxy could not connect us; the code in words, as Core's `Socks5ErrorString`.
    #[error("proxy could not connect: {}", reply_words(*.0))]
    Refused(u8),
    /// The proxy's answer to our connect request breaks the protocol.
    #[error("malformed proxy response")]
    Malformed,
}

/// A reply code in words (RFC 1928 and Tor's onion-service extensions).
pub fn reply_words(code: u8) -> String {
    let words = match code {
        0x01 => "general failure",
        0x02 => "connection not allowed",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "protocol error",
        0x08 => "address type not supported",
        0xf0 => "onion service descriptor can not be found",
        0xf1 => "onion service descriptor is invalid",
        0xf2 => "onion service introduction failed",
        0xf3 => "onion service rendezvous failed",
        0xf4 => "onion service missing client authorization",
        0xf5 => "onion service wrong client authorization",
        0xf6 => "onion service invalid address",
        0xf7 => "onion service introduction timed out",
        _ => return format!("unknown (0x{code:02x})"),
    };
    words.to_string()
}

/// Which answer of the proxy is awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaiting {
    /// The chosen method (2 bytes).
    Method,
    /// The username/password verdict (2 bytes).
    Auth,
    /// The reply to the connect request (4 bytes, the bound address, 2 bytes of port).
    Reply,
    /// Connected: what follows is the destination's.
    Done,
}

/// What [`Socks5::receive`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More of the proxy's answer is needed (send what was appended to `out` first).
    NeedMore,
    /// The proxy connected us; the first `used` bytes of this input were its, the rest is
    /// already the destination's.
    Connected {
        /// Bytes of the input that belonged to the handshake.
        used: usize,
    },
}

/// One connection's SOCKS5 handshake.
#[derive(Debug)]
pub struct Socks5 {
    request: Vec<u8>,
    auth: Option<Vec<u8>>,
    awaiting: Awaiting,
    got: Vec<u8>,
}

impl Socks5 {
    /// A handshake asking the proxy to connect to `dest` (a host name, an onion address or an IP
    /// literal), port `port`, offering `auth` when given. Returns it with the bytes to send first
    /// (the method selection).
    pub fn start(dest: &str, port: u16, auth: Option<&Credentials>) -> Result<(Socks5, Vec<u8>), Socks5Error> {
        let name = dest.as_bytes();
        let name_len = u8::try_from(name.len()).map_err(|_| Socks5Error::NameTooLong)?;
        let mut request = vec![VERSION, CONNECT, 0x00, ATYP_NAME, name_len];
        request.extend_from_slice(name);
        request.extend_from_slice(&port.to_be_bytes());
        let auth = match auth {
            Some(c) => {
                let user = u8::try_from(c.username.len()).map_err(|_| Socks5Error::CredentialsTooLong)?;
                let pass = u8::try_from(c.password.len()).map_err(|_| Socks5Error::CredentialsTooLong)?;
                let mut a = vec![AUTH_VERSION, user];
                a.extend_from_slice(c.username.as_bytes());
                a.push(pass);
                a.extend_from_slice(c.password.as_bytes());
                Some(a)
            }
            None => None,
        };
        let greeting = if auth.is_some() { vec![VERSION, 2, NO_AUTH, USER_PASS] } else { vec![VERSION, 1, NO_AUTH] };
        Ok((Socks5 { request, auth, awaiting: Awaiting::Method, got: Vec::new() }, greeting))
    }

    /// Whether the proxy has connected us.
    pub fn is_connected(&self) -> bool {
        self.awaiting == Awaiting::Done
    }

    /// How many more bytes of the proxy's answer this handshake can use now (0 once connected):
    /// reading no more than this leaves the destination's first bytes in the socket.
    pub fn wanted(&self) -> usize {
        self.needed().map_or(1, |n| n.saturating_sub(self.got.len()))
    }

    /// How many bytes the answer awaited has in all, as far as its bytes so far tell.
    fn needed(&self) -> Result<usize, Socks5Error> {
        Ok(match self.awaiting {
            Awaiting::Method | Awaiting::Auth => 2,
            Awaiting::Done => 0,
            Awaiting::Reply => match (self.got.get(3), self.got.get(4)) {
                (None, _) => 4,
                (Some(&ATYP_IPV4), _) => 4 + 4 + 2,
                (Some(&ATYP_IPV6), _) => 4 + 16 + 2,
                (Some(&ATYP_NAME), None) => 5,
                (Some(&ATYP_NAME), Some(&n)) => 5 + usize::from(n) + 2,
                (Some(_), _) => return Err(Socks5Error::Malformed),
            },
        })
    }

    /// Takes the proxy's bytes; appends to `out` what to send next.
    pub fn receive(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, Socks5Error> {
        let mut used = 0;
        while self.awaiting != Awaiting::Done {
            let need = self.needed()?.min(MAX_REPLY);
            if self.got.len() < need {
                let take = (need - self.got.len()).min(input.len() - used);
                if take == 0 {
                    return Ok(Progress::NeedMore);
                }
                self.got.extend_from_slice(&input[used..used + take]);
                used += take;
                if self.got.len() < need {
                    return Ok(Progress::NeedMore);
                }
            }
            self.step(out)?;
        }
        Ok(Progress::Connected { used })
    }

    /// The bytes of one answer (or of the reply's fixed head) are in: act on them.
    fn step(&mut self, out: &mut Vec<u8>) -> Result<(), Socks5Error> {
        match self.awaiting {
            Awaiting::Method => {
                let (ver, method) = (self.got[0], self.got[1]);
                if ver != VERSION {
                    return Err(Socks5Error::NotSocks5);
                }
                match (method, &self.auth) {
                    (USER_PASS, Some(auth)) => {
                        out.extend_from_slice(auth);
                        self.awaiting = Awaiting::Auth;
                    }
                    (NO_AUTH, _) => {
                        out.extend_from_slice(&self.request);
                        self.awaiting = Awaiting::Reply;
                    }
                    (m, _) => return Err(Socks5Error::AuthMethod(m)),
                }
                self.got.clear();
            }
            Awaiting::Auth => {
                if self.got[..] != [AUTH_VERSION, 0x00] {
                    return Err(Socks5Error::AuthFailed);
                }
                out.extend_from_slice(&self.request);
                self.awaiting = Awaiting::Reply;
                self.got.clear();
            }
            Awaiting::Reply if self.got.len() == 4 => {
                // The head: version, reply code, reserved, address type.
                if self.got[0] != VERSION {
                    return Err(Socks5Error::Malformed);
                }
                if self.got[1] != 0x00 {
                    return Err(Socks5Error::Refused(self.got[1]));
                }
                if self.got[2] != 0x00 {
                    return Err(Socks5Error::Malformed);
                }
                self.needed()?;
            }
            Awaiting::Reply => {
                if self.got.len() == self.needed()? {
                    self.awaiting = Awaiting::Done;
                    self.got = Vec::new();
                }
            }
            Awaiting::Done => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
