//! The Tor control protocol's client side for one job, creating our onion service, as Core's
//! `TorController`, I/O-free: it parses the control port's replies from any split of the bytes,
//! picks the authentication Core would (a `--torpassword` with `HASHEDPASSWORD`, else `NULL`,
//! else `SAFECOOKIE` with the cookie file the caller reads for it, the server's hash checked),
//! then asks `ADD_ONION` for an ED25519-V3 service on our port (with the key saved from last
//! time, so the address stays the same) and hands back the service id and the key to keep.

use std::collections::BTreeMap;

use super::hash::hmac_sha256;

/// Core's `DEFAULT_TOR_CONTROL_PORT`.
pub const DEFAULT_TOR_CONTROL_PORT: u16 = 9051;
/// The cookie's size (Tor's control spec).
pub const COOKIE_LEN: usize = 32;
/// Longest reply kept (lines and data); a control port sending more is cut off.
const MAX_REPLY: usize = 64 * 1024;
const SERVER_KEY: &[u8] = b"Tor safe cookie authentication server-to-controller hash";
const CLIENT_KEY: &[u8] = b"Tor safe cookie authentication controller-to-server hash";

/// One reply: its status code and its lines (without code and separator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status code (250 OK, 510 unrecognized, 512 syntax error, 515 bad authentication…).
    pub code: u16,
    /// The lines, in order; the data of a `250+` line follows it, one entry per data line.
    pub lines: Vec<String>,
}

/// Why talking to the control port failed; the text is what the log says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TorError {
    /// A reply line that is not `CODE[ -+]TEXT`.
    #[error("malformed reply line from the control port: {0:?}")]
    Malformed(String),
    /// A reply longer than the limit.
    #[error("reply from the control port longer than {MAX_REPLY} bytes")]
    TooLong,
    /// `PROTOCOLINFO` failed.
    #[error("requesting protocol info failed (code {0})")]
    ProtocolInfo(u16),
    /// No authentication method we can use.
    #[error("{0}")]
    NoAuth(String),
    /// The cookie file is not 32 bytes.
    #[error("authentication cookie {0} is not exactly 32 bytes, as is required by the spec")]
    BadCookie(String),
    /// `AUTHCHALLENGE`'s answer did not prove the server knows the cookie.
    #[error("SAFECOOKIE authentication challenge failed: {0}")]
    Challenge(String),
    /// `AUTHENTICATE` was refused.
    #[error("authentication failed (code {0})")]
    AuthFailed(u16),
    /// `ADD_ONION` was refused.
    #[error("add onion failed; error code {0}")]
    AddOnion(u16),
    /// `ADD_ONION` succeeded without a service id.
    #[error("error parsing ADD_ONION parameters: {0:?}")]
    NoServiceId(Vec<String>),
}

/// Collects replies from the control port's bytes.
#[derive(Debug, Default)]
pub struct ReplyReader {
    line: Vec<u8>,
    lines: Vec<String>,
    size: usize,
    in_data: bool,
}

impl ReplyReader {
    /// Feeds received bytes; every complete reply goes to `on_reply`.
    pub fn feed(&mut self, input: &[u8], mut on_reply: impl FnMut(Reply)) -> Result<(), TorError> {
        for &b in input {
            if b != b'\n' {
                self.line.push(b);
                self.size += 1;
                if self.size > MAX_REPLY {
                    return Err(TorError::TooLong);
                }
                continue;
            }
            let mut line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if line.ends_with('\r') {
                line.pop();
            }
            if self.in_data {
                if line == "." {
                    self.in_data = false;
                } else {
                    self.lines.push(line.strip_prefix('.').map_or(line.clone(), str::to_string));
                }
                continue;
            }
            let (Some(code), Some(sep)) = (line.get(..3).and_then(|c| c.parse::<u16>().ok()), line.get(3..4)) else {
                return Err(TorError::Malformed(line));
            };
            self.lines.push(line.get(4..).unwrap_or("").to_string());
            match sep {
                " " => {
                    self.size = 0;
                    on_reply(Reply { code, lines: std::mem::take(&mut self.lines) });
                }
                "-" => {}
                "+" => self.in_data = true,
                _ => return Err(TorError::Malformed(line)),
            }
        }
        Ok(())
    }
}

/// Splits `KEY=VALUE KEY="quoted value"` into a map, as Core's `ParseTorReplyMapping` (quoted
/// values unescaped); a word without `=` ends the mapping.
pub fn parse_mapping(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = &rest[..eq];
        if key.contains(' ') {
            break;
        }
        rest = &rest[eq + 1..];
        let value = if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, 't')) => v.push('\t'),
                        Some((_, 'r')) => v.push('\r'),
                        Some((_, e)) => v.push(e),
                        None => {}
                    },
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            rest = q.get(end..).unwrap_or("");
            v
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let v = rest[..end].to_string();
            rest = &rest[end..];
            v
        };
        out.insert(key.to_string(), value);
        rest = rest.trim_start();
    }
    out
}

/// What the caller must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TorStep {
    /// Send this command line (ends in CRLF).
    Send(String),
    /// Read this cookie file and give its bytes to [`TorSession::cookie`].
    ReadCookie(String),
    /// The onion service exists: keep the connection open (Tor removes the service when it
    /// closes), advertise `<service_id>.onion`, and save `private_key` for next time.
    Ready {
        /// The service id (the onion address without `.onion`).
        service_id: String,
        /// The key to give `ADD_ONION` next time (`ED25519-V3:...`).
        private_key: String,
    },
    /// Nothing to do until the next reply.
    Wait,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    ProtocolInfo,
    Cookie,
    Challenge,
    Authenticate,
    AddOnion { pow: bool },
    Done,
}

/// One control-port session's way to an onion service.
#[derive(Debug)]
pub struct TorSession {
    password: Option<String>,
    private_key: Option<String>,
    virtual_port: u16,
    target: String,
    client_nonce: [u8; 32],
    cookie: Vec<u8>,
    stage: Stage,
}

impl TorSession {
    /// A session creating a service on `virtual_port` (the network's default port, as Core,
    /// whatever ours is) that forwards to `target` (`IP:PORT`), with the key saved last time if
    /// any; `client_nonce` must be random. Returns it with the first command.
    pub fn start(
        password: Option<String>,
        private_key: Option<String>,
        virtual_port: u16,
        target: String,
        client_nonce: [u8; 32],
    ) -> (TorSession, TorStep) {
        let s = TorSession {
            password,
            private_key,
            virtual_port,
            target,
            client_nonce,
            cookie: Vec::new(),
            stage: Stage::ProtocolInfo,
        };
        (s, TorStep::Send("PROTOCOLINFO 1\r\n".into()))
    }

    fn add_onion(&mut self, pow: bool) -> TorStep {
        self.stage = Stage::AddOnion { pow };
        let key = self.private_key.clone().unwrap_or_else(|| "NEW:ED25519-V3".into());
        let pow = if pow { " PoWDefensesEnabled=1" } else { "" };
        TorStep::Send(format!("ADD_ONION {key}{pow} Port={},{}\r\n", self.virtual_port, self.target))
    }

    /// The cookie file's bytes (after [`TorStep::ReadCookie`]).
    pub fn cookie(&mut self, path: &str, bytes: Vec<u8>) -> Result<TorStep, TorError> {
        if self.stage != Stage::Cookie || bytes.len() != COOKIE_LEN {
            return Err(TorError::BadCookie(path.to_string()));
        }
        self.cookie = bytes;
        self.stage = Stage::Challenge;
        Ok(TorStep::Send(format!("AUTHCHALLENGE SAFECOOKIE {}\r\n", hex(&self.client_nonce))))
    }

    /// A reply arrived.
    pub fn on_reply(&mut self, reply: &Reply) -> Result<TorStep, TorError> {
        match self.stage {
            Stage::ProtocolInfo => self.protocol_info(reply),
            Stage::Cookie | Stage::Done => Ok(TorStep::Wait),
            Stage::Challenge => self.challenge(reply),
            Stage::Authenticate if reply.code == 250 => Ok(self.add_onion(true)),
            Stage::Authenticate => Err(TorError::AuthFailed(reply.code)),
            Stage::AddOnion { pow } => self.added(reply, pow),
        }
    }

    fn protocol_info(&mut self, reply: &Reply) -> Result<TorStep, TorError> {
        if reply.code != 250 {
            return Err(TorError::ProtocolInfo(reply.code));
        }
        let mut methods = Vec::new();
        let mut cookie_file = None;
        for line in &reply.lines {
            if let Some(rest) = line.strip_prefix("AUTH ") {
                let m = parse_mapping(rest);
                if let Some(list) = m.get("METHODS") {
                    methods = list.split(',').map(str::to_string).collect();
                }
                cookie_file = m.get("COOKIEFILE").cloned();
            }
        }
        let has = |m: &str| methods.iter().any(|x| x == m);
        if let Some(pw) = self.password.clone() {
            if !has("HASHEDPASSWORD") {
                return Err(TorError::NoAuth(
                    "password provided with --torpassword, but HASHEDPASSWORD authentication is not available".into(),
                ));
            }
            self.stage = Stage::Authenticate;
            return Ok(TorStep::Send(format!("AUTHENTICATE \"{}\"\r\n", pw.replace('"', "\\\""))));
        }
        if has("NULL") {
            self.stage = Stage::Authenticate;
            return Ok(TorStep::Send("AUTHENTICATE\r\n".into()));
        }
        if has("SAFECOOKIE") {
            if let Some(path) = cookie_file {
                self.stage = Stage::Cookie;
                return Ok(TorStep::ReadCookie(path));
            }
        }
        Err(TorError::NoAuth(if has("HASHEDPASSWORD") {
            "the only supported authentication mechanism left is password, but no password provided with --torpassword"
                .into()
        } else {
            "no supported authentication method".into()
        }))
    }

    fn challenge(&mut self, reply: &Reply) -> Result<TorStep, TorError> {
        if reply.code != 250 {
            return Err(TorError::Challenge(format!("code {}", reply.code)));
        }
        let line = reply.lines.first().and_then(|l| l.strip_prefix("AUTHCHALLENGE ")).unwrap_or("");
        let m = parse_mapping(line);
        let server_hash = m.get("SERVERHASH").and_then(|h| unhex(h)).unwrap_or_default();
        let server_nonce = m.get("SERVERNONCE").and_then(|h| unhex(h)).unwrap_or_default();
        if server_nonce.len() != 32 {
            return Err(TorError::Challenge("ServerNonce is not 32 bytes, as required by spec".into()));
        }
        let parts: [&[u8]; 3] = [&self.cookie, &self.client_nonce, &server_nonce];
        if hmac_sha256(SERVER_KEY, &parts).as_slice() != server_hash.as_slice() {
            return Err(TorError::Challenge("ServerHash does not match the cookie".into()));
        }
        let client_hash = hmac_sha256(CLIENT_KEY, &parts);
        self.stage = Stage::Authenticate;
        Ok(TorStep::Send(format!("AUTHENTICATE {}\r\n", hex(&client_hash))))
    }

    fn added(&mut self, reply: &Reply, pow: bool) -> Result<TorStep, TorError> {
        match reply.code {
            250 => {}
            // An older Tor that does not know PoW defenses: again without, as Core.
            512 if pow => return Ok(self.add_onion(false)),
            code => return Err(TorError::AddOnion(code)),
        }
        let mut service_id = None;
        for line in &reply.lines {
            let m = parse_mapping(line);
            service_id = m.get("ServiceID").cloned().or(service_id);
            if let Some(k) = m.get("PrivateKey") {
                self.private_key = Some(k.clone());
            }
        }
        let (Some(service_id), Some(private_key)) = (service_id, self.private_key.clone()) else {
            return Err(TorError::NoServiceId(reply.lines.clone()));
        };
        self.stage = Stage::Done;
        Ok(TorStep::Ready { service_id, private_key })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests;
