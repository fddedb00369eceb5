//! Access logs end to end: a `shardcar` process with `access_log:` sinks on HTTP and TCP
//! listeners, driven with curl (and a keepalive client for the counted runs); lines checked
//! byte for byte (golden), as JSON, through the status / duration / sampling filters, with a
//! blocked sink (a FIFO nobody reads) dropping and counting while traffic flows, reopened on
//! SIGUSR1 after a rename, and carried through a config reload.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::status::StatusOrigin;
use support::tools::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");

/// A running `shardcar --shards 1` with an admin port; stdout lines after the `listening`
/// ones are collected (a `/dev/stdout` sink writes there).
pub struct Proxy {
    child: Child,
    bound: Vec<(String, SocketAddr)>,
    stdout: mpsc::Receiver<String>,
    pub config: std::path::PathBuf,
}

impl Proxy {
    pub fn spawn(dir: &TempDir, yaml: &str) -> Proxy {
        let config = dir.file("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut child = Command::new(BIN)
            .args(["--shards", "1", "--no-watch", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.file("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut bound = Vec::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!(
                    "proxy exited: {}",
                    std::fs::read_to_string(dir.file("stderr.log")).unwrap_or_default()
                );
            }
            let mut parts = line.split_whitespace();
            assert_eq!(parts.next(), Some("listening"), "{line}");
            let name = parts.next().unwrap().to_string();
            let addr = parts.next().unwrap().parse().unwrap();
            let done = name == "admin";
            bound.push((name, addr));
            if done {
                break;
            }
        }
        let (tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(l) = line else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Proxy {
            child,
            bound,
            stdout,
            config,
        }
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.bound.iter().find(|(n, _)| n == name).unwrap().1
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// One counter from `/stats`.
    pub fn stat(&self, name: &str) -> u64 {
        let body = admin(self.addr("admin"), "GET", "/stats").1;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("shardcar.{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in /stats:\n{body}"))
            .parse()
            .unwrap()
    }

    /// Stdout lines, waiting up to `limit` for `n` of them.
    pub fn stdout_lines(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => break,
            }
        }
        got
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bodiless admin request: (status, body).
pub fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (status, body)
}

/// `curl -s` with `args`; returns stdout.
pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lines of `path`, waiting up to `limit` for at least `n`.
pub fn wait_lines(path: &Path, n: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const ADMIN: &str = "admin: {address: \"127.0.0.1:0\", health_address: off}\n";

/// An `http` listener `web` → cluster `app` at `origin` (plus `dead`, a refused port, under
/// `/dead`), its `access_log:` list given as YAML lines indented for the listener.
pub fn http_yaml(origin: SocketAddr, dead: SocketAddr, access_log: &str) -> String {
    format!(
        "{ADMIN}listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    access_log:
{access_log}    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/dead\"}}
            cluster: dead
          - match: {{prefix: \"/slow\"}}
            cluster: app
            fault: {{delay: {{fixed_delay: 150ms, percentage: 100}}}}
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{origin}\"]
  - name: dead
    endpoints: [\"{dead}\"]
    connect_timeout: 500ms
"
    )
}

/// A keepalive HTTP/1.1 client sending `n` GETs to `path`; returns the statuses.
pub fn keepalive_gets(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        write!(s, "GET {path} HTTP/1.1\r\nhost: app\r\n\r\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        out.push(status);
    }
    out
}

#[test]
fn http_golden_lines_to_a_file() {
    let dir = TempDir::new("alog-golden");
    let origin = StatusOrigin::start("hello", 200);
    let dead = support::DeadPort::new();
    let log = dir.file("access.log");
    let fmt = "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% \\\"%REQ(USER-AGENT)%\\\" %REQ(X-REQUEST-ID)% %REQ(:AUTHORITY)% %DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_TRANSPORT_FAILURE_REASON%\\n";
    let sinks = format!(
        "      - path: {}\n        format: \"{fmt}\"\n      - path: {}\n",
        log.display(),
        dir.file("default.log").display()
    );
    let proxy = Proxy::spawn(&dir, &http_yaml(origin.addr, dead.addr, &sinks));
    let web = proxy.addr("web");
    let url = format!("http://{web}/golden?q=1");
    let sizes = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_header} %{size_download}",
        "-A",
        "golden/1.0",
        "-H",
        "x-request-id: req-1",
        &url,
    ]);
    let sent: u64 = sizes.split(' ').map(|n| n.parse::<u64>().unwrap()).sum();
    // What curl sends, in whatever order: the request line and four headers.
    let received = format!(
        "GET /golden?q=1 HTTP/1.1\r\nHost: {web}\r\nUser-Agent: golden/1.0\r\nAccept: */*\r\nx-request-id: req-1\r\n\r\n"
    )
    .len();
    let code = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-A",
        "golden/1.0",
        &format!("http://{web}/dead/x"),
    ]);
    assert_eq!(code, "503");
    let lines = wait_lines(&log, 2, Duration::from_secs(5));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        format!(
            "GET /golden?q=1 HTTP/1.1 200 - {received} {sent} {} app \"golden/1.0\" req-1 {web} - -",
            origin.addr
        )
    );
    // A refused upstream: UF, the endpoint tried, the failure reason, a generated request id.
    let f: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(
        &f[..5],
        ["GET", "/dead/x", "HTTP/1.1", "503", "UF"],
        "{}",
        lines[1]
    );
    let dead_addr = dead.addr.to_string();
    assert_eq!(
        &f[7..10],
        [dead_addr.as_str(), "dead", "\"golden/1.0\""],
        "{}",
        lines[1]
    );
    assert_eq!(f[10].len(), 36, "generated x-request-id in {}", lines[1]);
    assert_eq!(&f[11..], [&web.to_string(), "-", "connection_failure"]);

    // Envoy's default format on the second sink.
    let d = wait_lines(&dir.file("default.log"), 2, Duration::from_secs(5));
    assert_eq!(d.len(), 2, "{d:?}");
    let (time, rest) = d[0].split_once("] ").unwrap();
    let time = time.strip_prefix('[').unwrap();
    assert_eq!(
        (time.len(), &time[10..11], &time[23..]),
        (24, "T", "Z"),
        "{time}"
    );
    let mut words = rest.split(' ');
    let expect_head = format!("\"GET /golden?q=1 HTTP/1.1\" 200 - {received} {sent}");
    let head: Vec<&str> = words.by_ref().take(7).collect();
    assert_eq!(head[..7].join(" "), expect_head);
    let duration: u64 = words.next().unwrap().parse().unwrap();
    assert!(duration < 5_000);
    assert_eq!(
        words.collect::<Vec<_>>().join(" "),
        format!(
            "- \"-\" \"golden/1.0\" \"req-1\" \"{web}\" \"{}\"",
            origin.addr
        )
    );
    assert_eq!(proxy.stat("access_log_lines"), 4);
    assert_eq!(proxy.stat("access_log_dropped"), 0);
}
