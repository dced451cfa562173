//! Talking to btcloopd's JSON-RPC server as bitcoin-cli's `CallRPC` and `ConnectAndCallRPC` do:
//! credentials (`-rpcpassword` or the cookie), one HTTP POST per call, Core's reading of the
//! HTTP status and body, batches, the `-rpcwait` retry loop, and the exit status and text of a
//! reply (`ParseResult` / `ParseError`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::json::Json;

/// Core's `RPC_IN_WARMUP`.
const RPC_IN_WARMUP: i64 = -28;

/// Why a call failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// A connection problem or a server in warmup: `-rpcwait` retries these.
    Transient(String),
    /// Anything else.
    Fatal(String),
}

/// Where the credentials came from (decides the text of a 401).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// `-rpcuser:-rpcpassword`.
    Password(String),
    /// The cookie file's first line.
    Cookie(String),
    /// No password and no readable cookie.
    Missing,
}

/// A server to call.
pub struct Client {
    host: String,
    port: u16,
    url: String,
    agent: ureq::Agent,
    /// `user:password` when `-rpcpassword` is set.
    password: Option<String>,
    cookie_path: PathBuf,
}

impl Client {
    /// A client for `host:port`; `timeout` bounds each whole call (`None`: no limit).
    pub fn new(
        host: &str,
        port: u16,
        timeout: Option<Duration>,
        password: Option<String>,
        cookie_path: PathBuf,
    ) -> Self {
        let url_host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(timeout)
            .build();
        Client {
            host: host.to_string(),
            port,
            url: format!("http://{url_host}:{port}/"),
            agent: config.into(),
            password,
            cookie_path,
        }
    }

    /// The credentials for one call: the password, else the cookie file's first line (read
    /// anew for each call, as Core does).
    pub fn credentials(&self) -> Credentials {
        if let Some(p) = &self.password {
            return Credentials::Password(p.clone());
        }
        match std::fs::read(&self.cookie_path) {
            Ok(bytes) => {
                let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
                Credentials::Cookie(String::from_utf8_lossy(line).into_owned())
            }
            Err(_) => Credentials::Missing,
        }
    }

    fn missing_credentials(&self) -> String {
        format!(
            "Could not locate RPC credentials. No authentication cookie could be found, and RPC password is not set.  \
             See -rpcpassword and -rpccookiefile.  Cookie file: ({})",
            self.cookie_path.display()
        )
    }

    /// One POST of `request`; the parsed reply. Without credentials the call fails at once,
    /// unless `send_without_credentials` (under `-rpcwait`: the server may not have written its
    /// cookie yet), in which case a 401 is the failure.
    pub fn call(&self, request: &Json, send_without_credentials: bool) -> Result<Json, Failure> {
        let creds = self.credentials();
        let user_pass = match &creds {
            Credentials::Password(s) | Credentials::Cookie(s) => s.as_str(),
            Credentials::Missing if send_without_credentials => "",
            Credentials::Missing => return Err(Failure::Fatal(self.missing_credentials())),
        };
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass));
        let body = request.write() + "\n";
        let (status, reply) = self.post(&body, &auth).map_err(|e| Failure::Transient(self.connection_error(&e)))?;
        match read_response(status, &reply) {
            Err(ResponseError::Unauthorized) => Err(Failure::Fatal(match creds {
                Credentials::Password(_) => {
                    "Authorization failed: Incorrect rpcuser or rpcpassword were specified.".into()
                }
                Credentials::Cookie(_) => format!(
                    "Authorization failed: Cookie file credentials were invalid and no rpcpassword was specified. \
                     Cookie file: ({})",
                    self.cookie_path.display()
                ),
                Credentials::Missing => self.missing_credentials(),
            })),
            Err(ResponseError::Other(e)) => Err(Failure::Fatal(e)),
            Ok(v) => Ok(v),
        }
    }

    /// Sends `requests` as one batch and returns the replies ordered by id (Core's
    /// `JSONRPCProcessBatchReply`). A server that answers a batch with a single error object
    /// (no batch support) gets the requests one by one instead.
    pub fn call_batch(&self, requests: Vec<Json>, send_without_credentials: bool) -> Result<Vec<Json>, Failure> {
        let reply = self.call(&Json::Array(requests.clone()), send_without_credentials)?;
        if matches!(reply, Json::Object(_)) && !reply.get("error").is_null() {
            return requests.iter().map(|r| self.call(r, send_without_credentials)).collect();
        }
        process_batch_reply(&reply, requests.len()).map_err(Failure::Fatal)
    }

    fn post(&self, body: &str, auth: &str) -> Result<(u16, Vec<u8>), ureq::Error> {
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Authorization", auth)
            .send(body)?;
        let status = resp.status().as_u16();
        let bytes = resp.body_mut().with_config().limit(u64::MAX).read_to_vec()?;
        Ok((status, bytes))
    }

    /// Core's text for a failed connection, adapted to btcloopd.
    fn connection_error(&self, e: &ureq::Error) -> String {
        let what = match e {
            ureq::Error::HostNotFound => format!("Could not resolve host: {}", self.host),
            ureq::Error::ConnectionFailed => "Could not connect to the server".into(),
            ureq::Error::Io(io) if is_connect_error(io.kind()) => "Could not connect to the server".into(),
            ureq::Error::Timeout(_) => "timeout".into(),
            ureq::Error::Protocol(p) => format!("HTTP error: {p}"),
            other => other.to_string(),
        };
        format!(
            "Error while attempting to communicate with server {}:{} ({what})\n\n\
             Make sure the btcloopd server is running and that you are connecting to the correct RPC port.\n\
             Use \"btcloop-cli -help\" for more info.",
            self.host, self.port
        )
    }
}

fn is_connect_error(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(kind, ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | AddrNotAvailable)
        || matches!(kind, HostUnreachable | NetworkUnreachable | NetworkDown)
}

/// A reply that is not usable.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// HTTP 401.
    Unauthorized,
    /// Anything else, with Core's text.
    Other(String),
}

/// The HTTP status and body as `CallRPC` reads them: 401 is an authorization failure, 503
/// shows the body, other errors (except 400, 404 and 500, which carry JSON-RPC errors) show
/// the status; then the body must be JSON.
pub fn read_response(status: u16, body: &[u8]) -> Result<Json, ResponseError> {
    if status == 401 {
        return Err(ResponseError::Unauthorized);
    }
    if status == 503 {
        return Err(ResponseError::Other(format!("Server response: {}", String::from_utf8_lossy(body))));
    }
    if status >= 400 && !matches!(status, 400 | 404 | 500) {
        return Err(ResponseError::Other(format!("server returned HTTP error {status}")));
    }
    if body.is_empty() {
        return Err(ResponseError::Other("no response from server".into()));
    }
    std::str::from_utf8(body)
        .ok()
        .and_then(Json::parse)
        .ok_or_else(|| ResponseError::Other("couldn't parse reply from server".into()))
}

/// Core's `JSONRPCProcessBatchReply`: the members placed by their `id`.
pub fn process_batch_reply(reply: &Json, n: usize) -> Result<Vec<Json>, String> {
    let Json::Array(items) = reply else {
        return Err("Batch must be an array".into());
    };
    let mut out = vec![Json::Null; n];
    for item in items {
        if !matches!(item, Json::Object(_)) {
            return Err("Batch member must be an object".into());
        }
        let id = item.get("id");
        let id = id
            .as_i64()
            .ok_or_else(|| format!("JSON value of type {} is not of expected type number", id.type_name()))?;
        match usize::try_from(id).ok().filter(|&i| i < n) {
            Some(i) => out[i] = item.clone(),
            None => return Err("Batch member id is larger than batch size".into()),
        }
    }
    Ok(out)
}

/// Whether a reply is the "in warmup" error.
pub fn in_warmup(reply: &Json) -> bool {
    reply.get("error").get("code").as_i64() == Some(RPC_IN_WARMUP)
}

/// Core's `ConnectAndCallRPC` loop: without `wait`, one attempt. With it, transient failures
/// (and, once connected, the warmup error) are retried every `pause` until `timeout` (`None`:
/// forever) has passed, then reported as `timeout on transient error: …`.
pub fn with_wait(
    wait: bool,
    timeout: Option<Duration>,
    pause: Duration,
    mut attempt: impl FnMut() -> Result<Json, Failure>,
) -> Result<Json, String> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let failure = match attempt() {
            Ok(reply) if wait && in_warmup(&reply) => "server in warmup".to_string(),
            Ok(reply) => return Ok(reply),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient(e)) => e,
        };
        if !wait {
            return Err(failure);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(format!("timeout on transient error: {failure}"));
        }
        std::thread::sleep(pause);
    }
}

/// What bitcoin-cli prints for a reply, and its exit status.
#[derive(Debug, PartialEq, Eq)]
pub struct Printed {
    /// The text (without the final newline); nothing is printed when it is empty.
    pub text: String,
    /// 0: `text` goes to stdout. Otherwise to stderr, and the exit status.
    pub status: u8,
}

/// `ParseResult` / `ParseError`: a string result raw, null as nothing, anything else indented
/// by 2; an error as `error code: N` / `error message:` / the message, exiting with |N|. The
/// exit status is what the OS makes of Core's `abs(code)`: its low 8 bits, except that an error
/// never exits 0 (Core would, for codes that are multiples of 256).
pub fn print_reply(reply: &Json) -> Printed {
    let error = reply.get("error");
    if error.is_null() {
        let result = reply.get("result");
        let text = match result {
            Json::Null => String::new(),
            Json::String(s) => s.clone(),
            other => other.pretty(),
        };
        return Printed { text, status: 0 };
    }
    if !matches!(error, Json::Object(_)) {
        return Printed { text: format!("error: {}", error.write()), status: 1 };
    }
    let code = error.get("code");
    let mut text = String::new();
    if !code.is_null() {
        text = format!("error code: {}\n", code.val_str());
    }
    if let Some(m) = error.get("message").as_str() {
        text += "error message:\n";
        text += m;
    }
    let status = match code {
        Json::Number(_) => match code.as_i64().and_then(|c| i32::try_from(c).ok()) {
            Some(c) => (c.unsigned_abs() % 256) as u8,
            None => return Printed { text: "error: JSON integer out of range".into(), status: 1 },
        },
        other => {
            let t = format!("error: JSON value of type {} is not of expected type number", other.type_name());
            return Printed { text: t, status: 1 };
        }
    };
    Printed { text, status: status.max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Json {
        Json::parse(s).unwrap()
    }

    #[test]
    fn results_print_as_bitcoin_cli() {
        let pr = |s: &str| print_reply(&p(s));
        assert_eq!(pr(r#"{"jsonrpc":"2.0","result":"00ab","id":"1"}"#), Printed { text: "00ab".into(), status: 0 });
        assert_eq!(pr(r#"{"result":null,"error":null,"id":"1"}"#), Printed { text: String::new(), status: 0 });
        assert_eq!(pr(r#"{"result":5,"id":"1"}"#).text, "5");
        assert_eq!(pr(r#"{"result":[],"id":"1"}"#).text, "[\n]");
        assert_eq!(
            pr(r#"{"result":{"b":0.00001000,"a":[1]},"id":"1"}"#).text,
            "{\n  \"b\": 0.00001000,\n  \"a\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn errors_print_and_exit_as_bitcoin_cli() {
        let pr = |s: &str| print_reply(&p(s));
        let e = pr(r#"{"jsonrpc":"2.0","error":{"code":-8,"message":"Block height out of range"},"id":"1"}"#);
        assert_eq!(e, Printed { text: "error code: -8\nerror message:\nBlock height out of range".into(), status: 8 });
        assert_eq!(pr(r#"{"error":{"code":-32601,"message":"Method not found"}}"#).status, (32601 % 256) as u8);
        assert_eq!(pr(r#"{"error":{"code":-28,"message":"Loading"}}"#).status, 28);
        assert_eq!(pr(r#"{"error":{"code":-256,"message":"x"}}"#).status, 1, "never exit 0 on an error");
        assert_eq!(pr(r#"{"result":null,"error":{"code":-1,"message":"m"},"id":1}"#).status, 1, "legacy reply");
        assert_eq!(
            pr(r#"{"error":{"message":"m"}}"#).text,
            "error: JSON value of type null is not of expected type number"
        );
        assert_eq!(pr(r#"{"error":"boom"}"#), Printed { text: "error: \"boom\"".into(), status: 1 });
    }

    #[test]
    fn http_statuses_as_core() {
        assert_eq!(read_response(401, b""), Err(ResponseError::Unauthorized));
        assert_eq!(read_response(503, b"busy"), Err(ResponseError::Other("Server response: busy".into())));
        assert_eq!(read_response(403, b"{}"), Err(ResponseError::Other("server returned HTTP error 403".into())));
        assert_eq!(read_response(200, b""), Err(ResponseError::Other("no response from server".into())));
        assert_eq!(read_response(200, b"<html>"), Err(ResponseError::Other("couldn't parse reply from server".into())));
        for status in [200, 400, 404, 500] {
            let v = read_response(status, br#"{"result":null,"error":{"code":-32601,"message":"x"},"id":1}"#).unwrap();
            assert_eq!(v.get("error").get("code").as_i64(), Some(-32601));
        }
    }

    #[test]
    fn batch_replies_by_id() {
        let v = process_batch_reply(&p(r#"[{"id":1,"result":"b"},{"id":0,"result":"a"}]"#), 2).unwrap();
        assert_eq!(v[0].get("result").as_str(), Some("a"));
        assert_eq!(v[1].get("result").as_str(), Some("b"));
        assert_eq!(process_batch_reply(&p("{}"), 2).unwrap_err(), "Batch must be an array");
        assert_eq!(process_batch_reply(&p("[1]"), 2).unwrap_err(), "Batch member must be an object");
        assert_eq!(
            process_batch_reply(&p(r#"[{"id":2}]"#), 2).unwrap_err(),
            "Batch member id is larger than batch size"
        );
        assert_eq!(
            process_batch_reply(&p(r#"[{"id":-1}]"#), 2).unwrap_err(),
            "Batch member id is larger than batch size"
        );
    }

    #[test]
    fn wait_loop_retries_transient_failures_and_warmup() {
        let warm = p(r#"{"error":{"code":-28,"message":"Loading"}}"#);
        let ok = p(r#"{"result":1}"#);
        let mut n = 0;
        let mut script = vec![Err(Failure::Transient("down".into())), Ok(warm.clone()), Ok(ok.clone())].into_iter();
        let r = with_wait(true, None, Duration::ZERO, || {
            n += 1;
            script.next().unwrap()
        });
        assert_eq!((r, n), (Ok(ok.clone()), 3));
        // Without -rpcwait: one attempt, warmup is just an error reply.
        assert_eq!(with_wait(false, None, Duration::ZERO, || Ok(warm.clone())), Ok(warm.clone()));
        assert_eq!(
            with_wait(false, None, Duration::ZERO, || Err(Failure::Transient("down".into()))),
            Err("down".into())
        );
        // Fatal failures are not retried.
        assert_eq!(with_wait(true, None, Duration::ZERO, || Err(Failure::Fatal("bad".into()))), Err("bad".into()));
        let r = with_wait(true, Some(Duration::ZERO), Duration::ZERO, || Err(Failure::Transient("down".into())));
        assert_eq!(r, Err("timeout on transient error: down".into()));
        let r = with_wait(true, Some(Duration::ZERO), Duration::ZERO, || Ok(warm.clone()));
        assert_eq!(r, Err("timeout on transient error: server in warmup".into()));
    }

    #[test]
    fn credentials_from_password_or_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let cookie = dir.path().join(".cookie");
        let c = Client::new("127.0.0.1", 1, None, None, cookie.clone());
        assert_eq!(c.credentials(), Credentials::Missing);
        let e = c.call(&Json::Null, false).unwrap_err();
        assert!(matches!(&e, Failure::Fatal(m) if m.starts_with("Could not locate RPC credentials.")), "{e:?}");
        std::fs::write(&cookie, "__cookie__:abcd\nignored").unwrap();
        assert_eq!(c.credentials(), Credentials::Cookie("__cookie__:abcd".into()));
        let c = Client::new("127.0.0.1", 1, None, Some("u:p".into()), cookie);
        assert_eq!(c.credentials(), Credentials::Password("u:p".into()));
        assert_eq!(Client::new("::1", 5, None, None, PathBuf::new()).url, "http://[::1]:5/");
    }
}
