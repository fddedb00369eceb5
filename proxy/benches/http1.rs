//! Hot path of the HTTP/1.1 proxy without sockets: parse a typical request head, select its
//! route, and serialise the upstream head (and normalise a path) — what every proxied request costs in user space
//! before any I/O. Also the response side: parse an upstream head and serialise the client one.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use shardcar::ctx::{ConnCtx, LocalAddr, PeerAddr, Snapshot};
use shardcar::http1::encode::{self, Forwarding};
use shardcar::http1::head::{self, Limits, RequestHead};
use shardcar::http1::response_head::{self, ResponseHead};
use shardcar::http1::scan::HeadScan;
use shardcar::http1::target::request_ctx;
use shardcar::route::normalize::{normalize, EscapedSlashes, PathOptions};
use shardcar::route::FilterChain;
use shardcar::Config;

const REQUEST: &[u8] = b"GET /api/v1/items?id=42 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk/4.2\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nX-Trace: abc123\r\nConnection: keep-alive\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 64\r\nConnection: keep-alive\r\n\r\n";

/// A typical path with one `%7E` and one `/./` (normalised to `/api/v1/~users/42/items?id=7`).
const PATH: &[u8] = b"/api/v1/%7Eusers/./42/items?id=7";

const CONFIG: &str = "
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: other
        domains: [\"other.example.com\"]
        routes:
          - match: {prefix: \"/\"}
            cluster: app
      - name: api
        domains: [\"api.example.com\", \"*.example.com\"]
        routes:
          - match: {path: \"/health\"}
            direct_response: {status: 200, body: ok}
          - match: {prefix: \"/api/v2\"}
            cluster: app
          - match: {prefix: \"/api/\", methods: [GET, POST]}
            cluster: app
            request_headers_to_add: [{name: x-env, value: bench}]
clusters:
  - name: app
    endpoints: [\"127.0.0.1:8080\"]
";

fn bench(c: &mut Criterion) {
    let config = Arc::new(Config::from_yaml(CONFIG).expect("bench config"));
    let addr = "127.0.0.1:40000".parse().unwrap();
    let conn = ConnCtx {
        peer: PeerAddr(addr),
        local: LocalAddr(addr),
        orig_dst: None,
        listener: 0,
        snapshot: Rc::new(Snapshot::build(config.clone(), None, 0, 1)),
        tls: None,
    };
    let routes = &config.listeners[0]
        .http
        .as_ref()
        .expect("http listener")
        .routes;
    let limits = Limits {
        max_head_bytes: 60 * 1024,
        max_headers: 100,
        max_request_line: 8 * 1024,
    };
    let mut req = RequestHead::default();
    let mut resp = ResponseHead::default();
    let mut out = Vec::with_capacity(1024);
    let serialize = |out: &mut Vec<u8>, buf: &[u8], req: &RequestHead, filters: &FilterChain| {
        encode::request_head(
            out,
            buf,
            req,
            &Forwarding {
                filters,
                target: req.target.get(buf),
                authority: None,
                client_ip: b"127.0.0.1",
                request_id: &[b'0'; 36],
                framing: req.framing,
                te_trailers: false,
                tls: None,
                trace: Some(shardcar::telemetry::propagate::Fresh {
                    span: 7,
                    trace: 9,
                    sampled: true,
                }),
            },
        );
        black_box(out.len())
    };
    c.bench_function("request: parse + route + serialize", |b| {
        b.iter(|| {
            let mut scan = HeadScan::default();
            assert!(scan.advance(black_box(REQUEST), &limits).unwrap());
            assert!(head::parse_request(black_box(REQUEST), &limits, &mut req).unwrap());
            let route = routes
                .select(&request_ctx(REQUEST, &req, &conn, None))
                .expect("route");
            serialize(&mut out, REQUEST, &req, &route.filters)
        })
    });
    c.bench_function("request: parse only", |b| {
        b.iter(|| head::parse_request(black_box(REQUEST), &limits, &mut req).unwrap())
    });
    head::parse_request(REQUEST, &limits, &mut req).unwrap();
    c.bench_function("request: route only", |b| {
        b.iter(|| {
            routes
                .select(black_box(&request_ctx(REQUEST, &req, &conn, None)))
                .is_some()
        })
    });
    let route = routes
        .select(&request_ctx(REQUEST, &req, &conn, None))
        .unwrap();
    c.bench_function("request: serialize only", |b| {
        b.iter(|| serialize(&mut out, black_box(REQUEST), &req, &route.filters))
    });
    c.bench_function("response: parse + serialize", |b| {
        b.iter(|| {
            assert!(response_head::parse_response(
                black_box(RESPONSE),
                1 << 16,
                100,
                false,
                &mut resp
            )
            .unwrap());
            encode::response_head(
                &mut out,
                RESPONSE,
                &resp,
                resp.framing,
                false,
                &route.filters,
            );
            black_box(out.len())
        })
    });
    let path_opts = PathOptions {
        normalize: true,
        merge_slashes: true,
        escaped_slashes: EscapedSlashes::RejectRequest,
    };
    let mut path_out = Vec::with_capacity(256);
    c.bench_function("path: normalize", |b| {
        b.iter(|| normalize(black_box(PATH), &path_opts, &mut path_out).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
