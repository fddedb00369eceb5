//! An in-process admin API for a [`Server`] started by a test, its Prometheus page, and
//! `promtool check metrics` over that page.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use shardcar::Server;

use super::tools::have;

/// Serves `p`'s admin API in this process on 127.0.0.1 port 0; returns its address.
pub fn admin_of(p: &Server) -> SocketAddr {
    let ctx = shardcar::admin::AdminCtx {
        server: p.handle(),
        started: std::time::Instant::now(),
        health_failed: Default::default(),
        control: None,
        baseline: Default::default(),
    };
    shardcar::admin::serve("127.0.0.1:0".parse().unwrap(), shardcar::admin::ADMIN, ctx)
        .expect("admin starts")
        .addr
}

/// `GET /stats/prometheus` on the admin port: the body.
pub fn scrape(admin: SocketAddr) -> String {
    let mut c = TcpStream::connect(admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /stats/prometheus HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// `promtool check metrics` finds nothing in `text` (skipped without promtool).
pub fn promtool_clean(text: &str) {
    if !have("promtool", &["--version"]) {
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // Allowed, as in tests/metrics_prometheus.rs: Istio's standard name carries its unit.
    let allowed =
        "istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\"";
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && *l != allowed)
        .collect();
    assert!(problems.is_empty(), "promtool: {problems:#?}");
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "promtool: {report}"
    );
}

/// The sum of the samples whose line starts with `prefix` (a name and the start of its
/// labels, e.g. `x_total{side="upstream"`); 0 when there are none.
pub fn sum_of(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}
