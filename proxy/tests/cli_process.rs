//! The `shardcar` binary as a user runs it: `validate`, and SIGTERM draining in-flight work.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");

fn temp_config(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shardcar-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("config.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn validate_reports_field_and_line() {
    let bad = "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    cluster: c\nclusters:\n  - name: c\n    endpoints:\n      - \"127.0.0.1:80x\"\n";
    let p = temp_config("bad", bad);
    let out = Command::new(BIN).arg("validate").arg(&p).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clusters[0].endpoints[0]: invalid port \"80x\" at line 8"),
        "{err}"
    );
    let good = bad.replace("80x", "80");
    let p = temp_config("good", &good);
    let out = Command::new(BIN).arg("validate").arg(&p).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn start_with_invalid_config_fails_with_the_reason() {
    let p = temp_config("dup", "listeners: []\nclusters: []\n");
    let out = Command::new(BIN).arg("--config").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one listener"));
}

struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Proxy {
    fn spawn(config: &std::path::Path) -> Proxy {
        let mut child = Command::new(BIN)
            .args(["--shards", "2", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening l4 ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Proxy { child, addr }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_drains_an_in_flight_transfer() {
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = temp_config(
        "drain",
        &l4_yaml("copy", &[up.local_addr().unwrap()], "", ""),
    );
    let mut proxy = Proxy::spawn(&p);
    let mut client = connect(proxy.addr);
    let (mut upstream, _) = up.accept().unwrap();
    let data = Arc::new(payload(4 << 20, 7));

    // First half arrives before the signal.
    let half = data.len() / 2;
    upstream.write_all(&data[..half]).unwrap();
    let mut got = vec![0u8; half];
    client.read_exact(&mut got).unwrap();

    proxy.signal("-TERM");
    // The listener closes: new connections are refused (retry briefly while the shards stop).
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(proxy.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The in-flight transfer completes.
    upstream.write_all(&data[half..]).unwrap();
    upstream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    assert!(got == *data, "drained transfer is byte-identical");
    drop(client);
    drop(upstream);
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("exits after draining");
    assert!(status.success(), "{status:?}");
}

#[test]
fn drain_timeout_closes_stuck_connections_and_exits_zero() {
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let yaml = l4_yaml("copy", &[up.local_addr().unwrap()], "", "")
        .replace("drain_timeout: 5s", "drain_timeout: 300ms");
    let p = temp_config("stuck", &yaml);
    let mut proxy = Proxy::spawn(&p);
    let mut client = connect(proxy.addr);
    let (_upstream, _) = up.accept().unwrap();
    let started = Instant::now();
    proxy.signal("-INT");
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("exits after the drain timeout");
    assert!(status.success());
    assert!(started.elapsed() >= Duration::from_millis(250));
    let mut b = [0u8; 1];
    assert_eq!(
        client.read(&mut b).unwrap_or(0),
        0,
        "stuck connection is closed"
    );
}

const L4_CONFIG: &str = "listeners:
  - name: l4
    address: 127.0.0.1:0
    cluster: c
clusters:
  - name: c
    endpoints: [\"127.0.0.1:9\"]
";

/// Runs the binary under `sh` with `limits` (ulimit commands) applied first.
fn spawn_limited(limits: &str, config: &std::path::Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{limits}; exec {BIN} --shards 1 --config {}",
            config.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_shard_that_cannot_start_makes_the_process_exit_with_the_reason() {
    // 100 MB of address space cannot hold the copy-buffer reservation for 8192 fds
    // (4096 connections × 2 × 16 KiB = 128 MiB), so the shard fails to start.
    let p = temp_config("nomem", L4_CONFIG);
    let mut child = spawn_limited("ulimit -n 8192; ulimit -v 100000", &p);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process kept running with a shard that never started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("shard 0: cannot map copy buffers"), "{err}");
}

#[test]
fn accept_at_the_fd_limit_backs_off_with_few_log_lines() {
    // An upstream that completes handshakes (in its backlog) and holds them: every proxied
    // connection keeps two of the proxy's fds.
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "drain_timeout: 1s\n{}",
        L4_CONFIG.replace("127.0.0.1:9", &up.local_addr().unwrap().to_string())
    );
    let p = temp_config("emfile", &config);
    let mut child = spawn_limited("ulimit -n 48", &p);
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening l4 ")
        .unwrap()
        .parse()
        .unwrap();
    // More connections than the proxy has fds: accept fails with EMFILE for 1.5 s while the
    // kernel keeps the rest queued.
    let conns: Vec<_> = (0..60)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    drop(conns);
    let mut err = String::new();
    let _ = child.wait();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let lines = err.matches("accept failed").count();
    // Exponential backoff from 5 ms and one line per second: at most 2 lines in 1.5 s (a
    // fixed 10 ms retry logged ~150).
    assert!(lines >= 1, "EMFILE never hit:\n{err}");
    assert!(lines <= 2, "{lines} accept-failure lines in 1.5 s");
}
