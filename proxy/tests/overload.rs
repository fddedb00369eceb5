//! The overload manager (`overload:`) over real sockets: connections over
//! `max_downstream_connections` are closed at accept, requests over `max_active_requests` get
//! 503 `OM` + `x-shardcar-overloaded` (an origin that holds requests makes the count exact),
//! and the RSS watermarks — driven by the `Server::set_fake_rss` test hook — stop accepting
//! above the first (new connections wait in the backlog; open ones are still served), answer
//! 503 `OM` above the second, and recover below, each action counted.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::hold::HoldOrigin;
use support::origin::Origin;
use support::tools::{have, run};

fn proxy(origin: SocketAddr, overload: &str) -> (Server, SocketAddr) {
    let yaml = format!(
        "overload:
{overload}listeners:
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
"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

fn wait_stats(server: &Server, what: &str, f: impl Fn(&shardcar::shard::ShardStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = server.total_stats();
        if f(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn connections_over_max_downstream_connections_are_closed_at_accept() {
    let origin = Origin::start("o");
    let (server, addr) = proxy(origin.addr, "  max_downstream_connections: 2\n");
    let mut open: Vec<Client> = (0..2).map(|_| Client::connect(addr)).collect();
    for c in &mut open {
        assert_eq!(c.get("/name").status, 200);
    }
    let mut third = Client::connect(addr);
    assert!(
        third.closed_within(Duration::from_secs(5)),
        "third connection refused"
    );
    assert_eq!(server.total_stats().overload_cx_overflow, 1);
    // The open ones keep working; once one closes, a new connection is served.
    assert_eq!(open[0].get("/name").status, 200);
    drop(open.pop());
    wait_stats(&server, "connection closed", |s| s.active_connections == 1);
    assert_eq!(Client::connect(addr).get("/name").status, 200);
    server.shutdown();
}

#[test]
fn requests_over_max_active_requests_get_503_om() {
    let origin = HoldOrigin::start();
    let (server, addr) = proxy(origin.addr, "  max_active_requests: 2\n");
    let mut held: Vec<Client> = (1..=2)
        .map(|n| {
            let mut c = Client::connect(addr);
            c.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
            origin.wait_arrived(n);
            c
        })
        .collect();
    let r = Client::connect(addr).get("/x");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-shardcar-flag"), Some("OM"));
    assert_eq!(r.header("x-shardcar-overloaded"), Some("true"));
    if have("curl", &["--version"]) {
        let url = format!("http://{addr}/x");
        let out = run(
            "curl",
            &[
                "-sS",
                "-i",
                "--max-time",
                "10",
                "--http2-prior-knowledge",
                &url,
            ],
        );
        let out = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(out.starts_with("http/2 503"), "{out}");
        assert!(out.contains("x-shardcar-flag: om"), "{out}");
    }
    let s = server.total_stats();
    assert_eq!(
        (s.overload_active_requests, s.overload_rq_overflow),
        (2, 2 - u64::from(!have("curl", &["--version"])))
    );
    assert_eq!(origin.arrived.load(std::sync::atomic::Ordering::SeqCst), 2);
    origin.release();
    for c in &mut held {
        assert_eq!(c.read_response(false).unwrap().status, 200);
    }
    assert_eq!(Client::connect(addr).get("/x").status, 200);
    server.shutdown();
}

/// True if no response byte arrived on `s` within `wait` (peeked: nothing is consumed).
fn unanswered(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    match s.peek(&mut b) {
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        Ok(_) => false,
    }
}

#[test]
fn rss_watermarks_stop_accepting_then_reject_then_recover() {
    const GIB: u64 = 1 << 30;
    let origin = Origin::start("o");
    let (server, addr) = proxy(
        origin.addr,
        "  rss_stop_accepting: 1GiB\n  rss_reject_requests: 2GiB\n  refresh_interval: 20ms\n",
    );
    let mut open = Client::connect(addr);
    assert_eq!(open.get("/name").status, 200);

    // Above the first watermark: no new connection is accepted; the open one is served.
    server.set_fake_rss(Some(GIB + GIB / 2));
    wait_stats(&server, "stop accepting", |s| {
        s.overload_stop_accepting == 1
    });
    let mut waiting = TcpStream::connect(addr).unwrap(); // the kernel's backlog takes it
    waiting
        .write_all(b"GET /name HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(unanswered(&mut waiting, Duration::from_millis(300)));
    assert_eq!(open.get("/name").status, 200);

    // Above the second: requests on open connections are answered 503 OM.
    server.set_fake_rss(Some(2 * GIB + 1));
    wait_stats(&server, "reject", |s| s.overload_reject_requests == 1);
    let r = open.get("/name");
    assert_eq!((r.status, r.header("x-shardcar-flag")), (503, Some("OM")));
    assert_eq!(r.header("x-shardcar-overloaded"), Some("true"));

    // Below both: requests pass again and the waiting connection is accepted and answered.
    server.set_fake_rss(Some(GIB / 2));
    wait_stats(&server, "recovered", |s| {
        s.overload_reject_requests == 0 && s.overload_stop_accepting == 0
    });
    assert_eq!(open.get("/name").status, 200);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = [0u8; 12];
    waiting.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HTTP/1.1 200");
    let s = server.total_stats();
    assert_eq!(
        (
            s.overload_stop_accepting_entered,
            s.overload_reject_requests_entered,
            s.overload_rq_rejected
        ),
        (1, 1, 1)
    );
    let mut text = String::new();
    shardcar::telemetry::metrics::prometheus::write(&mut text, &s.metrics);
    for line in [
        "shardcar_overload_rq_rejected_total 1\n",
        "shardcar_overload_stop_accepting_entered_total 1\n",
        "shardcar_overload_stop_accepting 0\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    server.shutdown();
}

#[test]
fn overload_config_errors_name_the_field_and_line() {
    for (block, field) in [
        ("  max_active_requests: 0\n", "overload.max_active_requests"),
        (
            "  rss_stop_accepting: 2GiB\n  rss_reject_requests: 1GiB\n",
            "overload.rss_reject_requests",
        ),
        (
            "  rss_stop_accepting: 2 GB\n",
            "overload.rss_stop_accepting",
        ),
        ("  max_connections: 5\n", "max_connections"),
    ] {
        let yaml = format!(
            "overload:\n{block}listeners:\n  - {{name: l, address: 127.0.0.1:0, cluster: c}}\nclusters:\n  - {{name: c, endpoints: [\"127.0.0.1:1\"]}}\n"
        );
        let e = Config::from_yaml(&yaml).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("line"), "{block}: {e}");
    }
}
