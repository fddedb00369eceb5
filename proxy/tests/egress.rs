//! Egress control end to end, in network namespaces (root only; CI runs as root): the app's
//! outbound traffic is captured by `shardcar intercept` (REDIRECT) onto an `auto` listener
//! with `original_dst`, and `outbound_traffic_policy: registry_only` decides.
//!
//! `app` (10.200.0.1) runs the proxy and the clients (curl, openssl s_client, plain sockets);
//! `peer` answers on 10.200.0.2 (the HTTP cluster the routes use), on 10.201.0.1 (an
//! allowed block), 10.202.0.1 (not registered), and on the cloud metadata addresses
//! 169.254.169.254 (never listed) and 169.254.170.2 (listed by address). Checked: allowed and
//! blocked hosts (exact, wildcard), CIDRs and ports over HTTP/1.1 and h2c (502 `EB`, the
//! origin never sees a blocked request), TCP (reset, no upstream connection), TLS by SNI,
//! the metadata endpoint (also behind an allowed Host or a 0.0.0.0/0 entry), the log line and
//! the per-reason counters; then the same traffic under `allow_any` all passes.

#[allow(dead_code)] // shared with the interception tests; this one uses part of it
mod netns;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use netns::{in_ns, Pair, Proxy, TempDir, WhoAmI, PEER_IP};

const ALLOWED: &str = "10.201.0.1";
const UNLISTED: &str = "10.202.0.1";
const METADATA: &str = "169.254.169.254";
const ECS_METADATA: &str = "169.254.170.2";
const TIMEOUT: Duration = Duration::from_secs(5);

fn config(mode: &str) -> String {
    format!(
        "\
upstream_mark: 0x539
admin: {{address: 127.0.0.1:15000, health_address: off}}
listeners:
  - name: outbound
    address: 0.0.0.0:15001
    protocol: auto
    original_dst: true
    cluster: passthrough
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: /}}
            cluster: web
clusters:
  - name: passthrough
    type: original_dst
    connect_timeout: 1s
  - name: web
    endpoints: [\"{PEER_IP}:8080\"]
outbound_traffic_policy:
  mode: {mode}
  listeners: [outbound]
  registry:
    - hosts: [api.allowed.test, \"*.svc.test\"]
    - hosts: [pay.allowed.test, db.allowed.test]
      ports: [443]
    - cidrs: [10.201.0.0/16]
      ports: [8080, 5432]
    - cidrs: [0.0.0.0/0]
      ports: [7000]
    - cidrs: [{ECS_METADATA}]
"
    )
}

/// A TCP server in `ns` at `addr` that greets every connection (`hello <addr>\n`) and keeps
/// the first bytes the client sent; counts connections.
struct Greeter {
    accepted: Arc<AtomicUsize>,
    /// The first bytes each connection sent, as its handler read them.
    first_bytes: mpsc::Receiver<Vec<u8>>,
    listener: TcpListener,
}

impl Greeter {
    fn start(ns: &str, addr: &str) -> Greeter {
        let a: SocketAddr = addr.parse().unwrap();
        let listener = in_ns(ns, move || TcpListener::bind(a).expect("bind greeter"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, first_bytes) = mpsc::channel();
        let (l, n) = (listener.try_clone().unwrap(), accepted.clone());
        std::thread::spawn(move || {
            while let Ok((mut s, _)) = l.accept() {
                n.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = writeln!(s, "hello {a}");
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).unwrap_or(0);
                    buf.truncate(n);
                    let _ = tx.send(buf);
                });
            }
        });
        Greeter {
            accepted,
            first_bytes,
            listener,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        let _ = socket2::SockRef::from(&self.listener).shutdown(std::net::Shutdown::Both);
    }
}

/// What a server-first TCP client in `app` got from `to`.
#[derive(Debug, PartialEq)]
enum Tcp {
    Greeted(String),
    Reset,
    Closed,
}

fn tcp(pair: &Pair, to: &str) -> Tcp {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(&pair.app, move || {
        let mut s = TcpStream::connect_timeout(&to, TIMEOUT).expect("connect (captured)");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"\n") {
            match s.read(&mut buf) {
                Ok(0) if got.is_empty() => return Tcp::Closed,
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Tcp::Reset,
                Err(e) => panic!("read from {to}: {e}"),
            }
        }
        Tcp::Greeted(String::from_utf8_lossy(&got).trim().to_string())
    })
}

/// curl from `app`: (status, x-shardcar-flag, body).
fn curl(pair: &Pair, url: &str, host: Option<&str>, h2: bool) -> (u16, String, String) {
    let mut argv = vec![
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--max-time",
        "5",
        "-D",
        "-",
    ];
    let header;
    if let Some(h) = host {
        header = format!("Host: {h}");
        argv.extend(["-H", &header]);
    }
    if h2 {
        argv.push("--http2-prior-knowledge");
    }
    argv.push(url);
    let out = pair.exec(&pair.app, &argv);
    let (head, body) = out.split_once("\r\n\r\n").expect("response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let flag = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("x-shardcar-flag")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, flag, body.to_string())
}

/// openssl s_client from `app` to `to` with SNI `name`; it fails either way (the greeter
/// speaks no TLS), what matters is whether the ClientHello got through.
fn s_client(pair: &Pair, to: &str, name: &str) {
    let _ = std::process::Command::new("ip")
        .args([
            "netns", "exec", &pair.app, "timeout", "5", "openssl", "s_client",
        ])
        .args(["-connect", to, "-servername", name])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
}

/// `/stats/prometheus` from inside `app` (loopback is never captured).
fn scrape(pair: &Pair) -> String {
    pair.exec(
        &pair.app,
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:15000/stats/prometheus",
        ],
    )
}

fn counter(text: &str, protocol: &str, reason: &str) -> u64 {
    let key = format!(
        "shardcar_listener_egress_blocked_total{{listener=\"outbound\",protocol=\"{protocol}\",reason=\"{reason}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn setup() -> Option<(Pair, TempDir)> {
    if !netns::root_or_skip("egress") {
        return None;
    }
    let pair = Pair::create();
    for ip in [ALLOWED, UNLISTED, METADATA, ECS_METADATA] {
        pair.exec(
            &pair.peer,
            &["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"],
        );
        pair.exec(
            &pair.app,
            &["ip", "route", "add", &format!("{ip}/32"), "via", PEER_IP],
        );
    }
    let bin = env!("CARGO_BIN_EXE_shardcar");
    pair.exec(&pair.app, &[bin, "intercept", "install", "--mark", "0x539"]);
    Some((pair, TempDir::new("egress")))
}

fn start(pair: &Pair, dir: &TempDir, mode: &str) -> Proxy {
    let path = dir.0.join(format!("{mode}.yaml"));
    std::fs::write(&path, config(mode)).unwrap();
    Proxy::start(&pair.app, &path)
}

#[test]
fn registry_only_blocks_what_the_registry_does_not_list() {
    let Some((pair, dir)) = setup() else { return };
    let _web = WhoAmI::start(&pair.peer, &format!("{PEER_IP}:8080"));
    let g_allowed = Greeter::start(&pair.peer, &format!("{ALLOWED}:5432"));
    let g_allowed_6000 = Greeter::start(&pair.peer, &format!("{ALLOWED}:6000"));
    let g_unlisted = Greeter::start(&pair.peer, &format!("{UNLISTED}:5432"));
    let g_any_7000 = Greeter::start(&pair.peer, &format!("{UNLISTED}:7000"));
    let g_meta_7000 = Greeter::start(&pair.peer, &format!("{METADATA}:7000"));
    let g_tls = Greeter::start(&pair.peer, &format!("{UNLISTED}:443"));
    let mut proxy = start(&pair, &dir, "registry_only");

    // HTTP: allowed hosts (exact, wildcard), CIDR, the listed metadata address → routed.
    let ok = [
        (
            format!("http://{ALLOWED}:8080/"),
            Some("api.allowed.test"),
            false,
        ),
        (
            format!("http://{UNLISTED}:8080/"),
            Some("api.allowed.test"),
            false,
        ),
        (
            format!("http://{UNLISTED}:8080/"),
            Some("a.b.svc.test:8080"),
            false,
        ),
        (format!("http://{ALLOWED}:8080/"), None, false), // Host 10.201.0.1:8080, CIDR entry
        (format!("http://{ECS_METADATA}/"), None, false),
        (
            format!("http://{UNLISTED}:8080/"),
            Some("api.allowed.test"),
            true,
        ),
    ];
    for (url, host, h2) in &ok {
        let (status, flag, body) = curl(&pair, url, *host, *h2);
        assert_eq!(
            (status, flag.as_str()),
            (200, ""),
            "{url} Host {host:?} h2 {h2}: {body}\n{}",
            proxy.drain()
        );
        assert!(
            body.starts_with("10.200.0.1:"),
            "the origin answered: {body}"
        );
    }
    // HTTP: unlisted host, host on a port its entry does not list, IP outside the block,
    // the block on a port it does not list, metadata (also behind an allowed Host).
    let blocked = [
        (
            format!("http://{UNLISTED}:8080/"),
            Some("evil.test"),
            false,
            "destination not in the registry",
        ),
        (
            format!("http://{UNLISTED}:8080/"),
            Some("svc.test"),
            false,
            "destination not in the registry",
        ),
        (
            format!("http://{UNLISTED}:8080/"),
            Some("pay.allowed.test"),
            false,
            "destination not in the registry",
        ),
        (
            format!("http://{UNLISTED}:8080/"),
            None,
            false,
            "destination not in the registry",
        ),
        (
            format!("http://{ALLOWED}:9000/"),
            None,
            true,
            "destination not in the registry",
        ),
        (
            format!("http://{METADATA}/latest/meta-data/"),
            None,
            false,
            "cloud metadata endpoint",
        ),
        (
            format!("http://{METADATA}/"),
            Some("api.allowed.test"),
            false,
            "cloud metadata endpoint",
        ),
        (
            format!("http://{METADATA}/"),
            Some("api.allowed.test"),
            true,
            "cloud metadata endpoint",
        ),
    ];
    for (url, host, h2, why) in &blocked {
        let (status, flag, body) = curl(&pair, url, *host, *h2);
        assert_eq!(
            (status, flag.as_str()),
            (502, "EB"),
            "{url} Host {host:?} h2 {h2}: {body}"
        );
        assert_eq!(body, format!("egress blocked: {why}\n"));
    }
    assert!(proxy.wait_log("egress blocked"), "{}", proxy.drain());
    let log = proxy.drain();
    assert!(
        log.lines().any(|l| l.contains("egress blocked")
            && l.contains("host=evil.test")
            && l.contains("reason=not_registered")),
        "log names host and reason:\n{log}"
    );

    // TCP (server-first, opaque after the sniff): allowed CIDR and port, 0.0.0.0/0 on 7000.
    assert_eq!(
        tcp(&pair, &format!("{ALLOWED}:5432")),
        Tcp::Greeted(format!("hello {ALLOWED}:5432"))
    );
    assert_eq!(
        tcp(&pair, &format!("{UNLISTED}:7000")),
        Tcp::Greeted(format!("hello {UNLISTED}:7000"))
    );
    // Reset, and nothing reached the server: unlisted IP, unlisted port, metadata.
    for to in [
        format!("{UNLISTED}:5432"),
        format!("{ALLOWED}:6000"),
        format!("{METADATA}:7000"),
    ] {
        assert_eq!(tcp(&pair, &to), Tcp::Reset, "{to}\n{}", proxy.drain());
    }
    assert_eq!(g_allowed.accepted(), 1);
    assert_eq!(g_any_7000.accepted(), 1);
    assert_eq!(g_unlisted.accepted(), 0, "blocked: no upstream connect");
    assert_eq!(g_allowed_6000.accepted(), 0);
    assert_eq!(g_meta_7000.accepted(), 0);

    // TLS by SNI on 443 (to an IP no CIDR entry allows): the registered name gets through
    // with its ClientHello, another is reset before any upstream connect.
    s_client(&pair, &format!("{UNLISTED}:443"), "db.allowed.test");
    s_client(&pair, &format!("{UNLISTED}:443"), "evil.test");
    assert_eq!(g_tls.accepted(), 1, "{}", proxy.drain());
    let first = g_tls
        .first_bytes
        .recv_timeout(TIMEOUT)
        .expect("the handler read");
    assert_eq!(
        first.first(),
        Some(&0x16),
        "a TLS record reached the server"
    );
    assert!(
        first.windows(15).any(|w| w == b"db.allowed.test"),
        "the ClientHello, SNI and all"
    );

    // Counted by protocol and reason (one shard: exact).
    let text = scrape(&pair);
    assert_eq!(counter(&text, "http", "not_registered"), 5, "{text}");
    assert_eq!(counter(&text, "http", "metadata"), 3);
    assert_eq!(
        counter(&text, "tcp", "not_registered"),
        3,
        "two plain, one SNI"
    );
    assert_eq!(counter(&text, "tcp", "metadata"), 1);
    assert!(
        text.lines().any(|l| l.starts_with("istio_requests_total{")
            && l.contains("response_code=\"502\"")
            && l.contains("response_flags=\"EB\"")),
        "Istio's series carry the flag:\n{text}"
    );
    drop(proxy);

    // allow_any: the same blocked traffic goes out.
    let mut proxy = start(&pair, &dir, "allow_any");
    for (url, host, h2, _) in &blocked {
        let (status, flag, body) = curl(&pair, url, *host, *h2);
        assert_eq!(
            (status, flag.as_str()),
            (200, ""),
            "{url} {host:?}: {body}\n{}",
            proxy.drain()
        );
    }
    assert_eq!(
        tcp(&pair, &format!("{UNLISTED}:5432")),
        Tcp::Greeted(format!("hello {UNLISTED}:5432"))
    );
    assert_eq!(
        tcp(&pair, &format!("{METADATA}:7000")),
        Tcp::Greeted(format!("hello {METADATA}:7000"))
    );
    let text = scrape(&pair);
    assert!(!text.contains("shardcar_listener_egress_blocked"), "{text}");
}
