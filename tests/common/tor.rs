//! A real Tor (Debian's `tor`, installed by `scripts/setup --tests`) for the tests, offline:
//! `DisableNetwork 1`, no SOCKS port, its control port on a free loopback port, a temporary data
//! directory; cookie authentication, or a hashed password. Killed and its directory removed
//! when dropped. Its control port is all the tests use: `ADD_ONION` works without a network.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running Tor.
pub struct Tor {
    child: Child,
    /// Its data directory (removed when dropped).
    pub dir: TempDir,
    /// Its control port.
    pub control: SocketAddr,
}

fn tor_bin() -> PathBuf {
    ["/usr/sbin/tor", "/usr/bin/tor"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("tor is not installed: run scripts/setup --tests (as root it installs Debian's tor)")
}

impl Tor {
    /// Starts Tor with cookie authentication (`password` None) or a hashed control password.
    pub fn start(password: Option<&str>) -> Tor {
        Self::start_on(super::free_port(), password, None)
    }

    /// Starts Tor with its control port at `port`, in `dir` when given (a restart keeps it).
    pub fn start_on(port: u16, password: Option<&str>, dir: Option<TempDir>) -> Tor {
        let dir = dir.unwrap_or_else(|| tempfile::Builder::new().prefix("btcloop-tor-").tempdir().expect("tor dir"));
        let data = dir.path().join("data");
        let control = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(tor_bin());
        cmd.args(["--DataDirectory", &data.display().to_string()])
            .args(["--ControlPort", &control.to_string()])
            .args(["--DisableNetwork", "1", "--SocksPort", "0", "--RunAsDaemon", "0", "--AvoidDiskWrites", "1"])
            .args(["--Log", &format!("notice file {}", dir.path().join("tor.log").display())]);
        match password {
            Some(pw) => {
                let out = Command::new(tor_bin())
                    .args(["--quiet", "--hash-password", pw])
                    .output()
                    .expect("tor --hash-password");
                let hash = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim().to_string();
                assert!(hash.starts_with("16:"), "tor --hash-password gave {hash:?}");
                cmd.args(["--HashedControlPassword", &hash, "--CookieAuthentication", "0"]);
            }
            None => {
                cmd.args(["--CookieAuthentication", "1"]);
            }
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn tor");
        let tor = Tor { child, dir, control };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&control, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "tor's control port never opened: {}", tor.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        tor
    }

    /// Tor's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tor.log")).unwrap_or_default()
    }

    /// Stops Tor and hands back its directory (to start it again on the same port and data).
    pub fn stop(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::Builder::new().prefix("btcloop-tor-").tempdir().expect("tor dir");
        // Keep the data: move it into a fresh TempDir the caller owns.
        let _ = std::fs::rename(self.dir.path().join("data"), dir.path().join("data"));
        dir
    }
}

impl Drop for Tor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
