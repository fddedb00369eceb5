//! Unit tests of the chunked scanner: accepted shapes, every refused shape, byte-at-a-time
//! splitting and the trailer smuggling payload.

use super::*;

fn scan_all(parts: &[&[u8]]) -> Result<(usize, bool), ChunkError> {
    let mut s = ChunkedScanner::default();
    let mut n = 0;
    for p in parts {
        n += s.scan(p)?;
    }
    Ok((n, s.is_done()))
}

/// Scans `body` whole and one byte at a time; both must agree.
fn scan(body: &[u8]) -> Result<(usize, bool), ChunkError> {
    let whole = scan_all(&[body]);
    let parts: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(
        scan_all(&parts),
        whole,
        "{:?}",
        String::from_utf8_lossy(body)
    );
    whole
}

fn rejects(body: &[u8], e: ChunkError) {
    assert_eq!(scan(body), Err(e), "{:?}", String::from_utf8_lossy(body));
}

#[test]
fn whole_body_with_trailers_and_extension() {
    let body = b"5;name=v\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\nNEXT";
    assert_eq!(scan(body).unwrap(), (body.len() - 4, true));
}

#[test]
fn split_at_every_byte() {
    let body = b"a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(scan(body).unwrap(), (body.len(), true));
}

#[test]
fn accepts_every_extension_and_trailer_shape_of_the_grammar() {
    for body in [
        &b"3;a\r\nabc\r\n0\r\n\r\n"[..],
        b"3 ;a\r\nabc\r\n0\r\n\r\n",
        b"3\t; a = b ;c;d=\"q \\\" v\"\r\nabc\r\n0;last\r\n\r\n",
        b"3;a=\"\"\r\nabc\r\n0\r\n\r\n",
        b"3;a=\"b\" ;c\r\nabc\r\n0\r\n\r\n",
        b"0\r\nx-a:1\r\nX-B: two words \t\r\nempty:\r\n\r\n",
        b"0\r\nobs: caf\xc3\xa9\r\n\r\n",
    ] {
        assert_eq!(scan(body).unwrap(), (body.len(), true), "{body:?}");
    }
}

#[test]
fn rejects_bad_sizes_and_data() {
    rejects(b"zz\r\n", ChunkError::Size);
    rejects(b"\r\n", ChunkError::Size);
    rejects(b";a\r\n", ChunkError::Size);
    rejects(b"5\nhello", ChunkError::Size);
    rejects(b"-5\r\n", ChunkError::Size);
    rejects(b"0x5\r\n", ChunkError::Size);
    rejects(b" 5\r\n", ChunkError::Size);
    rejects(b"5 \r\nhello", ChunkError::Extension);
    rejects(b"5\r\r\nhello", ChunkError::LineEnding);
    rejects(b"3\r\nabcd\r\n", ChunkError::DataTooLong);
    rejects(b"3\r\nabc\n0\r\n\r\n", ChunkError::DataTooLong);
    rejects(b"3\r\nabc\r0\r\n\r\n", ChunkError::LineEnding);
    rejects(b"1000000000000000\r\n", ChunkError::SizeTooLarge);
}

#[test]
fn rejects_bad_extensions() {
    for body in [
        &b"1;\r\n"[..],
        b"1;=v\r\n",
        b"1;a=\r\n",
        b"1;a=b c\r\n",
        b"1;a b\r\n",
        b"1;a\x01\r\n",
        b"1;a=b\x7f\r\n",
        b"1;a=\"unterminated\r\n",
        b"1;a=\"bare\rcr\"\r\n",
        b"1;a=\"bare\nlf\"\r\n",
        b"1;a=\"ctl\x00\"\r\n",
        b"1;a=\"x\"y\r\n",
        b"1;a=b\nx",
        b"1;a(b)\r\n",
        b"1;a=b;\r\n",
        // BWS is only allowed before `;` and around `=`, not before the CRLF.
        b"1;a \r\n",
        b"1;a=b \r\n",
        b"1;a=\"b\"\t\r\n",
    ] {
        rejects(body, ChunkError::Extension);
    }
    let long_ext = [b"1;".as_slice(), &[b'x'; 2000]].concat();
    rejects(&long_ext, ChunkError::ExtensionTooLong);
}

#[test]
fn rejects_bad_trailers() {
    rejects(b"0\r\n\n", ChunkError::TrailerName);
    rejects(b"0\r\n\r\r\n", ChunkError::LineEnding);
    rejects(b"0\r\n : folded\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\n\tfolded\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\na: 1\r\n  continued\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\nname : v\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\n: v\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\nno-colon\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\nna(me): v\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\nGET /x HTTP/1.1\r\n\r\n", ChunkError::TrailerName);
    rejects(b"0\r\na: b\nc: d\r\n\r\n", ChunkError::TrailerValue);
    rejects(b"0\r\na: b\x00\r\n\r\n", ChunkError::TrailerValue);
    rejects(b"0\r\na: b\x7f\r\n\r\n", ChunkError::TrailerValue);
    rejects(b"0\r\na: b\r\r\n\r\n", ChunkError::LineEnding);
    rejects(b"0\r\na: b\r\n\n", ChunkError::TrailerName);
    rejects(b"0\r\n\rX", ChunkError::LineEnding);
    let big = [b"0\r\nx: ".as_slice(), &[b'v'; MAX_TRAILERS], b"\r\n\r\n"].concat();
    rejects(&big, ChunkError::TrailersTooLarge);
}

#[test]
fn smuggled_request_behind_a_bare_lf_is_refused() {
    let body = b"5\r\nhello\r\n0\r\n\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    rejects(body, ChunkError::TrailerName);
}

#[test]
fn data_ranges_are_the_body_without_framing() {
    let body = b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n";
    for cut in 1..body.len() {
        let mut s = ChunkedScanner::default();
        let mut out = Vec::new();
        for part in [&body[..cut], &body[cut..]] {
            s.scan_data(part, |r| out.extend_from_slice(&part[r]))
                .unwrap();
        }
        assert!(s.is_done());
        assert_eq!(out, b"hello world", "cut at {cut}");
    }
}
