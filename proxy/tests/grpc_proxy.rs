//! gRPC through the proxy: a Python grpcio client and server (real HTTP/2 on both sides, the
//! cluster is `protocol: http2`), all four call shapes with 1,000 messages, `grpc-timeout` as
//! the deadline, and proxy errors as trailers-only gRPC statuses.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::grpc::{client, GrpcServer};
use support::tools::{have_python_modules, python, run, script};
use support::DeadPort;

fn proxy(upstream: SocketAddr) -> (Server, SocketAddr) {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/t.T/\"}}
            cluster: grpc
clusters:
  - name: grpc
    protocol: http2
    endpoints: [\"{upstream}\"]
    connect_timeout: 500ms
"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

fn usable() -> bool {
    have_python_modules("grpc")
}

#[test]
fn unary_server_client_and_bidi_streams_of_1000_messages() {
    if !usable() {
        return;
    }
    let srv = GrpcServer::start();
    let (_p, addr) = proxy(srv.addr);
    let r = client(&["client", &addr.to_string()]);
    assert_eq!(r["unary"], "hello", "{r}");
    assert_eq!(r["server_stream"], 1000, "{r}");
    assert_eq!(r["server_stream_last"], "r999", "{r}");
    // 1,000 messages of i % 100 bytes: 49,500 bytes.
    assert_eq!(r["client_stream"], "1000 49500", "{r}");
    assert_eq!(r["bidi"], 1000, "{r}");
}

fn status(addr: SocketAddr, method: &str) -> serde_json::Value {
    client(&["status", &addr.to_string(), method])
}

#[test]
fn proxy_errors_are_grpc_statuses() {
    if !usable() {
        return;
    }
    // No route → UNIMPLEMENTED.
    let srv = GrpcServer::start();
    let (_p, addr) = proxy(srv.addr);
    assert_eq!(status(addr, "/other.S/M")["code"], "UNIMPLEMENTED");
    // Upstream down → UNAVAILABLE.
    let dead = DeadPort::new();
    let (_p2, addr2) = proxy(dead.addr);
    let r = status(addr2, "/t.T/Unary");
    assert_eq!(r["code"], "UNAVAILABLE", "{r}");
}

#[test]
fn grpc_timeout_is_the_deadline_and_answers_deadline_exceeded_trailers_only() {
    if !(usable() && have_python_modules("h2")) {
        return;
    }
    let srv = GrpcServer::start();
    let (_p, addr) = proxy(srv.addr);
    // A raw h2 client without a deadline of its own: only the proxy can end this call early
    // (the server sleeps 2 s).
    let started = Instant::now();
    let out = run(
        &python(),
        &[
            &script("h2req.py"),
            &addr.to_string(),
            "POST",
            "/t.T/Slow",
            "3",
            "grpc",
            "header=content-type:application/grpc",
            "header=te:trailers",
            "header=grpc-timeout:300m",
        ],
    );
    let took = started.elapsed();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(
        r["headers"]["grpc-status"], "4",
        "trailers-only DEADLINE_EXCEEDED: {r}"
    );
    assert_eq!(r["headers"]["x-shardcar-flag"], "UT", "{r}");
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
}
