//! Traffic mirroring (route `request_mirror_policies`) over real sockets: the share of
//! mirrored requests over 5,000 lies within ±3σ of the configured fraction (binomial
//! σ = √(n·p·(1−p))) as counted by the shadow origin itself; the shadow sees `-shadow` on the
//! host and the body; and a stalled shadow (an origin that never answers) leaves the primary's
//! p99 within the noise of an unmirrored route measured in the same run, interleaved, while
//! the copies beyond the in-flight bound are dropped and counted.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::hold::HoldOrigin;
use support::origin::Origin;

/// Routes `/name` and `/echo` (mirrored to `shadow` at `pct`) and `/plain` (not mirrored) to `primary`.
fn proxy(primary: SocketAddr, shadow: SocketAddr, pct: &str) -> (Server, SocketAddr) {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{regex: \"/(name|echo)\"}}
            cluster: app
            request_mirror_policies: [{{cluster: shadow, runtime_fraction: {pct}}}]
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{primary}\"]
    connect_timeout: 500ms
  - name: shadow
    endpoints: [\"{shadow}\"]
    connect_timeout: 500ms
"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

fn stats(server: &Server) -> shardcar::shard::ShardStats {
    server.total_stats()
}

#[test]
fn mirrored_share_over_5000_requests_is_within_3_sigma() {
    let primary = Origin::start("primary");
    let shadow = Origin::start("shadow");
    let (server, addr) = proxy(primary.addr, shadow.addr, "10");
    let n = 5000u64;
    let mut c = Client::connect(addr);
    let started = Instant::now();
    for _ in 0..n {
        let r = c.get("/name");
        assert_eq!((r.status, r.text().as_str()), (200, "primary"));
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
    }
    // Copies are fire and forget: wait (bounded) until none is out.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats(&server).mirror_in_flight > 0 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            stats(&server).mirror_in_flight
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = stats(&server);
    let seen = shadow.requests.load(Ordering::SeqCst) as u64;
    assert_eq!(
        (s.mirror_dropped, s.mirror_failed, s.mirror_skipped),
        (0, 0, 0)
    );
    assert_eq!(s.mirror_sent, seen, "every copy sent reached the shadow");
    assert_eq!(primary.requests.load(Ordering::SeqCst) as u64, n);
    let (p, nf) = (0.10, n as f64);
    let sigma = (nf * p * (1.0 - p)).sqrt();
    assert!(
        (seen as f64 - nf * p).abs() <= 3.0 * sigma,
        "{seen} of {n} mirrored: expected {:.0} ± {:.1} (3σ)",
        nf * p,
        3.0 * sigma
    );
    // An unmirrored route is never copied.
    for _ in 0..200 {
        assert_eq!(c.get("/plain").status, 200);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(shadow.requests.load(Ordering::SeqCst) as u64, seen);
    server.shutdown();
}

/// One request head (and `content-length` body) as a raw shadow origin received it.
fn capture_one(l: TcpListener, tx: mpsc::Sender<(String, Vec<u8>)>) {
    let (conn, _) = l.accept().unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut head = String::new();
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nshadow")
        .unwrap();
    tx.send((head, body)).unwrap();
}

#[test]
fn the_shadow_gets_the_host_with_shadow_appended_and_the_body_and_the_client_never_sees_it() {
    let primary = Origin::start("primary");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let shadow_addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || capture_one(l, tx));
    let (server, addr) = proxy(primary.addr, shadow_addr, "100");
    let mut c = Client::connect(addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: api.example.com:8080\r\ncontent-length: 5\r\n\r\nhello");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("shadow copy");
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("POST /echo HTTP/1.1\r\n"), "{head}");
    assert!(
        lower.contains("host: api.example.com-shadow:8080\r\n"),
        "{head}"
    );
    assert!(lower.contains("x-request-id:"), "{head}");
    assert_eq!(body, b"hello");
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats(&server).mirror_sent < 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    server.shutdown();
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99).div_ceil(100) - 1]
}

#[test]
fn a_stalled_shadow_leaves_the_primary_p99_unchanged_and_drops_copies() {
    let primary = Origin::start("primary");
    let stalled = HoldOrigin::start(); // reads every request, never answers
    let (server, addr) = proxy(primary.addr, stalled.addr, "100");
    let (mut a, mut b) = (Client::connect(addr), Client::connect(addr));
    // Warm both paths (connections pooled), then interleave: mirrored, plain, mirrored, …
    for _ in 0..50 {
        a.get("/name");
        b.get("/plain");
    }
    const BLOCKS: usize = 5;
    const PER_BLOCK: usize = 400;
    let (mut mirrored, mut plain) = (Vec::new(), Vec::new());
    let mut plain_blocks = Vec::new();
    let started = Instant::now();
    for _ in 0..BLOCKS {
        let mut pb = Vec::with_capacity(PER_BLOCK);
        for _ in 0..PER_BLOCK {
            let t = Instant::now();
            assert_eq!(a.get("/name").status, 200);
            mirrored.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(b.get("/plain").status, 200);
            pb.push(t.elapsed());
        }
        plain.extend_from_slice(&pb);
        plain_blocks.push(p99(pb));
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
    }
    let (pm, pp) = (p99(mirrored), p99(plain));
    // The noise: how far the unmirrored route's own p99 moves between blocks of the run.
    let hi = *plain_blocks.iter().max().unwrap();
    let lo = *plain_blocks.iter().min().unwrap();
    eprintln!(
        "primary p99 with a stalled mirror {pm:?}, without {pp:?}; unmirrored p99 per block {lo:?}..{hi:?}"
    );
    assert!(
        pm <= pp + (hi - lo),
        "mirrored p99 {pm:?} vs unmirrored {pp:?} (block spread {lo:?}..{hi:?})"
    );
    // The shadow holds the first 64 copies; the rest were dropped and counted.
    let s = stats(&server);
    let total = (BLOCKS * PER_BLOCK + 50) as u64;
    assert_eq!(s.mirror_in_flight, 64, "{s:?}");
    assert_eq!(s.mirror_dropped, total - 64);
    assert!(stalled.arrived.load(Ordering::SeqCst) <= 64);
    server.shutdown();
}

#[test]
fn mirror_config_errors_name_the_field_and_line() {
    let base = |policy: &str| {
        format!(
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
            request_mirror_policies: [{policy}]
clusters:
  - name: app
    endpoints: [\"127.0.0.1:1\"]
  - name: h2
    endpoints: [\"127.0.0.1:2\"]
    protocol: http2
"
        )
    };
    for (policy, field, says) in [
        (
            "{cluster: nope}",
            "request_mirror_policies[0].cluster",
            "unknown cluster",
        ),
        (
            "{cluster: h2}",
            "request_mirror_policies[0].cluster",
            "http1",
        ),
        (
            "{cluster: app, runtime_fraction: 120}",
            "request_mirror_policies[0].runtime_fraction",
            "percentage",
        ),
        ("{cluster: app, fraction: 1}", "fraction", "unknown field"),
    ] {
        let e = Config::from_yaml(&base(policy)).unwrap_err().to_string();
        assert!(
            e.contains(field) && e.contains(says) && e.contains("line 11"),
            "{policy}: {e}"
        );
    }
}

#[test]
fn http2_clients_are_mirrored_too() {
    if !support::tools::have("curl", &["--version"]) {
        return;
    }
    let primary = Origin::start("primary");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let shadow_addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || capture_one(l, tx));
    let (server, addr) = proxy(primary.addr, shadow_addr, "100");
    let url = format!("http://{addr}/echo");
    let out = support::tools::run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "--data-binary",
            "hello",
            &url,
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello");
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("shadow copy");
    assert!(head.starts_with("POST /echo HTTP/1.1\r\n"), "{head}");
    let want = format!("host: 127.0.0.1-shadow:{}\r\n", addr.port());
    assert!(
        head.to_ascii_lowercase().contains(&want),
        "{want} in {head}"
    );
    assert_eq!(body, b"hello");
    server.shutdown();
}
