use super::*;
use crate::http1::response_head::{parse_response, ResponseHead};

const LIMITS: Limits = Limits {
    max_head_bytes: 60 * 1024,
    max_headers: 100,
    max_request_line: 8 * 1024,
};

fn parse(raw: &[u8]) -> Result<RequestHead, Reject> {
    let mut h = RequestHead::default();
    match parse_request(raw, &LIMITS, &mut h)? {
        true => Ok(h),
        false => panic!("incomplete: {:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn parses_a_plain_request() {
    let raw = b"POST /x?y=1 HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 5\r\nConnection: keep-alive, X-Foo\r\n\r\nhello";
    let h = parse(raw).unwrap();
    assert_eq!(h.method.get(raw), b"POST");
    assert_eq!(h.target.get(raw), b"/x?y=1");
    assert_eq!(h.host.unwrap().get(raw), b"a.example:8080");
    assert_eq!(h.framing, Framing::Length(5));
    assert_eq!(h.len, raw.len() - 5);
    assert!(!h.close);
    assert_eq!(h.connection_listed.len(), 1);
}

#[test]
fn incomplete_head_asks_for_more() {
    let mut h = RequestHead::default();
    assert_eq!(
        parse_request(b"GET / HTTP/1.1\r\nHo", &LIMITS, &mut h),
        Ok(false)
    );
}

#[test]
fn smuggling_shapes_are_rejected() {
    let cases: [(&[u8], u16); 12] = [
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nContent-Length: 1\r\ntransfer-encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ];
    for (raw, status) in cases {
        let e = parse(raw).expect_err(&String::from_utf8_lossy(raw));
        assert_eq!(
            e.status(),
            status,
            "{:?}: {:?}",
            String::from_utf8_lossy(raw),
            e
        );
    }
    // Identical duplicates are allowed.
    let ok = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
        .unwrap();
    assert_eq!(ok.framing, Framing::Length(3));
}

#[test]
fn limits_map_to_431_and_414() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..101 {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_eq!(parse(&raw).unwrap_err().status(), 431);
    let big = [
        b"GET / HTTP/1.1\r\nHost: a\r\nX: ".as_slice(),
        &vec![b'a'; 61 * 1024],
    ]
    .concat();
    let mut h = RequestHead::default();
    assert_eq!(
        parse_request(&big, &LIMITS, &mut h).unwrap_err().status(),
        431
    );
    let long = [b"GET /".as_slice(), &vec![b'a'; 9000]].concat();
    assert_eq!(
        parse_request(&long, &LIMITS, &mut h).unwrap_err().status(),
        414
    );
}

#[test]
fn http10_closes_by_default_and_upgrade_is_seen() {
    let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(h.close);
    let raw = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert!(parse(raw).unwrap().upgrade);
}

#[test]
fn response_framing() {
    let mut r = ResponseHead::default();
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    assert!(parse_response(raw, 1 << 16, 100, false, &mut r).unwrap());
    assert_eq!(r.framing, Framing::Length(2));
    assert!(parse_response(raw, 1 << 16, 100, true, &mut r).unwrap());
    assert_eq!(r.framing, Framing::None, "HEAD response has no body");
    let raw = b"HTTP/1.1 200 OK\r\n\r\n";
    assert!(parse_response(raw, 1 << 16, 100, false, &mut r).unwrap());
    assert_eq!(r.framing, Framing::UntilClose);
    assert!(r.close);
    let raw = b"HTTP/1.1 204 No Content\r\n\r\n";
    assert!(parse_response(raw, 1 << 16, 100, false, &mut r).unwrap());
    assert_eq!(r.framing, Framing::None);
}

#[test]
fn http10_with_transfer_encoding_is_faulty_framing() {
    let e = parse(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").unwrap_err();
    assert_eq!(
        e,
        Reject::BadRequest("Transfer-Encoding in an HTTP/1.0 request")
    );
    let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    assert_eq!(h.framing, Framing::Chunked);
}
