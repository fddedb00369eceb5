//! Rendering a compiled [`Format`] for one request or connection into a caller-owned buffer
//! (the shard's per-shard log buffer), with Envoy's conventions: a missing value is `-`,
//! durations are whole milliseconds, `START_TIME` is RFC 3339 UTC with milliseconds.
//!
//! Cost (callgrind, epoll, one connection, 2026-12-06; h1 with Envoy's default format to a
//! file and trace headers, `shardcar-http-observed`): 21,344 → 20,235 instructions per request
//! from text formats run as [`super::steps`] (literals as fixed-size copies), the command
//! dispatch inlined into that loop, numbers as one fixed-size copy, and each address's text
//! cached per thread; 20,127 once a line looks its request headers up in one pass over the head
//! ([`HeaderLookup::headers`]) instead of one scan per `%REQ(..)%`. All observability off
//! (`shardcar-http-off`) is 16,694.

use std::cell::Cell;
use std::io::Write as _;
use std::net::{SocketAddr, SocketAddrV4};
use std::thread::LocalKey;
use std::time::{Duration, SystemTime};

use super::format::{Format, Op, Source};
use super::steps::{MAX_SLOTS, NO_SLOT};

/// Header access for `%REQ(..)%` / `%RESP(..)%` without copying heads (the codecs implement it
/// over their parsed spans). `name` is lower case.
pub trait HeaderLookup {
    fn header(&self, name: &str) -> Option<&[u8]>;

    /// The first value of each of `names` (lower case) into `out` (same length), in one pass
    /// where the codec can; by default one lookup per name.
    fn headers<'s>(&'s self, names: &[Box<str>], out: &mut [Option<&'s [u8]>]) {
        for (n, o) in names.iter().zip(out) {
            *o = self.header(n);
        }
    }
}

/// No headers (TCP logs, or a request that failed before a response head).
impl HeaderLookup for () {
    fn header(&self, _: &str) -> Option<&[u8]> {
        None
    }
}

/// What one log line can say. Fields a path does not know stay `None`/empty and render `-`.
pub struct Entry<'a> {
    pub start: SystemTime,
    pub method: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub authority: Option<&'a [u8]>,
    pub scheme: Option<&'a [u8]>,
    pub req: &'a dyn HeaderLookup,
    pub resp: &'a dyn HeaderLookup,
    /// `HTTP/1.1`, `HTTP/2`; `None` for TCP.
    pub protocol: Option<&'a str>,
    pub status: Option<u16>,
    /// Envoy response flags (`UF`, `UT`, …); empty renders `-`.
    pub flags: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Duration,
    /// Start to the end of the request body.
    pub request_duration: Option<Duration>,
    /// Start to the first byte of the upstream response.
    pub response_duration: Option<Duration>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<&'a str>,
    pub downstream_remote: Option<SocketAddr>,
    pub peer_uri_san: Option<&'a str>,
    pub upstream_failure: Option<&'a str>,
    pub termination: Option<&'a str>,
}

impl Format {
    /// Append one line (text formats end as written; JSON gets a trailing newline).
    pub fn render(&self, e: &Entry<'_>, out: &mut Vec<u8>) {
        match self {
            Format::Text(f) => {
                let mut found = [None; MAX_SLOTS];
                let found = &mut found[..f.req_headers.len()];
                if !found.is_empty() {
                    e.req.headers(&f.req_headers, found);
                }
                // Room for a typical line up front: the appends below then never reallocate.
                out.reserve(LINE_RESERVE);
                for step in &f.steps {
                    step.lead.append(out);
                    match &step.op {
                        Some(Op::Req { alt, max, .. }) if step.slots[0] != NO_SLOT => {
                            let v = found[step.slots[0] as usize].or_else(|| match step.slots[1] {
                                NO_SLOT => alt.as_ref().and_then(|a| lookup(e, e.req, a)),
                                i => found[i as usize],
                            });
                            value(v, *max, out);
                        }
                        Some(Op::Req { first, alt, max }) if step.slots[1] != NO_SLOT => {
                            let v = lookup(e, e.req, first).or(found[step.slots[1] as usize]);
                            value(v, *max, out);
                        }
                        Some(op) => op_into(op, e, out),
                        None => {}
                    }
                }
            }
            Format::Json(fields) => {
                out.push(b'{');
                for (i, (k, ops)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_str(k.as_bytes(), out);
                    out.push(b':');
                    let start = out.len();
                    if let [op] = ops.as_slice() {
                        op_into(op, e, out);
                        if op.is_numeric() && &out[start..] != b"-" {
                            continue;
                        }
                        let raw = out.split_off(start);
                        if raw == b"-" {
                            out.extend_from_slice(b"null");
                        } else {
                            json_str(&raw, out);
                        }
                        continue;
                    }
                    let mut raw = Vec::new();
                    ops.iter().for_each(|op| op_into(op, e, &mut raw));
                    json_str(&raw, out);
                }
                out.extend_from_slice(b"}\n");
            }
        }
    }
}

/// Reserved before a text line (Envoy's default line is 150–300 bytes).
const LINE_RESERVE: usize = 512;

// Inlined into the text loop: as a call, its prologue and epilogue were a fifth of its cost.
#[inline(always)]
fn op_into(op: &Op, e: &Entry<'_>, out: &mut Vec<u8>) {
    match op {
        Op::Literal(s) => out.extend_from_slice(s.as_bytes()),
        Op::StartTime => rfc3339_millis(e.start, out),
        Op::Req { first, alt, max } => header_op(e, e.req, first, alt.as_ref(), *max, out),
        Op::Resp { first, alt, max } => header_op(e, e.resp, first, alt.as_ref(), *max, out),
        Op::ResponseCode => match e.status {
            Some(s) => num(s as u64, out),
            None => out.push(b'0'),
        },
        Op::ResponseFlags => opt(Some(e.flags).filter(|f| !f.is_empty()), out),
        Op::BytesReceived => num(e.bytes_received, out),
        Op::BytesSent => num(e.bytes_sent, out),
        Op::Duration => num(e.duration.as_millis() as u64, out),
        Op::RequestDuration => ms(e.request_duration, out),
        Op::ResponseDuration => ms(e.response_duration, out),
        Op::UpstreamHost => addr(e.upstream_host, &UPSTREAM_TEXT, out),
        Op::UpstreamCluster => opt(e.upstream_cluster, out),
        Op::DownstreamRemoteAddress => addr(e.downstream_remote, &DOWNSTREAM_TEXT, out),
        Op::DownstreamPeerUriSan => opt(e.peer_uri_san, out),
        Op::Protocol => opt(e.protocol, out),
        Op::UpstreamTransportFailureReason => opt(e.upstream_failure, out),
        Op::ConnectionTerminationDetails => opt(e.termination, out),
    }
}

fn lookup<'a>(e: &Entry<'a>, h: &'a dyn HeaderLookup, s: &Source) -> Option<&'a [u8]> {
    match s {
        Source::Method => e.method,
        Source::Path => e.path,
        Source::Authority => e.authority,
        Source::Scheme => e.scheme,
        Source::Header(n) => h.header(n),
    }
}

fn header_op<'a>(
    e: &Entry<'a>,
    h: &'a dyn HeaderLookup,
    first: &Source,
    alt: Option<&Source>,
    max: Option<usize>,
    out: &mut Vec<u8>,
) {
    let v = lookup(e, h, first).or_else(|| alt.and_then(|a| lookup(e, h, a)));
    value(v, max, out);
}

/// A `%REQ%`/`%RESP%` value, cut to `max` bytes; `-` when missing.
fn value(v: Option<&[u8]>, max: Option<usize>, out: &mut Vec<u8>) {
    match v {
        Some(v) => out.extend_from_slice(&v[..max.unwrap_or(usize::MAX).min(v.len())]),
        None => out.push(b'-'),
    }
}

fn opt(v: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(v.unwrap_or("-").as_bytes());
}

/// Decimal digits of `n`, without `core::fmt` (its machinery was most of a log line's cost).
pub(crate) fn num(n: u64, out: &mut Vec<u8>) {
    let (digits, len) = decimal(n);
    // The whole array is one fixed-size copy; the unused tail is cut off again.
    let start = out.len();
    out.extend_from_slice(&digits);
    out.truncate(start + len);
}

/// `n`'s decimal digits, left-aligned, and how many there are.
fn decimal(mut n: u64) -> ([u8; 20], usize) {
    let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let mut buf = [0u8; 20];
    let mut i = len;
    // Two digits per division (a table of "00".."99").
    while n >= 100 {
        let r = 2 * (n % 100) as usize;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
    }
    if n >= 10 {
        let r = 2 * n as usize;
        buf[..2].copy_from_slice(&PAIRS[r..r + 2]);
    } else {
        buf[0] = b'0' + n as u8;
    }
    (buf, len)
}

/// "00", "01", … "99".
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// `n` as exactly `width` digits, zero-padded (`n` must fit).
fn padded(n: u64, width: usize, out: &mut Vec<u8>) {
    let mut buf = [b'0'; 4];
    let mut n = n;
    for d in buf[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

fn ms(d: Option<Duration>, out: &mut Vec<u8>) {
    match d {
        Some(d) => num(d.as_millis() as u64, out),
        None => out.push(b'-'),
    }
}

/// The text of the last IPv4 address rendered for one command on this thread: a shard's lines
/// mostly name the same few upstreams, and rendering one took five number conversions.
type AddrText = Cell<(Option<SocketAddrV4>, [u8; 24], u8)>;

thread_local! {
    static UPSTREAM_TEXT: AddrText = const { Cell::new((None, [0; 24], 0)) };
    static DOWNSTREAM_TEXT: AddrText = const { Cell::new((None, [0; 24], 0)) };
}

fn addr(a: Option<SocketAddr>, cache: &'static LocalKey<AddrText>, out: &mut Vec<u8>) {
    match a {
        Some(SocketAddr::V4(a)) => {
            let (text, len) = cache.with(|c| {
                let (at, text, len) = c.get();
                if at == Some(a) {
                    return (text, len);
                }
                let (text, len) = v4_text(a);
                c.set((Some(a), text, len));
                (text, len)
            });
            let start = out.len();
            out.extend_from_slice(&text);
            out.truncate(start + len as usize);
        }
        Some(a) => {
            let _ = write!(out, "{a}");
        }
        None => out.push(b'-'),
    }
}

/// `a.b.c.d:port`, at most 21 bytes.
fn v4_text(a: SocketAddrV4) -> ([u8; 24], u8) {
    let mut text = [0u8; 24];
    let mut len = 0;
    let octets = a.ip().octets();
    for (i, n) in octets
        .iter()
        .map(|&o| u64::from(o))
        .chain([u64::from(a.port())])
        .enumerate()
    {
        if i > 0 {
            text[len] = if i == 4 { b':' } else { b'.' };
            len += 1;
        }
        let (d, l) = decimal(n);
        text[len..len + l].copy_from_slice(&d[..l]);
        len += l;
    }
    (text, len as u8)
}

/// `2026-12-02T07:10:01.123Z` (Envoy's default START_TIME).
pub fn rfc3339_millis(t: SystemTime, out: &mut Vec<u8>) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    if secs >= YEAR_10000 {
        let (days, sod) = ((secs / 86_400) as i64, secs % 86_400);
        let (y, m, dd) = civil_from_days(days);
        let _ = write!(
            out,
            "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60,
            d.subsec_millis()
        );
        return;
    }
    // Lines of one second share the date and time up to the seconds: rendered once per second
    // per thread (a shard's log lines come from its own thread).
    let prefix = SECOND.with(|c| {
        let (at, p) = c.get();
        if at == secs {
            return p;
        }
        let p = second_prefix(secs);
        c.set((secs, p));
        p
    });
    out.extend_from_slice(&prefix);
    padded(u64::from(d.subsec_millis()), 3, out);
    out.push(b'Z');
}

/// 10000-01-01T00:00:00Z in Unix seconds: four-digit years end before it.
const YEAR_10000: u64 = 253_402_300_800;

thread_local! {
    /// The last second rendered by this thread and its `YYYY-MM-DDTHH:MM:SS.`.
    static SECOND: Cell<(u64, [u8; 20])> =
        const { std::cell::Cell::new((u64::MAX, [0; 20])) };
}

fn second_prefix(secs: u64) -> [u8; 20] {
    let (days, sod) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, dd) = civil_from_days(days);
    let mut v = Vec::with_capacity(20);
    padded(y as u64, 4, &mut v);
    for (sep, n) in [
        (b'-', u64::from(m)),
        (b'-', u64::from(dd)),
        (b'T', sod / 3600),
        (b':', sod / 60 % 60),
        (b':', sod % 60),
    ] {
        v.push(sep);
        padded(n, 2, &mut v);
    }
    v.push(b'.');
    let mut p = [0u8; 20];
    p.copy_from_slice(&v);
    p
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A JSON string literal with RFC 8259 escapes; invalid UTF-8 bytes become U+FFFD.
pub(crate) fn json_str(raw: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in String::from_utf8_lossy(raw).chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}
