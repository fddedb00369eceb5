//! The server name (SNI, RFC 6066 §3) of a TLS ClientHello at the start of a connection's
//! sniffed bytes, for egress decisions on opaque TCP. The ClientHello may span several TLS
//! records (post-quantum key shares push it past one segment); its handshake bytes are then
//! gathered once. Nothing here trusts a length it has not bounds-checked.

/// Largest ClientHello gathered (a handshake message this long is absurd for a hello).
const MAX_HELLO: usize = 64 * 1024;

/// What the sniffed bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A TLS handshake record whose ClientHello is not complete yet: read more.
    Incomplete,
    /// Not a (well-formed) ClientHello.
    NotHello,
    /// A complete ClientHello, with its server name if it sent one.
    Done(Option<Vec<u8>>),
}

/// Parses the ClientHello at the start of `buf`.
pub fn parse(buf: &[u8]) -> Hello {
    // Handshake bytes: from the first record directly when it holds the whole message.
    let mut gathered = Vec::new();
    let mut at = 0;
    let need = loop {
        let Some(rec) = buf.get(at..at + 5) else {
            return Hello::Incomplete;
        };
        if rec[0] != 0x16 || rec[1] != 0x03 {
            return Hello::NotHello;
        }
        let len = usize::from(u16::from_be_bytes([rec[3], rec[4]]));
        if len == 0 || len > (1 << 14) + 2048 {
            return Hello::NotHello;
        }
        let Some(body) = buf.get(at + 5..at + 5 + len) else {
            return Hello::Incomplete;
        };
        at += 5 + len;
        if gathered.is_empty() && body.len() >= 4 {
            if body[0] != 0x01 {
                return Hello::NotHello;
            }
            let need =
                4 + (usize::from(body[1]) << 16 | usize::from(body[2]) << 8 | usize::from(body[3]));
            if need > MAX_HELLO {
                return Hello::NotHello;
            }
            if body.len() >= need {
                return Hello::Done(server_name(&body[4..need]).map(<[u8]>::to_vec));
            }
            gathered.reserve_exact(need);
        }
        gathered.extend_from_slice(body);
        if gathered.len() >= 4 {
            let need = 4
                + (usize::from(gathered[1]) << 16
                    | usize::from(gathered[2]) << 8
                    | usize::from(gathered[3]));
            if gathered[0] != 0x01 || need > MAX_HELLO {
                return Hello::NotHello;
            }
            if gathered.len() >= need {
                break need;
            }
        }
    };
    Hello::Done(server_name(&gathered[4..need]).map(<[u8]>::to_vec))
}

/// A big-endian reader over a ClientHello body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The host_name of the server_name extension of a ClientHello body (after the 4-byte
/// handshake header).
fn server_name(body: &[u8]) -> Option<&[u8]> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(data);
        let mut names = Reader(list.vec16()?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let name = names.vec16()?;
            if name_type == 0 && !name.is_empty() {
                return Some(name.strip_suffix(b".").unwrap_or(name));
            }
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello from rustls for `name`, as one byte string of TLS records.
    fn hello(name: &str) -> Vec<u8> {
        use std::sync::Arc;
        let roots = rustls::RootCertStore::empty();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let sn = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(cfg), sn).unwrap();
        let mut out = Vec::new();
        c.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn finds_the_server_name_of_a_real_client_hello() {
        let h = hello("db.example.test");
        assert_eq!(parse(&h), Hello::Done(Some(b"db.example.test".to_vec())));
        for cut in [0, 1, 4, 5, 40, h.len() - 1] {
            assert_eq!(parse(&h[..cut]), Hello::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn an_ip_address_sends_no_server_name() {
        assert_eq!(parse(&hello("10.1.2.3")), Hello::Done(None));
    }

    #[test]
    fn a_hello_split_across_records_is_gathered() {
        let h = hello("split.example.test");
        let body = &h[5..];
        let mut split = Vec::new();
        for part in body.chunks(100) {
            split.extend_from_slice(&[0x16, 0x03, 0x01]);
            split.extend_from_slice(&(part.len() as u16).to_be_bytes());
            split.extend_from_slice(part);
        }
        assert_eq!(
            parse(&split),
            Hello::Done(Some(b"split.example.test".to_vec()))
        );
        assert_eq!(parse(&split[..split.len() - 3]), Hello::Incomplete);
    }

    #[test]
    fn other_bytes_are_no_hello() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotHello);
        assert_eq!(parse(b"\x16\x03\x01\x00\x00"), Hello::NotHello);
        // A ServerHello (type 2).
        assert_eq!(
            parse(b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"),
            Hello::NotHello
        );
        // A truncated, lying body: declared extensions longer than present.
        let mut h = hello("x.test");
        let n = h.len();
        h[n - 1] ^= 0xff;
        assert!(matches!(parse(&h), Hello::Done(_)));
    }
}
