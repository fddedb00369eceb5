//! Tap with the real `shardcar` binary (2 shards): `GET /tap` with filters (authority, path
//! prefix, method, status) streams one JSON line for each matching request and none for the
//! others; `shardcar tap --authority backend --path /checkout …` prints them as table rows and
//! exits after `-n` of them; a bad filter is a 400.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::origin::Origin;
use support::tools::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");

struct Proxy {
    child: Child,
    web: SocketAddr,
    admin: SocketAddr,
    _dir: TempDir,
}

impl Proxy {
    fn spawn(origin: SocketAddr) -> Proxy {
        let dir = TempDir::new("tap");
        let config = dir.file("config.yaml");
        std::fs::write(
            &config,
            format!(
                "admin:
  address: 127.0.0.1:0
  health_address: off
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: backend
        domains: [backend]
        routes:
          - match: {{prefix: \"/checkout/gone\"}}
            direct_response: {{status: 410, body: gone}}
          - match: {{prefix: \"/\"}}
            cluster: app
      - name: frontend
        domains: [frontend]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{origin}\"]
"
            ),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .args(["--shards", "2", "--no-watch", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut web, mut admin) = (None, None);
        while admin.is_none() {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "proxy exited early");
            let w: Vec<&str> = line.split_whitespace().collect();
            match w[1] {
                "web" => web = w[2].parse().ok(),
                "admin" => admin = w[2].parse().ok(),
                _ => {}
            }
        }
        Proxy {
            child,
            web: web.unwrap(),
            admin: admin.unwrap(),
            _dir: dir,
        }
    }

    /// One request on a fresh connection; the status.
    fn request(&self, method: &str, host: &str, path: &str) -> u16 {
        let mut s = TcpStream::connect(self.web).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Opens `GET target` on the admin port: the status, and the body's lines as they come.
    fn stream(&self, target: &str) -> (u16, mpsc::Receiver<String>) {
        let mut s = TcpStream::connect(self.admin).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nhost: admin\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let status: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in r.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (status, rx)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line until one whose path is `last` (then 300 ms more, for the other shard's
/// stragglers), parsed.
fn collect_until(rx: &mpsc::Receiver<String>, last: &str) -> Vec<serde_json::Value> {
    let mut got = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no tap line for {last}; got {got:?}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let done = v["path"] == last;
        got.push(v);
        if done {
            break;
        }
    }
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        got.push(serde_json::from_str(&line).unwrap());
    }
    got
}

/// `(method, authority, path, status)` of each line, counted.
fn summary(lines: &[serde_json::Value]) -> BTreeMap<(String, String, String, u64), usize> {
    let mut m = BTreeMap::new();
    for v in lines {
        let k = (
            v["method"].as_str().unwrap().to_string(),
            v["authority"].as_str().unwrap().to_string(),
            v["path"].as_str().unwrap().to_string(),
            v["status"].as_u64().unwrap(),
        );
        *m.entry(k).or_default() += 1;
    }
    m
}

/// The traffic every test sends: (method, authority, path, expected status).
const MIX: [(&str, &str, &str, u16); 7] = [
    ("GET", "backend", "/checkout/cart", 200),
    ("POST", "backend", "/checkout/cart", 200),
    ("GET", "backend", "/catalog", 200),
    ("GET", "frontend", "/checkout/cart", 200),
    ("GET", "backend", "/checkout/gone", 410),
    ("GET", "backend", "/checkout/cart", 200),
    ("GET", "backend", "/checkout/cart", 200),
];

fn send_mix(p: &Proxy) {
    for (m, a, path, want) in MIX {
        assert_eq!(p.request(m, a, path), want, "{m} {a}{path}");
    }
}

fn key(m: &str, a: &str, p: &str, s: u64) -> (String, String, String, u64) {
    (m.into(), a.into(), p.into(), s)
}

#[test]
fn tap_streams_only_the_requests_its_filters_match() {
    let origin = Origin::start("app");
    let p = Proxy::spawn(origin.addr);
    let (status, all_four) =
        p.stream("/tap?authority=backend&path_prefix=/checkout&method=GET&status=200");
    assert_eq!(status, 200);
    let (_, gone) = p.stream("/tap?status=410");
    let (_, posts) = p.stream("/tap?method=POST");
    let (_, frontend) = p.stream("/tap?authority=FRONTEND&path_prefix=/check");
    // The shards take the attach command asynchronously.
    std::thread::sleep(Duration::from_millis(200));
    send_mix(&p);
    // A marker each tap matches, so a reader knows it has seen everything before it.
    assert_eq!(p.request("GET", "backend", "/checkout/end"), 200);
    assert_eq!(p.request("GET", "backend", "/checkout/gone/end"), 410);
    assert_eq!(p.request("POST", "frontend", "/end"), 200);
    assert_eq!(p.request("GET", "frontend", "/checkout/end"), 200);

    let lines = collect_until(&all_four, "/checkout/end");
    assert_eq!(
        summary(&lines),
        BTreeMap::from([
            (key("GET", "backend", "/checkout/cart", 200), 3),
            (key("GET", "backend", "/checkout/end", 200), 1),
        ])
    );
    let one = &lines[0];
    assert_eq!(one["upstream"], origin.addr.to_string());
    assert!(one["duration_us"].as_u64().is_some(), "{one}");
    assert_eq!(one["flags"], "");
    assert!(one["headers"]["x-request-id"].is_string(), "{one}");
    assert_eq!(
        summary(&collect_until(&gone, "/checkout/gone/end")),
        BTreeMap::from([
            (key("GET", "backend", "/checkout/gone", 410), 1),
            (key("GET", "backend", "/checkout/gone/end", 410), 1),
        ])
    );
    assert_eq!(
        summary(&collect_until(&posts, "/end")),
        BTreeMap::from([
            (key("POST", "backend", "/checkout/cart", 200), 1),
            (key("POST", "frontend", "/end", 200), 1),
        ])
    );
    assert_eq!(
        summary(&collect_until(&frontend, "/checkout/end")),
        BTreeMap::from([
            (key("GET", "frontend", "/checkout/cart", 200), 1),
            (key("GET", "frontend", "/checkout/end", 200), 1),
        ])
    );
    let (status, _) = p.stream("/tap?colour=blue");
    assert_eq!(status, 400);
}

#[test]
fn shardcar_tap_prints_a_row_per_matching_request() {
    let origin = Origin::start("app");
    let p = Proxy::spawn(origin.addr);
    let mut cli = Command::new(BIN)
        .args(["tap", "--admin", &p.admin.to_string()])
        .args([
            "--authority",
            "backend",
            "--path",
            "/checkout",
            "--method",
            "GET",
        ])
        .args(["--status", "200", "-n", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(cli.stdout.take().unwrap());
    let mut header = String::new();
    out.read_line(&mut header).unwrap();
    assert!(
        header.starts_with("METHOD  AUTHORITY") && header.contains("LATENCY"),
        "{header}"
    );
    std::thread::sleep(Duration::from_millis(200));
    send_mix(&p);
    assert_eq!(p.request("GET", "backend", "/checkout/end"), 200);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut rows = String::new();
        out.read_to_string(&mut rows).unwrap();
        let _ = tx.send(rows);
    });
    let rows = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("shardcar tap exits after -n 4 rows");
    assert!(cli.wait().unwrap().success());
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let mut paths: Vec<&str> = rows
        .iter()
        .map(|r| {
            let cells: Vec<&str> = r.split_whitespace().collect();
            assert_eq!(cells[..2], ["GET", "backend"], "{r}");
            assert_eq!(cells[3], "200", "{r}");
            assert!(cells[5].ends_with("ms"), "{r}");
            assert_eq!(cells[6], origin.addr.to_string(), "{r}");
            cells[2]
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/checkout/cart",
            "/checkout/cart",
            "/checkout/cart",
            "/checkout/end"
        ]
    );
}

#[test]
fn shardcar_tap_reports_a_rejected_filter() {
    let origin = Origin::start("app");
    let p = Proxy::spawn(origin.addr);
    let out = Command::new(BIN)
        .args(["tap", "--admin", &p.admin.to_string(), "--rate", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400") && err.contains("rate"), "{err}");
}
