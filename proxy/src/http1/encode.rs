//! Serialising heads: the request as it goes upstream (hop-by-hop headers removed per RFC 9110
//! §7.6.1, route edits, x-forwarded-*, x-request-id) and the response as it goes back to the
//! client. Both write into a per-connection buffer that is cleared, never reallocated once warm.

use std::io::Write;

use super::head::{classify, Framing, HeaderSpan, Known, RequestHead, Span};
use super::response_head::ResponseHead;
use crate::route::FilterChain;

/// Headers that never cross a proxy (plus whatever `Connection` lists).
fn is_hop_by_hop(kind: Known) -> bool {
    matches!(
        kind,
        Known::Connection | Known::HopByHop | Known::TransferEncoding | Known::Upgrade
    )
}

fn listed(name: &[u8], buf: &[u8], connection_listed: &[Span]) -> bool {
    connection_listed
        .iter()
        .any(|s| s.get(buf).eq_ignore_ascii_case(name))
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
}

/// Writes the upstream request head into `out` (cleared first).
pub fn request_head(out: &mut Vec<u8>, buf: &[u8], req: &RequestHead, fwd: &Forwarding<'_>) {
    out.clear();
    out.extend_from_slice(req.method.get(buf));
    out.push(b' ');
    out.extend_from_slice(fwd.target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let filters = fwd.filters;
    let host_override = filters.host_rewrite().map(str::as_bytes).or(fwd.authority);
    let mut xff = false;
    let mut has_request_id = false;
    for HeaderSpan { name, value } in &req.headers {
        let (n, v) = (name.get(buf), value.get(buf));
        match classify(n) {
            k if is_hop_by_hop(k) => continue,
            Known::ContentLength | Known::XForwardedProto => continue, // re-emitted below
            Known::XForwardedFor => {
                xff = true;
                continue;
            }
            Known::Host if host_override.is_some() => continue,
            Known::Expect if req.expect_continue => continue, // we sent 100 Continue ourselves
            Known::XRequestId => has_request_id = true,
            _ => {}
        }
        if listed(n, buf, &req.connection_listed) || filters.drops_request_header(n) {
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
        for h in &req.headers {
            if classify(h.name.get(buf)) == Known::XForwardedFor {
                out.extend_from_slice(h.value.get(buf));
                out.extend_from_slice(b", ");
            }
        }
    }
    out.extend_from_slice(fwd.client_ip);
    out.extend_from_slice(b"\r\n");
    put(out, b"x-forwarded-proto", b"http");
    if !has_request_id {
        put(out, b"x-request-id", fwd.request_id);
    }
    for (n, v) in filters.request_adds() {
        put(out, n.as_bytes(), v.as_bytes());
    }
    match fwd.framing {
        Framing::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Framing::Chunked => put(out, b"transfer-encoding", b"chunked"),
        Framing::None | Framing::UntilClose => {}
    }
    if req.upgrade {
        if let Some(u) = req.header(buf, "upgrade") {
            put(out, b"connection", b"upgrade");
            put(out, b"upgrade", u);
        }
    }
    out.extend_from_slice(b"\r\n");
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
    let _ = write!(out, "HTTP/1.1 {} ", resp.status);
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
            let _ = write!(out, "content-length: {n}\r\n");
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
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Formats a random UUIDv4 from 128 random bits.
pub fn uuid_v4(bits: u128, out: &mut [u8; 36]) {
    let mut b = bits.to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut j = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[(byte >> 4) as usize];
        out[j + 1] = HEX[(byte & 0xf) as usize];
        j += 2;
    }
}
