//! Golden tests for the access-log formats: Envoy's default, custom text, JSON, errors.

use std::time::{Duration, SystemTime};

use super::format::{compile, Format, Op, Source};
use super::render::{rfc3339_millis, Entry, HeaderLookup};
use super::ENVOY_DEFAULT_FORMAT;

struct H(&'static [(&'static str, &'static str)]);
impl HeaderLookup for H {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_bytes())
    }
}

static REQ: H = H(&[
    ("user-agent", "curl/8.5.0"),
    ("x-request-id", "5f1c3b1e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"),
    ("x-forwarded-for", "10.0.0.9"),
]);
static RESP: H = H(&[("content-type", "text/plain"), ("x-quote", "a\"b\\c\n")]);

fn entry() -> Entry<'static> {
    Entry {
        start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_659_401_123),
        method: Some(b"GET"),
        path: Some(b"/checkout?x=1"),
        authority: Some(b"backend.local"),
        scheme: Some(b"http"),
        req: &REQ,
        resp: &RESP,
        protocol: Some("HTTP/1.1"),
        status: Some(200),
        flags: "",
        bytes_received: 12,
        bytes_sent: 345,
        duration: Duration::from_micros(7_900),
        request_duration: Some(Duration::from_millis(1)),
        response_duration: None,
        upstream_host: Some("127.0.0.1:8080".parse().unwrap()),
        upstream_cluster: Some("local-app"),
        downstream_remote: Some("127.0.0.1:50000".parse().unwrap()),
        peer_uri_san: None,
        upstream_failure: None,
        termination: None,
    }
}

fn text(fmt: &str, e: &Entry<'_>) -> String {
    let mut out = Vec::new();
    Format::text(fmt).unwrap().render(e, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn envoy_default_format_golden() {
    assert_eq!(
        text(ENVOY_DEFAULT_FORMAT, &entry()),
        "[2025-12-02T07:10:01.123Z] \"GET /checkout?x=1 HTTP/1.1\" 200 - 12 345 7 - \"10.0.0.9\" \"curl/8.5.0\" \"5f1c3b1e-1a2b-4c3d-8e9f-0a1b2c3d4e5f\" \"backend.local\" \"127.0.0.1:8080\"\n"
    );
}

#[test]
fn failed_request_golden() {
    let mut e = entry();
    e.status = Some(503);
    e.flags = "UF";
    e.upstream_host = None;
    e.resp = &();
    e.upstream_failure = Some("connection refused");
    assert_eq!(
        text(
            "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %RESP(CONTENT-TYPE)% %UPSTREAM_TRANSPORT_FAILURE_REASON%",
            &e
        ),
        "503 UF - local-app - connection refused"
    );
}

#[test]
fn req_alternatives_truncation_and_percent() {
    let e = entry();
    assert_eq!(
        text(
            "%REQ(X-MISSING?USER-AGENT):4% %REQ(x-missing)% 100%% %REQ(:PATH):5%",
            &e
        ),
        "curl - 100% /chec"
    );
    assert_eq!(
        text("%DOWNSTREAM_REMOTE_ADDRESS% %REQUEST_DURATION% %RESPONSE_DURATION% %PROTOCOL% %DOWNSTREAM_PEER_URI_SAN%", &e),
        "127.0.0.1:50000 1 - HTTP/1.1 -"
    );
}

#[test]
fn tcp_entry_golden() {
    let mut e = entry();
    (e.method, e.path, e.authority, e.protocol, e.status) = (None, None, None, None, None);
    e.req = &();
    e.resp = &();
    e.peer_uri_san = Some("spiffe://td/ns/a/sa/b");
    e.termination = Some("idle_timeout");
    assert_eq!(
        text("%DOWNSTREAM_PEER_URI_SAN% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_CODE% %REQ(:METHOD)% %CONNECTION_TERMINATION_DETAILS%\n", &e),
        "spiffe://td/ns/a/sa/b 12 345 0 - idle_timeout\n"
    );
}

#[test]
fn json_format_golden() {
    let f = Format::json(&[
        ("code".into(), "%RESPONSE_CODE%".into()),
        ("path".into(), "%REQ(:PATH)%".into()),
        ("missing".into(), "%RESP(x-none)%".into()),
        ("quote".into(), "%RESP(X-QUOTE)%".into()),
        ("mix".into(), "%REQ(:METHOD)% took %DURATION%ms".into()),
        ("dur".into(), "%RESPONSE_DURATION%".into()),
    ])
    .unwrap();
    let mut out = Vec::new();
    f.render(&entry(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"code\":200,\"path\":\"/checkout?x=1\",\"missing\":null,\"quote\":\"a\\\"b\\\\c\\n\",\"mix\":\"GET took 7ms\",\"dur\":null}\n"
    );
}

#[test]
fn compile_shapes_and_errors() {
    assert_eq!(
        compile("a%REQ(Host?X-Y):3%b").unwrap(),
        vec![
            Op::Literal("a".into()),
            Op::Req {
                first: Source::Authority,
                alt: Some(Source::Header("x-y".into())),
                max: Some(3)
            },
            Op::Literal("b".into())
        ]
    );
    let e = compile("ok %NOPE% x").unwrap_err();
    assert_eq!((e.offset, e.what.as_str()), (3, "unknown command %NOPE%"));
    assert_eq!(compile("x %START_TIME").unwrap_err().offset, 2);
    assert!(compile("%REQ(A):x%")
        .unwrap_err()
        .what
        .contains("bad length"));
    assert!(compile("%REQ()%")
        .unwrap_err()
        .what
        .contains("empty header"));
    let j = Format::json(&[("k".into(), "%BAD%".into())]).unwrap_err();
    assert!(j.what.contains("key \"k\""), "{j}");
}

#[test]
fn start_time_calendar() {
    let at = |ms: u64| {
        let mut o = Vec::new();
        rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(ms), &mut o);
        String::from_utf8(o).unwrap()
    };
    assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(at(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    assert_eq!(at(1_721_046_896_789), "2024-07-15T12:34:56.789Z");
    // The per-second prefix cache: same second, the next one, and back.
    assert_eq!(at(1_721_046_896_001), "2024-07-15T12:34:56.001Z");
    assert_eq!(at(1_721_046_897_000), "2024-07-15T12:34:57.000Z");
    assert_eq!(at(1_721_046_896_500), "2024-07-15T12:34:56.500Z");
    assert_eq!(at(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    assert_eq!(at(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
}

#[test]
fn numbers_and_addresses_render_as_display_does() {
    for n in [
        0u64,
        7,
        10,
        99,
        100,
        101,
        1_000,
        9_999,
        65_535,
        1_234_567_890,
        u64::MAX,
    ] {
        let mut o = Vec::new();
        super::render::num(n, &mut o);
        assert_eq!(String::from_utf8(o).unwrap(), n.to_string());
    }
    let mut e = entry();
    for a in [
        "0.0.0.0:0",
        "10.200.0.1:15006",
        "255.255.255.255:65535",
        "[::1]:8080",
    ]
    .into_iter()
    .cycle()
    .take(9)
    {
        // Twice round: each address after a different one and (last) after itself, while the
        // downstream address keeps its own cached text.
        e.upstream_host = Some(a.parse().unwrap());
        assert_eq!(
            text("%UPSTREAM_HOST% %DOWNSTREAM_REMOTE_ADDRESS%", &e),
            format!("{a} 127.0.0.1:50000")
        );
        assert_eq!(text("%UPSTREAM_HOST%", &e), a);
    }
}
