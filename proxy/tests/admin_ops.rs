//! The admin API's inspection and lifecycle endpoints as an operator uses them, with the real
//! `shardcar` binary (2 shards) on ephemeral ports and curl: `/clusters` (health flags from a
//! real health checker, active requests from held connections), `/listeners`,
//! `/drain_listeners[?graceful]`, `/reset_counters`, `/logging` (levels changed at runtime,
//! seen in the log), `/quitquitquit`, and `/config_dump` with private keys redacted.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::client::Client;
use support::origin::Origin;
use support::tools::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");

struct Proxy {
    child: Child,
    addrs: Vec<(String, SocketAddr)>,
    log: PathBuf,
    _dir: TempDir,
}

impl Proxy {
    /// Starts the binary on `yaml`; waits for `listeners` + the admin line.
    fn spawn(tag: &str, yaml: &str, listeners: usize) -> Proxy {
        let dir = TempDir::new(tag);
        let config = dir.file("config.yaml");
        let log = dir.file("stderr.log");
        std::fs::write(&config, yaml).unwrap();
        let mut child = Command::new(BIN)
            .args(["--shards", "2", "--no-watch", "--config"])
            .arg(&config)
            .env("SHARDCAR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addrs = Vec::new();
        while addrs.len() < listeners + 1 {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "proxy exited early");
            let w: Vec<&str> = line.split_whitespace().collect();
            addrs.push((w[1].to_string(), w[2].parse().unwrap()));
        }
        Proxy {
            child,
            addrs,
            log,
            _dir: dir,
        }
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.addrs.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn admin(&self) -> SocketAddr {
        self.addr("admin")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -s [-X POST]`: (status, body).
fn curl(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "20", "-w", "\n%{http_code}", "-X", method])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> String {
    let (code, body) = curl(addr, "GET", path);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

fn post(addr: SocketAddr, path: &str) -> (u16, String) {
    curl(addr, "POST", path)
}

/// Polls `cond` every 50 ms for up to 20 s (a loaded host is slow, a broken feature never
/// gets there); panics with `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP echo server on port 0.
fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let mut b = [0u8; 1024];
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 || c.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A connection through the L4 listener that has echoed once (so it is proxied and open).
fn echoing(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    c
}

/// A port nothing listens on.
fn dead_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn l4_config(origin: SocketAddr, extra_clusters: &str) -> String {
    format!(
        "admin:\n  address: 127.0.0.1:0\n  health_address: off\ndrain_timeout: 5s\nlisteners:\n  - name: l4\n    address: 127.0.0.1:0\n    cluster: c\nclusters:\n  - name: c\n    endpoints: [\"{origin}\"]\n{extra_clusters}"
    )
}

fn value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

#[test]
fn clusters_show_health_flags_weight_and_active_requests() {
    let origin = echo();
    let dead = dead_port();
    let hc = format!(
        "  - name: checked\n    endpoints: [\"{origin}\", \"{dead}\"]\n    health_check:\n      interval: 100ms\n      timeout: 100ms\n      unhealthy_threshold: 1\n      tcp: {{}}\n"
    );
    let p = Proxy::spawn("admin-clusters", &l4_config(origin, &hc), 1);
    let admin = p.admin();
    // Three connections held open through the listener: three requests in flight on c.
    let held: Vec<_> = (0..3).map(|_| echoing(p.addr("l4"))).collect();
    wait_for("the dead endpoint to fail its checks", || {
        get(admin, "/clusters")
            .contains(&format!("checked::{dead}::health_flags::/failed_active_hc"))
    });
    let text = get(admin, "/clusters");
    for line in [
        format!("c::{origin}::rq_active::3"),
        format!("c::{origin}::health_flags::healthy"),
        format!("c::{origin}::weight::1"),
        format!("checked::{origin}::health_flags::healthy"),
        format!("checked::{origin}::rq_active::0"),
        format!("checked::{dead}::hostname::{dead}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&get(admin, "/clusters?format=json")).unwrap();
    let c = &json["cluster_statuses"][0];
    assert_eq!(c["name"], "c");
    assert_eq!(c["host_statuses"][0]["stats"][0]["value"], 3, "{json}");
    assert_eq!(
        c["host_statuses"][0]["address"]["socket_address"]["port_value"],
        origin.port()
    );
    let checked = &json["cluster_statuses"][1]["host_statuses"][1];
    assert_eq!(
        checked["health_status"]["failed_active_health_check"], true,
        "{json}"
    );
    // Closing the held connections brings the gauge back to zero.
    drop(held);
    wait_for("rq_active back to 0", || {
        get(admin, "/clusters").contains(&format!("c::{origin}::rq_active::0\n"))
    });
}

#[test]
fn listeners_and_drain_listeners_stop_accepting_while_open_connections_go_on() {
    let origin = echo();
    let p = Proxy::spawn("admin-drain", &l4_config(origin, ""), 1);
    let (admin, l4) = (p.admin(), p.addr("l4"));
    assert_eq!(get(admin, "/listeners"), format!("l4::{l4}\n"));
    let json: serde_json::Value =
        serde_json::from_str(&get(admin, "/listeners?format=json")).unwrap();
    assert_eq!(json["listener_statuses"][0]["name"], "l4");
    assert_eq!(json["listener_statuses"][0]["shards_accepting"], 2);
    let mut open = echoing(l4);
    assert_eq!(curl(admin, "GET", "/drain_listeners").0, 405);
    assert_eq!(post(admin, "/drain_listeners"), (200, "OK\n".into()));
    wait_for("no listener left", || get(admin, "/listeners").is_empty());
    // Every shard's socket is closed: new connections are refused.
    for _ in 0..10 {
        assert!(
            TcpStream::connect(l4).is_err(),
            "a drained listener accepted"
        );
    }
    // The connection opened before keeps working.
    open.write_all(b"pong").unwrap();
    let mut b = [0u8; 4];
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");
    assert_eq!(get(admin, "/ready"), "LIVE\n");
}

#[test]
fn graceful_drain_listeners_closes_keepalive_connections_after_their_next_response() {
    let origin = Origin::start("o");
    let yaml = format!(
        "admin:\n  address: 127.0.0.1:0\n  health_address: off\nlisteners:\n  - name: web\n    address: 127.0.0.1:0\n    protocol: http\n    virtual_hosts:\n      - name: all\n        domains: [\"*\"]\n        routes:\n          - match: {{prefix: /}}\n            cluster: o\nclusters:\n  - name: o\n    endpoints: [\"{}\"]\n",
        origin.addr
    );
    let p = Proxy::spawn("admin-drain-graceful", &yaml, 1);
    let mut busy = Client::connect(p.addr("web"));
    let mut idle = Client::connect(p.addr("web"));
    assert_eq!(busy.get("/name").text(), "o");
    assert_eq!(idle.get("/name").text(), "o");
    assert_eq!(
        post(p.admin(), "/drain_listeners?graceful"),
        (200, "OK\n".into())
    );
    wait_for("no listener left", || {
        get(p.admin(), "/listeners").is_empty()
    });
    // A request right after the drain is answered, with `connection: close`, then the
    // connection ends: the client never races a close.
    let r = busy.get("/name");
    assert_eq!((r.status, r.text().as_str()), (200, "o"));
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(busy.closed_within(Duration::from_secs(5)));
    // An idle keepalive connection is closed after the grace.
    assert!(idle.closed_within(Duration::from_secs(10)));
}

#[test]
fn reset_counters_zeroes_counters_but_not_gauges() {
    let origin = echo();
    let p = Proxy::spawn("admin-reset", &l4_config(origin, ""), 1);
    let (admin, l4) = (p.admin(), p.addr("l4"));
    let held = echoing(l4);
    for _ in 0..4 {
        drop(echoing(l4));
    }
    wait_for("5 accepted", || {
        value(&get(admin, "/stats"), "shardcar.downstream_cx_total:") == 5
    });
    assert_eq!(curl(admin, "GET", "/reset_counters").0, 405);
    assert_eq!(post(admin, "/reset_counters"), (200, "OK\n".into()));
    let stats = get(admin, "/stats");
    assert_eq!(value(&stats, "shardcar.downstream_cx_total:"), 0, "{stats}");
    assert_eq!(
        value(&stats, "shardcar.downstream_cx_active:"),
        1,
        "{stats}"
    );
    let prom = get(admin, "/stats/prometheus");
    assert_eq!(value(&prom, "shardcar_downstream_cx_total"), 0, "{prom}");
    // Labelled families too: the listener's accepted-connections series reads 0.
    let series = prom
        .lines()
        .find(|l| l.starts_with("shardcar_listener_downstream_cx_total{"))
        .unwrap_or_else(|| panic!("no listener series in\n{prom}"));
    assert!(series.ends_with(" 0"), "{series}");
    for _ in 0..2 {
        drop(echoing(l4));
    }
    wait_for("2 accepted after the reset", || {
        value(&get(admin, "/stats"), "shardcar.downstream_cx_total:") == 2
    });
    drop(held);
}

#[test]
fn logging_levels_change_at_runtime() {
    let origin = echo();
    let p = Proxy::spawn("admin-logging", &l4_config(origin, ""), 1);
    let (admin, l4) = (p.admin(), p.addr("l4"));
    let closed_lines = |p: &Proxy| p.stderr().matches("connection closed").count();
    let listing = get(admin, "/logging");
    assert!(listing.contains("filter: info"), "{listing}");
    assert!(listing.contains("  l4: info\n"), "{listing}");
    drop(echoing(l4));
    // At info, a closed L4 connection logs nothing (its line is debug).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(closed_lines(&p), 0, "{}", p.stderr());
    let (code, listing) = post(admin, "/logging?l4=debug");
    assert_eq!(code, 200, "{listing}");
    assert!(listing.contains("  l4: debug\n"), "{listing}");
    assert!(listing.contains("  http1: info\n"), "{listing}");
    drop(echoing(l4));
    wait_for("the debug line of a closed connection", || {
        closed_lines(&p) == 1
    });
    // ?level= sets every module (and drops per-module levels).
    let (code, listing) = post(admin, "/logging?level=warn");
    assert_eq!(code, 200, "{listing}");
    assert!(listing.contains("filter: warn\n"), "{listing}");
    assert!(listing.contains("  l4: warn\n"), "{listing}");
    drop(echoing(l4));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(closed_lines(&p), 1);
    // Unknown modules and levels are refused and change nothing.
    let (code, body) = post(admin, "/logging?nosuch=debug");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown module"), "{body}");
    assert_eq!(post(admin, "/logging?level=loud").0, 400);
    assert!(get(admin, "/logging").contains("filter: warn\n"));
}

#[test]
fn quitquitquit_drains_and_exits() {
    let origin = echo();
    let mut p = Proxy::spawn("admin-quit", &l4_config(origin, ""), 1);
    assert_eq!(post(p.admin(), "/quitquitquit"), (200, "OK\n".into()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "still running after /quitquitquit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(p.stderr().contains("/quitquitquit"), "{}", p.stderr());
}

#[test]
fn config_dump_shows_the_config_with_private_keys_redacted() {
    let dir = TempDir::new("admin-dump-certs");
    let d = dir.0.to_str().unwrap();
    for args in [
        vec!["certs", "init", "--trust-domain", "example.org", "--dir", d],
        vec![
            "certs",
            "issue",
            "--dir",
            d,
            "--spiffe-id",
            "spiffe://example.org/ns/default/sa/b",
            "--name",
            "b",
        ],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let origin = echo();
    let yaml = format!(
        "admin:\n  address: 127.0.0.1:0\n  health_address: off\nlisteners:\n  - name: tls\n    address: 127.0.0.1:0\n    cluster: c\n    tls:\n      cert: {d}/b.pem\n      key: {d}/b-key.pem\n      trust_bundles: {{example.org: {d}/ca.pem}}\nclusters:\n  - name: c\n    endpoints: [\"{origin}\"]\n"
    );
    let p = Proxy::spawn("admin-dump", &yaml, 1);
    let body = get(p.admin(), "/config_dump");
    assert!(!body.contains("b-key.pem"), "the key path leaked: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tls = &v["config"]["listeners"][0]["tls"];
    assert_eq!(tls["key"], "[redacted]", "{body}");
    assert_eq!(tls["cert"], format!("{d}/b.pem"), "{body}");
    assert_eq!(
        v["config"]["clusters"][0]["endpoints"][0],
        origin.to_string()
    );
}
