//! PERMISSIVE mode's ClientHello sniffer: is this connection TLS or plaintext?
//!
//! A TLS connection opens with a handshake record (`0x16`), a legacy version `0x03 0x00..=0x04`,
//! a non-zero length of at most 2^14 + 2048, and a ClientHello (handshake type `0x01`). Six
//! bytes decide; a prefix of them that fits is "not yet known" (`None`). Plaintext HTTP
//! (`GET `, `PRI *`) and most binary protocols differ at the first byte.

/// Bytes needed for a definite answer.
pub const SNIFF_LEN: usize = 6;

/// `Some(true)`: a TLS ClientHello; `Some(false)`: not TLS; `None`: read more bytes.
pub fn looks_like_tls(first: &[u8]) -> Option<bool> {
    let byte = |i: usize| first.get(i).copied();
    match byte(0)? {
        0x16 => {}
        _ => return Some(false),
    }
    if byte(1)? != 0x03 {
        return Some(false);
    }
    if byte(2)? > 0x04 {
        return Some(false);
    }
    let len = u16::from_be_bytes([byte(3)?, byte(4)?]) as usize;
    if len == 0 || len > (1 << 14) + 2048 {
        return Some(false);
    }
    Some(byte(5)? == 0x01)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_tls_from_plaintext() {
        let hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
        assert_eq!(looks_like_tls(&hello), Some(true));
        for n in 0..SNIFF_LEN {
            assert_eq!(looks_like_tls(&hello[..n]), None, "prefix {n}");
        }
        assert_eq!(looks_like_tls(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(looks_like_tls(b"PRI * HTTP/2.0"), Some(false));
        assert_eq!(looks_like_tls(b"G"), Some(false));
        assert_eq!(
            looks_like_tls(&[0x16, 0x02]),
            Some(false),
            "SSLv2-ish version"
        );
        assert_eq!(looks_like_tls(&[0x16, 0x03, 0x05]), Some(false));
        assert_eq!(
            looks_like_tls(&[0x16, 0x03, 0x03, 0, 0]),
            Some(false),
            "empty record"
        );
        assert_eq!(
            looks_like_tls(&[0x16, 0x03, 0x03, 0xff, 0xff, 1]),
            Some(false)
        );
        assert_eq!(
            looks_like_tls(&[0x16, 0x03, 0x03, 0x00, 0x40, 0x02]),
            Some(false),
            "a ServerHello is not a ClientHello"
        );
    }
}
