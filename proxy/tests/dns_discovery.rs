//! DNS service discovery (`type: strict_dns`) against a real nameserver: the test starts
//! Debian's dnsmasq on 127.0.0.1 and a free port, serving `app.test` from an `addn-hosts` file
//! it rewrites (then SIGHUP, which makes dnsmasq re-read it), while keepalive clients load the
//! proxy. An added address gets traffic within about one `dns_refresh_rate`, a removed one
//! stops getting any, and no request fails. Skipped without dnsmasq.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::origin::Origin;
use support::tools::{have, TempDir};

struct Dnsmasq {
    child: Child,
    hosts: std::path::PathBuf,
    port: u16,
}

impl Dnsmasq {
    /// Starts dnsmasq on a free port (another one if that port turns out taken: dnsmasq also
    /// binds TCP on it, so a free UDP port is not enough).
    fn start(dir: &TempDir, records: &str) -> Dnsmasq {
        let hosts = dir.file("hosts");
        std::fs::write(&hosts, records).unwrap();
        for _ in 0..10 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--local-ttl=1",
                    "--pid-file=",
                    "--user=root",
                ])
                .arg(format!("--port={port}"))
                .arg(format!("--addn-hosts={}", hosts.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq starts");
            let mut d = Dnsmasq {
                child,
                hosts: hosts.clone(),
                port,
            };
            if d.wait_answers() {
                return d;
            }
            let _ = d.child.kill();
        }
        panic!("dnsmasq did not start on any of 10 ports");
    }

    /// Polls (up to 10 s) until dnsmasq answers a query for app.test; false if it exited.
    fn wait_answers(&mut self) -> bool {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3];
        q.extend_from_slice(b"app\x04test\x00\x00\x01\x00\x01");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false; // e.g. the port was taken
            }
            let _ = s.send_to(&q, ("127.0.0.1", self.port));
            if s.recv(&mut buf).is_ok() {
                return true;
            }
        }
        panic!("dnsmasq runs but did not answer on port {}", self.port);
    }

    /// Rewrites the records and makes dnsmasq re-read them.
    fn set(&self, records: &str) {
        let tmp = self.hosts.with_extension("new");
        std::fs::write(&tmp, records).unwrap();
        std::fs::rename(&tmp, &self.hosts).unwrap();
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "SIGHUP dnsmasq");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    from_a: AtomicUsize,
    from_b: AtomicUsize,
}

/// `GET /name` over one keepalive connection until `stop` (bounded in count and time).
fn load(addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut c: Option<Client> = None;
    for _ in 0..200_000 {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return;
        }
        let mut conn = c.take().unwrap_or_else(|| Client::connect(addr));
        conn.send(b"GET /name HTTP/1.1\r\nhost: test\r\n\r\n");
        match conn.read_response(false) {
            Some(r) if r.status == 200 => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                match r.body.as_slice() {
                    b"a" => tally.from_a.fetch_add(1, Ordering::Relaxed),
                    b"b" => tally.from_b.fetch_add(1, Ordering::Relaxed),
                    _ => tally.failed.fetch_add(1, Ordering::Relaxed),
                };
                c = Some(conn);
            }
            other => {
                eprintln!("failed: {:?}", other.map(|r| (r.status, r.text())));
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn wait_for(what: &str, limit: Duration, f: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    t.elapsed()
}

#[test]
fn endpoints_follow_dns_records_under_load_with_zero_failed_requests() {
    if !have("dnsmasq", &["--version"]) {
        eprintln!("skipped: no dnsmasq");
        return;
    }
    let a = Origin::start_at("a", "127.0.0.2:0".parse().unwrap());
    let port = a.addr.port();
    let b = Origin::start_at("b", SocketAddr::from(([127, 0, 0, 3], port)));
    let dir = TempDir::new("dns");
    let dns = Dnsmasq::start(&dir, "127.0.0.2 app.test\n");
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
    type: strict_dns
    endpoints: [\"app.test:{port}\"]
    dns_refresh_rate: 200ms
    dns_resolvers: [\"127.0.0.1:{}\"]
    connect_timeout: 500ms
",
        dns.port
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 2).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (s, t) = (stop.clone(), tally.clone());
            std::thread::spawn(move || load(addr, s, t))
        })
        .collect();
    let limit = Duration::from_secs(10);
    wait_for("traffic to a", limit, || {
        tally.from_a.load(Ordering::Relaxed) > 200
    });
    assert_eq!(tally.from_b.load(Ordering::Relaxed), 0);

    // Added: b gets traffic within about one refresh.
    dns.set("127.0.0.2 app.test\n127.0.0.3 app.test\n");
    let added = wait_for("traffic to b", limit, || {
        tally.from_b.load(Ordering::Relaxed) > 0
    });
    eprintln!("added endpoint got traffic {added:?} after the records changed (refresh 200ms)");
    // The change is seen at the next refresh (≤ 200 ms) plus dnsmasq's re-read and a query.
    assert!(added < Duration::from_secs(1), "{added:?}");
    let b0 = tally.from_b.load(Ordering::Relaxed);
    wait_for("b's share grows", limit, || {
        tally.from_b.load(Ordering::Relaxed) > b0 + 200
    });

    // Removed: a stops getting requests (those already running finish).
    dns.set("127.0.0.3 app.test\n");
    let a_at = a.requests.load(Ordering::SeqCst);
    let removed = wait_for("a gets no more traffic", limit, || {
        let before = a.requests.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        a.requests.load(Ordering::SeqCst) == before
    });
    eprintln!(
        "removed endpoint quiet within {removed:?} ({} requests after the change)",
        a.requests.load(Ordering::SeqCst) - a_at
    );
    let b1 = tally.from_b.load(Ordering::Relaxed);
    wait_for("b serves everything", limit, || {
        tally.from_b.load(Ordering::Relaxed) > b1 + 200
    });

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!("{ok} requests, {failed} failed");
    assert_eq!(failed, 0, "{ok} ok");
    assert!(ok > 600);
    assert!(b.requests.load(Ordering::SeqCst) > 400);
    server.shutdown();
}

#[test]
fn dns_config_errors_name_the_field_and_line() {
    let base = |extra: &str| {
        format!(
            "listeners:
  - name: l4
    address: 127.0.0.1:0
    protocol: tcp
    cluster: up
clusters:
  - name: up
{extra}"
        )
    };
    for (extra, field, says) in [
        (
            "    type: logical_dns\n    endpoints: [\"a.test:80\", \"b.test:80\"]\n",
            "clusters[0].endpoints",
            "exactly one",
        ),
        (
            "    type: strict_dns\n    endpoints: [\"a.test:80\"]\n    dns_resolvers: [\"nope\"]\n",
            "clusters[0].dns_resolvers[0]",
            "ip:port",
        ),
        (
            "    endpoints: [\"127.0.0.1:80\"]\n    dns_refresh_rate: 1s\n",
            "clusters[0].dns_refresh_rate",
            "strict_dns",
        ),
        (
            "    type: strict_dns\n    endpoints: [\"a.test:80\"]\n    dns_refresh_rate: 5x\n",
            "clusters[0].dns_refresh_rate",
            "line",
        ),
    ] {
        let e = Config::from_yaml(&base(extra)).unwrap_err().to_string();
        assert!(
            e.contains(field) && e.contains(says) && e.contains("line"),
            "{extra}: {e}"
        );
    }
}
