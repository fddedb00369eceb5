//! Per-request cost of authorization: a listener with 4 policies and 9 rules (a DENY on
//! admin paths and a blocked CIDR, ALLOW rules on methods/paths/hosts/ports, header and
//! source-IP conditions), decided for a typical request that falls through most rules, one
//! that a late ALLOW rule admits and one that ends in the default deny. Parse + route are
//! not included (see `benches/http1.rs`); the request is parsed once up front.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use shardcar::authz::AuthzStats;
use shardcar::ctx::{ConnCtx, LocalAddr, PeerAddr, Snapshot};
use shardcar::http1::head::{self, Limits, RequestHead};
use shardcar::http1::target::request_ctx;
use shardcar::route::Verdict;
use shardcar::Config;

const CONFIG: &str = "
listeners:
  - name: web
    address: 127.0.0.1:8080
    protocol: http
    virtual_hosts:
      - name: api
        domains: [\"*\"]
        routes:
          - match: {prefix: \"/\"}
            cluster: app
clusters:
  - name: app
    endpoints: [\"127.0.0.1:9000\"]
authorization_policies:
  - name: deny-admin
    action: DENY
    rules:
      - to: [{operation: {paths: [\"/admin*\", \"*/debug\"]}}]
      - from: [{source: {ipBlocks: [\"192.168.0.0/16\", \"172.16.0.0/12\"]}}]
  - name: reads
    rules:
      - to: [{operation: {methods: [GET, HEAD], paths: [\"/public/*\"]}}]
      - to: [{operation: {methods: [GET], paths: [\"/api/v2/*\"], hosts: [\"internal.example.com\"]}}]
      - to: [{operation: {methods: [GET], paths: [\"/static/*\", \"*.css\", \"*.js\"]}}]
  - name: writes
    rules:
      - to: [{operation: {methods: [POST, PUT], paths: [\"/api/v1/orders*\"]}}]
        when: [{key: \"request.headers[x-tenant]\", values: [acme, globex]}]
      - to: [{operation: {methods: [DELETE], ports: [9443]}}]
  - name: tenants
    rules:
      - from: [{source: {ipBlocks: [\"10.0.0.0/8\"]}}]
        when: [{key: \"request.headers[x-tenant]\", values: [\"initech*\"]}]
      - to: [{operation: {paths: [\"/api/v1/*\"], notMethods: [DELETE]}}]
        when: [{key: \"request.headers[x-api-key]\", values: [\"*\"]}]
";

fn head_of(raw: &'static [u8]) -> RequestHead {
    let limits = Limits {
        max_head_bytes: 60 * 1024,
        max_headers: 100,
        max_request_line: 8 * 1024,
    };
    let mut h = RequestHead::default();
    assert!(head::parse_request(raw, &limits, &mut h).unwrap());
    h
}

fn bench(c: &mut Criterion) {
    let config = Arc::new(Config::from_yaml(CONFIG).expect("bench config"));
    let peer = "127.0.0.1:40000".parse().unwrap();
    let local = "127.0.0.1:8080".parse().unwrap();
    let conn = ConnCtx {
        peer: PeerAddr(peer),
        local: LocalAddr(local),
        orig_dst: None,
        listener: 0,
        snapshot: Rc::new(Snapshot::build(config.clone(), None, 0, 1)),
        tls: None,
    };
    let route = &config.listeners[0]
        .http
        .as_ref()
        .unwrap()
        .routes
        .virtual_hosts[0]
        .routes[0];
    let stats = AuthzStats::default();
    let cases: [(&str, &'static [u8], bool); 3] = [
        (
            "authz: allowed by the last rule (9 rules)",
            b"GET /api/v1/items?id=42 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk/4.2\r\nAccept: */*\r\nX-Tenant: umbrella\r\nX-Api-Key: k-123\r\n\r\n",
            true,
        ),
        (
            "authz: allowed early (reads)",
            b"GET /public/index.html HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk/4.2\r\nAccept: */*\r\n\r\n",
            true,
        ),
        (
            "authz: default deny (no rule matches)",
            b"PATCH /api/v3/items HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk/4.2\r\nAccept: */*\r\nX-Tenant: umbrella\r\n\r\n",
            false,
        ),
    ];
    for (name, raw, allowed) in cases {
        let h = head_of(raw);
        let req = request_ctx(raw, &h, &conn, None);
        let v = route.filters.on_request(&req, &stats);
        assert_eq!(v == Verdict::Continue, allowed, "{name}");
        c.bench_function(name, |b| {
            b.iter(|| route.filters.on_request(black_box(&req), &stats))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
