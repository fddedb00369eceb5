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
    proxy_with(upstream, "")
}

/// `route` is extra YAML for the route (indented for its keys).
fn proxy_with(upstream: SocketAddr, route: &str) -> (Server, SocketAddr) {
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
{route}clusters:
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

/// A `Flaky` call whose first `fail` tries (for `key`) answer UNAVAILABLE, padded by `pad`.
fn flaky(addr: SocketAddr, key: &str, fail: u32, pad: usize) -> serde_json::Value {
    let payload = format!("{key}:{fail}");
    let pad = pad.to_string();
    client(&["status", &addr.to_string(), "/t.T/Flaky", &payload, &pad])
}

#[test]
fn retry_on_grpc_statuses_resends_the_call_while_its_body_fits_the_buffer() {
    if !usable() {
        return;
    }
    let srv = GrpcServer::start();
    let route =
        "            retry_policy: {retry_on: [unavailable, resource-exhausted], num_retries: 3}\n";
    let (_p, addr) = proxy_with(srv.addr, route);
    // Two UNAVAILABLE answers, then OK: the third try succeeds.
    let r = flaky(addr, "a", 2, 0);
    assert_eq!(
        (r["code"].as_str(), r["reply"].as_str()),
        (Some("OK"), Some("ok after 3")),
        "{r}"
    );
    // More failures than retries: 1 + 3 tries, the last answer is the client's.
    let r = flaky(addr, "b", 9, 0);
    assert_eq!(
        (r["code"].as_str(), r["details"].as_str()),
        (Some("UNAVAILABLE"), Some("call 4")),
        "{r}"
    );
    // A body larger than retry_buffer_size (64 KiB) went up unbuffered: no retry.
    let r = flaky(addr, "c", 1, 100 * 1024);
    assert_eq!(
        (r["code"].as_str(), r["details"].as_str()),
        (Some("UNAVAILABLE"), Some("call 1")),
        "{r}"
    );
    // A status the policy does not name is not retried.
    let (_p2, addr2) = proxy_with(
        srv.addr,
        "            retry_policy: {retry_on: [cancelled], num_retries: 3}\n",
    );
    let r = flaky(addr2, "d", 1, 0);
    assert_eq!(
        (r["code"].as_str(), r["details"].as_str()),
        (Some("UNAVAILABLE"), Some("call 1")),
        "{r}"
    );
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
