//! The headers every HTTP/2 upstream request gets besides the client's own, whichever codec
//! the client spoke (HTTP/2 streams and HTTP/1 requests to `protocol: http2` clusters).

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::ctx::Services;
use crate::http::header::uuid_v4;
use crate::route::FilterChain;
use crate::telemetry::propagate::{self, Outgoing};
use crate::tls::TlsFacts;

/// The headers every HTTP/2 upstream request gets after the client's own: `x-forwarded-for`
/// (`xff` holds the client's list, each entry followed by ", "), `x-forwarded-proto` (`https`
/// when the client came over TLS), `x-forwarded-client-cert: URI=spiffe://…` for a verified
/// mTLS peer (Envoy's XFCC, as the HTTP/1 encoder writes it; the caller has dropped the
/// client's own), an `x-request-id` unless the client sent one, the trace headers (returned:
/// this hop's span) and the route's request header adds.
pub fn finish_headers(
    h: &mut HeaderMap,
    mut xff: Vec<u8>,
    has_request_id: bool,
    filters: &FilterChain,
    peer_ip: &[u8],
    tls: Option<&TlsFacts>,
    svc: &Services,
) -> Option<Outgoing> {
    let rng = &svc.rng;
    xff.extend_from_slice(peer_ip);
    if let Ok(v) = HeaderValue::from_bytes(&xff) {
        h.insert("x-forwarded-for", v);
    }
    let proto = if tls.is_some() { "https" } else { "http" };
    h.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    if let Some(id) = tls.and_then(|t| t.peer.as_ref()) {
        let mut v = Vec::with_capacity(4 + id.as_str().len());
        v.extend_from_slice(b"URI=");
        v.extend_from_slice(id.as_str().as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&v) {
            h.insert("x-forwarded-client-cert", v);
        }
    }
    if !has_request_id {
        let mut id = [0u8; 36];
        uuid_v4(
            (u128::from(rng.next()) << 64) | u128::from(rng.next()),
            &mut id,
        );
        if let Ok(v) = HeaderValue::from_bytes(&id) {
            h.insert("x-request-id", v);
        }
    }
    let trace = svc
        .telemetry
        .fresh_trace(rng)
        .map(|fresh| propagate::rewrite_h2(h, fresh));
    for (n, v) in filters.request_adds() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    trace
}
