//! JSON-RPC over HTTP as Core speaks it (`httprpc.cpp`, `rpc/request.cpp`), I/O-free: a body in,
//! an HTTP status and body out. JSON-RPC 1.0 (legacy: errors as HTTP 500/404/400, both `result`
//! and `error` keys) and 2.0 (always HTTP 200, notifications answered with 204), and batches.

use serde_json::{Map, Value, json};

use crate::daemon::inspect::{RpcError, code};

/// One decoded call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// Method name.
    pub method: String,
    /// Positional (array) or named (object) parameters.
    pub params: Value,
}

/// The HTTP answer to one request body.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// JSON body (`None`: empty body, as for 204).
    pub body: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    Legacy,
    V2,
}

/// A request object's id, version and call, as far as they parsed.
struct Parsed {
    id: Option<Value>,
    version: Version,
    call: Result<Call, RpcError>,
}

/// Core's `JSONRPCRequest::parse`.
fn parse_request(v: &Value) -> Parsed {
    let Some(obj) = v.as_object() else {
        return Parsed {
            // Core's request id starts as null; a reply to an unparsable request carries it.
            id: Some(Value::Null),
            version: Version::Legacy,
            call: Err(RpcError::new(code::INVALID_REQUEST, "Invalid Request object")),
        };
    };
    let id = obj.get("id").cloned();
    let parsed = |version, call| Parsed { id: id.clone(), version, call };
    let version = match obj.get("jsonrpc") {
        None | Some(Value::Null) => Version::Legacy,
        Some(Value::String(s)) if s == "1.0" => Version::Legacy,
        Some(Value::String(s)) if s == "2.0" => Version::V2,
        Some(Value::String(_)) => {
            return parsed(
                Version::Legacy,
                Err(RpcError::new(code::INVALID_REQUEST, "JSON-RPC version not supported")),
            );
        }
        Some(_) => {
            return parsed(
                Version::Legacy,
                Err(RpcError::new(code::INVALID_REQUEST, "jsonrpc field must be a string")),
            );
        }
    };
    let method = match obj.get("method") {
        None | Some(Value::Null) => {
            return parsed(version, Err(RpcError::new(code::INVALID_REQUEST, "Missing method")));
        }
        Some(Value::String(m)) => m.clone(),
        Some(_) => return parsed(version, Err(RpcError::new(code::INVALID_REQUEST, "Method must be a string"))),
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => {
            return parsed(version, Err(RpcError::new(code::INVALID_REQUEST, "Params must be an array or object")));
        }
    };
    parsed(version, Ok(Call { method, params }))
}

/// Core's `JSONRPCReplyObj`.
fn reply_obj(result: Result<Value, RpcError>, id: Option<Value>, version: Version) -> Value {
    let mut o = Map::new();
    if version == Version::V2 {
        o.insert("jsonrpc".into(), json!("2.0"));
    }
    match result {
        Ok(r) => {
            o.insert("result".into(), r);
            if version == Version::Legacy {
                o.insert("error".into(), Value::Null);
            }
        }
        Err(e) => {
            if version == Version::Legacy {
                o.insert("result".into(), Value::Null);
            }
            o.insert("error".into(), json!({"code": e.code, "message": e.message}));
        }
    }
    if let Some(id) = id {
        o.insert("id".into(), id);
    }
    Value::Object(o)
}

/// Core's `JSONErrorReply`: the HTTP status a legacy error gets.
fn legacy_status(e: &RpcError) -> u16 {
    match e.code {
        code::INVALID_REQUEST => 400,
        code::METHOD_NOT_FOUND => 404,
        _ => 500,
    }
}

fn body(v: &Value) -> Option<String> {
    Some(format!("{v}\n"))
}

/// Handles one HTTP request body, running each call with `exec`.
pub fn handle(raw: &[u8], exec: &mut dyn FnMut(&Call) -> Result<Value, RpcError>) -> HttpReply {
    let parse_error = |msg: &str| {
        let e = RpcError::new(code::PARSE_ERROR, msg);
        HttpReply { status: 500, body: body(&reply_obj(Err(e), Some(Value::Null), Version::Legacy)) }
    };
    let Ok(request) = serde_json::from_slice::<Value>(raw) else { return parse_error("Parse error") };
    match &request {
        Value::Object(_) => {
            let p = parse_request(&request);
            let notification = p.id.is_none();
            let result = p.call.and_then(|call| exec(&call));
            if p.version == Version::V2 {
                if notification {
                    return HttpReply { status: 204, body: None };
                }
                return HttpReply { status: 200, body: body(&reply_obj(result, p.id, p.version)) };
            }
            match result {
                Ok(r) => HttpReply { status: 200, body: body(&reply_obj(Ok(r), p.id, p.version)) },
                Err(e) => HttpReply { status: legacy_status(&e), body: body(&reply_obj(Err(e), p.id, p.version)) },
            }
        }
        Value::Array(items) => {
            let mut replies = Vec::new();
            for item in items {
                let p = parse_request(item);
                // Core's `IsNotification`: only a 2.0 request without an id.
                let notification = p.id.is_none() && p.version == Version::V2;
                let result = p.call.and_then(|call| exec(&call));
                if !notification {
                    replies.push(reply_obj(result, p.id, p.version));
                }
            }
            if replies.is_empty() && !items.is_empty() {
                return HttpReply { status: 204, body: None };
            }
            HttpReply { status: 200, body: body(&Value::Array(replies)) }
        }
        _ => parse_error("Top-level object parse error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str) -> (u16, Value) {
        let mut exec = |c: &Call| -> Result<Value, RpcError> {
            match c.method.as_str() {
                "echo" => Ok(c.params.clone()),
                "fail" => Err(RpcError::invalid_param("bad")),
                _ => Err(RpcError::new(code::METHOD_NOT_FOUND, "Method not found")),
            }
        };
        let r = handle(body.as_bytes(), &mut exec);
        (r.status, r.body.map_or(Value::Null, |b| serde_json::from_str(&b).unwrap()))
    }

    #[test]
    fn legacy_requests_carry_both_keys_and_http_errors() {
        assert_eq!(run(r#"{"id":1,"method":"echo","params":[1]}"#), (200, json!({"result":[1],"error":null,"id":1})));
        let (status, v) = run(r#"{"id":"x","method":"nope"}"#);
        assert_eq!(status, 404);
        assert_eq!(v, json!({"result":null,"error":{"code":-32601,"message":"Method not found"},"id":"x"}));
        assert_eq!(run(r#"{"id":1,"method":"fail"}"#).0, 500);
        assert_eq!(run(r#"{"id":1,"method":5}"#).0, 400);
        assert_eq!(run(r#"{"jsonrpc":"1.0","id":1,"method":"echo"}"#).1["result"], json!([]));
    }

    #[test]
    fn v2_requests_always_200_and_notifications_204() {
        let (status, v) = run(r#"{"jsonrpc":"2.0","id":7,"method":"fail"}"#);
        assert_eq!(status, 200);
        assert_eq!(v, json!({"jsonrpc":"2.0","error":{"code":-8,"message":"bad"},"id":7}));
        assert_eq!(run(r#"{"jsonrpc":"2.0","id":null,"method":"echo","params":{"a":1}}"#).1["result"], json!({"a":1}));
        assert_eq!(run(r#"{"jsonrpc":"2.0","method":"echo"}"#), (204, Value::Null));
        let (status, v) = run(r#"{"jsonrpc":"3.0","id":1,"method":"echo"}"#);
        assert_eq!((status, v["error"]["message"].clone()), (400, json!("JSON-RPC version not supported")));
    }

    #[test]
    fn parse_errors_and_bad_params() {
        let (status, v) = run("{nope");
        assert_eq!((status, v["error"]["code"].clone()), (500, json!(-32700)));
        assert_eq!(run("42").1["error"]["message"], json!("Top-level object parse error"));
        assert_eq!(run(r#"{"id":1,"method":"echo","params":3}"#).1["error"]["code"], json!(-32600));
    }

    #[test]
    fn batches_answer_each_call_in_order() {
        let (status, v) = run(
            r#"[{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},{"id":2,"method":"fail"},5,{"jsonrpc":"2.0","method":"echo"}]"#,
        );
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!([
                {"jsonrpc":"2.0","result":[1],"id":1},
                {"result":null,"error":{"code":-8,"message":"bad"},"id":2},
                {"result":null,"error":{"code":-32600,"message":"Invalid Request object"},"id":null}
            ])
        );
        assert_eq!(run("[]"), (200, json!([])));
        assert_eq!(run(r#"[{"jsonrpc":"2.0","method":"echo"}]"#), (204, Value::Null));
    }
}
