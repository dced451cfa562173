//! Fuzzes what an RPC client controls before and after authentication: the HTTP request
//! reader (`http::read_request`, fed the input as the byte stream of one connection) and, for
//! each request it yields, the JSON-RPC layer (`jsonrpc::handle`) with Core's argument
//! preparation of every method (`methods::prepare`), without running the methods.
//!
//! Checks: no panic; the reader never holds more than the header and body bounds; every
//! reply is valid JSON whose shape matches its HTTP status (204 has no body, 200/4xx/5xx do).

#![no_main]

use std::io::{Read, Write};

use btcloop::daemon::http::{MAX_BODY, MAX_HEADERS, ReadOutcome, read_request};
use btcloop::daemon::rpc::{jsonrpc, methods};
use libfuzzer_sys::fuzz_target;

/// One connection's bytes; what the server writes is discarded.
struct Conn<'a> {
    input: &'a [u8],
    /// Largest read handed out, so that reads come in several pieces.
    chunk: usize,
}

impl Read for Conn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.input.len()).min(self.chunk);
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Conn<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let mut conn = Conn { input: rest, chunk: usize::from(first % 64) + 1 };
    let mut buf = Vec::new();
    for _ in 0..8 {
        match read_request(&mut conn, &mut buf) {
            ReadOutcome::Request(req, keep_alive) => {
                assert!(req.body.len() <= MAX_BODY);
                assert!(buf.len() <= MAX_HEADERS + 4096 + MAX_BODY);
                let reply = jsonrpc::handle(&req.body, &mut |call| {
                    methods::prepare(&call.method, &call.params).map(|_| serde_json::Value::Null)
                });
                match reply.body {
                    Some(b) => {
                        assert_ne!(reply.status, 204);
                        serde_json::from_str::<serde_json::Value>(&b).expect("reply is JSON");
                    }
                    None => assert_eq!(reply.status, 204),
                }
                if !keep_alive {
                    return;
                }
            }
            ReadOutcome::Closed | ReadOutcome::Fail(_) => return,
        }
    }
});
