//! Upstream HTTP/2 PING keepalive (`http2.keepalive_interval` / `keepalive_timeout` on a
//! cluster): PINGs go out at the interval, and a connection whose peer stops answering is
//! closed and replaced, so the next request gets a fresh connection instead of hanging on a
//! dead one (the client would wait out its 20 s read timeout). The upstream is a raw `h2` server that can go silent.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::grpc::PyServer;
use support::tools::have_python_modules;

/// An HTTP/1 listener → a `protocol: http2` cluster with `http2` settings `h2`.
fn proxy(upstream: SocketAddr, h2: &str) -> (Server, SocketAddr) {
    support::http_proxy_to(
        upstream,
        &format!("    protocol: http2\n    http2: {{{h2}}}\n"),
    )
}

#[test]
fn pings_go_out_at_the_interval() {
    if !have_python_modules("h2") {
        return;
    }
    let server = PyServer::run("mute_h2_server.py", &[]);
    let (_p, addr) = proxy(server.addr, "keepalive_interval: 100ms");
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/").text(), "conn 1");
    std::thread::sleep(Duration::from_millis(1000));
    let r = c.get("/pings");
    let pings: u32 = r.text().parse().unwrap();
    // 10 expected in 1 s; each cycle is the interval plus a round trip and a timer tick.
    assert!(pings >= 5, "only {pings} PINGs in 1 s at a 100 ms interval");
    assert!(pings <= 11, "{pings} PINGs in 1 s at a 100 ms interval");
}

#[test]
fn a_silent_upstream_connection_is_replaced_after_the_keepalive_timeout() {
    if !have_python_modules("h2") {
        return;
    }
    let server = PyServer::run("mute_h2_server.py", &[]);
    let (_p, addr) = proxy(
        server.addr,
        "keepalive_interval: 100ms, keepalive_timeout: 200ms",
    );
    let mut c = Client::connect(addr);
    assert_eq!(
        c.get("/mute").text(),
        "muted",
        "connection 1 now never answers"
    );
    // Dead after interval + timeout = 300 ms; wait that plus a generous margin.
    std::thread::sleep(Duration::from_millis(800));
    let t = Instant::now();
    let r = c.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "conn 2"), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn keepalive_is_a_cluster_setting() {
    let yaml = "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    http2: {keepalive_interval: 1s}
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {prefix: \"/\"}
            cluster: app
clusters:
  - name: app
    endpoints: [\"127.0.0.1:9\"]
";
    let e = Config::from_yaml(yaml).unwrap_err().to_string();
    assert!(
        e.contains("listeners[0].http2.keepalive_interval: only a cluster's http2 block"),
        "{e}"
    );
    let e = Config::from_yaml(
        &yaml
            .replace("    http2: {keepalive_interval: 1s}\n", "")
            .replace(
                "    endpoints:",
                "    http2: {keepalive_timeout: 1s}\n    endpoints:",
            ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("clusters[0].http2.keepalive_timeout: has no effect without keepalive_interval"),
        "{e}"
    );
}
