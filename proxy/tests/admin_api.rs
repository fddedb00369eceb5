//! The admin API as an operator uses it: the `shardcar` binary with an `admin:` block on
//! ephemeral ports, queried with curl.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");

struct Proxy {
    child: Child,
    addrs: Vec<(String, SocketAddr)>,
}

impl Proxy {
    fn spawn(config: &str) -> Proxy {
        let dir = std::env::temp_dir().join(format!("shardcar-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // One file per proxy: tests run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = dir.join(format!("config-{n}.yaml"));
        std::fs::write(&p, config).unwrap();
        let mut child = Command::new(BIN)
            .args(["--shards", "2", "--config"])
            .arg(&p)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addrs = Vec::new();
        while addrs.len() < 3 {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "proxy exited early");
            let mut w = line.split_whitespace();
            assert_eq!(w.next(), Some("listening"), "{line}");
            let name = w.next().unwrap().to_string();
            addrs.push((name, w.next().unwrap().parse().unwrap()));
        }
        Proxy { child, addrs }
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

/// `curl -s -w '\n%{http_code}'`: (status, body).
fn curl(addr: SocketAddr, path: &str) -> (u16, String) {
    curl_with(addr, path, &[])
}

/// `curl -X POST`: (status, body).
fn curl_post(addr: SocketAddr, path: &str) -> (u16, String) {
    curl_with(addr, path, &["-X", "POST"])
}

fn curl_with(addr: SocketAddr, path: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "20", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn config(origin: SocketAddr) -> String {
    format!(
        "admin:\n  address: 127.0.0.1:0\n  health_address: 127.0.0.1:0\nlisteners:\n  - name: l4\n    address: 127.0.0.1:0\n    cluster: c\nclusters:\n  - name: c\n    endpoints: [\"{origin}\"]\n"
    )
}

fn value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

#[test]
fn admin_and_health_endpoints_answer_with_merged_shard_counters() {
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = origin.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in origin.incoming().flatten() {
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
    let proxy = Proxy::spawn(&config(origin_addr));
    let admin = proxy.addr("admin");
    let health = proxy.addr("admin-health");

    assert_eq!(curl(admin, "/ready"), (200, "LIVE\n".into()));
    assert_eq!(curl(health, "/healthz/ready").0, 200);
    let (code, info) = curl(admin, "/server_info");
    assert_eq!(code, 200);
    assert!(info.contains("\"shards\":2"), "{info}");

    // Five connections through the L4 listener, each echoed once.
    for _ in 0..5 {
        let mut c = TcpStream::connect(proxy.addr("l4")).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
    }
    // The counter is bumped at accept; poll with a generous cap for a loaded host.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, stats) = curl(admin, "/stats");
        assert_eq!(code, 200);
        if value(&stats, "shardcar.downstream_cx_total:") == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for addr in [admin, health] {
        let (code, prom) = curl(addr, "/stats/prometheus");
        assert_eq!(code, 200);
        assert!(
            prom.contains("# TYPE shardcar_downstream_cx_total counter"),
            "{prom}"
        );
        assert_eq!(value(&prom, "shardcar_downstream_cx_total"), 5, "{prom}");
    }
    let (code, listing) = curl(admin, "/nope");
    assert_eq!(code, 404);
    assert!(listing.contains("/stats/prometheus"), "{listing}");
    // The health port serves only its own table.
    assert_eq!(curl(health, "/server_info").0, 404);
}

#[test]
fn embedded_default_config_has_the_admin_block() {
    let c = shardcar::Config::embedded_default();
    assert_eq!(c.admin.address, Some("127.0.0.1:15000".parse().unwrap()));
    assert_eq!(
        c.admin.health_address,
        Some("127.0.0.1:15020".parse().unwrap())
    );
}

#[test]
fn bad_admin_address_names_the_field() {
    let err = shardcar::Config::from_yaml(
        "admin:\n  address: nowhere\nlisteners:\n  - name: l\n    address: 127.0.0.1:0\n    cluster: c\nclusters:\n  - name: c\n    endpoints: [\"127.0.0.1:1\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("admin.address"), "{err}");
}

#[test]
fn healthcheck_fail_makes_healthz_ready_fail_until_ok() {
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = Proxy::spawn(&config(origin.local_addr().unwrap()));
    let (admin, health) = (p.addr("admin"), p.addr("admin-health"));
    assert_eq!(curl(health, "/healthz/ready").0, 200);
    // GET is not enough to change state.
    assert_eq!(curl(admin, "/healthcheck/fail").0, 405);
    assert_eq!(curl(health, "/healthz/ready").0, 200);
    assert_eq!(curl_post(admin, "/healthcheck/fail"), (200, "OK\n".into()));
    let (code, body) = curl(health, "/healthz/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("/healthcheck/fail"), "{body}");
    // The proxy itself keeps running: /ready is about the shards.
    assert_eq!(curl(admin, "/ready").0, 200);
    assert_eq!(curl_post(admin, "/healthcheck/ok").0, 200);
    assert_eq!(curl(health, "/healthz/ready").0, 200);
}
