//! A JSON-RPC client for the modes that drive a node's RPC (`submit`, `ibd`): btcloopd and
//! bitcoind alike, cookie authentication (the cookie read anew for each call: a node rewrites
//! it at every start), one kept-alive HTTP connection (`ureq`).

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;

/// A failed call.
#[derive(Debug)]
pub(crate) enum RpcError {
    /// The node answered with a JSON-RPC error.
    Rpc { code: i64, message: String },
    /// No JSON-RPC answer: no cookie yet, connection refused, timeout, unreadable reply.
    Transport(String),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Rpc { code, message } => write!(f, "RPC error {code}: {message}"),
            RpcError::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// A node's RPC server.
pub(crate) struct Rpc {
    url: String,
    cookie: PathBuf,
    agent: ureq::Agent,
    next_id: u64,
}

impl Rpc {
    /// A client for `addr` authenticating with the cookie file at `cookie`; `timeout` bounds
    /// each whole call.
    pub(crate) fn new(addr: SocketAddr, cookie: PathBuf, timeout: Duration) -> Rpc {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Rpc { url: format!("http://{addr}/"), cookie, agent, next_id: 1 }
    }

    fn auth(&self) -> Result<String, RpcError> {
        let text = std::fs::read_to_string(&self.cookie)
            .map_err(|e| RpcError::Transport(format!("cookie {}: {e}", self.cookie.display())))?;
        let line = text.lines().next().unwrap_or_default();
        Ok(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(line)))
    }

    /// Calls `method` with the array or object `params`; a JSON-RPC error is `Err`.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let auth = self.auth()?;
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let transport = |e: String| RpcError::Transport(format!("{method}: {e}"));
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Authorization", &auth)
            .send(body.as_str())
            .map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| transport(format!("reading the reply: {e}")))?;
        let reply: Value = serde_json::from_str(&text)
            .map_err(|_| transport(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>())))?;
        if reply.get("id") != Some(&json!(id)) {
            return Err(transport(format!("reply for another id: {}", text.chars().take(200).collect::<String>())));
        }
        match reply.get("error") {
            Some(e) if !e.is_null() => Err(RpcError::Rpc {
                code: e.get("code").and_then(Value::as_i64).unwrap_or_default(),
                message: e.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            }),
            _ => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Calls `getblockchaininfo` until it answers (the node is up and past warm-up) or
    /// `deadline` passes; `alive` is asked between attempts and stops the wait with its error.
    pub(crate) fn wait_ready(
        &mut self,
        deadline: Instant,
        mut alive: impl FnMut() -> Result<(), String>,
    ) -> Result<Value, String> {
        loop {
            let last = match self.call("getblockchaininfo", json!([])) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            alive()?;
            if Instant::now() >= deadline {
                return Err(format!("RPC at {} not ready: {last}", self.url));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `getblockchaininfo`'s `blocks` and `bestblockhash`.
pub(crate) fn tip_of(info: &Value) -> Option<(u64, &str)> {
    Some((info.get("blocks")?.as_u64()?, info.get("bestblockhash")?.as_str()?))
}
