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
