//! Span export end to end: clients (curl, HTTP/1.1 and h2c) through the proxy to an origin
//! that echoes the request head it received, with the proxy exporting spans over OTLP/HTTP to
//! a collector the test starts (`tests/py/otlp_collector.py`, which decodes each request with
//! the `opentelemetry-proto` package and prints one JSON line per span). Checked: a span's
//! trace id and parent come from the incoming `traceparent` and its span id is the one the
//! origin saw; sampling 0 % exports nothing but an incoming sampled flag is honoured; sampling
//! 50 % lands within 3σ of half; a dead collector is counted and traffic is unaffected.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use shardcar::{Config, Server};
use support::client::Client;
use support::origin::echo_head_origin;
use support::tools::{have_python_modules, python, script, TempDir};
use support::DeadPort;

/// The test collector: its address, and its spans as they arrive.
struct Collector {
    addr: SocketAddr,
    spans: Receiver<Value>,
    child: Child,
}

impl Collector {
    fn start() -> Collector {
        let mut child = Command::new(python())
            .arg(script("otlp_collector.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP test collector");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().expect("collector prints its port");
        let (tx, spans) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&l).expect("collector line is JSON");
                assert!(v.get("error").is_none(), "collector could not decode: {v}");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Collector {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            spans,
            child,
        }
    }

    /// Spans received until `n` have arrived or `limit` passed.
    fn collect(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.spans.recv_timeout(left) {
                Ok(v) => got.push(v),
                Err(_) => break,
            }
        }
        got
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the collector exits when stdin closes
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the collector can run here (the Python venv with `opentelemetry-proto`).
fn have_collector() -> bool {
    let ok = have_python_modules("opentelemetry.proto.collector.trace.v1.trace_service_pb2");
    if !ok {
        eprintln!("skipped: no opentelemetry-proto in {}", python());
    }
    ok
}

fn yaml(origin: SocketAddr, collector: SocketAddr, tracing_extra: &str) -> String {
    format!(
        "{}tracing:
  otlp: {{address: \"{collector}\"}}
  service_name: web-sidecar
  flush_interval: 100ms
{tracing_extra}",
        untraced(origin)
    )
}

/// The listener and clusters alone (no `tracing:` block).
fn untraced(origin: SocketAddr) -> String {
    format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/dead\"}}
            cluster: dead
          - match: {{prefix: \"/local\"}}
            direct_response: {{status: 403, body: no}}
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{origin}\"]
  - name: dead
    endpoints: [\"{dead}\"]
    connect_timeout: 500ms
",
        dead = DeadPort::new().addr,
    )
}

fn start(yaml: &str) -> (Server, SocketAddr) {
    let server = Server::start(Config::from_yaml(yaml).unwrap(), 2).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

/// curl through the proxy: (status, the `traceparent` the origin received).
fn curl(url: &str, h2: bool, traceparent: Option<&str>) -> (u16, Option<String>) {
    let mut c = Command::new("curl");
    c.args(["-s", "-m", "20", "-w", "\n%{http_code}"]);
    if h2 {
        c.arg("--http2-prior-knowledge");
    }
    if let Some(tp) = traceparent {
        c.args(["-H", &format!("traceparent: {tp}")]);
    }
    let out = c.arg(url).output().expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), upstream_traceparent(body))
}

fn upstream_traceparent(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("traceparent"))
        .map(|(_, v)| v.trim().to_string())
}

/// `00-trace-span-flags` → (trace, span, flags).
fn parts(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "{tp}");
    (p[1].into(), p[2].into(), p[3].into())
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[test]
fn spans_continue_the_incoming_trace_with_the_span_sent_upstream() {
    if !have_collector() {
        return;
    }
    let col = Collector::start();
    let (server, proxy) = start(&yaml(echo_head_origin(), col.addr, ""));
    let base = format!("http://{proxy}");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let incoming = format!("00-{trace}-{parent}-01");
    // HTTP/1.1 and h2c, each continuing the caller's trace.
    let mut sent = Vec::new();
    for h2 in [false, true] {
        let (code, tp) = curl(&format!("{base}/a"), h2, Some(&incoming));
        assert_eq!(code, 200);
        let (t, span, flags) = parts(&tp.expect("origin saw a traceparent"));
        assert_eq!((t.as_str(), flags.as_str()), (trace, "01"));
        sent.push(span);
    }
    // A request without context starts a (sampled) trace; an unsampled caller's is not kept.
    let (_, root) = curl(&format!("{base}/root"), false, None);
    let (root_trace, root_span, _) = parts(&root.unwrap());
    let unsampled = "11111111111111111111111111111111";
    let (code, _) = curl(
        &format!("{base}/no"),
        false,
        Some(&format!("00-{unsampled}-2222222222222222-00")),
    );
    assert_eq!(code, 200);
    // An upstream that cannot be reached: a 503 span with status ERROR and flag UF.
    let (code, _) = curl(&format!("{base}/dead"), false, Some(&incoming));
    assert_eq!(code, 503);
    // Answered by the proxy itself (nothing upstream): still a span of the caller's trace.
    for h2 in [false, true] {
        let (code, _) = curl(&format!("{base}/local"), h2, Some(&incoming));
        assert_eq!(code, 403);
    }

    let spans = col.collect(6, Duration::from_secs(10));
    assert_eq!(spans.len(), 6, "{spans:#?}");
    std::thread::sleep(Duration::from_millis(400)); // anything else would arrive by now
    assert!(
        col.spans.try_recv().is_err(),
        "an unsampled request was exported"
    );
    let by_span = |id: &str| {
        spans
            .iter()
            .find(|s| s["span_id"] == id)
            .unwrap_or_else(|| panic!("no span {id} in {spans:#?}"))
    };
    for (id, protocol) in sent.iter().zip(["HTTP/1.1", "HTTP/2"]) {
        let s = by_span(id);
        assert_eq!(s["trace_id"], trace);
        assert_eq!(s["parent_span_id"], parent);
        assert_eq!(s["name"], "GET");
        assert_eq!(s["kind"], 2, "SERVER on an inbound listener");
        assert_eq!(s["status"], 0);
        assert_eq!(s["service"], "web-sidecar");
        assert_eq!(s["content_type"], "application/x-protobuf");
        assert_eq!(s["path"], "/v1/traces");
        assert_eq!(attr(s, "http.method"), "GET");
        assert_eq!(attr(s, "http.protocol"), protocol);
        assert_eq!(attr(s, "http.status_code"), "200");
        assert_eq!(attr(s, "upstream_cluster"), "app");
        assert_eq!(attr(s, "response_flags"), "-");
        assert!(attr(s, "http.url").as_str().unwrap().ends_with("/a"), "{s}");
        let (start, end) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        assert!(start > 0 && end >= start, "{s}");
    }
    let r = by_span(&root_span);
    assert_eq!(
        (r["trace_id"].as_str(), r["parent_span_id"].as_str()),
        (Some(root_trace.as_str()), Some(""))
    );
    let dead = spans
        .iter()
        .find(|s| attr(s, "upstream_cluster") == "dead")
        .expect("the 503 has a span");
    assert_eq!(dead["status"], 2, "5xx → ERROR");
    assert_eq!(attr(dead, "http.status_code"), "503");
    assert_eq!(attr(dead, "response_flags"), "UF");
    let local: Vec<&Value> = spans
        .iter()
        .filter(|s| attr(s, "http.status_code") == "403")
        .collect();
    assert_eq!(local.len(), 2, "both direct responses have a span");
    for l in &local {
        assert_eq!(l["trace_id"], trace);
        assert_eq!(l["parent_span_id"], parent);
        assert!(
            !sent.iter().any(|s| l["span_id"] == s.as_str()),
            "its own span id"
        );
        assert!(l["attributes"].get("upstream_cluster").is_none(), "{l}");
        assert_eq!(l["status"], 0);
    }
    assert_ne!(local[0]["span_id"], local[1]["span_id"]);
    let mut protocols: Vec<&str> = local
        .iter()
        .map(|l| attr(l, "http.protocol").as_str().unwrap())
        .collect();
    protocols.sort();
    assert_eq!(protocols, ["HTTP/1.1", "HTTP/2"]);
    assert!(spans.iter().all(|s| s["trace_id"] != unsampled));
    let t = server.total_stats();
    assert_eq!(t.tracing_exporter[0], 6, "exported");
    assert_eq!((t.tracing_exporter[1], t.tracing_spans_dropped), (0, 0));
    server.shutdown();
}

#[test]
fn sampling_zero_exports_nothing_but_honours_a_sampled_caller() {
    if !have_collector() {
        return;
    }
    let col = Collector::start();
    let (server, proxy) = start(&yaml(echo_head_origin(), col.addr, "  sampling: 0\n"));
    let mut c = Client::connect(proxy);
    for _ in 0..20 {
        c.send(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
        let r = c.read_response(false).unwrap();
        let (_, _, flags) = parts(&upstream_traceparent(&r.text()).unwrap());
        assert_eq!(
            flags, "00",
            "a trace the proxy starts at 0 % is not sampled"
        );
    }
    let marker = "abcdefabcdefabcdefabcdefabcdef01";
    c.send(
        format!(
            "GET / HTTP/1.1\r\nhost: t\r\ntraceparent: 00-{marker}-0102030405060708-01\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(c.read_response(false).unwrap().status, 200);
    let spans = col.collect(1, Duration::from_secs(10));
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["trace_id"], marker);
    std::thread::sleep(Duration::from_millis(400));
    assert!(col.spans.try_recv().is_err(), "a 0 % trace was exported");
    server.shutdown();
}

#[test]
fn sampling_half_lands_within_three_sigma() {
    if !have_collector() {
        return;
    }
    const N: usize = 400;
    let col = Collector::start();
    let (server, proxy) = start(&yaml(
        echo_head_origin(),
        col.addr,
        "  sampling: 50\n  batch_size: 64\n",
    ));
    let mut c = Client::connect(proxy);
    let mut flagged = 0;
    for _ in 0..N {
        c.send(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
        let r = c.read_response(false).unwrap();
        let (_, _, flags) = parts(&upstream_traceparent(&r.text()).unwrap());
        flagged += usize::from(flags == "01");
    }
    let spans = col.collect(flagged, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        col.spans.try_recv().is_err(),
        "more spans than sampled traces"
    );
    // σ = √(N·½·½) = 10 for N = 400.
    let sigma = ((N as f64) * 0.25).sqrt();
    let lo = (N as f64 / 2.0 - 3.0 * sigma) as usize;
    let hi = (N as f64 / 2.0 + 3.0 * sigma) as usize;
    assert!(
        (lo..=hi).contains(&spans.len()),
        "{} spans of {N}",
        spans.len()
    );
    assert_eq!(
        spans.len(),
        flagged,
        "exported exactly the traces sent upstream as sampled"
    );
    server.shutdown();
}

/// A proxy named `service` with listener `listener` (protocol http: h1 and h2c clients) to
/// one cluster of `cluster_protocol` at `upstream`, exporting to `collector`.
fn hop(
    listener: &str,
    upstream: SocketAddr,
    cluster_protocol: &str,
    collector: SocketAddr,
    service: &str,
) -> Server {
    // drain_timeout: the inner hop's drain otherwise waits 30 s for the outer hop's pooled
    // HTTP/2 connection, which the outer's shutdown leaves open.
    let yaml = format!(
        "drain_timeout: 1s
listeners:
  - name: {listener}
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: next
clusters:
  - name: next
    protocol: {cluster_protocol}
    endpoints: [\"{upstream}\"]
tracing:
  otlp: {{address: \"{collector}\"}}
  service_name: {service}
  flush_interval: 50ms
"
    );
    Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts")
}

#[test]
fn two_hops_over_http2_make_one_trace_of_parent_and_child_spans() {
    if !have_collector() {
        return;
    }
    let col = Collector::start();
    // client → outer (outbound listener; HTTP/2 cluster) → inner (inbound; HTTP/1 cluster) → origin:
    // the outer hop runs h1→h2 (curl HTTP/1.1) and h2→h2 (curl h2c), the inner one h2→h1.
    let inner = hop("inbound", echo_head_origin(), "http1", col.addr, "inner");
    let outer = hop(
        "outbound",
        inner.addr("inbound").unwrap(),
        "http2",
        col.addr,
        "outer",
    );
    let url = format!("http://{}/x", outer.addr("outbound").unwrap());
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = "b7ad6b7169203331";
    for (h2, protocol) in [(false, "HTTP/1.1"), (true, "HTTP/2")] {
        let (code, tp) = curl(&url, h2, Some(&format!("00-{trace}-{caller}-01")));
        assert_eq!(code, 200);
        let (t, seen, _) = parts(&tp.unwrap());
        assert_eq!(t, trace);
        let spans = col.collect(2, Duration::from_secs(10));
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let of = |svc: &str| spans.iter().find(|s| s["service"] == svc).expect(svc);
        let (o, i) = (of("outer"), of("inner"));
        assert_eq!(
            (o["trace_id"].as_str(), i["trace_id"].as_str()),
            (Some(trace), Some(trace))
        );
        assert_eq!(o["parent_span_id"], caller);
        assert_eq!(
            i["parent_span_id"], o["span_id"],
            "the inner hop's parent is the outer hop"
        );
        assert_eq!(
            i["span_id"],
            seen.as_str(),
            "the origin saw the inner hop's span"
        );
        assert_eq!(
            (o["kind"].as_i64(), i["kind"].as_i64()),
            (Some(3), Some(2)),
            "CLIENT, SERVER"
        );
        assert_eq!(attr(o, "http.protocol"), protocol);
        assert_eq!(attr(i, "http.protocol"), "HTTP/2");
        assert_eq!(attr(o, "upstream_cluster"), "next");
    }
    outer.shutdown();
    inner.shutdown();
}

/// `n` requests on one connection; the sampled flag of each upstream `traceparent`.
fn flags(proxy: SocketAddr, n: usize) -> Vec<String> {
    let mut c = Client::connect(proxy);
    (0..n)
        .map(|_| {
            c.send(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
            let r = c.read_response(false).unwrap();
            assert_eq!(r.status, 200);
            parts(&upstream_traceparent(&r.text()).unwrap()).2
        })
        .collect()
}

#[test]
fn a_reload_starts_changes_and_stops_the_export() {
    if !have_collector() {
        return;
    }
    let col = Collector::start();
    let origin = echo_head_origin();
    let (mut server, proxy) = start(&untraced(origin));
    assert_eq!(
        flags(proxy, 3),
        ["01"; 3],
        "without tracing: every trace started is sampled"
    );
    assert!(
        col.collect(1, Duration::from_millis(500)).is_empty(),
        "no block, no spans"
    );
    let swap = |server: &mut Server, y: &str| server.swap(Config::from_yaml(y).unwrap()).unwrap();
    // Tracing added by a reload: an exporter starts.
    swap(&mut server, &yaml(origin, col.addr, ""));
    flags(proxy, 3);
    let spans = col.collect(3, Duration::from_secs(10));
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| s["service"] == "web-sidecar"));
    // Only the sampling changes: the same exporter, the new rate (0 %) applies at once.
    swap(&mut server, &yaml(origin, col.addr, "  sampling: 0\n"));
    assert_eq!(flags(proxy, 5), ["00"; 5]);
    assert!(col.collect(1, Duration::from_millis(500)).is_empty());
    // New exporter settings (service name): a new exporter, and its spans say so.
    let renamed = yaml(origin, col.addr, "").replace("web-sidecar", "renamed");
    swap(&mut server, &renamed);
    flags(proxy, 2);
    let spans = col.collect(2, Duration::from_secs(10));
    assert_eq!(spans.len(), 2);
    assert!(
        spans.iter().all(|s| s["service"] == "renamed"),
        "{spans:#?}"
    );
    // Tracing removed: no spans, and traces this proxy starts are sampled again.
    swap(&mut server, &untraced(origin));
    assert_eq!(flags(proxy, 3), ["01"; 3]);
    assert!(col.collect(1, Duration::from_millis(500)).is_empty());
    let t = server.total_stats();
    assert_eq!(t.tracing_spans_dropped, 0);
    server.shutdown();
}

#[test]
fn a_dead_collector_is_counted_and_traffic_is_unaffected() {
    let dead = DeadPort::new();
    let dir = TempDir::new("otlp");
    let cfg = dir.file("config.yaml");
    let body = yaml(echo_head_origin(), dead.addr, "  batch_size: 5\n");
    std::fs::write(
        &cfg,
        format!("admin:\n  address: 127.0.0.1:0\n  health_address: off\n{body}"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["--shards", "2", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut addrs = Vec::new();
    while addrs.len() < 2 {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "proxy exited early");
        let w: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(w[0], "listening", "{line}");
        addrs.push((w[1].to_string(), w[2].parse::<SocketAddr>().unwrap()));
    }
    let addr = |n: &str| addrs.iter().find(|(name, _)| name == n).unwrap().1;
    let started = Instant::now();
    for i in 0..20 {
        let (code, tp) = curl(&format!("http://{}/r{i}", addr("web")), i % 2 == 1, None);
        assert_eq!(code, 200);
        assert!(tp.is_some());
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "traffic was slowed"
    );
    let metric = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the scrape"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let out = Command::new("curl")
            .args(["-s", "-m", "10"])
            .arg(format!("http://{}/stats/prometheus", addr("admin")))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        if metric(&text, "shardcar_tracing_spans_dropped_total") == 20 || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        metric(&text, "shardcar_tracing_spans_dropped_total"),
        20,
        "{text}"
    );
    assert!(metric(&text, "shardcar_tracing_export_failures_total") >= 1);
    assert_eq!(metric(&text, "shardcar_tracing_spans_exported_total"), 0);
    assert!(text.contains("# TYPE shardcar_tracing_export_failures_total counter"));
    let _ = child.kill();
    let _ = child.wait();
}
