//! The protocol-neutral request: method, authority, path and headers as borrowed bytes, plus
//! the connection it came on. Routing ([`crate::route::RequestView`]), filters and retry
//! decisions see only this, so an HTTP/2 codec reuses them unchanged.
//!
//! The body is described, not held: [`BodyKind`] says whether one follows and whether its
//! length is known; the codec streams it (HTTP/1 chunks pass through validated, HTTP/2 DATA
//! frames map to chunks and its trailing HEADERS to trailers).

use super::span::HeaderSpan;
use crate::ctx::ConnCtx;
use crate::route::RequestView;

/// Request methods the proxy treats specially; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Connect,
    Other,
}

impl Method {
    pub fn parse(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// Safe to repeat after bytes reached the upstream (RFC 9110 §9.2.2).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Put
                | Method::Delete
        )
    }
}

/// How the request body is framed, in protocol-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    /// Exactly this many bytes.
    Sized(u64),
    /// Length not known up front (HTTP/1 chunked, HTTP/2 without content-length).
    Streamed,
}

/// A request's headers: spans into `buf`.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    pub buf: &'a [u8],
    pub spans: &'a [HeaderSpan],
}

impl<'a> Headers<'a> {
    /// First value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let buf = self.buf;
        self.spans
            .iter()
            .map(move |h| (h.name.get(buf), h.value.get(buf)))
    }
}

/// One request as every layer above the codec sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestCtx<'a> {
    pub method: Method,
    pub method_raw: &'a [u8],
    /// The target's authority for an absolute-form target (RFC 9112 §3.2.2), else the Host
    /// header (`:authority` in HTTP/2); empty when there is none.
    pub authority: &'a [u8],
    /// Path and query, origin-form (after normalisation when the listener asks for it).
    pub path: &'a [u8],
    pub headers: Headers<'a>,
    pub body: BodyKind,
    pub conn: &'a ConnCtx,
}

impl RequestView for RequestCtx<'_> {
    fn host(&self) -> &[u8] {
        self.authority
    }
    fn method(&self) -> &[u8] {
        self.method_raw
    }
    /// CONNECT's authority-form target (`host:port`) has no path; it routes as `/`.
    fn path(&self) -> &[u8] {
        if self.method == Method::Connect {
            b"/"
        } else {
            self.path
        }
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }
}
