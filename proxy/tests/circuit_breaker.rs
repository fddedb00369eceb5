//! Circuit breakers (`circuit_breakers.max_requests`) over real sockets: an origin that holds
//! requests keeps an exact number in flight, so overflow happens at exactly the configured
//! concurrency; the overflowing request gets 503 `UO` with `x-shardcar-overloaded: true` over
//! HTTP/1.1 (curl) and HTTP/2 (curl h2c prior knowledge), and the fullness gauges and overflow
//! counter show it. Thresholds are process-wide and divided among shards (rounded up).

mod support;

use std::net::SocketAddr;

use shardcar::{Config, Server};
use support::client::Client;
use support::hold::HoldOrigin;
use support::tools::{have, run};

fn proxy(origin: SocketAddr, max_requests: u32, shards: usize) -> (Server, SocketAddr) {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{origin}\"]
    connect_timeout: 500ms
    circuit_breakers:
      max_requests: {max_requests}
"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), shards).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

/// `curl -i` output (head and body) for `url` with extra `args`.
fn curl(args: &[&str], url: &str) -> String {
    let mut all = vec!["-sS", "-i", "--max-time", "20"];
    all.extend_from_slice(args);
    all.push(url);
    let out = run("curl", &all);
    assert!(out.status.success(), "curl {all:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn breaker(server: &Server) -> shardcar::cluster::breaker::BreakerStats {
    let s = server.total_stats();
    assert_eq!(s.breakers.len(), 1, "{:?}", s.breakers);
    s.breakers[0].clone()
}

#[test]
fn overflow_happens_at_exactly_max_requests_with_uo_and_the_overload_header() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = HoldOrigin::start();
    let (server, addr) = proxy(origin.addr, 3, 1);
    let url = format!("http://{addr}/x");

    // Three requests fill the breaker; the origin holds them.
    let mut held: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
            c
        })
        .collect();
    origin.wait_arrived(3);
    let b = breaker(&server);
    assert_eq!((b.active_requests, b.max_requests, b.overflows), (3, 3, 0));

    // The fourth overflows at once, over HTTP/1.1 and over HTTP/2; the origin never sees them.
    for args in [&["--http1.1"][..], &["--http2-prior-knowledge"][..]] {
        let out = curl(args, &url);
        assert!(
            out.lines().next().unwrap().contains(" 503"),
            "{args:?}: {out}"
        );
        let lower = out.to_ascii_lowercase();
        assert!(lower.contains("x-shardcar-flag: uo"), "{args:?}: {out}");
        assert!(
            lower.contains("x-shardcar-overloaded: true"),
            "{args:?}: {out}"
        );
    }
    assert_eq!(origin.arrived.load(std::sync::atomic::Ordering::SeqCst), 3);
    let b = breaker(&server);
    assert_eq!((b.active_requests, b.overflows), (3, 2));

    // Released, the held ones succeed and the slots come back.
    origin.release();
    for c in &mut held {
        let r = c.read_response(false).expect("held response");
        assert_eq!((r.status, r.text().as_str()), (200, "held"));
    }
    let out = curl(&["--http1.1"], &url);
    assert!(out.lines().next().unwrap().contains(" 200"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("x-shardcar-overloaded"),
        "{out}"
    );
    assert_eq!(breaker(&server).active_requests, 0);
    server.shutdown();
}

#[test]
fn global_threshold_is_divided_among_shards_rounding_up() {
    let origin = HoldOrigin::start();
    let (server, _) = proxy(origin.addr, 5, 2);
    let per_shard: Vec<u64> = server
        .stats()
        .iter()
        .map(|s| s.breakers[0].max_requests)
        .collect();
    assert_eq!(per_shard, vec![3, 3]);
    assert_eq!(breaker(&server).max_requests, 6);
    server.shutdown();
}

#[test]
fn config_errors_name_the_field_and_line() {
    let base = "listeners:
  - name: l4
    address: 127.0.0.1:0
    protocol: tcp
    cluster: up
clusters:
  - name: up
    endpoints: [\"127.0.0.1:1\"]
    circuit_breakers:
";
    let e = Config::from_yaml(&format!("{base}      max_requests: 0\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("clusters[0].circuit_breakers.max_requests") && e.contains("at least 1"),
        "{e}"
    );
    let e = Config::from_yaml(&format!("{base}      max_request: 2\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_request") && e.contains("line"), "{e}");
}

#[test]
fn retries_overflow_at_exactly_max_retries() {
    // Endpoint A answers 503 at once; a retry goes to the other endpoint, B, which holds it.
    // So each request keeps one retry in flight, and the third finds the retry share full.
    let fail = support::status::StatusOrigin::start("fail", 503);
    let hold = HoldOrigin::start();
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
            retry_policy: {{retry_on: [5xx], num_retries: 1}}
clusters:
  - name: app
    endpoints: [\"{}\", \"{}\"]
    connect_timeout: 500ms
    circuit_breakers:
      max_retries: 2
",
        fail.addr, hold.addr
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    let mut held = Vec::new();
    for n in 1..=2 {
        let mut c = Client::connect(addr);
        c.send(b"GET /r HTTP/1.1\r\nHost: t\r\n\r\n");
        hold.wait_arrived(n);
        held.push(c);
    }
    let b = breaker(&server);
    assert_eq!(
        (b.active_retries, b.max_retries, b.retry_overflows),
        (2, 2, 0)
    );
    // The third request's retry overflows: the client gets A's 503, B never sees it.
    let mut c = Client::connect(addr);
    let r = c.get("/r");
    assert_eq!((r.status, r.text().as_str()), (503, "fail"));
    assert_eq!(breaker(&server).retry_overflows, 1);
    assert_eq!(hold.arrived.load(std::sync::atomic::Ordering::SeqCst), 2);
    hold.release();
    for c in &mut held {
        assert_eq!(c.read_response(false).unwrap().status, 200);
    }
    drop(held);
    server.shutdown();
}

/// Polls the merged breaker stats (up to 10 s) until `f` holds.
fn wait_breaker(
    server: &Server,
    what: &str,
    f: impl Fn(&shardcar::cluster::breaker::BreakerStats) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let b = breaker(server);
        if f(&b) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {b:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn pending_overflows_at_exactly_max_pending_requests_once_max_connections_is_reached() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = HoldOrigin::start();
    let (server, addr) = support::http_proxy_to(
        origin.addr,
        "    circuit_breakers: {max_connections: 2, max_pending_requests: 1}\n",
    );
    let url = format!("http://{addr}/x");
    // Two requests open the two connections allowed; the origin holds them. (One after the
    // other: a request counts as pending while its connect runs.)
    let mut held: Vec<Client> = (1..=2)
        .map(|n| {
            let mut c = Client::connect(addr);
            c.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
            origin.wait_arrived(n);
            c
        })
        .collect();
    let b = breaker(&server);
    assert_eq!(
        (b.active_connections, b.max_connections, b.cx_overflows),
        (2, 2, 0)
    );
    // The third has no connection to go on: it waits, pending (the one pending slot).
    let mut third = Client::connect(addr);
    third.send(b"GET /third HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_breaker(&server, "third pending", |b| b.pending_requests == 1);
    let b = breaker(&server);
    assert_eq!((b.max_pending_requests, b.cx_overflows), (1, 1));
    // The fourth overflows the pending share at once, over HTTP/1.1 and HTTP/2.
    for args in [&["--http1.1"][..], &["--http2-prior-knowledge"][..]] {
        let out = curl(args, &url);
        assert!(
            out.lines().next().unwrap().contains(" 503"),
            "{args:?}: {out}"
        );
        let lower = out.to_ascii_lowercase();
        assert!(lower.contains("x-shardcar-flag: uo"), "{args:?}: {out}");
        assert!(
            lower.contains("x-shardcar-overloaded: true"),
            "{args:?}: {out}"
        );
    }
    let b = breaker(&server);
    assert_eq!((b.pending_overflows, b.pending_requests), (2, 1), "{b:?}");
    assert_eq!(origin.arrived.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Released: the held two answer, their connections go back to the pool and the pending
    // one is served on one of them — never a third connection.
    origin.release();
    for c in held.iter_mut().chain(std::iter::once(&mut third)) {
        let r = c.read_response(false).expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "held"));
    }
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let b = breaker(&server);
    assert_eq!((b.pending_requests, b.active_connections), (0, 2), "{b:?}");
    server.shutdown();
}

#[test]
fn l4_connections_over_max_connections_are_refused() {
    let origin = HoldOrigin::start();
    let yaml = support::l4_yaml(
        "copy",
        &[origin.addr],
        "",
        "    circuit_breakers: {max_connections: 1}\n",
    );
    let (server, addr) = support::start_proxy(&yaml, 1);
    let mut first = Client::connect(addr);
    first.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
    origin.wait_arrived(1);
    // The second connection is closed without reaching the origin.
    let mut second = Client::connect(addr);
    assert!(second.closed_within(std::time::Duration::from_secs(5)));
    let b = breaker(&server);
    assert_eq!(
        (b.active_connections, b.max_connections, b.cx_overflows),
        (1, 1, 1)
    );
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // The refused connection is reported with flag UO (not UF).
    let mut text = String::new();
    shardcar::telemetry::metrics::prometheus::write(&mut text, &server.total_stats().metrics);
    assert!(
        text.lines()
            .any(|l| l.starts_with("istio_tcp_connections_closed_total")
                && l.contains("response_flags=\"UO\"")),
        "{text}"
    );
    origin.release();
    assert_eq!(first.read_response(false).unwrap().status, 200);
    drop(first);
    // Its slot comes back once the first connection ends.
    wait_breaker(&server, "slot released", |b| b.active_connections == 0);
    let mut third = Client::connect(addr);
    assert_eq!(third.get("/again").status, 200);
    server.shutdown();
}

#[test]
fn connection_thresholds_must_be_at_least_one() {
    for field in ["max_connections", "max_pending_requests"] {
        let yaml = format!(
            "listeners:
  - name: l4
    address: 127.0.0.1:0
    protocol: tcp
    cluster: up
clusters:
  - name: up
    endpoints: [\"127.0.0.1:1\"]
    circuit_breakers:
      {field}: 0
"
        );
        let e = Config::from_yaml(&yaml).unwrap_err().to_string();
        assert!(
            e.contains(&format!("clusters[0].circuit_breakers.{field}"))
                && e.contains("at least 1")
                && e.contains("line 10"),
            "{e}"
        );
    }
}

#[test]
fn http2_upstream_requests_wait_at_max_connections_and_overflow_pending() {
    // B: an h2c listener in front of the holding origin. A: an h1 listener whose cluster
    // speaks h2 to B, one stream per connection, one connection, one pending request.
    let origin = HoldOrigin::start();
    let b_yaml = format!(
        "drain_timeout: 1s
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http2
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{}\"]
",
        origin.addr
    );
    let b = Server::start(Config::from_yaml(&b_yaml).unwrap(), 1).expect("proxy B");
    let (a, addr) = support::http_proxy_to(
        b.addr("web").unwrap(),
        "    protocol: http2
    http2: {max_concurrent_streams: 1}
    circuit_breakers: {max_connections: 1, max_pending_requests: 1}
",
    );
    let mut first = Client::connect(addr);
    first.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
    origin.wait_arrived(1);
    // The second finds the one connection full and may not open another: pending.
    let mut second = Client::connect(addr);
    second.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_breaker(&a, "second pending", |b| b.pending_requests == 1);
    // The third overflows.
    let r = Client::connect(addr).get("/x");
    assert_eq!((r.status, r.header("x-shardcar-flag")), (503, Some("UO")));
    let s = breaker(&a);
    assert_eq!(
        (s.active_connections, s.cx_overflows, s.pending_overflows),
        (1, 1, 1),
        "{s:?}"
    );
    origin.release();
    for c in [&mut first, &mut second] {
        assert_eq!(c.read_response(false).unwrap().status, 200);
    }
    assert_eq!(a.total_stats().h2_upstream_connected, 1);
    drop((first, second));
    a.shutdown();
    b.shutdown();
}
