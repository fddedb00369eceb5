//! HTTP/1.1 clients to HTTP/2 upstreams (`protocol: http2` clusters): h1→h2 translation.
//! The path is client (HTTP/1.1) → outer proxy (h1 listener, h2 cluster) → inner proxy (h2
//! listener, h1 cluster) → origin, so every request crosses an h2 hop. Bodies of 1 B, 64 KiB
//! and 16 MiB are checksummed both ways with content-length and chunked uploads; request
//! trailers reach the origin and response trailers come back as chunked trailers; HTTP/1.0
//! clients get a close-delimited body; keep-alive holds across requests; a dead upstream is
//! 503 `UF`.

mod support;

use std::net::SocketAddr;

use shardcar::{Config, Server};
use support::client::Client;
use support::origin::{expected_pattern, Origin};
use support::tools::{have, run, TempDir};

/// A listener of `protocol` forwarding everything to `upstream`, a cluster of
/// `cluster_protocol`.
fn proxy(upstream: SocketAddr, protocol: &str, cluster_protocol: &str, route: &str) -> Server {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: {protocol}
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
{route}clusters:
  - name: app
    protocol: {cluster_protocol}
    endpoints: [\"{upstream}\"]
    connect_timeout: 500ms
"
    );
    Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts")
}

struct Chain {
    _origin: Origin,
    inner: Server,
    outer: Server,
}

fn chain() -> Chain {
    let origin = Origin::start("o1");
    let inner = proxy(origin.addr, "http2", "http1", "");
    let outer = proxy(inner.addr("web").unwrap(), "http", "http2", "");
    Chain {
        _origin: origin,
        inner,
        outer,
    }
}

impl Chain {
    fn addr(&self) -> SocketAddr {
        self.outer.addr("web").unwrap()
    }
}

#[test]
fn bodies_round_trip_checksummed_with_length_and_chunked_uploads() {
    if !have("curl", &["--version"]) {
        return;
    }
    let c = chain();
    let dir = TempDir::new("h1h2");
    for (i, n) in [1usize, 64 * 1024, 16 << 20].into_iter().enumerate() {
        let data = support::payload(n, i as u64 + 5);
        let f = dir.file(&format!("up{i}"));
        std::fs::write(&f, &data).unwrap();
        for chunked in [false, true] {
            let got = dir.file(&format!("down{i}{chunked}"));
            let mut args = vec!["-sS", "--http1.1", "--max-time", "30", "--data-binary"];
            let at = format!("@{}", f.display());
            args.push(&at);
            if chunked {
                args.extend(["-H", "transfer-encoding: chunked"]);
            }
            let url = format!("http://{}/echo", c.addr());
            args.extend(["-o", got.to_str().unwrap(), &url]);
            let out = run("curl", &args);
            assert!(out.status.success(), "{n} bytes, chunked={chunked}");
            assert!(
                std::fs::read(&got).unwrap() == data,
                "{n} bytes via h1→h2 (chunked upload: {chunked})"
            );
        }
    }
    let t = c.outer.total_stats();
    assert_eq!(
        t.h2_upstream_connected, 1,
        "one shared h2 connection: {t:?}"
    );
    assert_eq!(
        t.h2_upstream_multiplexed, 5,
        "later requests reused it: {t:?}"
    );
    assert!(
        c.inner.total_stats().h2_streams >= 6,
        "all six requests crossed the h2 hop"
    );
}

#[test]
fn request_and_response_trailers_cross_the_h2_hop() {
    let c = chain();
    let mut cl = Client::connect(c.addr());
    cl.send(
        b"POST /echo-trailers HTTP/1.1\r\nHost: svc\r\nTE: trailers\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-req-sum: 12345\r\n\r\n",
    );
    let r = cl.read_response(false).expect("response");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(
        r.trailers
            .contains(&("x-echo-x-req-sum".into(), "12345".into())),
        "request trailer reached the origin: {r:?}"
    );
    assert!(
        r.trailers.contains(&("x-checksum".into(), "ok".into())),
        "response trailer came back: {r:?}"
    );
    assert_eq!(
        r.header("x-seen-te"),
        Some("trailers"),
        "TE: trailers crossed"
    );
    assert_eq!(
        r.header("x-seen-host"),
        Some("svc"),
        "Host → :authority → Host"
    );
    // Keep-alive: the same connection serves the next request.
    let r = cl.get("/name");
    assert_eq!((r.status, r.text().as_str()), (200, "o1"));
    assert_eq!(r.header("x-seen-framing"), Some("none"));
}

#[test]
fn http10_client_gets_a_close_delimited_body() {
    let c = chain();
    let mut cl = Client::connect(c.addr());
    cl.send(b"GET /chunked/70000 HTTP/1.0\r\n\r\n");
    let r = cl.read_response(false).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("transfer-encoding"),
        None,
        "no chunked to HTTP/1.0"
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.body == expected_pattern(70000), "body intact");
}

#[test]
fn malformed_chunked_upload_is_400_and_other_connections_flow() {
    let c = chain();
    let mut bad = Client::connect(c.addr());
    bad.send(b"POST /echo HTTP/1.1\r\nHost: svc\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
    let r = bad.read_response(false).expect("an answer");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(bad.closed_within(std::time::Duration::from_secs(5)));
    let mut good = Client::connect(c.addr());
    assert_eq!(good.get("/name").status, 200);
}

#[test]
fn dead_h2_upstream_is_503_uf() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let outer = proxy(addr, "http", "http2", "");
    let mut cl = Client::connect(outer.addr("web").unwrap());
    let r = cl.get("/name");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("x-shardcar-flag"), Some("UF"));
}
