//! Request and response heads: httparse for the syntax, then our own strictness and framing
//! rules (request-smuggling defence). Parsed heads are spans into the connection's read buffer,
//! kept in a per-connection struct whose header vector is reused, so parsing allocates nothing
//! once a connection has seen its largest head.

pub use crate::http::span::{HeaderSpan, Span};

/// Most headers httparse is asked to hold; configured limits are validated to be ≤ this.
pub use crate::http::header::{classify, Known};

pub const MAX_HEADERS: usize = crate::config::MAX_HEADER_COUNT;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    #[default]
    None,
    Length(u64),
    Chunked,
    /// Response only: the body runs until the upstream closes.
    UntilClose,
}

/// Why a request head is refused, each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// 400 with the reason.
    BadRequest(&'static str),
    /// 431: header section larger than the limit, or too many headers.
    HeadersTooLarge(&'static str),
    /// 414: request line longer than the limit.
    UriTooLong,
    /// 501: a transfer coding we do not implement.
    NotImplemented(&'static str),
    /// 408: the head did not arrive in time.
    Timeout,
}

impl Reject {
    pub fn status(&self) -> u16 {
        match self {
            Reject::BadRequest(_) => 400,
            Reject::HeadersTooLarge(_) => 431,
            Reject::UriTooLong => 414,
            Reject::NotImplemented(_) => 501,
            Reject::Timeout => 408,
        }
    }
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::BadRequest(r) | Reject::HeadersTooLarge(r) | Reject::NotImplemented(r) => r,
            Reject::UriTooLong => "request line too long",
            Reject::Timeout => "request headers not received in time",
        }
    }
}

/// Limits applied while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_request_line: usize,
}

/// A parsed request head (spans into the read buffer).
#[derive(Debug, Default)]
pub struct RequestHead {
    pub method: Span,
    pub target: Span,
    /// HTTP/1.`minor`.
    pub minor: u8,
    pub headers: Vec<HeaderSpan>,
    /// Bytes of the head, including the final CRLF.
    pub len: usize,
    pub framing: Framing,
    /// The client wants the connection closed after this exchange.
    pub close: bool,
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub upgrade: bool,
    pub host: Option<Span>,
    /// Header names listed in `Connection` (besides close/keep-alive/upgrade): hop-by-hop.
    pub connection_listed: Vec<Span>,
}

impl RequestHead {
    pub fn is_connect(&self, buf: &[u8]) -> bool {
        self.method.get(buf) == b"CONNECT"
    }
    pub fn is_head(&self, buf: &[u8]) -> bool {
        self.method.get(buf) == b"HEAD"
    }
    /// Safe to retry after bytes reached the upstream (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self, buf: &[u8]) -> bool {
        matches!(
            self.method.get(buf),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }
    /// First value of `name` (lower-case) if present.
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.get(buf))
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e]
}

/// Strict decimal Content-Length; a comma list must repeat one value.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    let mut value = None;
    for part in v.split(|b| *b == b',') {
        let p = trim(part);
        if p.is_empty() || p.len() > 19 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(p).ok()?.parse().ok()?;
        match value {
            None => value = Some(n),
            Some(prev) if prev == n => {}
            Some(_) => return None,
        }
    }
    value
}

/// A `\n` not preceded by `\r` anywhere in the head.
fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// Framing headers shared by requests and responses.
#[derive(Default)]
pub(super) struct Framer {
    pub(super) content_length: Option<u64>,
    pub(super) chunked: bool,
    transfer_encoding: bool,
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    upgrade_token: bool,
}

impl Framer {
    pub(super) fn header(
        &mut self,
        buf: &[u8],
        kind: Known,
        value: &[u8],
        listed: &mut Vec<Span>,
    ) -> Result<(), Reject> {
        if kind == Known::ContentLength {
            let n = parse_content_length(value)
                .ok_or(Reject::BadRequest("invalid or conflicting Content-Length"))?;
            if self.content_length.is_some_and(|prev| prev != n) {
                return Err(Reject::BadRequest("conflicting Content-Length headers"));
            }
            self.content_length = Some(n);
        } else if kind == Known::TransferEncoding {
            self.transfer_encoding = true;
            for coding in value.split(|b| *b == b',') {
                let c = trim(coding);
                if c.is_empty() {
                    continue;
                }
                if self.chunked {
                    return Err(Reject::BadRequest(
                        "chunked must be the final transfer coding",
                    ));
                }
                if c.eq_ignore_ascii_case(b"chunked") {
                    self.chunked = true;
                } else {
                    return Err(Reject::NotImplemented(
                        "only the chunked transfer coding is supported",
                    ));
                }
            }
        } else if kind == Known::Connection {
            for token in value.split(|b| *b == b',') {
                let t = trim(token);
                if t.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") {
                    self.upgrade_token = true;
                } else if !t.is_empty() {
                    listed.push(Span::of(buf, t));
                }
            }
        }
        Ok(())
    }
}

fn map_httparse(e: httparse::Error) -> Reject {
    match e {
        httparse::Error::TooManyHeaders => Reject::HeadersTooLarge("too many headers"),
        httparse::Error::HeaderName => {
            Reject::BadRequest("invalid header name (whitespace before colon or obs-fold?)")
        }
        httparse::Error::HeaderValue => Reject::BadRequest("invalid header value"),
        httparse::Error::NewLine => Reject::BadRequest("invalid line ending"),
        httparse::Error::Token => Reject::BadRequest("invalid method token"),
        httparse::Error::Version => Reject::BadRequest("invalid HTTP version"),
        httparse::Error::Status => Reject::BadRequest("invalid status"),
    }
}

/// Parses a request head at the start of `buf` into `head`. `Ok(false)`: incomplete, read more.
pub fn parse_request(buf: &[u8], limits: &Limits, head: &mut RequestHead) -> Result<bool, Reject> {
    match memchr::memchr(b'\n', buf) {
        Some(i) if i > limits.max_request_line => return Err(Reject::UriTooLong),
        None if buf.len() > limits.max_request_line => return Err(Reject::UriTooLong),
        _ => {}
    }
    // Uninitialised slots: initialising 128 headers (4 KiB) cost more than parsing a small head.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_bytes {
                return Err(Reject::HeadersTooLarge("request header section too large"));
            }
            return Ok(false);
        }
        Err(e) => return Err(map_httparse(e)),
    };
    if len > limits.max_head_bytes {
        return Err(Reject::HeadersTooLarge("request header section too large"));
    }
    if req.headers.len() > limits.max_headers {
        return Err(Reject::HeadersTooLarge("too many headers"));
    }
    if has_bare_lf(&buf[..len]) {
        return Err(Reject::BadRequest("bare LF line ending"));
    }
    let minor = req.version.unwrap_or(1);
    head.method = Span::of(buf, req.method.unwrap_or("").as_bytes());
    head.target = Span::of(buf, req.path.unwrap_or("").as_bytes());
    head.minor = minor;
    head.len = len;
    head.headers.clear();
    head.connection_listed.clear();
    head.host = None;
    head.expect_continue = false;
    let mut f = Framer::default();
    let mut upgrade_header = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        head.headers.push(HeaderSpan {
            name: Span::of(buf, name),
            value: Span::of(buf, h.value),
        });
        let kind = classify(name);
        if kind == Known::TransferEncoding && minor == 0 {
            // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            return Err(Reject::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        f.header(buf, kind, h.value, &mut head.connection_listed)?;
        match kind {
            Known::Host => {
                if head.host.is_some() {
                    return Err(Reject::BadRequest("duplicate Host header"));
                }
                head.host = Some(Span::of(buf, trim(h.value)));
            }
            Known::Expect if trim(h.value).eq_ignore_ascii_case(b"100-continue") => {
                head.expect_continue = true;
            }
            Known::Upgrade => upgrade_header = true,
            _ => {}
        }
    }
    if f.content_length.is_some() && f.transfer_encoding {
        return Err(Reject::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if f.transfer_encoding && !f.chunked {
        return Err(Reject::BadRequest("Transfer-Encoding without chunked"));
    }
    if minor == 1 && head.host.is_none() {
        return Err(Reject::BadRequest("missing Host header"));
    }
    head.framing = if f.chunked {
        Framing::Chunked
    } else {
        match f.content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    head.close = f.close || (minor == 0 && !f.keep_alive);
    head.upgrade = f.upgrade_token && upgrade_header;
    Ok(true)
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
