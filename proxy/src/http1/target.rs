//! From an HTTP/1 request head to the protocol-neutral [`RequestCtx`]: the request target's
//! forms (RFC 9112 §3.2) are resolved here. For an absolute-form target (`GET http://h/p`) the
//! target's authority is the host, whatever `Host` says (§3.2.2): the request routes on it and
//! goes upstream in origin-form with that authority as its Host.

use super::head::{Framing, RequestHead};
use crate::ctx::ConnCtx;
use crate::http::request::BodyKind;
use crate::http::{Headers, Method, RequestCtx};

/// The authority and origin-form path of an absolute-form target; `None` for other forms.
pub fn absolute_form(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = strip_scheme(target)?;
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // userinfo is deprecated in http(s) URIs (RFC 9110 §4.2.4): drop it.
    let authority = match authority.iter().rposition(|b| *b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    Some((authority, if path.is_empty() { b"/" } else { path }))
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

/// The request as routing and filters see it. `path_override` is the normalised path when the
/// listener normalises paths.
pub fn request_ctx<'a>(
    buf: &'a [u8],
    head: &'a RequestHead,
    conn: &'a ConnCtx,
    path_override: Option<&'a [u8]>,
) -> RequestCtx<'a> {
    let method_raw = head.method.get(buf);
    let target = head.target.get(buf);
    let host = head.host.map_or(&[][..], |h| h.get(buf));
    let (authority, path) = match absolute_form(target) {
        Some((a, p)) => (a, p),
        None => (host, target),
    };
    RequestCtx {
        method: Method::parse(method_raw),
        method_raw,
        authority,
        path: path_override.unwrap_or(path),
        headers: Headers {
            buf,
            spans: &head.headers,
        },
        body: match head.framing {
            Framing::None | Framing::UntilClose => BodyKind::None,
            Framing::Length(n) => BodyKind::Sized(n),
            Framing::Chunked => BodyKind::Streamed,
        },
        conn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_splits_authority_and_path() {
        assert_eq!(
            absolute_form(b"http://Other.example:8080/a?b=1"),
            Some((&b"Other.example:8080"[..], &b"/a?b=1"[..]))
        );
        assert_eq!(absolute_form(b"HTTPS://h"), Some((&b"h"[..], &b"/"[..])));
        assert_eq!(
            absolute_form(b"http://user:pw@h/x"),
            Some((&b"h"[..], &b"/x"[..]))
        );
        assert_eq!(absolute_form(b"/plain"), None);
        assert_eq!(absolute_form(b"h:443"), None);
    }
}
