//! Upstream response heads: httparse for the syntax, then the framing rules shared with
//! requests ([`super::head`]). Like request heads, parsed heads are spans into the buffer the
//! head was read into; httparse's header slots are uninitialised stack memory, as many as the
//! cluster's `max_response_headers` allows.

use super::head::{classify, Framer, Framing, HeaderSpan, Span, MAX_HEADERS};

/// A parsed response head.
#[derive(Debug, Default)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub minor: u8,
    pub headers: Vec<HeaderSpan>,
    pub len: usize,
    pub framing: Framing,
    /// The upstream will close (or must be closed) after this response.
    pub close: bool,
    pub connection_listed: Vec<Span>,
}

/// Why an upstream response head is refused (all map to 502 `UPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("upstream response head too large")]
    TooLarge,
    #[error("upstream response headers exceed max_response_headers")]
    TooManyHeaders,
    #[error("malformed upstream response head")]
    Malformed,
    #[error("invalid framing headers in upstream response")]
    Framing,
}

/// Parses a response head. `Ok(false)`: incomplete. More than `max_headers` headers (at most
/// [`MAX_HEADERS`]) is [`ResponseError::TooManyHeaders`]. `is_head_request`: the response to a
/// HEAD has no body whatever its headers say.
pub fn parse_response(
    buf: &[u8],
    max_head_bytes: usize,
    max_headers: usize,
    is_head_request: bool,
    head: &mut ResponseHead,
) -> Result<bool, ResponseError> {
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let slots = &mut raw[..max_headers.min(MAX_HEADERS)];
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > max_head_bytes {
                Err(ResponseError::TooLarge)
            } else {
                Ok(false)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooManyHeaders),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let status = resp.code.unwrap_or(0);
    // httparse takes any three digits; a code below 100 has no class (RFC 9110 §15) and is no
    // response a client can act on (found by the response_head fuzz target: `000`).
    if status < 100 {
        return Err(ResponseError::Malformed);
    }
    head.status = status;
    head.reason = reason_span(buf, resp.reason);
    head.minor = resp.version.unwrap_or(1);
    head.len = len;
    head.headers.clear();
    head.connection_listed.clear();
    let mut f = Framer::default();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        head.headers.push(HeaderSpan {
            name: Span::of(buf, name),
            value: Span::of(buf, h.value),
        });
        f.header(buf, classify(name), h.value, &mut head.connection_listed)
            .map_err(|_| ResponseError::Framing)?;
    }
    let no_body = is_head_request || (100..200).contains(&status) || status == 204 || status == 304;
    head.framing = if no_body {
        Framing::None
    } else if f.chunked {
        Framing::Chunked
    } else if let Some(n) = f.content_length {
        if n == 0 {
            Framing::None
        } else {
            Framing::Length(n)
        }
    } else {
        Framing::UntilClose
    };
    head.close =
        f.close || (head.minor == 0 && !f.keep_alive) || head.framing == Framing::UntilClose;
    Ok(true)
}

/// How the exchange reports a bad upstream head.
impl From<ResponseError> for crate::http::Failure {
    fn from(e: ResponseError) -> crate::http::Failure {
        match e {
            ResponseError::TooManyHeaders => crate::http::Failure::TooManyHeaders,
            ResponseError::TooLarge | ResponseError::Malformed | ResponseError::Framing => {
                crate::http::Failure::Protocol
            }
        }
    }
}

/// The reason phrase as it arrived. httparse returns `""` (a static, not a slice of `buf`) for
/// a phrase with obs-text (bytes ≥ 0x80), which RFC 9112 §4 allows: then the phrase is the rest
/// of the status line after `HTTP/1.x NNN ` (httparse's default config allows exactly one SP
/// on each side of the code), forwarded as is. Found by `fuzz/fuzz_targets/response_head.rs`:
/// the old `Span::of` on that static made a span outside the buffer, and re-encoding the head
/// then panicked — with `panic = "abort"`, an upstream could take the proxy down.
fn reason_span(buf: &[u8], parsed: Option<&str>) -> Span {
    if let Some(s) = parsed.and_then(|r| Span::within(buf, r.as_bytes())) {
        return s;
    }
    let line = memchr::memchr(b'\n', buf).unwrap_or(0);
    let line = if line > 0 && buf[line - 1] == b'\r' {
        line - 1
    } else {
        line
    };
    const PHRASE_AT: usize = b"HTTP/1.1 200 ".len();
    let start = PHRASE_AT.min(line) as u32;
    Span {
        start,
        end: (line as u32).max(start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_headers(n: usize) -> Vec<u8> {
        let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
        for i in 1..n {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw
    }

    #[test]
    fn header_count_limit_is_the_configured_one() {
        let mut r = ResponseHead::default();
        assert_eq!(
            parse_response(&with_headers(100), 1 << 16, 100, false, &mut r),
            Ok(true)
        );
        assert_eq!(r.headers.len(), 100);
        assert_eq!(
            parse_response(&with_headers(101), 1 << 16, 100, false, &mut r),
            Err(ResponseError::TooManyHeaders)
        );
        assert_eq!(
            parse_response(
                &with_headers(MAX_HEADERS),
                1 << 16,
                MAX_HEADERS,
                false,
                &mut r
            ),
            Ok(true)
        );
        assert_eq!(
            parse_response(&with_headers(3), 1 << 16, 2, false, &mut r),
            Err(ResponseError::TooManyHeaders)
        );
    }

    #[test]
    fn reason_phrases_with_obs_text_stay_inside_the_buffer() {
        let mut r = ResponseHead::default();
        let raw = b"HTTP/1.1 204 No\x89\x89s\r\nServer: s\r\n\r\n";
        assert_eq!(parse_response(raw, 1 << 16, 100, false, &mut r), Ok(true));
        assert_eq!(r.reason.get(raw), b"No\x89\x89s");
        let raw = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(parse_response(raw, 1 << 16, 100, false, &mut r), Ok(true));
        assert_eq!(r.reason.get(raw), b"OK");
        let raw = b"HTTP/1.1 200 \r\n\r\n";
        assert_eq!(parse_response(raw, 1 << 16, 100, false, &mut r), Ok(true));
        assert_eq!(r.reason.get(raw), b"");
    }

    #[test]
    fn malformed_and_oversized_heads_have_their_own_errors() {
        let mut r = ResponseHead::default();
        assert_eq!(
            parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", 1 << 16, 100, false, &mut r),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 000 O\r\n\r\n", 1 << 16, 100, false, &mut r),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 099 O\r\n\r\n", 1 << 16, 100, false, &mut r),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse_response(&[b'a'; 100], 64, 100, false, &mut r),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nX: y", 8, 100, false, &mut r),
            Err(ResponseError::TooLarge)
        );
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse_response(both, 1 << 16, 100, false, &mut r),
            Err(ResponseError::Framing)
        );
    }
}
