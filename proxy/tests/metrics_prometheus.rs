//! Metrics end to end: the `shardcar` binary (2 shards) with real traffic from curl (HTTP/1.1,
//! HTTP/2 prior knowledge) and TCP clients, scraped on the Istio agent's `/stats/prometheus`;
//! `promtool check metrics` on the text; a real Prometheus server started here scraping the
//! proxy every second and answering PromQL; and the shards' snapshots merged exactly.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::origin::Origin;
use support::tools::TempDir;
use support::{DeadPort, EchoServer};

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");

struct Proxy {
    child: Child,
    addrs: Vec<(String, SocketAddr)>,
    _dir: TempDir,
}

impl Proxy {
    fn spawn(config: &str, listeners: usize) -> Proxy {
        let dir = TempDir::new("metrics");
        let p = dir.file("config.yaml");
        std::fs::write(&p, config).unwrap();
        let mut child = Command::new(BIN)
            .args(["--shards", "2", "--config"])
            .arg(&p)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addrs = Vec::new();
        while addrs.len() < listeners + 2 {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "proxy exited early");
            let mut w = line.split_whitespace();
            assert_eq!(w.next(), Some("listening"), "{line}");
            let name = w.next().unwrap().to_string();
            addrs.push((name, w.next().unwrap().parse().unwrap()));
        }
        Proxy {
            child,
            addrs,
            _dir: dir,
        }
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.addrs.iter().find(|(n, _)| n == name).unwrap().1
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(origin: SocketAddr, echo: SocketAddr, dead: SocketAddr) -> String {
    format!(
        "admin:
  address: 127.0.0.1:0
  health_address: 127.0.0.1:0
metrics:
  workload: reviews-v1
  service: reviews.default.svc.cluster.local
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/dead\"}}
            cluster: dead
          - match: {{prefix: \"/\"}}
            cluster: app
  - name: tcp
    address: 127.0.0.1:0
    cluster: echo
clusters:
  - name: app
    endpoints: [\"{origin}\"]
  - name: echo
    endpoints: [\"{echo}\"]
  - name: dead
    endpoints: [\"{dead}\"]
    connect_timeout: 500ms
"
    )
}

/// GET over HTTP: one curl process (one connection) per request; returns the status.
fn curl(url: &str, h2: bool) -> u16 {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "/dev/null", "-m", "20", "-w", "%{http_code}"]);
    if h2 {
        c.arg("--http2-prior-knowledge");
    }
    let out = c.arg(url).output().expect("curl is installed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn scrape(addr: SocketAddr) -> String {
    let out = Command::new("curl")
        .args(["-s", "-m", "20"])
        .arg(format!("http://{addr}/stats/prometheus"))
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "scrape failed");
    String::from_utf8(out.stdout).unwrap()
}

/// A sample line: (name, labels, value).
fn samples(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (head, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
                None => (head, ""),
            };
            let mut map = HashMap::new();
            // Label values here never contain `",` (no escapes in this test's values).
            for kv in labels.split("\",").filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once("=\"").unwrap();
                map.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            (name.to_string(), map, value.parse().unwrap())
        })
        .collect()
}

/// Sum of the samples called `name` whose labels include all of `want`.
fn sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// Scrapes until `f(text)` equals `want` (the shard records a request just after its last
/// byte is written, so the client can be a moment ahead), then checks it stays exact.
fn settle(health: SocketAddr, want: f64, f: impl Fn(&str) -> f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(health);
        let got = f(&text);
        if got == want {
            return text;
        }
        assert!(got < want, "counted {got}, expected {want}:\n{text}");
        assert!(Instant::now() < deadline, "counted {got}, expected {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn promtool_clean(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The one lint allowed: Istio's standard name carries its unit (milliseconds), which the
    // Prometheus naming lint would have in seconds; dashboards need the name as Istio has it.
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            *l != "istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\""
        })
        .collect();
    assert!(problems.is_empty(), "promtool: {problems:#?}");
    // 0: clean; 3: lint findings only (the allowed one). 1 would be a parse error.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "promtool exit {:?}: {report}",
        out.status
    );
}

const OK_HTTP: &[(&str, &str)] = &[
    ("response_code", "200"),
    ("request_protocol", "http"),
    ("reporter", "destination"),
    ("destination_workload", "reviews-v1"),
    ("destination_service", "reviews.default.svc.cluster.local"),
    ("response_flags", "-"),
    ("connection_security_policy", "none"),
];

#[test]
fn h1_h2_and_tcp_traffic_is_counted_exactly_and_promtool_accepts_the_text() {
    let origin = Origin::start("app");
    let echo = EchoServer::start();
    let dead = DeadPort::new();
    let proxy = Proxy::spawn(&config(origin.addr, echo.addr, dead.addr), 2);
    let (web, health) = (proxy.addr("web"), proxy.addr("admin-health"));

    // HTTP/1.1: 12 requests, each its own connection (both shards see some).
    for _ in 0..12 {
        assert_eq!(curl(&format!("http://{web}/x"), false), 200);
    }
    let text = settle(health, 12.0, |t| sum(t, "istio_requests_total", OK_HTTP));
    assert_eq!(
        sum(&text, "istio_request_duration_milliseconds_count", OK_HTTP),
        12.0
    );
    assert_eq!(
        sum(
            &text,
            "shardcar_listener_downstream_rq_total",
            &[("listener", "web"), ("response_code_class", "2xx")]
        ),
        12.0
    );
    assert_eq!(
        sum(
            &text,
            "shardcar_cluster_upstream_rq_xx_total",
            &[("cluster_name", "app"), ("response_code_class", "2xx")]
        ),
        12.0
    );

    // HTTP/2 with prior knowledge: 5 more, the same series.
    for _ in 0..5 {
        assert_eq!(curl(&format!("http://{web}/x"), true), 200);
    }
    let text = settle(health, 17.0, |t| sum(t, "istio_requests_total", OK_HTTP));
    assert_eq!(sum(&text, "shardcar_downstream_h2_streams_total", &[]), 5.0);

    // A refused upstream: 503 with flag UF, its own series.
    for _ in 0..3 {
        assert_eq!(curl(&format!("http://{web}/dead"), false), 503);
    }
    let uf = [("response_code", "503"), ("response_flags", "UF")];
    let text = settle(health, 3.0, |t| sum(t, "istio_requests_total", &uf));
    assert_eq!(
        sum(
            &text,
            "shardcar_cluster_upstream_cx_connect_fail_total",
            &[("cluster_name", "dead")]
        ),
        3.0
    );

    // TCP: 4 connections, 5 bytes each way.
    for _ in 0..4 {
        let mut c = TcpStream::connect(proxy.addr("tcp")).unwrap();
        c.write_all(b"ping\n").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut b).unwrap(), 0);
    }
    let tcp = [
        ("request_protocol", "tcp"),
        ("destination_service", "reviews.default.svc.cluster.local"),
    ];
    let text = settle(health, 4.0, |t| {
        sum(t, "istio_tcp_connections_closed_total", &tcp)
    });
    assert_eq!(sum(&text, "istio_tcp_connections_opened_total", &tcp), 4.0);
    assert_eq!(sum(&text, "istio_tcp_received_bytes_total", &tcp), 20.0);
    assert_eq!(sum(&text, "istio_tcp_sent_bytes_total", &tcp), 20.0);
    assert_eq!(
        sum(
            &text,
            "shardcar_listener_downstream_cx_total",
            &[("listener", "web")]
        ),
        20.0
    );
    // The admin port serves the same text format.
    promtool_clean(&scrape(proxy.addr("admin")));
    promtool_clean(&text);
}

/// A free loopback port (bound and released: Prometheus needs it on its command line).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let cfg = dir.file("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: shardcar\n    metrics_path: /stats/prometheus\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.file("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (Debian package prometheus)");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// An instant query's single result value (`None`: no result or not up yet).
    fn query(&self, promql: &str) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "--data-urlencode"])
            .arg(format!("query={promql}"))
            .arg(format!("http://{}/api/v1/query", self.addr))
            .output()
            .ok()?;
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[t,"v"]}]}}
        let at = body.find("\"value\":[")?;
        let rest = &body[at..];
        let v = rest.split('"').nth(3)?;
        v.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_prometheus_server_scrapes_the_proxy_and_promql_agrees() {
    let origin = Origin::start("app");
    let echo = EchoServer::start();
    let dead = DeadPort::new();
    let proxy = Proxy::spawn(&config(origin.addr, echo.addr, dead.addr), 2);
    let (web, health) = (proxy.addr("web"), proxy.addr("admin-health"));
    const N: usize = 25;
    for i in 0..N {
        let path = if i % 5 == 0 { "/sleep/30" } else { "/x" };
        assert_eq!(curl(&format!("http://{web}{path}"), false), 200);
    }
    let text = settle(health, N as f64, |t| {
        sum(t, "istio_requests_total", &[("response_code", "200")])
    });
    let prom = Prometheus::start(health);
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = loop {
        let v = prom.query("sum(istio_requests_total{response_code=\"200\"})");
        if v.is_some_and(|v| v >= N as f64) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(count, Some(N as f64), "PromQL request count");

    // p99 over the whole run: finite and inside the bucket our own text says holds it.
    let q = prom
        .query("histogram_quantile(0.99, sum by (le) (istio_request_duration_milliseconds_bucket{response_code=\"200\"}))")
        .expect("histogram_quantile has a value");
    assert!(q.is_finite(), "p99 = {q}");
    let mut buckets: Vec<(f64, f64)> = samples(&text)
        .into_iter()
        .filter(|(n, l, _)| {
            n == "istio_request_duration_milliseconds_bucket"
                && l.get("response_code").map(String::as_str) == Some("200")
        })
        .map(|(_, l, v)| {
            let le = match l["le"].as_str() {
                "+Inf" => f64::INFINITY,
                s => s.parse().unwrap(),
            };
            (le, v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().unwrap().1;
    assert_eq!(total, N as f64);
    let i = buckets
        .iter()
        .position(|(_, c)| *c >= 0.99 * total)
        .unwrap();
    let (lo, hi) = (if i == 0 { 0.0 } else { buckets[i - 1].0 }, buckets[i].0);
    assert!(
        q > lo && q <= hi,
        "p99 {q} outside its bucket ({lo}, {hi}]: {buckets:?}"
    );
    // Five requests slept 30 ms: the p99 bucket starts at 25 ms or above.
    assert!(
        lo >= 25.0,
        "p99 bucket ({lo}, {hi}] below the 30 ms requests"
    );
}

#[test]
fn two_shards_merge_to_exact_totals() {
    let origin = Origin::start("app");
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
    endpoints: [\"{}\"]
",
        origin.addr
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 2).unwrap();
    let web = server.addr("web").unwrap();
    const N: u64 = 40;
    for _ in 0..N {
        let mut c = TcpStream::connect(web).unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut resp = Vec::new();
        c.read_to_end(&mut resp).unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 200"), "{resp:?}");
    }
    let ok = [("response_code", "200")];
    let deadline = Instant::now() + Duration::from_secs(20);
    let per_shard = loop {
        let per: Vec<u64> = server
            .stats()
            .iter()
            .map(|s| s.metrics.sum("istio_requests", &ok))
            .collect();
        if per.iter().sum::<u64>() == N || Instant::now() > deadline {
            break per;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(per_shard.len(), 2);
    // 40 connections spread by REUSEPORT: all on one shard has probability 2^-39.
    assert!(per_shard.iter().all(|n| *n > 0), "{per_shard:?}");
    assert_eq!(per_shard.iter().sum::<u64>(), N, "{per_shard:?}");
    let total = server.total_stats().metrics;
    assert_eq!(total.sum("istio_requests", &ok), N);
    assert_eq!(total.sum("istio_request_duration_milliseconds", &ok), N);
    assert_eq!(
        total.sum("shardcar_listener_downstream_cx", &[("listener", "web")]),
        N
    );
    let mut text = String::new();
    shardcar::telemetry::metrics::prometheus::write(&mut text, &total);
    assert_eq!(sum(&text, "istio_requests_total", &ok), N as f64);
    assert_eq!(
        sum(&text, "istio_response_bytes_count", &ok),
        N as f64,
        "{text}"
    );
    server.shutdown();
}

#[test]
fn grpc_calls_are_counted_by_grpc_status() {
    if !support::tools::have_python_modules("grpc") {
        return;
    }
    let srv = support::grpc::GrpcServer::start();
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/t.T/\"}}
            cluster: grpc
clusters:
  - name: grpc
    protocol: http2
    endpoints: [\"{}\"]
",
        srv.addr
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).unwrap();
    let web = server.addr("web").unwrap().to_string();
    let call = |method: &str, payload: &str| {
        support::grpc::client(&["status", &web, method, payload, "0"])["code"].clone()
    };
    for _ in 0..3 {
        assert_eq!(call("/t.T/Unary", "x"), "OK");
    }
    // The upstream's own status (UNAVAILABLE, 14) in trailers; a proxy answer (no route:
    // UNIMPLEMENTED, 12, trailers-only) with flag NR.
    assert_eq!(call("/t.T/Flaky", "k:5"), "UNAVAILABLE");
    assert_eq!(call("/other.S/M", "x"), "UNIMPLEMENTED");
    let grpc = |code: &'static str| [("request_protocol", "grpc"), ("grpc_response_status", code)];
    let deadline = Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = server.total_stats().metrics;
        if m.sum("istio_requests", &[("request_protocol", "grpc")]) >= 5
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(m.sum("istio_requests", &grpc("0")), 3, "{m:#?}");
    assert_eq!(m.sum("istio_requests", &grpc("14")), 1, "{m:#?}");
    let nr = [("grpc_response_status", "12"), ("response_flags", "NR")];
    assert_eq!(m.sum("istio_requests", &nr), 1, "{m:#?}");
    assert_eq!(m.sum("istio_requests", &[("request_protocol", "grpc")]), 5);
    server.shutdown();
}

#[test]
fn with_istio_metrics_off_only_the_operational_stats_count() {
    let origin = Origin::start("app");
    let echo = EchoServer::start();
    let dead = DeadPort::new();
    let yaml = config(origin.addr, echo.addr, dead.addr).replace(
        "metrics:\n  workload: reviews-v1\n",
        "metrics:\n  istio: false\n  workload: reviews-v1\n",
    );
    assert!(yaml.contains("istio: false"));
    let proxy = Proxy::spawn(&yaml, 2);
    let (web, tcp, health) = (
        proxy.addr("web"),
        proxy.addr("tcp"),
        proxy.addr("admin-health"),
    );
    for _ in 0..6 {
        assert_eq!(curl(&format!("http://{web}/x"), false), 200);
    }
    let mut c = TcpStream::connect(tcp).unwrap();
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    drop(c);
    let text = settle(health, 6.0, |t| {
        sum(
            t,
            "shardcar_listener_downstream_rq_total",
            &[("listener", "web"), ("response_code_class", "2xx")],
        )
    });
    assert!(
        !text.lines().any(|l| l.starts_with("istio_")),
        "no istio_* series with `istio: false`:\n{text}"
    );
    promtool_clean(&text);
}
