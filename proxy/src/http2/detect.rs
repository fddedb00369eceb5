//! Telling an h2c-with-prior-knowledge client from an HTTP/1 one on a `protocol: http`
//! listener: HTTP/2 clients open with a fixed 24-byte preface (RFC 9113 §3.4), which no
//! HTTP/1 request line starts with (`PRI` is not a method the proxy serves).

/// The client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// The whole preface: HTTP/2.
    Http2,
    /// Bytes that are no prefix of the preface: HTTP/1 (or garbage for HTTP/1 to refuse).
    Http1,
    /// A proper prefix of the preface: read more.
    NeedMore,
}

pub fn sniff(first: &[u8]) -> Sniff {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Sniff::Http1
    } else if n == PREFACE.len() {
        Sniff::Http2
    } else {
        Sniff::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_prefixes_and_http1() {
        assert_eq!(sniff(PREFACE), Sniff::Http2);
        assert_eq!(
            sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04"),
            Sniff::Http2
        );
        assert_eq!(sniff(b"PRI * HT"), Sniff::NeedMore);
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniff::Http1);
        assert_eq!(sniff(b"PRI * HTTP/1.1\r\n"), Sniff::Http1);
    }
}
