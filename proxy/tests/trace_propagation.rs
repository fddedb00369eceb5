//! Trace propagation end to end: an HTTP/1.1 client through the proxy to an origin that
//! echoes the request head it received, so the test sees exactly what went upstream —
//! `x-request-id` kept or generated, `traceparent` continued with a new span id and the sampled
//! flag kept (or a new trace started), `tracestate` passed, B3 single and multi carried on.

mod support;

use std::net::SocketAddr;

use support::client::Client;
use support::origin::echo_head_origin;

/// The upstream request's headers (lower-case names) for a request with `extra` headers.
fn upstream_headers(proxy: SocketAddr, extra: &str) -> Vec<(String, String)> {
    let mut c = Client::connect(proxy);
    c.send(format!("GET / HTTP/1.1\r\nhost: t\r\n{extra}\r\n").as_bytes());
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn get<'a>(h: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    h.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn a_request_without_context_starts_a_sampled_trace_and_gets_a_request_id() {
    let (server, proxy) = support::http_proxy_to(echo_head_origin(), "");
    let h = upstream_headers(proxy, "");
    let tp = get(&h, "traceparent");
    assert_eq!(tp.len(), 1, "{h:?}");
    let parts: Vec<&str> = tp[0].split('-').collect();
    assert_eq!(parts[0], "00");
    assert!(is_hex(parts[1], 32) && is_hex(parts[2], 16), "{tp:?}");
    assert_eq!(parts[3], "01", "a new trace is sampled");
    assert_eq!(get(&h, "x-request-id")[0].len(), 36);
    // Two requests: two traces.
    let again = upstream_headers(proxy, "");
    assert_ne!(get(&again, "traceparent"), tp);
    // A client's x-request-id is kept.
    let kept = upstream_headers(proxy, "x-request-id: abc-123\r\n");
    assert_eq!(get(&kept, "x-request-id"), ["abc-123"]);
    server.shutdown();
}

#[test]
fn traceparent_is_continued_with_a_new_span_per_hop() {
    let (server, proxy) = support::http_proxy_to(echo_head_origin(), "");
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let h = upstream_headers(
        proxy,
        &format!("traceparent: {incoming}\r\ntracestate: congo=t61rcWkgMzE\r\n"),
    );
    let tp = get(&h, "traceparent");
    assert_eq!(tp.len(), 1, "one traceparent upstream: {h:?}");
    let parts: Vec<&str> = tp[0].split('-').collect();
    assert_eq!(
        parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "trace id kept"
    );
    assert!(is_hex(parts[2], 16));
    assert_ne!(parts[2], "00f067aa0ba902b7", "a new span id for this hop");
    assert_eq!(parts[3], "00", "not-sampled flag honoured");
    assert_eq!(get(&h, "tracestate"), ["congo=t61rcWkgMzE"]);
    // An invalid traceparent (upper-case hex) starts a new trace instead.
    let bad = upstream_headers(
        proxy,
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01\r\n",
    );
    assert!(!get(&bad, "traceparent")[0].contains("4bf92f3577b34da6"));
    server.shutdown();
}

#[test]
fn b3_single_and_multi_are_carried_on_in_their_own_shape() {
    let (server, proxy) = support::http_proxy_to(echo_head_origin(), "");
    let trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let span = "e457b5a2e4d86bd1";
    let h = upstream_headers(proxy, &format!("b3: {trace}-{span}-1\r\n"));
    let b3 = get(&h, "b3");
    assert_eq!(b3.len(), 1, "{h:?}");
    let p: Vec<&str> = b3[0].split('-').collect();
    assert_eq!(
        (p[0], p[2], p[3]),
        (trace, "1", span),
        "trace, sampled, parent = caller"
    );
    assert!(is_hex(p[1], 16) && p[1] != span);
    assert!(get(&h, "traceparent")[0].starts_with(&format!("00-{trace}-{}-01", p[1])));
    let h = upstream_headers(
        proxy,
        &format!("x-b3-traceid: {trace}\r\nx-b3-spanid: {span}\r\nx-b3-sampled: 0\r\n"),
    );
    assert_eq!(get(&h, "x-b3-traceid"), [trace]);
    assert_eq!(get(&h, "x-b3-parentspanid"), [span]);
    assert_eq!(get(&h, "x-b3-sampled"), ["0"]);
    let new_span = get(&h, "x-b3-spanid");
    assert!(new_span.len() == 1 && is_hex(new_span[0], 16) && new_span[0] != span);
    assert!(get(&h, "b3").is_empty(), "multi in, multi out");
    server.shutdown();
}

#[test]
fn with_propagation_off_trace_headers_pass_through_untouched_and_none_is_started() {
    let (server, proxy) =
        support::http_proxy_to(echo_head_origin(), "tracing:\n  propagation: false\n");
    let none = upstream_headers(proxy, "");
    assert!(get(&none, "traceparent").is_empty(), "{none:?}");
    assert!(get(&none, "b3").is_empty(), "{none:?}");
    assert_eq!(
        get(&none, "x-request-id")[0].len(),
        36,
        "request ids stay on"
    );
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let b3 = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
    let h = upstream_headers(
        proxy,
        &format!("traceparent: {tp}\r\nb3: {b3}\r\nx-b3-spanid: e457b5a2e4d86bd1\r\n"),
    );
    assert_eq!(get(&h, "traceparent"), [tp], "{h:?}");
    assert_eq!(get(&h, "b3"), [b3]);
    assert_eq!(get(&h, "x-b3-spanid"), ["e457b5a2e4d86bd1"]);
    server.shutdown();
}
