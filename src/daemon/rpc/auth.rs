//! Who may call the RPC server (Core's `InitRPCAuthentication`, `RPCAuthorized` and
//! `ClientAllowed`): a random cookie written to `.cookie` (mode 0600, removed at shutdown) or
//! `--rpcuser`/`--rpcpassword`, checked from HTTP Basic credentials in constant time, and an
//! allow list of client networks (localhost plus `--rpcallowip`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngExt;

use crate::base::sys::write_atomically;
use crate::engine::policy::banman::Subnet;

/// Core's `COOKIEAUTH_USER`.
pub const COOKIE_USER: &str = "__cookie__";

/// Setting up authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The cookie file could not be written.
    #[error("unable to write RPC authentication cookie {path}: {source}")]
    Cookie {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An `--rpcallowip` value is not a subnet.
    #[error(
        "Invalid -rpcallowip subnet specification: {0}. Valid values are a single IP (e.g. 1.2.3.4), a network/netmask (e.g. 1.2.3.4/255.255.255.0), a network/CIDR (e.g. 1.2.3.4/24), all ipv4 (0.0.0.0/0), or all ipv6 (::/0)."
    )]
    AllowIp(String),
}

/// The one accepted user and password.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Fixed credentials (`--rpcuser`/`--rpcpassword`).
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials { user: user.into(), password: password.into() }
    }

    /// Whether an `Authorization` header value carries these credentials.
    pub fn check(&self, header: &str) -> bool {
        let Some(encoded) = header.strip_prefix("Basic ") else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else { return false };
        let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both compared in full, whatever the first result (Core's TimingResistantEqual).
        let user_ok = constant_time_eq(user, self.user.as_bytes());
        let pass_ok = constant_time_eq(pass, self.password.as_bytes());
        user_ok & pass_ok
    }
}

/// Equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// A generated cookie, removed from disk when dropped.
#[derive(Debug)]
pub struct Cookie {
    path: PathBuf,
    /// The credentials it holds.
    pub credentials: Credentials,
}

impl Cookie {
    /// Writes `__cookie__:<64 hex digits>` to `path` (atomically, mode 0600).
    pub fn generate(path: &Path) -> Result<Cookie, AuthError> {
        let err = |source| AuthError::Cookie { path: path.to_path_buf(), source };
        let secret: [u8; 32] = rand::rng().random();
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        write_atomically(path, format!("{COOKIE_USER}:{hex}").as_bytes()).map_err(err)?;
        Ok(Cookie { path: path.to_path_buf(), credentials: Credentials::new(COOKIE_USER, hex) })
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Cookie {
    fn drop(&mut self) {
        // Core deletes the cookie at shutdown; a file already gone is fine.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Client networks allowed to call: 127.0.0.0/8, ::1 and `--rpcallowip`.
#[derive(Clone, Debug)]
pub struct AllowList(Vec<Subnet>);

impl std::fmt::Display for AllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            write!(f, "{}{n}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

impl AllowList {
    /// Localhost plus `extra`.
    pub fn new(extra: &[String]) -> Result<AllowList, AuthError> {
        let mut nets = vec![
            Subnet::new(IpAddr::from([127, 0, 0, 0]), 8).ok_or_else(|| AuthError::AllowIp("127.0.0.0/8".into()))?,
            Subnet::host(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ];
        for s in extra {
            nets.push(s.parse().map_err(|_| AuthError::AllowIp(s.clone()))?);
        }
        Ok(AllowList(nets))
    }

    /// Whether `ip` may call.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
    }

    #[test]
    fn basic_credentials_checked() {
        let c = Credentials::new("alice", "s3cret:with:colons");
        assert!(c.check(&basic("alice:s3cret:with:colons")));
        assert!(!c.check(&basic("alice:s3cret")));
        assert!(!c.check(&basic("bob:s3cret:with:colons")));
        assert!(!c.check(&basic("alices3cret")));
        assert!(!c.check("Basic %%%"));
        assert!(!c.check("Bearer abc"));
        assert!(!Credentials::new("", "").check(&basic("x:")));
        assert!(Credentials::new("", "").check(&basic(":")));
    }

    #[test]
    fn cookie_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".cookie");
        let cookie = Cookie::generate(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let (user, pass) = text.split_once(':').unwrap();
        assert_eq!((user, pass.len()), (COOKIE_USER, 64));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(cookie.credentials.check(&basic(&text)));
        drop(cookie);
        assert!(!path.exists());
    }

    #[test]
    fn allow_list_is_localhost_plus_extra() {
        let l = AllowList::new(&["10.0.0.0/8".into()]).unwrap();
        assert!(l.allows("127.0.0.1".parse().unwrap()) && l.allows("127.9.9.9".parse().unwrap()));
        assert!(l.allows("::1".parse().unwrap()) && l.allows("10.1.2.3".parse().unwrap()));
        assert!(!l.allows("192.168.1.1".parse().unwrap()));
        assert!(AllowList::new(&["nope".into()]).unwrap_err().to_string().contains("Invalid -rpcallowip"));
    }
}
