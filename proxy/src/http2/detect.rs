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

/// What the first bytes of a `protocol: auto` connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http2,
    Http1,
    /// A TLS record (a ClientHello) or anything that is no HTTP request line.
    Opaque,
    NeedMore,
}

/// Longest method token an HTTP/1 request line may start with before we call it opaque.
const MAX_METHOD: usize = 20;

/// Classifies a connection's first bytes: the HTTP/2 preface, an HTTP/1 request line (a
/// method token of upper-case letters or `-` and a space), or opaque (TLS records start with
/// 0x16, other protocols with anything else).
pub fn classify(first: &[u8]) -> Kind {
    match sniff(first) {
        Sniff::Http2 => return Kind::Http2,
        Sniff::NeedMore => return Kind::NeedMore,
        Sniff::Http1 => {}
    }
    for (i, &b) in first.iter().enumerate().take(MAX_METHOD + 1) {
        match b {
            b' ' if i > 0 => return Kind::Http1,
            b'A'..=b'Z' | b'-' => {}
            _ => return Kind::Opaque,
        }
    }
    if first.len() > MAX_METHOD {
        Kind::Opaque
    } else {
        Kind::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tells_h2_h1_tls_and_opaque_apart() {
        assert_eq!(classify(PREFACE), Kind::Http2);
        assert_eq!(classify(b"PRI"), Kind::NeedMore);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Kind::Http1);
        assert_eq!(classify(b"M-SEARCH * HTTP/1.1"), Kind::Http1);
        assert_eq!(classify(b"OPTI"), Kind::NeedMore);
        assert_eq!(classify(b"\x16\x03\x01\x02\x00\x01"), Kind::Opaque);
        assert_eq!(classify(b"get / HTTP/1.1"), Kind::Opaque);
        assert_eq!(classify(b" GET"), Kind::Opaque);
        assert_eq!(classify(b"\x00\x00\x00\x01"), Kind::Opaque);
        assert_eq!(classify(&[b'A'; 21]), Kind::Opaque);
    }

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
