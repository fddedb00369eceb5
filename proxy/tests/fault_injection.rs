//! Fault injection (a route's `fault:` filter) over real sockets: the share of aborted requests
//! over 2000 HTTP/1.1 requests and 2000 HTTP/2 streams (h2load) lies within ±3σ of the
//! configured percentage (binomial σ = √(n·p·(1−p))), aborted requests never reach the origin
//! and the counters match what clients saw; gRPC requests get the configured gRPC status;
//! delays hold a request at least the configured time; `x-envoy-fault-*` headers are ignored
//! unless `header_control` is on.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::status::StatusOrigin;
use support::tools::{have, run};

/// A route per `(prefix, fault YAML)` to one origin.
fn proxy(origin: SocketAddr, routes: &[(&str, &str)]) -> (Server, SocketAddr) {
    let mut r = String::new();
    for (prefix, fault) in routes {
        r.push_str(&format!(
            "          - match: {{prefix: \"{prefix}\"}}\n            cluster: app\n            fault:\n{fault}"
        ));
    }
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
{r}clusters:
  - name: app
    endpoints: [\"{origin}\"]
    connect_timeout: 500ms
"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

/// Asserts `k` of `n` is within ±3σ of share `p`.
fn within_3_sigma(k: u64, n: u64, p: f64) {
    let (nf, kf) = (n as f64, k as f64);
    let sigma = (nf * p * (1.0 - p)).sqrt();
    assert!(
        (kf - nf * p).abs() <= 3.0 * sigma,
        "{k} of {n}: expected {:.0} ± {:.1} (3σ)",
        nf * p,
        3.0 * sigma
    );
}

const ABORT_30: &str = "              abort: {http_status: 503, percentage: 30}\n";

#[test]
fn abort_share_over_2000_http1_requests_is_within_3_sigma() {
    let origin = StatusOrigin::start("o", 200);
    let (server, addr) = proxy(origin.addr, &[("/", ABORT_30)]);
    let mut c = Client::connect(addr);
    let n = 2000u64;
    let mut aborted = 0u64;
    for _ in 0..n {
        let r = c.get("/x");
        match r.status {
            503 => {
                assert_eq!(r.header("x-shardcar-flag"), Some("FI"));
                aborted += 1;
            }
            200 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    within_3_sigma(aborted, n, 0.30);
    let s = server.total_stats();
    assert_eq!(s.fault_aborts_injected, aborted);
    assert_eq!(
        origin.requests() as u64,
        n - aborted,
        "aborted requests reached the origin"
    );
    server.shutdown();
}

#[test]
fn abort_share_over_2000_http2_streams_is_within_3_sigma() {
    if !have("h2load", &["--version"]) {
        return;
    }
    let origin = StatusOrigin::start("o", 200);
    let (server, addr) = proxy(origin.addr, &[("/", ABORT_30)]);
    let url = format!("http://{addr}/x");
    let out = run("h2load", &["-n", "2000", "-c", "2", "-m", "8", &url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "status codes: 1400 2xx, 0 3xx, 0 4xx, 600 5xx"
    let line = text
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let count = |class: &str| -> u64 {
        line.split(',')
            .find(|p| p.trim().ends_with(class))
            .and_then(|p| {
                p.trim()
                    .trim_start_matches("status codes:")
                    .split_whitespace()
                    .next()
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{class} in {line}"))
    };
    let (ok, failed) = (count("2xx"), count("5xx"));
    assert_eq!(ok + failed, 2000, "{text}");
    within_3_sigma(failed, 2000, 0.30);
    assert_eq!(server.total_stats().fault_aborts_injected, failed);
    server.shutdown();
}

#[test]
fn a_grpc_request_gets_the_configured_grpc_status() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = StatusOrigin::start("o", 200);
    let (server, addr) = proxy(
        origin.addr,
        &[
            (
                "/pkg.Svc/Explicit",
                "              abort: {grpc_status: 8, percentage: 100}\n",
            ),
            (
                "/",
                "              abort: {http_status: 503, percentage: 100}\n",
            ),
        ],
    );
    for (path, code) in [("/pkg.Svc/Explicit", "8"), ("/pkg.Svc/Mapped", "14")] {
        let url = format!("http://{addr}{path}");
        let out = run(
            "curl",
            &[
                "-sS",
                "-i",
                "--http2-prior-knowledge",
                "--max-time",
                "10",
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                "--data-binary",
                "",
                &url,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(text.starts_with("http/2 200"), "{path}: {text}");
        assert!(
            text.contains(&format!("grpc-status: {code}\r\n")),
            "{path}: {text}"
        );
        assert!(text.contains("x-shardcar-flag: fi"), "{path}: {text}");
    }
    // Not gRPC: the HTTP status.
    let out = run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--http2-prior-knowledge",
            &format!("http://{addr}/plain"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "503");
    assert_eq!(origin.requests(), 0);
    server.shutdown();
}

#[test]
fn delayed_requests_take_at_least_the_delay_and_their_share_is_within_3_sigma() {
    let origin = StatusOrigin::start("o", 200);
    let delay = Duration::from_millis(20);
    let (server, addr) = proxy(
        origin.addr,
        &[
            (
                "/all",
                "              delay: {fixed_delay: 200ms, percentage: 100}\n",
            ),
            (
                "/",
                "              delay: {fixed_delay: 20ms, percentage: 25}\n",
            ),
        ],
    );
    let mut c = Client::connect(addr);
    for i in 0..5 {
        let t0 = Instant::now();
        assert_eq!(c.get("/all").status, 200);
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(200),
            "request {i} took {took:?}"
        );
    }
    assert_eq!(server.total_stats().fault_delays_injected, 5);
    let n = 400u64;
    let mut slow = 0u64;
    for _ in 0..n {
        let t0 = Instant::now();
        assert_eq!(c.get("/x").status, 200);
        if t0.elapsed() >= delay {
            slow += 1;
        }
    }
    let delayed = server.total_stats().fault_delays_injected - 5;
    within_3_sigma(delayed, n, 0.25);
    // Every delayed request was slow (others may be slow too, on a busy machine).
    assert!(slow >= delayed, "{slow} slow requests, {delayed} delayed");
    assert_eq!(server.total_stats().fault_active_delays, 0);
    assert_eq!(origin.requests() as u64, 5 + n, "delays still forward");
    server.shutdown();
}

#[test]
fn fault_headers_count_only_with_header_control() {
    let origin = StatusOrigin::start("o", 200);
    let (server, addr) = proxy(
        origin.addr,
        &[
            (
                "/controlled",
                "              abort: {http_status: 503, percentage: 100}\n              header_control: true\n",
            ),
            ("/", "              abort: {http_status: 503, percentage: 0}\n"),
        ],
    );
    let mut c = Client::connect(addr);
    let req = |c: &mut Client, path: &str| {
        c.send(
            format!(
                "GET {path} HTTP/1.1\r\nHost: t\r\nx-envoy-fault-abort-request: 418\r\n\
                 x-envoy-fault-abort-request-percentage: 100\r\n\r\n"
            )
            .as_bytes(),
        );
        c.read_response(false).unwrap().status
    };
    assert_eq!(
        req(&mut c, "/plain"),
        200,
        "headers ignored without header_control"
    );
    assert_eq!(req(&mut c, "/controlled"), 418, "header chooses the status");
    server.shutdown();
}

#[test]
fn config_errors_name_the_field_and_line() {
    let base = "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {prefix: \"/\"}
            cluster: app
            fault:
";
    let tail = "clusters:\n  - name: app\n    endpoints: [\"127.0.0.1:1\"]\n";
    let at = "listeners[0].virtual_hosts[0].routes[0].fault";
    for (bad, field, says) in [
        (
            "              abort: {http_status: 503, percentage: 101}\n",
            "abort.percentage",
            "not a percentage",
        ),
        (
            "              abort: {http_status: 99, percentage: 1}\n",
            "abort.http_status",
            "invalid status",
        ),
        (
            "              abort: {grpc_status: 17, percentage: 1}\n",
            "abort.grpc_status",
            "invalid gRPC status",
        ),
        (
            "              delay: {fixed_delay: soon, percentage: 1}\n",
            "delay.fixed_delay",
            "invalid duration",
        ),
        (
            "              header_control: true\n",
            "",
            "needs a delay, an abort or both",
        ),
    ] {
        let e = Config::from_yaml(&format!("{base}{bad}{tail}"))
            .unwrap_err()
            .to_string();
        let path = if field.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{field}")
        };
        assert!(
            e.contains(&format!("{path}:")) && e.contains(says) && e.contains(" at line "),
            "{bad:?}: {e}"
        );
    }
}
