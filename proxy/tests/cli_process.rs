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
