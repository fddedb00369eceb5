//! `protocol: http` listeners, routes and cluster pools: parsing, defaults and error messages.

use super::*;
use crate::route::{Action, HeaderValueMatch, PathMatch, RequestView};

const HTTP: &str = "\
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: api
        domains: [\"API.example.com\", \"*.example.com\"]
        routes:
          - match: {path: /healthz}
            direct_response: {status: 200, body: \"ok\"}
          - name: canary
            match:
              prefix: /
              methods: [get, POST]
              headers: [{name: X-Canary, exact: \"1\"}, {name: x-debug, present: true}, {name: ua, regex: \"curl.*\"}]
            weighted_clusters: [{cluster: a, weight: 90}, {cluster: b, weight: 10}]
            timeout: 0
            retry_policy: {retry_on: [5xx, reset, retriable-status-codes], num_retries: 3, per_try_timeout: 1s, retriable_status_codes: [503]}
            request_headers_to_add: [{name: X-Env, value: prod}]
            request_headers_to_remove: [X-Internal]
            host_rewrite: backend.internal
          - match: {regex: \"/v[0-9]+/.*\"}
            cluster: b
      - name: fallback
        domains: [\"*\"]
        routes:
          - match: {prefix: /}
            cluster: a
clusters:
  - name: a
    endpoints: [\"127.0.0.1:80\"]
    pool: {max_idle_per_endpoint: 8, idle_timeout: 5s, max_requests_per_connection: 1000}
  - name: b
    endpoints: [\"127.0.0.1:81\"]
";

fn err(src: &str) -> String {
    Config::from_yaml(src).unwrap_err().to_string()
}

/// `HTTP` with `from` (which must occur exactly once) replaced.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(HTTP.matches(from).count(), 1, "{from:?}");
    HTTP.replace(from, to)
}

struct Req(
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

impl RequestView for Req {
    fn host(&self) -> &[u8] {
        self.0.as_bytes()
    }
    fn method(&self) -> &[u8] {
        b"GET"
    }
    fn path(&self) -> &[u8] {
        self.1.as_bytes()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.2
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
}

#[test]
fn http_listener_parses_with_defaults() {
    let c = Config::from_yaml(HTTP).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.protocol, Protocol::Http);
    assert_eq!(l.cluster, None);
    let h = l.http.as_ref().unwrap();
    let d = HttpSettings::default();
    assert_eq!(h.request_headers_timeout, d.request_headers_timeout);
    assert_eq!(h.max_request_headers_bytes, 60 * 1024);
    assert_eq!(h.max_request_headers, 100);
    assert_eq!(h.max_request_line_bytes, 8 * 1024);
    assert_eq!(h.retry_buffer_bytes, 64 * 1024);

    let t = &h.routes;
    assert_eq!(
        t.virtual_hosts[0].domains,
        ["api.example.com", "*.example.com"]
    );
    let health = &t.virtual_hosts[0].routes[0];
    assert_eq!(health.name, "api/0");
    assert!(matches!(health.matcher.path, PathMatch::Exact(ref p) if p == "/healthz"));
    assert!(matches!(health.action, Action::Direct { status: 200, ref body } if body == "ok"));
    assert_eq!(health.timeout, Some(Duration::from_secs(30)));
    assert_eq!(health.retry.num_retries, 1);
    assert!(!health.retry.on_5xx && !health.retry.on_reset && !health.retry.on_connect_failure);

    let canary = &t.virtual_hosts[0].routes[1];
    assert_eq!(canary.name, "canary");
    assert_eq!(canary.matcher.methods, ["GET", "POST"]);
    assert_eq!(canary.matcher.headers[0].name, "x-canary");
    assert!(matches!(
        canary.matcher.headers[1].value,
        HeaderValueMatch::Present(true)
    ));
    match &canary.action {
        Action::Weighted { clusters, total } => {
            assert_eq!(clusters, &[(0, 90), (1, 10)]);
            assert_eq!(*total, 100);
        }
        a => panic!("{a:?}"),
    }
    assert_eq!(canary.timeout, None);
    let r = &canary.retry;
    assert!(r.on_5xx && r.on_reset && !r.on_gateway_error && !r.on_connect_failure);
    assert_eq!(r.retriable_status_codes, [503]);
    assert_eq!(r.num_retries, 3);
    assert_eq!(r.per_try_timeout, Some(Duration::from_secs(1)));
    assert!(!r.retry_non_idempotent);
    use crate::route::RequestFilter;
    assert_eq!(
        &*canary.filters.request,
        [
            RequestFilter::RemoveHeader("x-internal".into()),
            RequestFilter::SetHost("backend.internal".into()),
            RequestFilter::AddHeader("x-env".into(), "prod".into()),
        ]
    );
    assert!(canary.filters.response.is_empty());

    assert_eq!(
        c.clusters[0].pool,
        PoolSettings {
            max_idle_per_endpoint: 8,
            idle_timeout: Duration::from_secs(5),
            max_requests_per_connection: Some(1000),
        }
    );
    assert_eq!(c.clusters[1].pool, PoolSettings::default());
}

#[test]
fn parsed_table_selects_routes() {
    let c = Config::from_yaml(HTTP).unwrap();
    let t = &c.listeners[0].http.as_ref().unwrap().routes;
    let name = |r: Req| t.select(&r).map(|r| r.name.clone());
    assert_eq!(
        name(Req("api.example.com:80", "/healthz", &[])).as_deref(),
        Some("api/0")
    );
    let canary: &[(&str, &str)] = &[("x-canary", "1"), ("x-debug", "1"), ("ua", "curl/8")];
    assert_eq!(
        name(Req("x.EXAMPLE.com", "/a", canary)).as_deref(),
        Some("canary")
    );
    assert_eq!(
        name(Req("x.example.com", "/v2/a", &[])).as_deref(),
        Some("api/2")
    );
    assert_eq!(name(Req("x.example.com", "/a", &[])), None);
    assert_eq!(name(Req("other", "/a", &[])).as_deref(), Some("fallback/0"));
}

#[test]
fn http_settings_accept_sizes_and_durations() {
    let c = Config::from_yaml(&edit(
        "    protocol: http\n",
        "    protocol: http\n    request_headers_timeout: 2s\n    max_request_headers_size: 32KiB\n    max_request_headers: 20\n    max_request_line_size: 1024\n    retry_buffer_size: 1MiB\n",
    ))
    .unwrap();
    let h = c.listeners[0].http.as_ref().unwrap();
    assert_eq!(h.request_headers_timeout, Duration::from_secs(2));
    assert_eq!(h.max_request_headers_bytes, 32 * 1024);
    assert_eq!(h.max_request_headers, 20);
    assert_eq!(h.max_request_line_bytes, 1024);
    assert_eq!(h.retry_buffer_bytes, 1 << 20);
    assert_eq!(parse_size("0"), Ok(0));
    assert_eq!(parse_size("12 B"), Ok(12));
    assert!(parse_size("1KB").is_err());
    assert!(parse_size("KiB").is_err());
    assert!(parse_size("-1").is_err());
}

#[test]
fn route_errors_name_field_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "            cluster: b\n",
            "            cluster: nope\n",
            "listeners[0].virtual_hosts[0].routes[2].cluster: unknown cluster \"nope\" at line 23",
        ),
        (
            "{cluster: b, weight: 10}",
            "{cluster: zz, weight: 10}",
            "listeners[0].virtual_hosts[0].routes[1].weighted_clusters[1].cluster: unknown cluster \"zz\" at line 16",
        ),
        (
            "weight: 90}, {cluster: b, weight: 10}",
            "weight: 0}, {cluster: b, weight: 0}",
            "listeners[0].virtual_hosts[0].routes[1].weighted_clusters: total weight must be above 0 at line 16",
        ),
        (
            "            cluster: b\n",
            "            cluster: b\n            direct_response: {status: 200}\n",
            "listeners[0].virtual_hosts[0].routes[2]: exactly one of cluster, weighted_clusters or direct_response is required at line 22",
        ),
        (
            "            direct_response: {status: 200, body: \"ok\"}\n",
            "",
            "listeners[0].virtual_hosts[0].routes[0]: exactly one of cluster, weighted_clusters or direct_response is required at line 9",
        ),
        (
            "{regex: \"/v[0-9]+/.*\"}",
            "{regex: \"/v[0-9+/.*\"}",
            "listeners[0].virtual_hosts[0].routes[2].match.regex: invalid regex \"/v[0-9+/.*\": unclosed character class at line 22",
        ),
        (
            "{name: ua, regex: \"curl.*\"}",
            "{name: ua, regex: \"(curl\"}",
            "listeners[0].virtual_hosts[0].routes[1].match.headers[2].regex: invalid regex \"(curl\": unclosed group at line 15",
        ),
        (
            "{status: 200, body: \"ok\"}",
            "{status: 99}",
            "listeners[0].virtual_hosts[0].routes[0].direct_response.status: invalid status 99 (expected 200-599) at line 10",
        ),
        (
            "        domains: [\"*\"]\n",
            "        domains: [\"x.com\", \"*.EXAMPLE.com\"]\n",
            "listeners[0].virtual_hosts[1].domains[1]: duplicate domain \"*.example.com\" (already in virtual host \"api\") at line 25",
        ),
        (
            "        domains: [\"*\"]\n",
            "        domains: [\"x.com:80\"]\n",
            "listeners[0].virtual_hosts[1].domains[0]: invalid domain \"x.com:80\": no port here (the request's port is ignored when matching) at line 25",
        ),
        (
            "        domains: [\"*\"]\n",
            "        domains: [\"a.*.com\"]\n",
            "listeners[0].virtual_hosts[1].domains[0]: invalid domain \"a.*.com\": `*` is only allowed as a leading `*.` at line 25",
        ),
        (
            "{path: /healthz}",
            "{path: /healthz, prefix: /}",
            "listeners[0].virtual_hosts[0].routes[0].match: exactly one of path, prefix or regex is required at line 9",
        ),
        (
            "{path: /healthz}",
            "{path: \"/healthz?x=1\"}",
            "listeners[0].virtual_hosts[0].routes[0].match.path: the query string is not matched; leave out `?...` at line 9",
        ),
        (
            "{path: /healthz}",
            "{path: healthz}",
            "listeners[0].virtual_hosts[0].routes[0].match.path: must start with `/`, got \"healthz\" at line 9",
        ),
        (
            "{name: x-debug, present: true}",
            "{name: x-debug, present: true, exact: \"1\"}",
            "listeners[0].virtual_hosts[0].routes[1].match.headers[1]: exactly one of exact, present or regex is required at line 15",
        ),
        (
            "retry_on: [5xx, reset, retriable-status-codes]",
            "retry_on: [5xx, sometimes, retriable-status-codes]",
            "listeners[0].virtual_hosts[0].routes[1].retry_policy.retry_on[1]: unknown condition \"sometimes\" (expected 5xx, gateway-error, connect-failure, reset, retriable-status-codes, cancelled, deadline-exceeded, resource-exhausted or unavailable) at line 18",
        ),
        (
            "retriable_status_codes: [503]",
            "retriable_status_codes: [503, 600]",
            "listeners[0].virtual_hosts[0].routes[1].retry_policy.retriable_status_codes[1]: invalid status 600 at line 18",
        ),
        (
            "retry_on: [5xx, reset, retriable-status-codes]",
            "retry_on: [5xx]",
            "listeners[0].virtual_hosts[0].routes[1].retry_policy.retriable_status_codes: has no effect unless retry_on includes retriable-status-codes at line 18",
        ),
        (
            "per_try_timeout: 1s",
            "per_try_timeout: soon",
            "listeners[0].virtual_hosts[0].routes[1].retry_policy.per_try_timeout: invalid duration \"soon\" (expected number at 0) at line 18",
        ),
        (
            "[{name: X-Env, value: prod}]",
            "[{name: Host, value: prod}]",
            "listeners[0].virtual_hosts[0].routes[1].request_headers_to_add[0].name: header \"host\" cannot be edited here (host: use host_rewrite) at line 19",
        ),
        (
            "[X-Internal]",
            "[\"bad header\"]",
            "listeners[0].virtual_hosts[0].routes[1].request_headers_to_remove[0]: invalid header name \"bad header\" at line 20",
        ),
        (
            "methods: [get, POST]",
            "methods: [\"GE T\"]",
            "listeners[0].virtual_hosts[0].routes[1].match.methods[0]: invalid method \"GE T\" at line 14",
        ),
        (
            "      - name: fallback\n",
            "      - name: api\n",
            "listeners[0].virtual_hosts[1].name: duplicate virtual host name \"api\" at line 24",
        ),
        (
            "            timeout: 0\n",
            "            timeout: 3\n",
            "listeners[0].virtual_hosts[0].routes[1].timeout: invalid duration \"3\" (time unit needed, for example 3sec or 3ms) at line 17",
        ),
        (
            "            timeout: 0\n",
            "            timeot: 0\n",
            "listeners[0].virtual_hosts[0].routes[1].timeot: unknown field `timeot`, expected one of `name`, `match`, `cluster`, `weighted_clusters`, `direct_response`, `timeout`, `retry_policy`, `request_headers_to_add`, `request_headers_to_remove`, `host_rewrite`, `response_headers_to_add`, `response_headers_to_remove`, `fault`, `request_mirror_policies` at line 17",
        ),
    ];
    for (from, to, want) in cases {
        assert_eq!(&err(&edit(from, to)), want, "{from:?} -> {to:?}");
    }
}

#[test]
fn listener_protocol_errors_name_field_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    protocol: http\n",
            "    protocol: http\n    cluster: a\n",
            "listeners[0].cluster: only a protocol: tcp listener takes cluster at line 5",
        ),
        (
            "    protocol: http\n",
            "    protocol: http\n    l4_mode: splice\n",
            "listeners[0].l4_mode: only a protocol: tcp listener takes l4_mode at line 5",
        ),
        (
            "    protocol: http\n",
            "    protocol: http\n    original_dst: true\n",
            "listeners[0].original_dst: only a protocol: tcp listener takes original_dst at line 5",
        ),
        (
            "    protocol: http\n",
            "    protocol: tcp\n",
            "listeners[0].virtual_hosts: only a protocol: http listener takes virtual_hosts at line 5",
        ),
        (
            "    protocol: http\n",
            "    protocol: gopher\n",
            "listeners[0].protocol: unknown protocol \"gopher\" (expected tcp, http, http2 or auto) at line 4",
        ),
        (
            "    protocol: http\n",
            "    protocol: http\n    max_request_headers_size: 4 KB\n",
            "listeners[0].max_request_headers_size: invalid size \"4 KB\" (expected bytes, or a number with B, KiB or MiB) at line 5",
        ),
        (
            "    protocol: http\n",
            "    protocol: http\n    max_request_headers_size: 100\n",
            "listeners[0].max_request_headers_size: must be at least max_request_line_size (8192 bytes): the request line is part of the head at line 5",
        ),
        (
            "    protocol: http\n",
            "    protocol: http\n    max_request_headers: 0\n",
            "listeners[0].max_request_headers: must be at least 1 at line 5",
        ),
        (
            "    pool: {max_idle_per_endpoint: 8, idle_timeout: 5s, max_requests_per_connection: 1000}\n",
            "    pool: {idle_timeout: 0}\n",
            "clusters[0].pool.idle_timeout: must be above 0 (max_idle_per_endpoint: 0 disables pooling) at line 32",
        ),
        (
            "max_requests_per_connection: 1000}",
            "max_requests_per_connection: 0}",
            "clusters[0].pool.max_requests_per_connection: must be at least 1 (leave it out for no limit) at line 32",
        ),
        (
            "idle_timeout: 5s,",
            "idle_timout: 5s,",
            "clusters[0].pool.idle_timout: unknown field `idle_timout`, expected one of `max_idle_per_endpoint`, `idle_timeout`, `max_requests_per_connection` at line 32",
        ),
    ];
    for (from, to, want) in cases {
        assert_eq!(&err(&edit(from, to)), want, "{from:?} -> {to:?}");
    }
}

#[test]
fn virtual_hosts_are_required_and_routes_cannot_use_original_dst() {
    let src = "\
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
";
    assert_eq!(
        err(src),
        "listeners[0].virtual_hosts: an http listener needs virtual_hosts at line 2"
    );
    let tcp = "\
listeners:
  - name: l
    address: 127.0.0.1:0
";
    assert_eq!(
        err(tcp),
        "listeners[0].cluster: a tcp listener needs a cluster at line 2"
    );
    let odst = edit(
        "  - name: b\n    endpoints: [\"127.0.0.1:81\"]\n",
        "  - name: b\n    type: original_dst\n",
    );
    assert_eq!(
        err(&odst),
        "listeners[0].virtual_hosts[0].routes[1].weighted_clusters[1].cluster: cluster \"b\" is original_dst, which http routes cannot use at line 16"
    );
    let empty = edit(
        "        routes:\n          - match: {prefix: /}\n            cluster: a\n",
        "        routes: []\n",
    );
    assert_eq!(
        err(&empty),
        "listeners[0].virtual_hosts[1].routes: at least one route is required at line 26"
    );
}

#[test]
fn documented_example_parses() {
    let doc = include_str!("../route/mod.rs");
    let yaml: String = doc
        .lines()
        .skip_while(|l| *l != "//! ```yaml")
        .skip(1)
        .take_while(|l| *l != "//! ```")
        .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or("")))
        .collect();
    assert!(yaml.contains("virtual_hosts:"), "{yaml}");
    let c = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let t = &c.listeners[0].http.as_ref().unwrap().routes;
    assert_eq!(t.virtual_hosts[0].routes.len(), 3);
    assert!(matches!(
        t.virtual_hosts[0].routes[1].action,
        Action::Direct { status: 200, ref body } if body == "ok\n"
    ));
}

#[test]
fn response_header_edits_compile_into_the_response_filters() {
    let c = Config::from_yaml(
        "
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {prefix: /}
            cluster: a
            response_headers_to_add: [{name: X-Served-By, value: shardcar}]
            response_headers_to_remove: [Server]
clusters:
  - name: a
    endpoints: [\"127.0.0.1:1\"]
",
    )
    .unwrap();
    use crate::route::ResponseFilter;
    let routes = &c.listeners[0].http.as_ref().unwrap().routes;
    let route = &routes.virtual_hosts[0].routes[0];
    assert_eq!(
        &*route.filters.response,
        [
            ResponseFilter::RemoveHeader("server".into()),
            ResponseFilter::AddHeader("x-served-by".into(), "shardcar".into()),
        ]
    );
    let bad = Config::from_yaml(
        "
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {prefix: /}
            cluster: a
            response_headers_to_add: [{name: \"bad name\", value: x}]
clusters:
  - name: a
    endpoints: [\"127.0.0.1:1\"]
",
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "listeners[0].virtual_hosts[0].routes[0].response_headers_to_add[0].name: invalid header name \"bad name\" at line 12"
    );
}
