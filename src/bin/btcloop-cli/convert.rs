//! Command-line arguments to JSON-RPC params as bitcoin-cli makes them (Core's
//! `src/rpc/client.cpp`): strings, except the (method, position / name) pairs of the conversion
//! table, which are parsed as JSON; `-named` turns `name=value` arguments into an object with
//! the positional ones under `"args"`. Also the request objects bitcoin-cli sends.

use crate::json::Json;

/// How an argument is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Parsed as JSON; an error if it is not JSON.
    Json,
    /// Passed as a string even if it looks like JSON (matters for `-named` only).
    #[allow(dead_code)]
    String,
    /// Parsed as JSON if it is JSON, else passed as a string.
    JsonOrString,
}

/// One entry of Core's `vRPCConvertParams`: the argument of `method` at `index` named `name`.
struct ConvertParam {
    method: &'static str,
    index: usize,
    name: &'static str,
    format: Format,
}

const fn json(method: &'static str, index: usize, name: &'static str) -> ConvertParam {
    ConvertParam { method, index, name, format: Format::Json }
}

/// The arguments that are not strings, for the RPCs a P2P node serves: Core's entries for its
/// network, blockchain and control RPCs, and btcloopd's own `getnetmsgstats` and
/// `getdisconnects`.
static CONVERT_PARAMS: &[ConvertParam] = &[
    // network
    json("setban", 2, "bantime"),
    json("setban", 3, "absolute"),
    json("setnetworkactive", 0, "state"),
    json("disconnectnode", 1, "nodeid"),
    json("getnodeaddresses", 0, "count"),
    json("addnode", 2, "v2transport"),
    json("addconnection", 2, "v2transport"),
    json("addpeeraddress", 1, "port"),
    json("addpeeraddress", 2, "tried"),
    json("sendmsgtopeer", 0, "peer_id"),
    // blockchain
    json("getblockhash", 0, "height"),
    json("getblockheader", 1, "verbose"),
    json("getblock", 1, "verbosity"),
    json("getblock", 1, "verbose"),
    json("getchaintxstats", 0, "nblocks"),
    ConvertParam { method: "getblockstats", index: 0, name: "hash_or_height", format: Format::JsonOrString },
    json("getblockstats", 1, "stats"),
    json("waitfornewblock", 0, "timeout"),
    json("waitforblock", 1, "timeout"),
    json("waitforblockheight", 0, "height"),
    json("waitforblockheight", 1, "timeout"),
    // control
    json("logging", 0, "include"),
    json("logging", 1, "exclude"),
    json("stop", 0, "wait"),
    json("echojson", 0, "arg0"),
    json("echojson", 1, "arg1"),
    json("echojson", 2, "arg2"),
    json("echojson", 3, "arg3"),
    json("echojson", 4, "arg4"),
    json("echojson", 5, "arg5"),
    json("echojson", 6, "arg6"),
    json("echojson", 7, "arg7"),
    json("echojson", 8, "arg8"),
    json("echojson", 9, "arg9"),
    // btcloopd
    json("getnetmsgstats", 0, "aggregate_by"),
    json("getdisconnects", 0, "count"),
];

fn from_position(method: &str, index: usize) -> Option<&'static ConvertParam> {
    CONVERT_PARAMS.iter().find(|p| p.method == method && p.index == index)
}

fn from_name(method: &str, name: &str) -> Option<&'static ConvertParam> {
    CONVERT_PARAMS.iter().find(|p| p.method == method && p.name == name)
}

/// `raw` as the entry `param` says (a string when there is none).
fn parse_param(param: Option<&ConvertParam>, raw: &str) -> Result<Json, String> {
    match param.map(|p| p.format) {
        Some(Format::Json) => Json::parse(raw).ok_or_else(|| format!("Error parsing JSON: {raw}")),
        Some(Format::JsonOrString) => Ok(Json::parse(raw).unwrap_or_else(|| Json::str(raw))),
        Some(Format::String) | None => Ok(Json::str(raw)),
    }
}

/// Positional params: Core's `RPCConvertValues`.
pub fn convert_values(method: &str, args: &[String]) -> Result<Json, String> {
    let mut params = Vec::with_capacity(args.len());
    for a in args {
        params.push(parse_param(from_position(method, params.len()), a)?);
    }
    Ok(Json::Array(params))
}

/// Named params: Core's `RPCConvertNamedValues`. An argument without `=` is positional. With
/// `=`, it is `name=value`, unless the name is not in the table and the next positional
/// argument is a JSON one that the whole argument parses as, or a string one. Later values of a
/// name replace earlier ones; positional arguments go last under `"args"` (after an explicit
/// `args=`, if any, as Core's `pushKVEnd`).
pub fn convert_named_values(method: &str, args: &[String]) -> Result<Json, String> {
    let mut params = Json::Object(Vec::new());
    let mut positional = Vec::new();
    for s in args {
        let Some((name, value)) = s.split_once('=') else {
            positional.push(parse_param(from_position(method, positional.len()), s)?);
            continue;
        };
        let named = from_name(method, name);
        if named.is_none() {
            match from_position(method, positional.len()).map(|p| p.format) {
                Some(Format::Json) => {
                    if let Some(v) = Json::parse(s) {
                        positional.push(v);
                        continue;
                    }
                }
                Some(Format::String) => {
                    positional.push(Json::str(s));
                    continue;
                }
                _ => {}
            }
        }
        params.push_kv(name, parse_param(named, value)?);
    }
    if let (false, Json::Object(kv)) = (positional.is_empty(), &mut params) {
        kv.push(("args".to_string(), Json::Array(positional)));
    }
    Ok(params)
}

/// A request as Core's `JSONRPCRequestObj`: `{"method", "params", "id", "jsonrpc":"2.0"}`.
pub fn request(method: &str, params: Json, id: Json) -> Json {
    Json::Object(vec![
        ("method".to_string(), Json::str(method)),
        ("params".to_string(), params),
        ("id".to_string(), id),
        ("jsonrpc".to_string(), Json::str("2.0")),
    ])
}

/// A reply carrying `result`, as Core's `JSONRPCReplyObj` makes the replies of `-getinfo`,
/// `-netinfo` and `-addrinfo` (v2, id 1).
pub fn reply_with(result: Json) -> Json {
    Json::Object(vec![
        ("jsonrpc".to_string(), Json::str("2.0")),
        ("result".to_string(), result),
        ("id".to_string(), Json::int(1)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn pos(method: &str, a: &[&str]) -> String {
        convert_values(method, &strings(a)).unwrap().write()
    }

    fn named(method: &str, a: &[&str]) -> String {
        convert_named_values(method, &strings(a)).unwrap().write()
    }

    #[test]
    fn positional_conversion_follows_the_table() {
        assert_eq!(pos("getblockhash", &["5"]), "[5]");
        assert_eq!(pos("getblockheader", &["00ab", "false"]), r#"["00ab",false]"#);
        assert_eq!(pos("setban", &["1.2.3.4", "add", "60", "true"]), r#"["1.2.3.4","add",60,true]"#);
        assert_eq!(pos("disconnectnode", &["", "7"]), r#"["",7]"#);
        assert_eq!(pos("addnode", &["1.2.3.4:8333", "onetry", "true"]), r#"["1.2.3.4:8333","onetry",true]"#);
        assert_eq!(pos("logging", &["[\"net\"]", "[]"]), r#"[["net"],[]]"#);
        assert_eq!(pos("getnetmsgstats", &["[\"direction\",\"network\"]"]), r#"[["direction","network"]]"#);
        assert_eq!(pos("getdisconnects", &["10"]), "[10]");
        assert_eq!(pos("getnodeaddresses", &["0", "ipv4"]), r#"[0,"ipv4"]"#);
        assert_eq!(pos("setnetworkactive", &["false"]), "[false]");
        assert_eq!(pos("stop", &["1000"]), "[1000]");
        // Not in the table: strings even when they look like JSON.
        assert_eq!(pos("help", &["getblockhash"]), r#"["getblockhash"]"#);
        assert_eq!(pos("getaddednodeinfo", &["5"]), r#"["5"]"#);
        assert_eq!(pos("getpeerinfo", &[]), "[]");
        // Number text is passed through untouched.
        assert_eq!(pos("getblockhash", &["1e3"]), "[1e3]");
        // getblockstats takes a hash or a height.
        assert_eq!(pos("getblockstats", &["00ff", "[\"height\"]"]), r#"["00ff",["height"]]"#);
        assert_eq!(pos("getblockstats", &["100"]), "[100]");
    }

    #[test]
    fn bad_json_is_an_error() {
        let e = convert_values("getblockhash", &strings(&["five"])).unwrap_err();
        assert_eq!(e, "Error parsing JSON: five");
        let e = convert_values("logging", &strings(&["[net]"])).unwrap_err();
        assert_eq!(e, "Error parsing JSON: [net]");
        let e = convert_named_values("setban", &strings(&["bantime=soon"])).unwrap_err();
        assert_eq!(e, "Error parsing JSON: soon");
        assert!(convert_values("getblockhash", &strings(&["05"])).is_err());
    }

    #[test]
    fn named_conversion_as_core() {
        assert_eq!(
            named("setban", &["subnet=1.2.3.4", "command=add", "bantime=60"]),
            r#"{"subnet":"1.2.3.4","command":"add","bantime":60}"#
        );
        assert_eq!(named("getpeerinfo", &[]), "{}");
        // Later values replace earlier ones in place.
        assert_eq!(named("getblockhash", &["height=1", "x=y", "height=2"]), r#"{"height":2,"x":"y"}"#);
        // Positional arguments go under "args", converted by position.
        assert_eq!(
            named("setban", &["1.2.3.4", "add", "absolute=true", "60"]),
            r#"{"absolute":true,"args":["1.2.3.4","add",60]}"#
        );
        // An explicit args= stays; the implicit one is appended after it, as Core's pushKVEnd.
        assert_eq!(named("help", &["args=x", "y"]), r#"{"args":"x","args":["y"]}"#);
        // Unknown name, next positional is JSON and the whole argument parses: positional.
        assert_eq!(named("echojson", &["[\"a=b\"]"]), r#"{"args":[["a=b"]]}"#);
        // Unknown name and the whole argument is not JSON: named, as a string.
        assert_eq!(named("getblockhash", &["foo=bar"]), r#"{"foo":"bar"}"#);
        // Only the first '=' separates the name.
        assert_eq!(named("help", &["command=a=b"]), r#"{"command":"a=b"}"#);
    }

    #[test]
    fn request_object_as_core() {
        let r = request("getblockhash", convert_values("getblockhash", &strings(&["5"])).unwrap(), Json::str("1"));
        assert_eq!(r.write(), r#"{"method":"getblockhash","params":[5],"id":"1","jsonrpc":"2.0"}"#);
        assert_eq!(
            request("getpeerinfo", Json::Null, Json::int(0)).write(),
            r#"{"method":"getpeerinfo","params":null,"id":0,"jsonrpc":"2.0"}"#
        );
    }
}
