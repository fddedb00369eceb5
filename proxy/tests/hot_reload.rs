//! Hot reload with the real `shardcar` binary (2 shards): routes swapped under a bounded load
//! loop with zero failed requests; listeners added (accepting on every shard) and removed
//! (refusing new connections while an open one finishes); an invalid file rejected with the old
//! config still serving and the error naming field and line; SIGHUP, `POST /reload` and the
//! file watch as triggers; `/config_dump` showing the version in force.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::client::Client;
use support::origin::Origin;
use support::tools::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");

struct Proxy {
    child: Child,
    web: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl Proxy {
    fn spawn(tag: &str, yaml: &str, watch: bool) -> Proxy {
        let dir = TempDir::new(tag);
        let config = dir.file("config.yaml");
        let log = dir.file("stderr.log");
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["--shards", "2", "--config"]).arg(&config);
        if !watch {
            cmd.arg("--no-watch");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut web, mut admin) = (None, None);
        while admin.is_none() {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "proxy exited early");
            let w: Vec<&str> = line.split_whitespace().collect();
            let addr: SocketAddr = w[2].parse().unwrap();
            match w[1] {
                "web" => web = Some(addr),
                "admin" => admin = Some(addr),
                _ => {}
            }
        }
        Proxy {
            child,
            web: web.expect("listener web"),
            admin: admin.unwrap(),
            config,
            log,
            _dir: dir,
        }
    }

    /// Replaces the config file atomically (write a sibling, rename over).
    fn write_config(&self, yaml: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    }

    fn post_reload(&self) -> (u16, String) {
        admin_request(self.admin, "POST", "/reload")
    }

    fn dump(&self) -> serde_json::Value {
        let (status, body) = admin_request(self.admin, "GET", "/config_dump");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    fn version(&self) -> u64 {
        self.dump()["version"].as_u64().unwrap()
    }

    /// The bound address of listener `name`, from `/config_dump`.
    fn bound(&self, name: &str) -> Option<SocketAddr> {
        self.dump()["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .map(|l| l["bound"].as_str().unwrap().parse().unwrap())
    }

    /// Waits until the version in force is `v` (reloads are asynchronous for SIGHUP and the
    /// file watch).
    fn wait_version(&self, v: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.version() != v {
            assert!(
                Instant::now() < deadline,
                "version {v} not in force after {limit:?}: {}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// One admin request with `connection: close`: (status, body).
fn admin_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// A config: listener `web` routes everything to `cluster`, clusters `a` and `b`;
/// `extra` is appended to the listeners.
fn config(a: SocketAddr, b: SocketAddr, cluster: &str, extra: &str) -> String {
    format!(
        "drain_timeout: 5s
admin:
  address: 127.0.0.1:0
  health_address: off
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: {cluster}
{extra}clusters:
  - name: a
    endpoints: [\"{a}\"]
    connect_timeout: 500ms
  - name: b
    endpoints: [\"{b}\"]
    connect_timeout: 500ms
"
    )
}

/// A tcp listener `name` forwarding to cluster `b`.
fn tcp_listener(name: &str, address: &str) -> String {
    format!("  - name: {name}\n    address: {address}\n    protocol: tcp\n    cluster: b\n")
}

/// `GET /name` on a fresh connection: the answering origin's name.
fn origin_name(addr: SocketAddr) -> String {
    let mut c = Client::connect(addr);
    let r = c.get("/name");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    from_a: AtomicUsize,
    from_b: AtomicUsize,
}

/// Sends `GET /name` in a loop until `stop` (at most `max` requests, `limit` long): over one
/// keepalive connection when `keepalive`, else a new connection per request.
fn load(
    addr: SocketAddr,
    keepalive: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    max: usize,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    let mut conn: Option<Client> = None;
    for _ in 0..max {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return;
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    Client {
                        w: s.try_clone().unwrap(),
                        r: BufReader::new(s),
                    }
                }
                Err(_) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let mut c = c;
        let sent =
            c.w.write_all(b"GET /name HTTP/1.1\r\nhost: test\r\n\r\n")
                .is_ok();
        match c.read_response(false).filter(|_| sent) {
            Some(r) if r.status == 200 => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                match r.body.as_slice() {
                    b"a" => tally.from_a.fetch_add(1, Ordering::Relaxed),
                    b"b" => tally.from_b.fetch_add(1, Ordering::Relaxed),
                    _ => tally.failed.fetch_add(1, Ordering::Relaxed),
                };
                if keepalive {
                    conn = Some(c);
                }
            }
            _ => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
fn routes_swap_under_load_with_zero_failed_requests() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let to_a = config(a.addr, b.addr, "a", "");
    let to_b = config(a.addr, b.addr, "b", "");
    let proxy = Proxy::spawn("reload-load", &to_a, false);
    assert_eq!(proxy.version(), 1);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let workers: Vec<_> = [true, true, false, false]
        .into_iter()
        .map(|keepalive| {
            let (stop, tally, addr) = (stop.clone(), tally.clone(), proxy.web);
            std::thread::spawn(move || {
                load(
                    addr,
                    keepalive,
                    stop,
                    tally,
                    20_000,
                    Duration::from_secs(30),
                )
            })
        })
        .collect();
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for("load on a", &|| tally.from_a.load(Ordering::Relaxed) >= 200);
    // A keepalive connection opened before the reloads: each request takes the route in force.
    let mut kept = Client::connect(proxy.web);
    assert_eq!(kept.get("/name").text(), "a");
    // Twenty reloads while the load runs, by SIGHUP and POST /reload in turn: the even ones
    // valid (alternating the route; new connections, and the kept one, see it at once), the
    // odd ones invalid (rejected; the route in force stays).
    let bad = to_a.replacen("connect_timeout: 500ms", "connect_timeout: 5 parsecs", 1);
    let started = Instant::now();
    let mut version = 1;
    let mut want = "a";
    for i in 0..20u64 {
        let valid = i % 2 == 0;
        if valid {
            want = if want == "a" { "b" } else { "a" };
            version += 1;
        }
        let yaml = match (valid, want) {
            (false, _) => &bad,
            (true, "a") => &to_a,
            (true, _) => &to_b,
        };
        proxy.write_config(yaml);
        if i % 4 < 2 {
            let rejected_before = proxy.dump()["reloads_rejected"].as_u64().unwrap();
            proxy.sighup();
            if valid {
                proxy.wait_version(version, Duration::from_secs(5));
            } else {
                let deadline = Instant::now() + Duration::from_secs(5);
                while proxy.dump()["reloads_rejected"].as_u64().unwrap() == rejected_before {
                    assert!(Instant::now() < deadline, "SIGHUP reload {i} not attempted");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        } else {
            let (status, body) = proxy.post_reload();
            if valid {
                assert_eq!(status, 200, "{body}");
                assert_eq!(body.trim(), format!("version {version}"));
            } else {
                assert_eq!(status, 400, "{body}");
                assert!(body.contains("connect_timeout"), "{body}");
            }
        }
        assert_eq!(proxy.version(), version, "after reload {i}");
        assert_eq!(
            origin_name(proxy.web),
            want,
            "new connection after reload {i}"
        );
        assert_eq!(
            kept.get("/name").text(),
            want,
            "kept connection after reload {i}"
        );
        let before = tally.ok.load(Ordering::Relaxed);
        wait_for("load after the reload", &|| {
            tally.ok.load(Ordering::Relaxed) >= before + 100
        });
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "{ok} requests ok ({} from a, {} from b), {failed} failed; 20 reloads in {elapsed:?}",
        tally.from_a.load(Ordering::Relaxed),
        tally.from_b.load(Ordering::Relaxed)
    );
    assert_eq!(failed, 0, "requests failed across reloads");
    assert!(tally.from_b.load(Ordering::Relaxed) > 0);
    let dump = proxy.dump();
    assert_eq!(dump["version"], 11, "{dump}");
    assert_eq!(dump["reloads_applied"], 10, "{dump}");
    assert_eq!(dump["reloads_rejected"], 10, "{dump}");
}

#[test]
fn listeners_are_added_and_removed_on_every_shard() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let proxy = Proxy::spawn("reload-listeners", &config(a.addr, b.addr, "a", ""), false);
    assert_eq!(proxy.bound("extra"), None);
    // Added: a tcp listener forwarding to b.
    proxy.write_config(&config(
        a.addr,
        b.addr,
        "a",
        &tcp_listener("extra", "127.0.0.1:0"),
    ));
    let (status, body) = proxy.post_reload();
    assert_eq!(status, 200, "{body}");
    let extra = proxy.bound("extra").expect("extra listener bound");
    // Many connections, so both shards' sockets take some (the kernel hashes by source port).
    for _ in 0..20 {
        assert_eq!(origin_name(extra), "b");
    }
    assert_eq!(origin_name(proxy.web), "a", "web is untouched");
    // A connection open on `extra` when it is removed finishes its exchanges.
    let mut open = Client::connect(extra);
    assert_eq!(open.get("/name").text(), "b");
    proxy.write_config(&config(a.addr, b.addr, "a", ""));
    let (status, body) = proxy.post_reload();
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.bound("extra"), None);
    // Every shard stopped accepting: no connect succeeds (a shard still listening would take
    // about half of them).
    for _ in 0..20 {
        let r = TcpStream::connect(extra);
        assert!(r.is_err(), "removed listener {extra} still accepts");
    }
    assert_eq!(
        open.get("/name").text(),
        "b",
        "open connection on the removed listener"
    );
    assert_eq!(origin_name(proxy.web), "a");
    // Rebound: `web` moves to a new address; the old one stops accepting.
    let old_web = proxy.web;
    let moved = config(a.addr, b.addr, "a", "").replacen(
        "address: 127.0.0.1:0\n    protocol: http",
        "address: 127.0.0.2:0\n    protocol: http",
        1,
    );
    proxy.write_config(&moved);
    let (status, body) = proxy.post_reload();
    assert_eq!(status, 200, "{body}");
    let new_web = proxy.bound("web").unwrap();
    assert_eq!(new_web.ip().to_string(), "127.0.0.2");
    assert_eq!(origin_name(new_web), "a");
    assert!(
        TcpStream::connect(old_web).is_err(),
        "old web address still accepts"
    );
}

#[test]
fn invalid_config_is_rejected_and_the_old_one_keeps_serving() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let good = config(a.addr, b.addr, "a", "");
    let proxy = Proxy::spawn("reload-invalid", &good, false);
    // An unknown key on line 10 of the new file, routed to b.
    let bad = config(a.addr, b.addr, "b", "").replacen(
        "    protocol: http\n",
        "    protocol: http\n    max_conections: 5\n",
        1,
    );
    let line = bad
        .lines()
        .position(|l| l.contains("max_conections"))
        .unwrap()
        + 1;
    proxy.write_config(&bad);
    let (status, body) = proxy.post_reload();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("listeners[0]"), "field path missing: {body}");
    assert!(body.contains("max_conections"), "{body}");
    assert!(
        body.contains(&format!("line {line}")),
        "line {line} missing: {body}"
    );
    assert!(body.contains("version 1 stays"), "{body}");
    assert_eq!(origin_name(proxy.web), "a", "old config still serves");
    // A listener that cannot bind (an address not on this host) is rejected too.
    proxy.write_config(&config(
        a.addr,
        b.addr,
        "b",
        &tcp_listener("nowhere", "192.0.2.1:9"),
    ));
    let (status, body) = proxy.post_reload();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nowhere"), "{body}");
    assert_eq!(origin_name(proxy.web), "a");
    let dump = proxy.dump();
    assert_eq!(dump["version"], 1, "{dump}");
    assert_eq!(dump["reloads_rejected"], 2, "{dump}");
    assert_eq!(dump["last_reload"]["ok"], false, "{dump}");
    // SIGHUP with the bad file: rejected and logged naming the field and the line.
    proxy.write_config(&bad);
    proxy.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.dump()["reloads_rejected"] != 3 {
        assert!(Instant::now() < deadline, "SIGHUP reload not attempted");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The log writer is asynchronous: wait for the third line.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = proxy.stderr();
        if log.matches("config reload rejected").count() >= 3 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rejected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("config reload rejected"))
        .collect();
    assert_eq!(rejected.len(), 3, "{log}");
    assert!(
        rejected[2].contains("max_conections") && rejected[2].contains(&format!("line={line}")),
        "{}",
        rejected[2]
    );
    // Fixed: the next reload applies.
    proxy.write_config(&config(a.addr, b.addr, "b", ""));
    assert_eq!(proxy.post_reload().0, 200);
    assert_eq!(origin_name(proxy.web), "b");
    assert_eq!(proxy.version(), 2);
}

#[test]
fn a_changed_config_file_is_reloaded_by_the_watch() {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let proxy = Proxy::spawn("reload-watch", &config(a.addr, b.addr, "a", ""), true);
    assert_eq!(origin_name(proxy.web), "a");
    proxy.write_config(&config(a.addr, b.addr, "b", ""));
    proxy.wait_version(2, Duration::from_secs(5));
    assert_eq!(origin_name(proxy.web), "b");
    // Touching the file without changing it does not reload.
    proxy.write_config(&config(a.addr, b.addr, "b", ""));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(proxy.version(), 2);
    assert_eq!(proxy.dump()["reloads_applied"], 1);
}
