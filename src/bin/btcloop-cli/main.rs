//! `btcloop-cli`: btcloopd's command-line client, with bitcoin-cli's calling conventions
//! (`btcloop-cli [options] METHOD [ARGS…]`, `-named`, `-stdin`, `-rpcwait`, `-getinfo`,
//! `-netinfo`, `-addrinfo`; Core's `src/bitcoin-cli.cpp`), plus `decode-capture PATH…`, which
//! prints message captures as JSON lines.

mod args;
mod capture;
mod convert;
mod getinfo;
mod help;
mod json;
mod netinfo;
mod rpc;

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use args::{CommandLine, Mode, Parsed};
use btcloop::base::chainparams::Network;
use json::Json;
use rpc::{Client, Failure, Printed};

/// Pause between `-rpcwait` attempts (Core: one second).
const WAIT_PAUSE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let cl = match args::parse(&argv) {
        Err(e) => {
            emit(false, &format!("Error parsing command line arguments: {e}\n"));
            return ExitCode::from(1);
        }
        Ok(Parsed::Help) => {
            emit(true, &help::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            emit(true, &help::version());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::TooFew) => {
            emit(true, &help::usage());
            emit(false, "Error: too few parameters\n");
            return ExitCode::from(1);
        }
        Ok(Parsed::Run(cl)) => cl,
    };
    if cl.args.first().is_some_and(|a| a == "decode-capture") {
        return capture::run(&cl.args);
    }
    if let Some(dir) = cl.datadir_arg()
        && !Path::new(dir).is_dir()
    {
        emit(false, &format!("Error: Specified data directory \"{dir}\" does not exist.\n"));
        return ExitCode::from(1);
    }
    let network = match cl.network() {
        Ok(n) => n,
        Err(e) => {
            emit(false, &format!("Error: {e}\n"));
            return ExitCode::from(1);
        }
    };
    let printed = command_line_rpc(&cl, network).unwrap_or_else(|e| Printed { text: format!("error: {e}"), status: 1 });
    if !printed.text.is_empty() {
        emit(printed.status == 0, &format!("{}\n", printed.text));
    }
    ExitCode::from(printed.status)
}

/// Writes `text` to stdout or stderr; a closed pipe (`btcloop-cli … | head`) is not an error.
fn emit(to_stdout: bool, text: &str) {
    let _ = if to_stdout {
        std::io::stdout().lock().write_all(text.as_bytes())
    } else {
        std::io::stderr().lock().write_all(text.as_bytes())
    };
}

/// Arguments read from stdin with `-stdin`: one per line (a last line without newline counts).
fn stdin_args() -> Result<Vec<String>, String> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read standard input: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    if std::io::stdin().is_terminal() {
        emit(true, "\n");
    }
    Ok(lines)
}

/// Core's `CommandLineRPC`: the command's request(s), the call (with `-rpcwait`), and what to
/// print. The error is printed after `error: ` with exit status 1.
fn command_line_rpc(cl: &CommandLine, network: Network) -> Result<Printed, String> {
    let mut args = cl.args.clone();
    if cl.get_bool("stdin") {
        args.extend(stdin_args()?);
    }
    let mode = cl.mode()?;
    if mode == Mode::Netinfo && netinfo::wants_help(&args) {
        return Ok(Printed { text: help::netinfo(), status: 0 });
    }
    let (host, port, both) = cl.host_port(network)?;
    if both {
        emit(false, &format!("Warning: Port specified in both -rpcconnect and -rpcport. Using -rpcport {port}\n"));
    }
    let password =
        cl.get("rpcpassword").filter(|p| !p.is_empty()).map(|p| format!("{}:{p}", cl.get("rpcuser").unwrap_or("")));
    let client = Client::new(&host, port, cl.client_timeout(), password, cl.cookie_path(network));
    let wait = cl.get_bool("rpcwait");
    let call = |attempt: &mut dyn FnMut() -> Result<Json, Failure>| {
        rpc::with_wait(wait, cl.wait_timeout(), WAIT_PAUSE, attempt)
    };

    let reply = match mode {
        Mode::Default => {
            let Some((method, params)) = args.split_first() else {
                return Err("too few parameters (need at least command)".into());
            };
            let params = if cl.get_bool("named") {
                convert::convert_named_values(method, params)?
            } else {
                convert::convert_values(method, params)?
            };
            let request =
                convert::request(method, params, Json::str(cl.get("rpcid").unwrap_or(args::DEFAULT_RPC_REQ_ID)));
            call(&mut || client.call(&request, wait).and_then(check_reply))?
        }
        Mode::Netinfo => {
            let n = netinfo::parse_args(&args)?;
            let requests = vec![
                convert::request("getpeerinfo", Json::Null, Json::int(0)),
                convert::request("getnetworkinfo", Json::Null, Json::int(1)),
            ];
            call(&mut || {
                let batch = client.call_batch(requests.clone(), wait)?;
                if let Some(failed) = batch.iter().find(|r| !r.get("error").is_null()) {
                    return Ok(failed.clone());
                }
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
                let result = |i: usize| batch.get(i).map_or(serde_json::Value::Null, |r| r.get("result").to_serde());
                let (peers, info) = (result(0), result(1));
                Ok(convert::reply_with(Json::String(netinfo::render(n, network, &peers, &info, now))))
            })?
        }
        Mode::Getinfo => {
            if !args.is_empty() {
                return Err("-getinfo takes no arguments".into());
            }
            let reply =
                call(&mut || Ok(getinfo::getinfo_reply(&client.call_batch(getinfo::getinfo_requests(), wait)?)))?;
            if reply.get("error").is_null() {
                let color = getinfo::colorize(cl.get("color").unwrap_or("auto"), std::io::stdout().is_terminal())?;
                convert::reply_with(Json::String(getinfo::format_getinfo(reply.get("result"), color)))
            } else {
                reply
            }
        }
        Mode::Addrinfo => {
            if !args.is_empty() {
                return Err("-addrinfo takes no arguments".into());
            }
            let request = getinfo::addrinfo_request();
            call(&mut || client.call(&request, wait).and_then(|r| getinfo::addrinfo_reply(&r).map_err(Failure::Fatal)))?
        }
    };
    Ok(rpc::print_reply(&reply))
}

/// A single call's reply must be a non-empty object (Core's `get_obj()` and `empty()` checks).
fn check_reply(reply: Json) -> Result<Json, Failure> {
    match &reply {
        Json::Object(kv) if kv.is_empty() => {
            Err(Failure::Fatal("expected reply to have result, error and id properties".into()))
        }
        Json::Object(_) => Ok(reply),
        other => {
            Err(Failure::Fatal(format!("JSON value of type {} is not of expected type object", other.type_name())))
        }
    }
}
