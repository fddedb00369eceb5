//! Serialising heads: the request as it goes upstream (hop-by-hop headers removed per RFC 9110
//! §7.6.1, route edits, x-forwarded-*, x-request-id) and the response as it goes back to the
//! client. Both write into a per-connection buffer that is cleared, never reallocated once warm.

use std::io::Write;

use super::head::{classify, Framing, HeaderSpan, Known, RequestHead, Span};
use super::response_head::ResponseHead;
use crate::http::header::is_hop_by_hop;
pub use crate::http::header::{reason_phrase, uuid_v4};
use crate::route::FilterChain;
use crate::telemetry::propagate::{self, Fresh, Incoming, Outgoing};

fn listed(name: &[u8], buf: &[u8], connection_listed: &[Span]) -> bool {
    connection_listed
        .iter()
        .any(|s| s.get(buf).eq_ignore_ascii_case(name))
}

/// Appends `n` in decimal. `write!` goes through `fmt::Write` and its padding machinery, which
/// cost about 1,200 instructions per request for the status line and content-length alone.
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn put(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Everything the upstream head needs besides the parsed request.
pub struct Forwarding<'a> {
    /// The route's filters: header removals, host rewrite, additions.
    pub filters: &'a FilterChain,
    /// Request target to send (origin-form: an absolute-form target is reduced to its path).
    pub target: &'a [u8],
    /// Host to send instead of the client's (an absolute-form target's authority).
    pub authority: Option<&'a [u8]>,
    /// The client's address as text (formatted once per connection).
    pub client_ip: &'a [u8],
    /// A fresh UUIDv4 to use when the request carries no `x-request-id`.
    pub request_id: &'a [u8; 36],
    /// Body framing to announce upstream.
    pub framing: Framing,
    /// The client sent `TE: trailers` (HTTP/2, gRPC): say so upstream.
    pub te_trailers: bool,
    /// The downstream connection's TLS facts: `x-forwarded-proto: https`, and with a verified
    /// peer, `x-forwarded-client-cert: URI=spiffe://…` (Envoy's XFCC; a client's own XFCC is
    /// always dropped, so it cannot claim an identity).
    pub tls: Option<&'a crate::tls::TlsFacts>,
    /// Randomness for the trace headers (`traceparent`, B3) this hop sends; `None` with
    /// trace propagation off (the client's trace headers then pass through untouched).
    pub trace: Option<Fresh>,
}

const XFCC: &[u8] = b"x-forwarded-client-cert";

/// The request being forwarded, whatever codec parsed it: its method, its headers in order
/// (an HTTP/1 head's spans, or an HTTP/2 header map) and the hop-by-hop facts the codec found.
pub struct Source<'a, I, L> {
    pub method: &'a [u8],
    /// `(name, value)` pairs; iterated twice (x-forwarded-for is joined in a second pass).
    pub headers: I,
    /// Whether a header name was listed in `Connection` (dropped as hop-by-hop).
    pub listed: L,
    /// The proxy already answered `Expect: 100-continue`: drop the header.
    pub expect_continue: bool,
    /// The `Upgrade` value to pass on (HTTP/1 upgrades only).
    pub upgrade: Option<&'a [u8]>,
}

/// Writes the upstream request head for an HTTP/1 request into `out` (cleared first);
/// returns the trace headers sent (this hop's span).
pub fn request_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    req: &RequestHead,
    fwd: &Forwarding<'_>,
) -> Option<Outgoing> {
    let src = Source {
        method: req.method.get(buf),
        headers: req
            .headers
            .iter()
            .map(|HeaderSpan { name, value }| (name.get(buf), value.get(buf))),
        listed: |n: &[u8]| listed(n, buf, &req.connection_listed),
        expect_continue: req.expect_continue,
        upgrade: if req.upgrade {
            req.header(buf, "upgrade")
        } else {
            None
        },
    };
    request_head_from(out, src, fwd)
}

/// Writes an HTTP/1.1 upstream request head into `out` (cleared first) from any codec's
/// request: hop-by-hop headers dropped, route edits, x-forwarded-*, x-request-id, framing.
/// Returns the trace headers sent (this hop's span).
pub fn request_head_from<'h, I, L>(
    out: &mut Vec<u8>,
    src: Source<'_, I, L>,
    fwd: &Forwarding<'_>,
) -> Option<Outgoing>
where
    I: Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    L: Fn(&[u8]) -> bool,
{
    out.clear();
    out.extend_from_slice(src.method);
    out.push(b' ');
    out.extend_from_slice(fwd.target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let filters = fwd.filters;
    let host_override = filters.host_rewrite().map(str::as_bytes).or(fwd.authority);
    let mut xff = false;
    let mut has_request_id = false;
    let mut trace = Incoming::default();
    for (n, v) in src.headers.clone() {
        if let Some(k) = fwd.trace.and_then(|_| propagate::classify(n)) {
            trace.see(k, v); // re-emitted below for this hop
            continue;
        }
        match classify(n) {
            k if is_hop_by_hop(k) => continue,
            // Re-emitted below (XFCC only for a verified mTLS peer: a client cannot claim one).
            Known::ContentLength | Known::XForwardedProto | Known::XForwardedClientCert => continue,
            Known::XForwardedFor => {
                xff = true;
                continue;
            }
            Known::Host if host_override.is_some() => continue,
            Known::Expect if src.expect_continue => continue, // we sent 100 Continue ourselves
            Known::XRequestId => has_request_id = true,
            _ => {}
        }
        if (src.listed)(n) || filters.drops_request_header(n) {
            continue;
        }
        put(out, n, v);
    }
    if let Some(h) = host_override {
        put(out, b"host", h);
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if xff {
        // Every earlier hop, in order, whether sent as one header or several (RFC 7239 §7.1
        // semantics for the de-facto header): join them, then append the client.
        for (n, v) in src.headers {
            if classify(n) == Known::XForwardedFor {
                out.extend_from_slice(v);
                out.extend_from_slice(b", ");
            }
        }
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\n");
    match fwd.tls {
        None => put(out, b"x-forwarded-proto", b"http"),
        Some(t) => {
            put(out, b"x-forwarded-proto", b"https");
            if let Some(id) = &t.peer {
                out.extend_from_slice(XFCC);
                out.extend_from_slice(b": URI=");
                out.extend_from_slice(id.as_str().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if !has_request_id {
        put(out, b"x-request-id", fwd.request_id);
    }
    let trace = fwd.trace.map(|fresh| trace.outgoing(fresh));
    if let Some(t) = &trace {
        t.write_h1(out);
    }
    for (n, v) in filters.request_adds() {
        put(out, n.as_bytes(), v.as_bytes());
    }
    match fwd.framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            put_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => put(out, b"transfer-encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {}
    }
    if let Some(u) = src.upgrade {
        put(out, b"connection", b"upgrade");
        put(out, b"upgrade", u);
    } else if fwd.te_trailers {
        // RFC 9110 §10.1.4: TE is hop-by-hop, so it is announced in Connection too.
        put(out, b"te", b"trailers");
        put(out, b"connection", b"te");
    }
    out.extend_from_slice(b"\r\n");
    trace
}

/// Writes the client-facing response head into `out` (cleared first), with the route's
/// response filters applied. `close`: announce `connection: close`. A 101 keeps its
/// Upgrade/Connection headers. `framing` is how the body goes to the client (it differs from
/// the upstream's when a chunked body is de-chunked for an HTTP/1.0 client).
pub fn response_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    resp: &ResponseHead,
    framing: Framing,
    close: bool,
    filters: &FilterChain,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    put_decimal(out, u64::from(resp.status));
    out.push(b' ');
    out.extend_from_slice(resp.reason.get(buf));
    out.extend_from_slice(b"\r\n");
    let switching = resp.status == 101;
    for HeaderSpan { name, value } in &resp.headers {
        let (n, v) = (name.get(buf), value.get(buf));
        let kind = classify(n);
        if switching && matches!(kind, Known::Upgrade | Known::Connection) {
            put(out, n, v);
            continue;
        }
        if is_hop_by_hop(kind)
            || kind == Known::ContentLength
            || listed(n, buf, &resp.connection_listed)
            || filters.drops_response_header(n)
        {
            continue;
        }
        put(out, n, v);
    }
    for (n, v) in filters.response_adds() {
        put(out, n.as_bytes(), v.as_bytes());
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            put_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => put(out, b"transfer-encoding", b"chunked"),
        Framing::None => {
            // Keep an explicit zero length (or a HEAD response's length) as the upstream sent it.
            if let Some(h) = resp
                .headers
                .iter()
                .find(|h| h.name.get(buf).eq_ignore_ascii_case(b"content-length"))
            {
                put(out, b"content-length", h.value.get(buf));
            }
        }
        Framing::UntilClose => {}
    }
    if close && !switching {
        put(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete locally generated response (errors, direct responses).
pub fn local_response(
    out: &mut Vec<u8>,
    status: u16,
    body: &[u8],
    flag: Option<&str>,
    close: bool,
) {
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n",
        reason_phrase(status),
        body.len()
    );
    if let Some(f) = flag {
        let _ = write!(out, "x-shardcar-flag: {f}\r\n");
        if let Some(c) = crate::authz::challenge(f) {
            let _ = write!(out, "www-authenticate: {c}\r\n");
        }
        if crate::http::failure::is_overload(f) {
            let _ = write!(out, "{}: true\r\n", crate::http::failure::OVERLOADED_HEADER);
        }
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod decimal_tests {
    use super::put_decimal;

    #[test]
    fn decimals_match_display() {
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            101,
            200,
            404,
            65535,
            1 << 40,
            u64::MAX,
        ] {
            let mut out = b"x".to_vec();
            put_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes(), "{n}");
        }
    }
}
