//! HTTP/2 upstreams (`protocol: http2` clusters): h2→h2 through two proxies (bodies
//! checksummed, trailers), streams multiplexed on a shared connection up to the cluster's and
//! the peer's concurrency limits, and GOAWAY: refused streams retried, in-flight ones finished.

mod support;

use std::net::SocketAddr;

use shardcar::{Config, Server};
use support::grpc::PyServer;
use support::origin::Origin;
use support::tools::{have, have_python_modules, run, TempDir};

/// A `protocol: http2` listener forwarding everything to `upstream` (a cluster speaking
/// `cluster_protocol`), with extra listener and cluster YAML.
fn proxy(upstream: SocketAddr, cluster_protocol: &str, listener: &str, cluster: &str) -> Server {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http2
{listener}    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    protocol: {cluster_protocol}
    endpoints: [\"{upstream}\"]
    connect_timeout: 500ms
{cluster}"
    );
    Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts")
}

fn addr(s: &Server) -> SocketAddr {
    s.addr("web").unwrap()
}

#[test]
fn h2_to_h2_bodies_round_trip_checksummed() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let inner = proxy(origin.addr, "http1", "", "");
    let outer = proxy(addr(&inner), "http2", "", "");
    let dir = TempDir::new("h2h2");
    for (i, n) in [1usize, 64 * 1024, 16 << 20].into_iter().enumerate() {
        let data = support::payload(n, i as u64 + 11);
        let f = dir.file(&format!("up{i}"));
        std::fs::write(&f, &data).unwrap();
        let got = dir.file(&format!("down{i}"));
        let out = run(
            "curl",
            &[
                "-sS",
                "--max-time",
                "30",
                "--http2-prior-knowledge",
                "--data-binary",
                &format!("@{}", f.display()),
                "-o",
                got.to_str().unwrap(),
                &format!("http://{}/echo", addr(&outer)),
            ],
        );
        assert!(out.status.success());
        assert!(std::fs::read(&got).unwrap() == data, "{n} bytes via h2→h2");
    }
    let t = outer.total_stats();
    assert_eq!(t.h2_upstream_connected, 1, "one upstream connection: {t:?}");
    assert_eq!(
        t.h2_upstream_multiplexed, 2,
        "later requests reused it: {t:?}"
    );
}

#[test]
fn chunked_trailers_survive_h2_to_h2() {
    if !have("nghttp", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let inner = proxy(origin.addr, "http1", "", "");
    let outer = proxy(addr(&inner), "http2", "", "");
    let out = run(
        "nghttp",
        &["-nv", &format!("http://{}/chunked/70000", addr(&outer))],
    );
    let v = String::from_utf8_lossy(&out.stdout);
    let at = v.find("x-checksum: ok").expect("trailer relayed");
    assert!(v[at..].contains("flags=0x05"), "{v}");
}

/// Connections the inner proxy accepted while `outer` ran 200 requests 20 at a time.
fn upstream_connections(outer_cluster: &str, inner_listener: &str) -> (u64, u64) {
    let origin = Origin::start("o1");
    let inner = proxy(origin.addr, "http1", inner_listener, "");
    let outer = proxy(addr(&inner), "http2", "", outer_cluster);
    let out = run(
        "h2load",
        &[
            "-n",
            "200",
            "-c",
            "1",
            "-m",
            "20",
            &format!("http://{}/sleep/20", addr(&outer)),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("200 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
    (
        inner.total_stats().accepted,
        outer.total_stats().h2_upstream_multiplexed,
    )
}

#[test]
fn streams_multiplex_and_a_full_connection_opens_another() {
    if !have("h2load", &["--version"]) {
        return;
    }
    // Default cap (100 streams): the 20 concurrent streams share one connection.
    let (conns, shared) = upstream_connections("", "");
    assert_eq!(conns, 1, "one shared upstream connection");
    assert!(shared >= 199, "{shared} streams reused it");
    // Our cap of 5 per connection: 20 concurrent streams need at least 4 connections.
    let (conns, _) = upstream_connections("    http2: {max_concurrent_streams: 5}\n", "");
    assert!((4..=20).contains(&conns), "{conns} connections for cap 5");
    // The peer's SETTINGS_MAX_CONCURRENT_STREAMS of 4 is respected the same way.
    let (conns, _) = upstream_connections("", "    http2: {max_concurrent_streams: 4}\n");
    assert!(
        (5..=20).contains(&conns),
        "{conns} connections for a peer limit of 4"
    );
}

#[test]
fn goaway_refused_streams_are_retried_and_in_flight_ones_finish() {
    if !(have("h2load", &["--version"]) && have_python_modules("h2")) {
        return;
    }
    let server = PyServer::run("goaway_server.py", &["10"]);
    let outer = proxy(server.addr, "http2", "", "");
    // Sequential: every tenth request on a connection is followed by GOAWAY.
    let out = run(
        "h2load",
        &[
            "-n",
            "30",
            "-c",
            "1",
            "-m",
            "1",
            &format!("http://{}/x", addr(&outer)),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("30 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(text.contains("status codes: 30 2xx"), "{text}");
    // Concurrent (6 in flight): the streams above each GOAWAY's last id were never processed
    // and must be retried on a new connection; the ones below it finish.
    let out = run(
        "h2load",
        &[
            "-n",
            "60",
            "-c",
            "1",
            "-m",
            "6",
            &format!("http://{}/slow", addr(&outer)),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status codes: 60 2xx"), "{text}");
    let t = outer.total_stats();
    assert!(t.h2_upstream_connected >= 9, "{t:?}");
}
