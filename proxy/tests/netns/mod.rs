//! Support for the interception tests: a pair of network namespaces (`app`, `peer`) joined by a
//! veth pair, threads that run inside one namespace, tiny HTTP servers that answer with the
//! client address they saw, and a `shardcar` process inside `app`. Everything is removed on
//! drop, also when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const APP_IP: &str = "10.200.0.1";
pub const PEER_IP: &str = "10.200.0.2";
const TIMEOUT: Duration = Duration::from_secs(5);

/// True when the tests can create namespaces (root). Not root: panics, so the test fails and
/// says why, unless `SHARDCAR_ALLOW_SKIP=1` asks for a skip; then prints `SKIPPED` and is false.
pub fn root_or_skip(test: &str) -> bool {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    if uid.is_ok_and(|u| u.trim_ascii() == b"0") {
        return true;
    }
    let why = "needs root (network namespaces, iptables, nft)";
    if std::env::var("SHARDCAR_ALLOW_SKIP").as_deref() != Ok("1") {
        panic!("{test} {why}: run as root, or set SHARDCAR_ALLOW_SKIP=1 to skip it");
    }
    eprintln!("\n!!!!!!!! SKIPPED {test}: {why} (SHARDCAR_ALLOW_SKIP=1) !!!!!!!!\n");
    false
}

/// Runs `argv`, panicking with its stderr on failure; returns stdout.
pub fn sh(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    assert!(
        out.status.success(),
        "`{}` failed: {}{}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces and a veth pair; deleted on drop.
pub struct Pair {
    pub app: String,
    pub peer: String,
}

impl Pair {
    pub fn create() -> Pair {
        static N: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{:x}{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let pair = Pair {
            app: format!("app-sc{tag}"),
            peer: format!("peer-sc{tag}"),
        };
        let (va, vp) = (format!("sca{tag}"), format!("scp{tag}"));
        sh(&["ip", "netns", "add", &pair.app]);
        sh(&["ip", "netns", "add", &pair.peer]);
        sh(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vp,
        ]);
        sh(&["ip", "link", "set", &va, "netns", &pair.app]);
        sh(&["ip", "link", "set", &vp, "netns", &pair.peer]);
        for (ns, dev, ip) in [(&pair.app, &va, APP_IP), (&pair.peer, &vp, PEER_IP)] {
            pair.exec(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", dev]);
            pair.exec(ns, &["ip", "link", "set", dev, "up"]);
            pair.exec(ns, &["ip", "link", "set", "lo", "up"]);
        }
        pair
    }

    /// Runs a command inside namespace `ns`.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(argv);
        sh(&v)
    }

    /// Everything interception could touch in `ns`, with counters zeroed and kernel-derived
    /// (`proto kernel`) routes left out.
    pub fn snapshot(&self, ns: &str) -> String {
        let mut s = String::new();
        for argv in [
            &["iptables-save"][..],
            &["ip6tables-save"],
            &["nft", "list", "ruleset"],
            &["ip", "rule", "show"],
            &["ip", "-6", "rule", "show"],
            &["ip", "route", "show", "table", "all"],
            &["ip", "-6", "route", "show", "table", "all"],
        ] {
            s.push_str(&format!("## {}\n", argv.join(" ")));
            for line in self.exec(ns, argv).lines() {
                if line.starts_with('#') {
                    continue; // iptables-save timestamps
                }
                if line.contains(" proto kernel ") {
                    // Routes the kernel derives from interface addresses (IPv6 link-local ones
                    // appear asynchronously after the veth comes up); never ours.
                    continue;
                }
                s.push_str(&zero_counters(line));
                s.push('\n');
            }
        }
        s
    }
}

fn zero_counters(line: &str) -> String {
    let mut out = Vec::new();
    let mut words = line.split(' ').peekable();
    while let Some(w) = words.next() {
        if w.starts_with('[') && w.ends_with(']') && w.contains(':') {
            out.push("[0:0]".to_string());
        } else if (w == "packets" || w == "bytes") && words.peek().is_some() {
            out.push(w.to_string());
            words.next();
            out.push("N".to_string());
        } else {
            out.push(w.to_string());
        }
    }
    out.join(" ")
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.app, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        shardcar::sys::enter_netns(&file).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace panicked")
}

/// An HTTP server that answers every request with the client address it saw, then closes.
/// Stops (and releases its namespace) on drop.
pub struct WhoAmI {
    listener: TcpListener,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WhoAmI {
    pub fn start(ns: &str, addr: &str) -> WhoAmI {
        let addr: SocketAddr = addr.parse().unwrap();
        let listener = in_ns(ns, move || TcpListener::bind(addr).expect("bind"));
        let l = listener.try_clone().unwrap();
        let thread = std::thread::spawn(move || {
            while let Ok((mut s, peer)) = l.accept() {
                let _ = s.set_read_timeout(Some(TIMEOUT));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = peer.to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        WhoAmI {
            listener,
            thread: Some(thread),
        }
    }
}

impl Drop for WhoAmI {
    fn drop(&mut self) {
        // shutdown(2) on a listening socket wakes the blocked accept with an error.
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a client saw: its own local address, and the client address the server reported
/// (`None` when the connection closed without an answer).
#[derive(Debug)]
pub struct Seen {
    pub local: SocketAddr,
    pub server_saw: Option<SocketAddr>,
}

impl Seen {
    /// The server saw this very socket: nothing sat in between.
    pub fn direct(&self) -> bool {
        self.server_saw == Some(self.local)
    }
}

/// One GET from inside `ns` to `to`, optionally with `SO_MARK`.
pub fn get(ns: &str, to: &str, mark: Option<u32>) -> Seen {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(ns, move || {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        if let Some(m) = mark {
            sock.set_mark(m).unwrap();
        }
        sock.connect_timeout(&to.into(), TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {to}: {e}"));
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let local = s.local_addr().unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let server_saw = resp
            .split_once("\r\n\r\n")
            .and_then(|(_, body)| body.parse().ok());
        Seen { local, server_saw }
    })
}

/// A `shardcar` process running inside a namespace; killed on drop. Its stderr (the log) is
/// collected line by line.
pub struct Proxy {
    child: Child,
    log: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proxy {
    pub fn start(ns: &str, config: &std::path::Path) -> Proxy {
        Proxy::start_in(ns, config, None)
    }

    /// Like [`Proxy::start`], with the process placed in cgroup v2 directory `cgroup` before
    /// it opens any socket.
    pub fn start_in(ns: &str, config: &std::path::Path, cgroup: Option<&std::path::Path>) -> Proxy {
        let mut cmd = match cgroup {
            Some(cg) => {
                let mut c = Command::new("sh");
                c.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
                    .arg(cg)
                    .arg("ip");
                c
            }
            None => Command::new("ip"),
        };
        let mut child = cmd
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_shardcar")])
            .arg("--config")
            .arg(config)
            .args(["--shards", "1"])
            .env("SHARDCAR_LOG", "shardcar=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shardcar");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut proxy = Proxy {
            child,
            log,
            seen: Vec::new(),
        };
        // Bound once both listeners are announced on stdout.
        let stdout = proxy.child.stdout.take().unwrap();
        let (btx, brx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let ready = lines
                .by_ref()
                .filter(|l| l.starts_with("listening "))
                .take(2)
                .count()
                == 2;
            let _ = btx.send(ready);
            lines.for_each(drop);
        });
        let ready = brx.recv_timeout(TIMEOUT).unwrap_or(false);
        if !ready {
            let log = proxy.drain();
            panic!("shardcar did not start:\n{log}");
        }
        proxy
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_log(&mut self, needle: &str) -> bool {
        if self.seen.iter().any(|l| l.contains(needle)) {
            return true;
        }
        let deadline = Instant::now() + TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(strip_ansi(&line));
                    if hit || self.seen.last().is_some_and(|l| l.contains(needle)) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Everything logged so far (for failure messages).
    pub fn drain(&mut self) -> String {
        while let Ok(l) = self.log.try_recv() {
            self.seen.push(strip_ansi(&l));
        }
        self.seen.join("\n")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("shardcar-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
