//! HTTP/2, TLS, mTLS and the error kinds, over real sockets against the test origin.

mod support;

use std::time::Duration;

use shardload::{Protocol, TlsOptions};
use support::*;

#[test]
fn h2c_with_streams_succeeds() {
    let o = origin(|o| o.body_size = 1000);
    let mut p = closed(&format!("http://{}/", o.addr()), 8, 0.5);
    p.protocol = Protocol::H2;
    p.connections = 2;
    p.streams = 4;
    let out = shardload::run(&p).unwrap();
    let r = &out.report;
    assert_eq!(r.summary.errors, 0, "{:?}", out.stats.first_error);
    assert!(r.status["200"] > 50);
    assert_eq!(r.summary.bytes_in, 1000 * r.summary.requests);
    assert_eq!(r.config.protocol, "h2");
}

#[test]
fn h2_post_bodies_are_sent() {
    let o = origin(|_| {});
    let mut p = closed(&format!("http://{}/", o.addr()), 2, 0.3);
    p.protocol = Protocol::H2;
    p.method = "POST".into();
    p.body = bytes::Bytes::from(vec![b'a'; 100_000]);
    let out = shardload::run(&p).unwrap();
    assert_eq!(out.report.summary.errors, 0, "{:?}", out.stats.first_error);
    assert!(out.report.summary.bytes_out >= 100_000 * out.report.summary.requests);
}

fn tls_run(protocol: Protocol, mtls: bool, client_cert: bool) -> shardload::Outcome {
    let pki = pki(&format!("{protocol:?}-{mtls}-{client_cert}"));
    let o = origin(|o| o.tls = Some(server_tls(&pki, mtls)));
    let mut p = closed(&format!("https://localhost:{}/", o.addr().port()), 4, 0.4);
    p.protocol = protocol;
    p.tls = Some(TlsOptions {
        ca: Some(pki.ca.clone()),
        cert: client_cert.then(|| pki.client_cert.clone()),
        key: client_cert.then(|| pki.client_key.clone()),
        sni: None,
        insecure: false,
    });
    p.timeout = Duration::from_secs(2);
    shardload::run(&p).unwrap()
}

#[test]
fn tls_http1_and_h2_succeed() {
    for proto in [Protocol::Http1, Protocol::H2] {
        let out = tls_run(proto, false, false);
        assert_eq!(
            out.report.summary.errors, 0,
            "{proto:?}: {:?}",
            out.stats.first_error
        );
        assert!(out.report.summary.requests > 20, "{proto:?}");
        assert!(out.report.config.tls);
    }
}

#[test]
fn mtls_requires_the_client_certificate() {
    let ok = tls_run(Protocol::Http1, true, true);
    assert_eq!(ok.report.summary.errors, 0, "{:?}", ok.stats.first_error);
    assert!(ok.report.summary.requests > 20);
    let refused = tls_run(Protocol::Http1, true, false);
    assert_eq!(refused.report.summary.requests, 0);
    let e = &refused.report.errors;
    assert!(e.tls + e.reset > 0, "{e:?}");
}

#[test]
fn refused_connections_count_as_connect_errors() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let out = shardload::run(&closed(&format!("http://{addr}/"), 2, 0.3)).unwrap();
    assert!(out.report.errors.connect > 0, "{:?}", out.report.errors);
    assert_eq!(out.report.summary.requests, 0);
}

#[test]
fn resets_count_as_reset_errors() {
    let o = origin(|o| o.reset_every = Some(3));
    let out = shardload::run(&closed(&format!("http://{}/", o.addr()), 2, 0.3)).unwrap();
    let r = &out.report;
    assert!(r.errors.reset > 0, "{:?}", r.errors);
    assert!(
        r.status["200"] >= 2 * r.errors.reset - 2,
        "{:?} {:?}",
        r.status,
        r.errors
    );
    // h2: the origin tears the connection down.
    let mut p = closed(&format!("http://{}/", o.addr()), 2, 0.3);
    p.protocol = Protocol::H2;
    p.connections = 1;
    p.streams = 2;
    let out = shardload::run(&p).unwrap();
    assert!(
        out.report.errors.reset + out.report.errors.protocol > 0,
        "{:?}",
        out.report.errors
    );
}

#[test]
fn timeouts_are_counted() {
    let o = origin(|o| o.delay = Duration::from_millis(300));
    let mut p = closed(&format!("http://{}/", o.addr()), 2, 0.3);
    p.timeout = Duration::from_millis(50);
    let out = shardload::run(&p).unwrap();
    assert!(out.report.errors.timeout > 0, "{:?}", out.report.errors);
}

#[test]
fn origin_shuts_down_cleanly() {
    let o = origin(|o| o.shards = 2);
    let addr = o.addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    o.shutdown();
    assert!(std::net::TcpStream::connect(addr).is_err());
}
