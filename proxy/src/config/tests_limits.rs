//! Header-count limits of http listeners and clusters: defaults, the supported maximum, and
//! errors (never a silent clamp) that name the field and its line.

use super::*;

const BASE: &str = "\
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {prefix: /}
            cluster: app
clusters:
  - name: app
    endpoints: [\"127.0.0.1:80\"]
";

/// `BASE` with `extra` inserted after the line that starts with `after`.
fn with(after: &str, extra: &str) -> String {
    assert_eq!(BASE.matches(after).count(), 1, "{after:?}");
    BASE.replace(after, &format!("{after}{extra}"))
}

fn err(src: &str) -> String {
    Config::from_yaml(src).unwrap_err().to_string()
}

#[test]
fn header_limits_default_to_100() {
    let c = Config::from_yaml(BASE).unwrap();
    assert_eq!(
        c.listeners[0].http.as_ref().unwrap().max_request_headers,
        100
    );
    assert_eq!(c.clusters[0].max_response_headers, 100);
}

#[test]
fn header_limits_accept_up_to_the_supported_maximum() {
    let src = with("    protocol: http\n", "    max_request_headers: 128\n");
    let src = src.replace(
        "    endpoints: [\"127.0.0.1:80\"]\n",
        "    endpoints: [\"127.0.0.1:80\"]\n    max_response_headers: 128\n",
    );
    let c = Config::from_yaml(&src).unwrap();
    assert_eq!(
        c.listeners[0].http.as_ref().unwrap().max_request_headers,
        MAX_HEADER_COUNT
    );
    assert_eq!(c.clusters[0].max_response_headers, MAX_HEADER_COUNT);
}

#[test]
fn header_limits_above_the_maximum_are_errors_not_clamps() {
    assert_eq!(
        err(&with(
            "    protocol: http\n",
            "    max_request_headers: 129\n"
        )),
        "listeners[0].max_request_headers: 129 is above the supported maximum of 128 at line 5"
    );
    assert_eq!(
        err(&with(
            "    endpoints: [\"127.0.0.1:80\"]\n",
            "    max_response_headers: 500\n"
        )),
        "clusters[0].max_response_headers: 500 is above the supported maximum of 128 at line 14"
    );
    assert_eq!(
        err(&with(
            "    endpoints: [\"127.0.0.1:80\"]\n",
            "    max_response_headers: 0\n"
        )),
        "clusters[0].max_response_headers: must be at least 1 at line 14"
    );
}

#[test]
fn http2_limits_parse_with_units_and_defaults() {
    let src = with(
        "    protocol: http\n",
        "    http2:\n      max_concurrent_streams: 50\n      initial_stream_window: 256KiB\n      max_frame_size: 32KiB\n      stream_idle_timeout: 30s\n",
    );
    let src = src.replace(
        "    endpoints: [\"127.0.0.1:80\"]\n",
        "    endpoints: [\"127.0.0.1:80\"]\n    protocol: http2\n",
    );
    let c = Config::from_yaml(&src).unwrap();
    let h2 = c.listeners[0].http.as_ref().unwrap().h2;
    assert_eq!(h2.max_concurrent_streams, 50);
    assert_eq!(h2.initial_stream_window, 256 * 1024);
    assert_eq!(h2.max_frame_size, 32 * 1024);
    assert_eq!(
        h2.stream_idle_timeout,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(
        h2.max_header_list_size,
        H2Settings::default().max_header_list_size
    );
    assert_eq!(c.clusters[0].protocol, UpstreamProtocol::Http2);
    let src = with("    protocol: http\n", "");
    let src = src.replace("    protocol: http\n", "    protocol: http2\n");
    assert_eq!(
        Config::from_yaml(&src).unwrap().listeners[0].protocol,
        Protocol::Http2
    );
}

#[test]
fn http2_limit_errors_name_the_field_and_line() {
    let cases = [
        (
            "    http2:\n      max_frame_size: 1KiB\n",
            "listeners[0].http2.max_frame_size: 1024 is outside 16384..=16777215 bytes at line 6",
        ),
        (
            "    http2:\n      max_concurrent_streams: 0\n",
            "listeners[0].http2.max_concurrent_streams: must be at least 1 at line 6",
        ),
        (
            "    http2:\n      initial_stream_window: 4GiB\n",
            "listeners[0].http2.initial_stream_window: invalid size \"4GiB\" (expected bytes, or a number with B, KiB or MiB) at line 6",
        ),
        (
            "    http2:\n      stream_idle_timeout: soon\n",
            "listeners[0].http2.stream_idle_timeout: invalid duration \"soon\" (expected number at 0) at line 6",
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(err(&with("    protocol: http\n", extra)), want);
    }
    let e = err(&with(
        "    protocol: http\n",
        "    http2:\n      max_streams: 5\n",
    ));
    assert!(
        e.starts_with("listeners[0].http2.max_streams: unknown field `max_streams`")
            && e.ends_with("at line 6"),
        "{e}"
    );
    let bad = BASE.replace(
        "    endpoints: [\"127.0.0.1:80\"]\n",
        "    endpoints: [\"127.0.0.1:80\"]\n    protocol: h3\n",
    );
    assert_eq!(
        err(&bad),
        "clusters[0].protocol: unknown protocol \"h3\" (expected http1, http2 or auto) at line 14"
    );
    let auto = BASE.replace(
        "    endpoints: [\"127.0.0.1:80\"]\n",
        "    endpoints: [\"127.0.0.1:80\"]\n    protocol: auto\n",
    );
    assert_eq!(
        err(&auto),
        "clusters[0].protocol: auto needs a tls: block (ALPN chooses between h2 and http/1.1) at line 14"
    );
}
