//! `btcloop-cli` as a process, without btcloopd: bitcoin-cli's handling of the command line,
//! credentials and unreachable servers, and — against a one-shot HTTP stub on 127.0.0.1 — the
//! request it sends and how it prints replies and exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_btcloop-cli")).args(args).stdin(Stdio::null()).output().expect("run btcloop-cli")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A data directory with a regtest cookie.
fn datadir_with_cookie() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("regtest")).unwrap();
    std::fs::write(d.path().join("regtest/.cookie"), "__cookie__:0123abcd").unwrap();
    d
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Answers one HTTP request on 127.0.0.1 with `status` and `body`; joins to the request's
/// head (lower-cased) and body.
fn stub(status: &str, body: &'static str) -> (u16, JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let status = status.to_string();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head += &line.to_ascii_lowercase();
        }
        let len: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
        let mut req = vec![0; len];
        reader.read_exact(&mut req).unwrap();
        let mut w = stream;
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        w.write_all(reply.as_bytes()).unwrap();
        (head, String::from_utf8(req).unwrap())
    });
    (port, handle)
}

#[test]
fn help_version_and_too_few_parameters() {
    let o = cli(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("Usage: btcloop-cli [options] <command> [params]"));
    assert_eq!(stderr(&o), "Error: too few parameters\n");
    for h in ["-h", "-?", "-help", "--help"] {
        let o = cli(&[h]);
        assert!(o.status.success() && stdout(&o).contains("-rpcwait"), "{h}");
    }
    let o = cli(&["-version"]);
    assert!(o.status.success() && stdout(&o).starts_with("btcloop RPC client version v"));
    let o = cli(&["-regtest"]);
    assert_eq!(
        (o.status.code(), stderr(&o).as_str()),
        (Some(1), "error: too few parameters (need at least command)\n")
    );
}

#[test]
fn bad_options_chains_and_datadir() {
    let o = cli(&["-bogus", "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "Error parsing command line arguments: Invalid parameter -bogus\n");
    let o = cli(&["-regtest", "-chain=signet", "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("Error: Invalid combination of -regtest, -signet, -testnet, -testnet4 and -chain."));
    let o = cli(&["-chain=moon", "getblockcount"]);
    assert_eq!(stderr(&o), "Error: Unknown chain moon.\n");
    let o = cli(&["-datadir=/nonexistent/btcloop", "getblockcount"]);
    assert_eq!(stderr(&o), "Error: Specified data directory \"/nonexistent/btcloop\" does not exist.\n");
    let o = cli(&["-getinfo", "-netinfo"]);
    assert_eq!(stderr(&o), "error: Only one of -getinfo, -netinfo may be specified.\n");
    let o = cli(&["-rpcport=0", "getblockcount"]);
    assert_eq!(stderr(&o), "error: Invalid port provided in -rpcport: 0\n");
}

#[test]
fn netinfo_help_and_bad_levels_need_no_server() {
    let o = cli(&["-netinfo", "help"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("-netinfo [level [outonly]] | help\n"));
    let o = cli(&["-netinfo", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: invalid -netinfo level argument: x\n"));
    let o = cli(&["-netinfo", "0", "outonly"]);
    assert!(stderr(&o).contains("only valid for a level greater than 0"));
}

#[test]
fn missing_credentials_bad_json_and_unreachable_server() {
    let empty = tempfile::tempdir().unwrap();
    let port = closed_port().to_string();
    let dd = format!("-datadir={}", empty.path().display());
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: Could not locate RPC credentials. No authentication cookie could be found"));
    assert!(stderr(&o).contains(&format!("{}/regtest/.cookie", empty.path().display())));
    // With -rpcwait a missing cookie is not final: the server may be starting. Until it answers,
    // it is a connection failure; when it refuses the empty credentials, the cookie is missing.
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "-rpcwait", "-rpcwaittimeout=1", "getblockcount"]);
    assert!(stderr(&o).starts_with("error: timeout on transient error: Error while attempting"), "{}", stderr(&o));
    let (stub_port, server) = stub("401 Unauthorized", "");
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={stub_port}"), "-rpcwait", "getblockcount"]);
    let (head, _) = server.join().unwrap();
    assert!(head.contains("authorization: basic \r\n"), "{head}");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: Could not locate RPC credentials."), "{}", stderr(&o));

    let d = datadir_with_cookie();
    let dd = format!("-datadir={}", d.path().display());
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "getblockhash", "five"]);
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(1), "error: Error parsing JSON: five\n"));
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "getblockcount"]);
    assert_eq!(o.status.code(), Some(1));
    let expected = format!(
        "error: Error while attempting to communicate with server 127.0.0.1:{port} (Could not connect to the server)\n\n\
         Make sure the btcloopd server is running"
    );
    assert!(stderr(&o).starts_with(&expected), "{}", stderr(&o));
    let o = cli(&[
        &dd,
        "-regtest",
        &format!("-rpcconnect=127.0.0.1:{port}"),
        "-rpcwait",
        "-rpcwaittimeout=1",
        "getblockcount",
    ]);
    assert!(stderr(&o).starts_with("error: timeout on transient error: Error while attempting"), "{}", stderr(&o));
}

#[test]
fn sends_core_requests_and_prints_results() {
    let d = datadir_with_cookie();
    let dd = format!("-datadir={}", d.path().display());
    let (port, server) = stub("200 OK", r#"{"jsonrpc":"2.0","result":{"z":1,"a":0.00001000,"e":[]},"id":"1"}"#);
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "getblockhash", "5"]);
    let (head, body) = server.join().unwrap();
    assert_eq!(body, "{\"method\":\"getblockhash\",\"params\":[5],\"id\":\"1\",\"jsonrpc\":\"2.0\"}\n");
    assert!(head.starts_with("post / http/1.1\r\n"), "{head}");
    assert!(head.contains("content-type: application/json\r\n"), "{head}");
    // base64("__cookie__:0123abcd")
    assert!(head.contains("authorization: basic x19jb29rawvfxzowmtizywjjza==\r\n"), "{head}");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "{\n  \"z\": 1,\n  \"a\": 0.00001000,\n  \"e\": [\n  ]\n}\n");

    let (port, server) = stub("200 OK", r#"{"jsonrpc":"2.0","result":"done","id":"x"}"#);
    let o = cli(&[
        &dd,
        "-regtest",
        &format!("-rpcport={port}"),
        "-rpcid=x",
        "-named",
        "setban",
        "subnet=1.2.3.4",
        "command=add",
        "bantime=60",
    ]);
    let (_, body) = server.join().unwrap();
    let expected =
        r#"{"method":"setban","params":{"subnet":"1.2.3.4","command":"add","bantime":60},"id":"x","jsonrpc":"2.0"}"#;
    assert_eq!(body.trim_end(), expected);
    assert_eq!(stdout(&o), "done\n");
}

#[test]
fn errors_exit_with_the_code_and_401_is_reported() {
    let d = datadir_with_cookie();
    let dd = format!("-datadir={}", d.path().display());
    let (port, server) =
        stub("200 OK", r#"{"jsonrpc":"2.0","error":{"code":-8,"message":"Block height out of range"},"id":"1"}"#);
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "getblockhash", "999"]);
    server.join().unwrap();
    assert_eq!(o.status.code(), Some(8));
    assert_eq!(stderr(&o), "error code: -8\nerror message:\nBlock height out of range\n");
    assert_eq!(stdout(&o), "");

    let (port, server) =
        stub("404 Not Found", r#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":"1"}"#);
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "nosuchmethod"]);
    server.join().unwrap();
    assert_eq!(o.status.code(), Some(32601 % 256));
    assert_eq!(stderr(&o), "error code: -32601\nerror message:\nMethod not found\n");

    let (port, server) = stub("401 Unauthorized", "");
    let o = cli(&[&dd, "-regtest", &format!("-rpcport={port}"), "-rpcuser=u", "-rpcpassword=p", "getblockcount"]);
    let (head, _) = server.join().unwrap();
    assert!(head.contains("authorization: basic dtpw\r\n"), "{head}");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: Authorization failed: Incorrect rpcuser or rpcpassword"), "{}", stderr(&o));
}

#[test]
fn stdin_arguments_and_decode_capture_after_options() {
    let d = datadir_with_cookie();
    let dd = format!("-datadir={}", d.path().display());
    let (port, server) = stub("200 OK", r#"{"jsonrpc":"2.0","result":null,"id":"1"}"#);
    let mut child = Command::new(env!("CARGO_BIN_EXE_btcloop-cli"))
        .args([dd.as_str(), "-regtest", &format!("-rpcport={port}"), "-stdin", "logging"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"[\"net\"]\n[]\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let (_, body) = server.join().unwrap();
    assert!(body.contains(r#""params":[["net"],[]]"#), "{body}");
    assert!(o.status.success());
    assert_eq!(stdout(&o), "", "a null result prints nothing");

    let o = cli(&["-regtest", "decode-capture", "/nonexistent/x.dat"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such file or directory"));
}
