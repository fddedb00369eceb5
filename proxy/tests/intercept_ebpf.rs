//! eBPF interception end to end (root; CI runs as root): `intercept install --mode ebpf`.
//!
//! Each test makes its own bpffs mount, its own cgroup v2 directory and a namespace pair
//! (`app` 10.200.0.1, `peer` 10.200.0.2). Shardcar runs in `app` inside the cgroup with an
//! `original_dst` L4 listener on 15001; the app is a child process (this test binary re-run as
//! `app_child`) that joins the cgroup and the `app` namespace and connects to the peer. Checks:
//! the connect is rewritten to loopback and the proxy logs the original destination; 16 MiB
//! round-trip byte-identical with half-close in both directions; the proxy's own (marked)
//! upstream is not captured again, nor marked, excluded-port or out-of-cgroup connects; after
//! uninstall `bpftool prog/map/cgroup` listings equal the pre-install state; `--accelerate`
//! moves the app ↔ proxy bytes off loopback (lo's counters); without root or without the
//! feature, install fails in one line, leaves nothing, and traffic flows uncaptured.

#![cfg_attr(not(feature = "ebpf"), allow(dead_code))]

#[allow(dead_code)] // shared with intercept_netns.rs, which uses the rest
mod netns;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
// Serialises the tests of this file (not the data path, which never locks).
#[allow(clippy::disallowed_types)]
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[cfg(feature = "ebpf")]
use netns::APP_IP;
use netns::{sh, Pair, Proxy, WhoAmI, PEER_IP};

const MARK: &str = "0x539";
const CONFIG: &str = "\
upstream_mark: 0x539
listeners:
  - name: outbound
    address: 0.0.0.0:15001
    original_dst: true
    cluster: passthrough
  - name: inbound
    address: 0.0.0.0:15006
    original_dst: true
    cluster: passthrough
clusters:
  - name: passthrough
    type: original_dst
";
const MIB: usize = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The tests share the host's BPF program and map lists, which the uninstall check compares.
#[allow(clippy::disallowed_types)]
static SERIAL: Mutex<()> = Mutex::new(());

/// Deterministic bytes (xorshift) so both ends can check a stream without shipping it twice.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------- the app, as a child process

/// `read_to_end` that retries `EAGAIN` until a deadline, as an epoll/io_uring app does. A
/// blocking `recv` on a socket in a sockmap returns a spurious `EAGAIN` when woken without data
/// (tcp_bpf_recvmsg waits once, and write-space wakeups share the wait queue), so a blocking
/// full-duplex app is exactly what `--accelerate` cannot serve unchanged (see the README).
fn read_all(s: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out.len()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) && Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
    }
}

/// Runs only when re-executed by [`app`]: joins the cgroup and namespace, does one exchange and
/// prints `RESULT <local address> <outcome>`.
#[test]
fn app_child() {
    let Ok(spec) = std::env::var("SC_EBPF_CHILD") else {
        return;
    };
    let f: Vec<&str> = spec.split('|').collect();
    let [cgroup, ns, action, dst, mark] = f[..] else {
        panic!("bad spec {spec}")
    };
    if !cgroup.is_empty() {
        std::fs::write(format!("{cgroup}/cgroup.procs"), "0").expect("join cgroup");
    }
    let nsf = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
    shardcar::sys::enter_netns(&nsf).expect("setns");
    let dst: SocketAddr = dst.parse().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Ok(m) = u32::from_str_radix(mark.trim_start_matches("0x"), 16) {
        sock.set_mark(m).unwrap();
    }
    sock.connect_timeout(&dst.into(), IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {dst}: {e}"));
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let local = s.local_addr().unwrap();
    let outcome = match action {
        // Send N MiB, half-close, read the echo to EOF.
        a if a.starts_with("echo:") => {
            let n: usize = a[5..].parse().unwrap();
            let data = pattern(7, n * MIB);
            let mut w = s.try_clone().unwrap();
            let writer =
                std::thread::spawn(move || w.write_all(&data).map(|_| w.shutdown(Shutdown::Write)));
            let mut got = Vec::with_capacity(n * MIB);
            let r = read_all(&mut s, &mut got);
            let w = writer.join().unwrap();
            if r.is_err() || w.is_err() {
                format!("io-error read={r:?} write={w:?} got={}", got.len())
            } else if got == pattern(7, n * MIB) {
                "identical".to_string()
            } else {
                format!("differs got={}", got.len())
            }
        }
        // The server sends 1 MiB and half-closes first; then we send 1 MiB and close.
        "server-first" => {
            let mut got = Vec::new();
            let r = read_all(&mut s, &mut got);
            let ok = r.is_ok() && got == pattern(11, MIB);
            let w = s.write_all(&pattern(13, MIB));
            let _ = s.shutdown(Shutdown::Write);
            format!("received-ok={ok} sent={}", w.is_ok())
        }
        // One GET to a WhoAmI: the address the server saw.
        "whoami" => {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            let mut resp = Vec::new();
            let _ = read_all(&mut s, &mut resp);
            String::from_utf8_lossy(&resp)
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default()
        }
        other => panic!("unknown action {other}"),
    };
    println!("\nRESULT {local} {outcome}");
}

/// What one app exchange saw: its own local address and the outcome.
#[derive(Debug)]
struct AppRun {
    local: SocketAddr,
    outcome: String,
}

fn app(cgroup: Option<&Path>, ns: &str, action: &str, dst: &str, mark: Option<&str>) -> AppRun {
    let spec = format!(
        "{}|{ns}|{action}|{dst}|{}",
        cgroup.map(|c| c.display().to_string()).unwrap_or_default(),
        mark.unwrap_or("-")
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "app_child", "--nocapture", "--test-threads=1"])
        .env("SC_EBPF_CHILD", &spec)
        .output()
        .expect("spawn app child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "app {spec} printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let (local, outcome) = line.split_once(' ').unwrap();
    AppRun {
        local: local.parse().unwrap(),
        outcome: outcome.to_string(),
    }
}

// ---------------------------------------------------------------- peers

/// Echoes every byte back and half-closes after the client's EOF.
struct Echo(TcpListener);

impl Echo {
    fn start(ns: &str, addr: &str) -> Echo {
        let addr: SocketAddr = addr.parse().unwrap();
        let l = netns::in_ns(ns, move || TcpListener::bind(addr).expect("bind"));
        let l2 = l.try_clone().unwrap();
        std::thread::spawn(move || {
            while let Ok((mut s, _)) = l2.accept() {
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = s.shutdown(Shutdown::Write);
                });
            }
        });
        Echo(l)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = socket2::SockRef::from(&self.0).shutdown(Shutdown::Both);
    }
}

/// Sends 1 MiB and half-closes, then reports whether it received exactly the client's 1 MiB.
fn server_first(ns: &str, addr: &str) -> (TcpListener, mpsc::Receiver<bool>) {
    let addr: SocketAddr = addr.parse().unwrap();
    let l = netns::in_ns(ns, move || TcpListener::bind(addr).expect("bind"));
    let l2 = l.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l2.accept() {
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            let sent = s.write_all(&pattern(11, MIB)).is_ok();
            let _ = s.shutdown(Shutdown::Write);
            let mut got = Vec::new();
            let r = s.read_to_end(&mut got);
            let _ = tx.send(sent && r.is_ok() && got == pattern(13, MIB));
        }
    });
    (l, rx)
}

// ---------------------------------------------------------------- the eBPF fixture

/// A private bpffs mount and a fresh cgroup v2 directory; both removed on drop.
struct Bpf {
    bpffs: PathBuf,
    cgroup: PathBuf,
}

impl Bpf {
    fn new(tag: &str) -> Bpf {
        let id = format!("{tag}-{}", std::process::id());
        let bpffs = std::env::temp_dir().join(format!("shardcar-bpffs-{id}"));
        std::fs::create_dir_all(&bpffs).unwrap();
        sh(&["mount", "-t", "bpf", "bpf", bpffs.to_str().unwrap()]);
        let root = shardcar::intercept::ebpf::default_cgroup().expect("cgroup2 mounted");
        let cgroup = root.join(format!("shardcar-test-{id}"));
        std::fs::create_dir_all(&cgroup).unwrap();
        Bpf { bpffs, cgroup }
    }

    fn intercept(&self, verb: &str, extra: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_shardcar"))
            .args(["intercept", verb, "--mode", "ebpf", "--mark", MARK])
            .arg("--cgroup")
            .arg(&self.cgroup)
            .arg("--bpffs")
            .arg(&self.bpffs)
            .args(extra)
            .output()
            .unwrap()
    }

    fn ok(&self, verb: &str, extra: &[&str]) -> String {
        let out = self.intercept(verb, extra);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "intercept {verb} failed: {text}");
        text
    }

    /// The host's BPF programs and maps, and what is attached to our cgroup.
    fn listing(&self) -> String {
        let cg = self.cgroup.to_str().unwrap();
        let mut s = String::new();
        for argv in [
            &["bpftool", "prog", "show"][..],
            &["bpftool", "map", "show"],
            &["bpftool", "cgroup", "show", cg],
        ] {
            s.push_str(&format!("## {}\n{}", argv.join(" "), sh(argv)));
        }
        s
    }
}

impl Drop for Bpf {
    fn drop(&mut self) {
        let _ = self.intercept("uninstall", &[]);
        let _ = Command::new("umount").arg(&self.bpffs).status();
        let _ = std::fs::remove_dir(&self.bpffs);
        // The cgroup empties once the proxy and app processes are reaped; bounded retry.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.cgroup).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn can_run(test: &str) -> bool {
    if !netns::root_or_skip(test) {
        return false;
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!(
            "\n!!!!!!!! SKIPPED {test}: bpftool missing (apt-get install bpftool) !!!!!!!!\n"
        );
        return false;
    }
    true
}

fn lo_tx_bytes(pair: &Pair) -> u64 {
    pair.exec(&pair.app, &["cat", "/sys/class/net/lo/statistics/tx_bytes"])
        .trim()
        .parse()
        .unwrap()
}

struct World {
    pair: Pair,
    _echo: Echo,
    _who: WhoAmI,
    _who_excluded: WhoAmI,
    _dir: netns::TempDir,
    proxy: Proxy,
}

fn world(bpf: &Bpf, tag: &str) -> World {
    let pair = Pair::create();
    let echo = Echo::start(&pair.peer, &format!("{PEER_IP}:9090"));
    let who = WhoAmI::start(&pair.peer, &format!("{PEER_IP}:9093"));
    let who_excluded = WhoAmI::start(&pair.peer, &format!("{PEER_IP}:9091"));
    let dir = netns::TempDir::new(&format!("ebpf-{tag}"));
    let cfg = dir.0.join("shardcar.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let proxy = Proxy::start_in(&pair.app, &cfg, Some(&bpf.cgroup));
    World {
        pair,
        _echo: echo,
        _who: who,
        _who_excluded: who_excluded,
        _dir: dir,
        proxy,
    }
}

/// Waits (bounded) until `f` holds, for kernel state that is freed asynchronously.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

// ---------------------------------------------------------------- tests

#[cfg(feature = "ebpf")]
fn capture_scenario(accelerate: bool) {
    let tag = if accelerate { "accel" } else { "plain" };
    let bpf = Bpf::new(tag);
    let mut w = world(&bpf, tag);
    let cg = Some(bpf.cgroup.as_path());
    let before = bpf.listing();
    let extra: &[&str] = if accelerate {
        &["--exclude-outbound-ports", "9091", "--accelerate"]
    } else {
        &["--exclude-outbound-ports", "9091"]
    };
    bpf.ok("install", extra);
    bpf.ok("install", extra); // idempotent: replaces, does not stack
    let installed = bpf.listing();
    assert_eq!(
        installed.matches("cgroup_inet4_connect").count(),
        1,
        "a second install must not stack:\n{installed}"
    );
    let shown = bpf.ok("show", &[]);
    assert!(
        shown.contains("installed") && shown.contains("link_connect4"),
        "{shown}"
    );

    // Outbound capture: the connect is rewritten to the proxy on loopback, the proxy sees the
    // original destination, and 16 MiB come back identical after a client-first half-close.
    let lo_before = lo_tx_bytes(&w.pair);
    let run = app(cg, &w.pair.app, "echo:16", &format!("{PEER_IP}:9090"), None);
    let lo_delta = lo_tx_bytes(&w.pair) - lo_before;
    assert_eq!(run.outcome, "identical", "log:\n{}", w.proxy.drain());
    assert!(
        run.local.ip().is_loopback(),
        "connect was not rewritten to the proxy: {run:?}"
    );
    assert!(
        w.proxy.wait_log(&format!("original_dst={PEER_IP}:9090")),
        "no original destination in the log:\n{}",
        w.proxy.drain()
    );
    // 16 MiB each way between app and proxy cross lo unless the sockmap carries them.
    if accelerate {
        assert!(
            lo_delta < 2 * MIB as u64,
            "accelerated, yet {lo_delta} bytes crossed lo"
        );
    } else {
        assert!(
            lo_delta > 32 * MIB as u64,
            "only {lo_delta} bytes crossed lo"
        );
    }

    // Half-close the other way: the server finishes sending first, the client keeps sending.
    let (_l, rx) = server_first(&w.pair.peer, &format!("{PEER_IP}:9092"));
    let run = app(
        cg,
        &w.pair.app,
        "server-first",
        &format!("{PEER_IP}:9092"),
        None,
    );
    assert_eq!(run.outcome, "received-ok=true sent=true");
    assert_eq!(
        rx.recv_timeout(IO_TIMEOUT),
        Ok(true),
        "server side of half-close"
    );

    // The proxy's own upstream is not captured again: one captured connection per app connect,
    // and the peer saw the proxy's veth address.
    let captured = |p: &mut Proxy| p.drain().matches("captured connection").count();
    let n0 = captured(&mut w.proxy);
    let run = app(cg, &w.pair.app, "whoami", &format!("{PEER_IP}:9093"), None);
    let saw: SocketAddr = run.outcome.parse().unwrap_or_else(|_| panic!("{run:?}"));
    assert_eq!(saw.ip().to_string(), APP_IP, "{run:?}");
    assert!(w.proxy.wait_log(&format!("original_dst={PEER_IP}:9093")));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(captured(&mut w.proxy), n0 + 1, "{}", w.proxy.drain());

    // Exclusions: marked sockets, excluded ports and processes outside the cgroup go direct.
    for (cgroup, port, mark, what) in [
        (cg, 9093, Some(MARK), "marked"),
        (cg, 9091, None, "excluded port"),
        (None, 9093, None, "outside the cgroup"),
    ] {
        let run = app(
            cgroup,
            &w.pair.app,
            "whoami",
            &format!("{PEER_IP}:{port}"),
            mark,
        );
        assert_eq!(
            run.outcome,
            run.local.to_string(),
            "{what} connect was captured: {run:?}"
        );
    }

    // Uninstall leaves the host's BPF listings exactly as before (frees are asynchronous).
    bpf.ok("uninstall", &[]);
    assert!(
        eventually(|| bpf.listing() == before),
        "after uninstall:\n{}\nbefore:\n{before}",
        bpf.listing()
    );
    assert!(!bpf.bpffs.join("shardcar").exists());
    // And traffic flows uncaptured again.
    let run = app(cg, &w.pair.app, "whoami", &format!("{PEER_IP}:9093"), None);
    assert_eq!(run.outcome, run.local.to_string(), "{run:?}");
}

#[cfg(feature = "ebpf")]
#[test]
fn outbound_capture_integrity_exclusions_uninstall() {
    if !can_run("outbound_capture_integrity_exclusions_uninstall") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    capture_scenario(false);
}

#[cfg(feature = "ebpf")]
#[test]
fn accelerated_sockmap_integrity() {
    if !can_run("accelerated_sockmap_integrity") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    capture_scenario(true);
}

/// Without the capability (or, in the default build, without the feature) install says why in
/// one line, exits 3, leaves nothing attached or pinned, and traffic flows uncaptured.
#[test]
fn fail_open_without_capability_or_feature() {
    if !can_run("fail_open_without_capability_or_feature") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bpf = Bpf::new("failopen");
    let w = world(&bpf, "failopen");
    let before = bpf.listing();
    let out = Command::new("setpriv")
        .args(["--reuid", "1337", "--regid", "1337", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_shardcar"))
        .args(["intercept", "install", "--mode", "ebpf", "--mark", MARK])
        .arg("--cgroup")
        .arg(&bpf.cgroup)
        .arg("--bpffs")
        .arg(&bpf.bpffs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let reason = if cfg!(feature = "ebpf") {
        "permission denied"
    } else {
        "built without the `ebpf` cargo feature"
    };
    assert!(err.contains(reason), "{err}");
    assert_eq!(bpf.listing(), before);
    assert!(!bpf.bpffs.join("shardcar").exists());
    let run = app(
        Some(&bpf.cgroup),
        &w.pair.app,
        "whoami",
        &format!("{PEER_IP}:9093"),
        None,
    );
    assert_eq!(run.outcome, run.local.to_string(), "{run:?}");
}
