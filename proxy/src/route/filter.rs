//! Per-route filters, compiled at config load into enum-dispatched lists — a request side, run
//! on the protocol-neutral request after route selection, and a response side, run on the
//! upstream response head before it goes back. No trait objects and no string maps per request.
//!
//! Header edits are declarative: a codec asks the chain, while it serialises a head, whether a
//! header is dropped ([`FilterChain::drops_request_header`]), what replaces Host, and which
//! headers to append — so HTTP/1 writes them straight into its output buffer and HTTP/2 applies
//! the same answers to its header list, with no intermediate copy. Filters that decide (authz,
//! fault injection, rate limits) return a [`Verdict`] from [`FilterChain::on_request`].

use std::sync::Arc;

use crate::authz::{AuthzStats, ListenerAuthz};
use crate::http::RequestCtx;

/// A request-side filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFilter {
    /// The listener's authorization policies and JWT rules ([`crate::authz`]); first in the
    /// chain when present.
    Authz(Arc<ListenerAuthz>),
    /// Replace the Host (`:authority`) sent upstream.
    SetHost(Box<str>),
    /// Drop every header with this lower-case name.
    RemoveHeader(Box<str>),
    /// Append a header (lower-case name).
    AddHeader(Box<str>, Box<str>),
    /// Delay or abort a share of requests ([`super::fault`]).
    Fault(Box<super::fault::Fault>),
}

/// A response-side filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseFilter {
    RemoveHeader(Box<str>),
    AddHeader(Box<str>, Box<str>),
}

/// What the request side decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the request (with the chain's header edits).
    Continue,
    /// Answer locally with this status, body and response flag instead.
    Respond {
        status: u16,
        body: &'static [u8],
        flag: &'static str,
    },
}

/// One route's compiled filters, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterChain {
    pub request: Box<[RequestFilter]>,
    pub response: Box<[ResponseFilter]>,
}

impl FilterChain {
    /// Runs the deciding request filters (authz); the first refusal wins. Header edits never
    /// refuse a request. `stats` are the shard's authz counters.
    #[inline]
    pub fn on_request(&self, req: &RequestCtx<'_>, stats: &AuthzStats) -> Verdict {
        for f in self.request.iter() {
            if let RequestFilter::Authz(a) = f {
                let v = a.check_request(req, stats);
                if v != Verdict::Continue {
                    return v;
                }
            }
        }
        Verdict::Continue
    }

    /// The route's fault filter, if it has one.
    #[inline]
    pub fn fault(&self) -> Option<&super::fault::Fault> {
        self.request.iter().find_map(|f| match f {
            RequestFilter::Fault(x) => Some(&**x),
            _ => None,
        })
    }

    /// The Host value to send instead of the client's, if a filter rewrites it.
    #[inline]
    pub fn host_rewrite(&self) -> Option<&str> {
        self.request.iter().rev().find_map(|f| match f {
            RequestFilter::SetHost(h) => Some(&**h),
            _ => None,
        })
    }

    /// Whether header `name` (any case) is removed before forwarding.
    #[inline]
    pub fn drops_request_header(&self, name: &[u8]) -> bool {
        self.request.iter().any(|f| match f {
            RequestFilter::RemoveHeader(n) => name.eq_ignore_ascii_case(n.as_bytes()),
            _ => false,
        })
    }

    /// Headers appended to the upstream request.
    pub fn request_adds(&self) -> impl Iterator<Item = (&str, &str)> {
        self.request.iter().filter_map(|f| match f {
            RequestFilter::AddHeader(n, v) => Some((&**n, &**v)),
            _ => None,
        })
    }

    /// Whether response header `name` (any case) is removed before it reaches the client.
    #[inline]
    pub fn drops_response_header(&self, name: &[u8]) -> bool {
        self.response.iter().any(|f| match f {
            ResponseFilter::RemoveHeader(n) => name.eq_ignore_ascii_case(n.as_bytes()),
            _ => false,
        })
    }

    /// Headers appended to the response.
    pub fn response_adds(&self) -> impl Iterator<Item = (&str, &str)> {
        self.response.iter().filter_map(|f| match f {
            ResponseFilter::AddHeader(n, v) => Some((&**n, &**v)),
            _ => None,
        })
    }

    pub fn has_response_edits(&self) -> bool {
        !self.response.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_answers_edit_questions() {
        let c = FilterChain {
            request: vec![
                RequestFilter::RemoveHeader("x-internal".into()),
                RequestFilter::SetHost("backend".into()),
                RequestFilter::AddHeader("x-env".into(), "prod".into()),
            ]
            .into(),
            response: vec![ResponseFilter::RemoveHeader("server".into())].into(),
        };
        assert!(c.drops_request_header(b"X-Internal"));
        assert!(!c.drops_request_header(b"x-other"));
        assert_eq!(c.host_rewrite(), Some("backend"));
        assert_eq!(
            c.request_adds().collect::<Vec<_>>(),
            vec![("x-env", "prod")]
        );
        assert!(c.drops_response_header(b"Server"));
        assert_eq!(c.response_adds().count(), 0);
    }
}
