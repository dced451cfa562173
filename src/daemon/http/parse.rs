//! HTTP/1.x request assembly without I/O: bytes go in as they arrive, complete requests (or the
//! status to refuse them with) come out, and memory stays within [`MAX_HEADERS`] plus
//! [`MAX_BODY`] plus one read. Also the response encoder and a blocking reader built on both.

use std::io::{self, Read, Write};

use super::{HttpRequest, HttpResponse, MAX_BODY, MAX_HEADERS, reason};

/// Most header fields in one request.
const MAX_HEADER_COUNT: usize = 64;
/// How far past the current request the reader buffers (one read's worth).
pub const READ_CHUNK: usize = 16 * 1024;

/// The head of a request whose body is still arriving.
#[derive(Debug)]
struct Head {
    req: HttpRequest,
    keep_alive: bool,
    head_len: usize,
    body_len: usize,
    /// `Expect: 100-continue` and no `100 Continue` sent yet.
    wants_continue: bool,
}

/// What the bytes so far give.
#[derive(Debug)]
pub enum Step {
    /// More bytes are needed.
    NeedMore,
    /// The head is complete and the client waits for `HTTP/1.1 100 Continue` before the body.
    SendContinue,
    /// A complete request, and whether the connection stays open after its answer.
    Request(HttpRequest, bool),
    /// Answer with this status and close.
    Fail(u16),
}

/// One connection's partial request (and any pipelined bytes after it).
#[derive(Debug, Default)]
pub struct RequestReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of the head (less three, for a split
    /// `\r\n\r\n`).
    scanned: usize,
    head: Option<Head>,
}

impl RequestReader {
    /// A reader continuing from `buf` (bytes already read past an earlier request).
    pub fn with_bytes(buf: Vec<u8>) -> Self {
        RequestReader { buf, scanned: 0, head: None }
    }

    /// Hands back the unparsed bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Whether nothing of a next request has arrived.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.head.is_none()
    }

    /// How many more bytes may be buffered now: the rest of the current request's bounds plus
    /// one read. Zero means [`RequestReader::step`] will not say `NeedMore`.
    pub fn room(&self) -> usize {
        let limit = match &self.head {
            None => MAX_HEADERS + 1,
            Some(h) => h.head_len.saturating_add(h.body_len),
        };
        limit.saturating_add(READ_CHUNK).saturating_sub(self.buf.len())
    }

    /// Appends bytes read from the client (the caller reads at most [`RequestReader::room`]).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Parses as far as the bytes go.
    pub fn step(&mut self) -> Step {
        if self.head.is_none() {
            let from = self.scanned.saturating_sub(3);
            let found = self.buf.get(from..).and_then(|b| b.windows(4).position(|w| w == b"\r\n\r\n"));
            let Some(at) = found else {
                self.scanned = self.buf.len();
                return if self.buf.len() > MAX_HEADERS { Step::Fail(431) } else { Step::NeedMore };
            };
            let head_len = from + at + 4;
            if head_len > MAX_HEADERS {
                return Step::Fail(431);
            }
            match parse_head(self.buf.get(..head_len).unwrap_or(&[]), head_len) {
                Ok(h) => self.head = Some(h),
                Err(status) => return Step::Fail(status),
            }
        }
        let Some(head) = self.head.as_mut() else { return Step::NeedMore };
        let end = head.head_len.saturating_add(head.body_len);
        if self.buf.len() < end {
            if head.wants_continue {
                head.wants_continue = false;
                return Step::SendContinue;
            }
            return Step::NeedMore;
        }
        let Some(mut head) = self.head.take() else { return Step::NeedMore };
        head.req.body = self.buf.get(head.head_len..end).map(<[u8]>::to_vec).unwrap_or_default();
        self.buf.drain(..end);
        self.scanned = 0;
        Step::Request(head.req, head.keep_alive)
    }
}

fn parse_head(bytes: &[u8], head_len: usize) -> Result<Head, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADER_COUNT];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(bytes) else { return Err(400) };
    let req = HttpRequest {
        method: parsed.method.unwrap_or_default().to_string(),
        path: parsed.path.unwrap_or_default().to_string(),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
            .collect(),
        body: Vec::new(),
        peer: None,
    };
    let http10 = parsed.version == Some(0);
    let connection = req.header("Connection").map(str::to_ascii_lowercase);
    let keep_alive =
        if http10 { connection.as_deref() == Some("keep-alive") } else { connection.as_deref() != Some("close") };
    if req.header("Transfer-Encoding").is_some() {
        return Err(501);
    }
    let body_len = match req.header("Content-Length").map(|v| v.trim().parse::<usize>()) {
        None => 0,
        Some(Ok(n)) if n <= MAX_BODY => n,
        Some(Ok(_)) => return Err(413),
        Some(Err(_)) => return Err(400),
    };
    let wants_continue = body_len > 0 && req.header("Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    Ok(Head { req, keep_alive, head_len, body_len, wants_continue })
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A response's bytes (`Content-Length` and `Connection` added; no body for `HEAD`).
pub fn encode_response(resp: &HttpResponse, keep_alive: bool, head: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    out.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(&resp.body);
    }
    bytes
}

/// What reading one request gave.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A request, and whether the connection stays open after the answer.
    Request(HttpRequest, bool),
    /// The client closed or timed out between requests.
    Closed,
    /// Answer with this status and close.
    Fail(u16),
}

/// Reads one request from a blocking `stream` (written to only for `100 Continue`); `buf`
/// carries bytes read past it (pipelining) to the next call. The server itself never blocks on
/// a client (it feeds a [`RequestReader`] from its poller); this is the same parser for
/// callers that own a blocking stream, such as the fuzz target.
pub fn read_request<S: Read + Write>(stream: &mut S, buf: &mut Vec<u8>) -> ReadOutcome {
    let mut reader = RequestReader::with_bytes(std::mem::take(buf));
    let mut chunk = [0u8; 4096];
    let outcome = loop {
        match reader.step() {
            Step::Request(req, keep_alive) => break ReadOutcome::Request(req, keep_alive),
            Step::Fail(status) => break ReadOutcome::Fail(status),
            Step::SendContinue => {
                let _ = stream.write_all(CONTINUE);
            }
            Step::NeedMore => {
                let want = reader.room().min(chunk.len());
                match stream.read(chunk.get_mut(..want).unwrap_or(&mut [])) {
                    Ok(0) => break if reader.is_empty() { ReadOutcome::Closed } else { ReadOutcome::Fail(400) },
                    Ok(n) => reader.push(chunk.get(..n).unwrap_or(&[])),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) if reader.is_empty() => break ReadOutcome::Closed,
                    Err(_) => break ReadOutcome::Fail(408),
                }
            }
        }
    };
    *buf = reader.into_bytes();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_bytewise(raw: &[u8]) -> (Vec<Step>, RequestReader) {
        let mut r = RequestReader::default();
        let mut steps = Vec::new();
        for b in raw {
            r.push(std::slice::from_ref(b));
            loop {
                match r.step() {
                    Step::NeedMore => break,
                    s => steps.push(s),
                }
            }
        }
        (steps, r)
    }

    #[test]
    fn requests_split_anywhere_and_pipelined_come_out_whole_and_in_order() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabcGET /m HTTP/1.0\r\n\r\n";
        let (steps, r) = feed_bytewise(raw);
        assert!(r.is_empty());
        assert!(matches!(&steps[0], Step::SendContinue), "{steps:?}");
        let Step::Request(a, true) = &steps[1] else { panic!("{steps:?}") };
        assert_eq!((a.method.as_str(), a.body.as_slice()), ("POST", &b"abc"[..]));
        let Step::Request(b, false) = &steps[2] else { panic!("{steps:?}") };
        assert_eq!((b.path.as_str(), steps.len()), ("/m", 3));
        // Everything at once gives the same requests, and no 100 Continue (the body is there).
        let mut whole = RequestReader::with_bytes(raw.to_vec());
        assert!(matches!(whole.step(), Step::Request(_, true)));
        assert!(matches!(whole.step(), Step::Request(_, false)));
        assert!(matches!(whole.step(), Step::NeedMore) && whole.is_empty());
    }

    #[test]
    fn bounds_hold_whatever_the_client_sends() {
        let mut r = RequestReader::default();
        r.push(&vec![b'a'; MAX_HEADERS + 1]);
        assert!(matches!(r.step(), Step::Fail(431)));
        let mut r = RequestReader::default();
        r.push(format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1).as_bytes());
        assert!(matches!(r.step(), Step::Fail(413)));
        let mut r = RequestReader::default();
        r.push(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab");
        assert!(matches!(r.step(), Step::NeedMore));
        assert!(r.room() <= 8 + READ_CHUNK, "{}", r.room());
    }
}
