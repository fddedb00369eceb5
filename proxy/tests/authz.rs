//! Authorization policies and JWT authentication end to end: a real proxy on 127.0.0.1, a
//! real origin, HTTP/1.1 (raw client), HTTP/2 (curl), gRPC (grpcio), raw TCP and TLS clients:
//! principals over mTLS (sidecar → sidecar for HTTP, a TLS client for TCP), IP blocks, ports,
//! methods, paths, hosts, headers, claims, DENY-over-ALLOW, default deny, TCP deny and the
//! JWT matrix (tokens minted by PyJWT).

mod support;
mod tls_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use shardcar::{Config, Server};
use support::admin::{admin_of, promtool_clean, scrape};
use support::client::{Client, Response};
use support::grpc::{client as grpc_client, GrpcServer};
use support::origin::Origin;
use support::tools::{have, have_python_modules, python, run, script, TempDir};
use support::EchoServer;

/// An http listener `web` (on `port`, 0 = any) routing everything to `origin`, plus `extra`
/// top-level YAML (the policies).
fn http_yaml(origin: SocketAddr, port: u16, extra: &str) -> String {
    format!(
        "listeners:
  - name: web
    address: 127.0.0.1:{port}
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{origin}\"]
    connect_timeout: 500ms
{extra}"
    )
}

fn http_proxy(origin: SocketAddr, port: u16, extra: &str) -> (Server, SocketAddr) {
    let yaml = http_yaml(origin, port, extra);
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

/// One request on a fresh connection; `headers` are extra header lines.
fn req(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut c = Client::connect(addr);
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: api.example.com\r\ncontent-length: 0\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    c.send(raw.as_bytes());
    c.read_response(method == "HEAD").expect("a response")
}

fn status(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    req(addr, method, path, headers).status
}

fn assert_denied(r: &Response, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert_eq!(r.text(), "RBAC: access denied", "{what}");
    assert_eq!(r.header("x-shardcar-flag"), Some("RBAC"), "{what}");
}

/// Counters: [allowed, denied, tcp_allowed, tcp_denied, jwt_rejected].
fn counters(s: &Server) -> [u64; 5] {
    s.total_stats().authz
}

const POLICIES: &str = "authorization_policies:
  - name: deny-admin
    action: DENY
    rules:
      - to: [{operation: {paths: [\"/admin*\"]}}]
  - name: readers
    rules:
      - to: [{operation: {methods: [GET, HEAD], paths: [\"/api/*\"]}}]
  - name: tenant-acme
    rules:
      - when: [{key: \"request.headers[x-tenant]\", values: [acme]}]
";

#[test]
fn deny_wins_allow_allows_and_anything_else_is_denied() {
    let origin = Origin::start("app");
    let (p, addr) = http_proxy(origin.addr, 0, POLICIES);
    assert_eq!(status(addr, "GET", "/api/items?x=1", &[]), 200, "readers");
    assert_eq!(
        status(addr, "POST", "/submit", &[("x-tenant", "acme")]),
        200,
        "tenant"
    );
    assert_denied(
        &req(addr, "POST", "/api/items", &[]),
        "no ALLOW matches → default deny",
    );
    assert_denied(
        &req(addr, "GET", "/other", &[("x-tenant", "beta")]),
        "wrong header value",
    );
    // Allowed by tenant-acme, but DENY is evaluated first.
    assert_denied(
        &req(addr, "GET", "/admin/users", &[("x-tenant", "acme")]),
        "DENY over ALLOW",
    );
    let before = origin.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, 2, "denied requests never reach the origin");
    assert_eq!(counters(&p), [2, 3, 0, 0, 0]);
}

#[test]
fn a_deny_only_listener_allows_what_no_deny_matches() {
    let origin = Origin::start("app");
    let (_p, addr) = http_proxy(
        origin.addr,
        0,
        "authorization_policies:
  - name: no-delete
    action: DENY
    rules: [{to: [{operation: {methods: [DELETE]}}]}]
",
    );
    assert_eq!(status(addr, "GET", "/anything", &[]), 200);
    assert_denied(&req(addr, "DELETE", "/anything", &[]), "DELETE");
}

/// A port nobody holds right now (bound and released; the proxy binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn ip_blocks_ports_hosts_and_not_fields_match() {
    let origin = Origin::start("app");
    let port = free_port();
    let other = if port == 65535 { port - 1 } else { port + 1 };
    let policies = format!(
        "authorization_policies:
  - name: loopback-on-this-port
    rules:
      - from: [{{source: {{ipBlocks: [\"127.0.0.0/8\"], notIpBlocks: [\"127.0.0.2/32\"]}}}}]
        to: [{{operation: {{ports: [{port}], hosts: [\"API.example.com\"], notPaths: [\"*.secret\"]}}}}]
  - name: never-here
    rules:
      - from: [{{source: {{ipBlocks: [\"10.0.0.0/8\"]}}}}]
  - name: other-port
    rules:
      - to: [{{operation: {{ports: [{other}]}}}}]
  - name: deny-by-source
    action: DENY
    rules:
      - when: [{{key: source.ip, values: [\"127.0.0.1/32\"]}}, {{key: destination.port, values: [{port}]}}]
        to: [{{operation: {{paths: [/by-ip]}}}}]
"
    );
    let (_p, addr) = http_proxy(origin.addr, port, &policies);
    assert_eq!(addr.port(), port);
    assert_eq!(
        status(addr, "GET", "/x", &[]),
        200,
        "ip block + port + host (any case, :port)"
    );
    assert_denied(&req(addr, "GET", "/x.secret", &[]), "notPaths");
    assert_denied(
        &req(addr, "GET", "/by-ip", &[]),
        "DENY on source.ip + destination.port",
    );
    let mut c = Client::connect(addr);
    c.send(b"GET /x HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
    assert_denied(&c.read_response(false).unwrap(), "host");
    // From 127.0.0.2 (notIpBlocks): bind the client's source address.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = "127.0.0.2:0".parse().unwrap();
    s.bind(&src.into()).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut t: TcpStream = s.into();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t.write_all(b"GET /x HTTP/1.1\r\nHost: api.example.com\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = t.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 403"), "notIpBlocks: {resp}");
}

fn curl(args: &[&str]) -> (u16, String) {
    let mut all = vec!["-s", "-o", "-", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = run("curl", &all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn http2_is_enforced_by_the_same_filter() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = Origin::start("app");
    let (p, addr) = http_proxy(origin.addr, 0, POLICIES);
    let url = |path: &str| format!("http://{addr}{path}");
    let h2 = "--http2-prior-knowledge";
    assert_eq!(curl(&[h2, &url("/api/x")]).0, 200);
    assert_eq!(
        curl(&[h2, &url("/admin")]),
        (403, "RBAC: access denied".to_string())
    );
    assert_eq!(curl(&[h2, "-X", "DELETE", &url("/api/x")]).0, 403);
    assert_eq!(counters(&p)[..2], [1, 2]);
}

#[test]
fn grpc_denials_are_trailers_only_permission_denied() {
    if !have_python_modules("grpc") {
        return;
    }
    let srv = GrpcServer::start();
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
    endpoints: [\"{}\"]
    connect_timeout: 500ms
authorization_policies:
  - name: no-flaky
    action: DENY
    rules: [{{to: [{{operation: {{paths: [/t.T/Flaky]}}}}]}}]
",
        srv.addr
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).unwrap();
    let addr = server.addr("web").unwrap().to_string();
    let ok = grpc_client(&["status", &addr, "/t.T/Unary"]);
    assert_eq!(ok["code"], "OK", "{ok}");
    let denied = grpc_client(&["status", &addr, "/t.T/Flaky", "k:0"]);
    assert_eq!(denied["code"], "PERMISSION_DENIED", "{denied}");
    assert_eq!(denied["details"], "RBAC: access denied", "{denied}");
}

/// Whether an L4 connection echoes (`true`) or is closed without a byte (`false`).
fn echoes(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"ping");
    let mut buf = [0u8; 4];
    match s.read(&mut buf) {
        Ok(4) => &buf == b"ping",
        Ok(0) => false,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
        other => panic!("neither an echo nor a close: {other:?}"),
    }
}

#[test]
fn tcp_connections_are_checked_at_accept_and_denied_ones_closed() {
    let echo = EchoServer::start();
    let yaml = format!(
        "listeners:
  - name: open
    address: 127.0.0.1:0
    cluster: up
  - name: guarded
    address: 127.0.0.1:0
    cluster: up
  - name: http-only-deny
    address: 127.0.0.1:0
    cluster: up
clusters:
  - name: up
    endpoints: [\"{}\"]
authorization_policies:
  - name: only-10-net
    listeners: [guarded]
    rules: [{{from: [{{source: {{ipBlocks: [\"10.0.0.0/8\"]}}}}]}}]
  - name: get-only
    listeners: [http-only-deny]
    action: DENY
    rules: [{{to: [{{operation: {{methods: [GET]}}}}]}}]
",
        echo.addr
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).unwrap();
    assert!(echoes(server.addr("open").unwrap()), "no policy selects it");
    assert!(
        !echoes(server.addr("guarded").unwrap()),
        "127.0.0.1 is not in 10/8"
    );
    // A DENY rule's HTTP-only field is ignored on TCP, so it denies every connection.
    assert!(!echoes(server.addr("http-only-deny").unwrap()));
    assert_eq!(counters(&server), [0, 0, 0, 2, 0]);
}

/// Mints the JWT matrix into `dir` (jwks.json, jwks2.json); token name → token.
fn mint(dir: &TempDir) -> serde_json::Value {
    let d = dir.0.to_string_lossy().into_owned();
    let out = run(
        &python(),
        &[&script("jwt_mint.py"), &d, "https://issuer.test", "api"],
    );
    assert!(out.status.success(), "jwt_mint.py failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn jwt_yaml(jwks: &std::path::Path) -> String {
    format!(
        "request_authentication:
  - name: jwt
    jwtRules:
      - issuer: https://issuer.test
        audiences: [api, other-api]
        jwksFile: {}
authorization_policies:
  - name: signed-in-for-secure
    action: DENY
    rules: [{{to: [{{operation: {{paths: [\"/secure*\"]}}}}], from: [{{source: {{notRequestPrincipals: [\"*\"]}}}}]}}]
  - name: writers-post
    action: DENY
    rules:
      - to: [{{operation: {{methods: [POST]}}}}]
        when: [{{key: \"request.auth.claims[groups]\", notValues: [writers]}}]
",
        jwks.display()
    )
}

#[test]
fn jwt_matrix_valid_expired_audience_issuer_signature_none_and_missing() {
    if !have_python_modules("jwt, cryptography") {
        return;
    }
    let dir = TempDir::new("authz-jwt");
    let t = mint(&dir);
    let origin = Origin::start("app");
    let (p, addr) = http_proxy(origin.addr, 0, &jwt_yaml(&dir.file("jwks.json")));
    let bearer = |name: &str| format!("Bearer {}", t[name].as_str().unwrap());
    let with = |name: &str, path: &str| req(addr, "GET", path, &[("authorization", &bearer(name))]);
    for alg in ["rs256", "es256", "eddsa", "within_skew"] {
        assert_eq!(with(alg, "/secure/x").status, 200, "{alg}");
    }
    for (name, body) in [
        ("expired", "Jwt is expired"),
        ("nbf_future", "Jwt not yet valid"),
        ("wrong_aud", "Audiences in Jwt are not allowed"),
        ("no_aud", "Audiences in Jwt are not allowed"),
        ("wrong_iss", "Jwt issuer is not configured"),
        ("bad_sig", "Jwt verification fails"),
        (
            "alg_none",
            "Jwt is not in the form of Header.Payload.Signature",
        ),
        (
            "rotated",
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
    ] {
        let r = with(name, "/open");
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(r.text(), body, "{name}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer ")),
            "{name}: {:?}",
            r.headers
        );
    }
    // No token: authentication passes; the policy decides.
    assert_eq!(
        status(addr, "GET", "/open", &[]),
        200,
        "missing token, open path"
    );
    assert_denied(
        &req(addr, "GET", "/secure/x", &[]),
        "missing token, required",
    );
    // The token from the access_token query parameter (Istio's second default location).
    let q = format!("/secure/x?access_token={}", t["rs256"].as_str().unwrap());
    assert_eq!(status(addr, "GET", &q, &[]), 200, "query parameter");
    // Claims: POST needs groups ∋ writers.
    let post = |name: &str| status(addr, "POST", "/open", &[("authorization", &bearer(name))]);
    assert_eq!(post("writer"), 200);
    assert_eq!(post("rs256"), 403, "readers only");
    assert_eq!(counters(&p)[4], 8, "eight refused tokens");
}

#[test]
fn jwks_rotation_takes_effect_on_reload() {
    if !have_python_modules("jwt, cryptography") {
        return;
    }
    let dir = TempDir::new("authz-jwks-rot");
    let t = mint(&dir);
    let origin = Origin::start("app");
    let jwks = dir.file("active.json");
    std::fs::copy(dir.file("jwks.json"), &jwks).unwrap();
    let (mut p, addr) = http_proxy(origin.addr, 0, &jwt_yaml(&jwks));
    let get = |name: &str| {
        let b = format!("Bearer {}", t[name].as_str().unwrap());
        status(addr, "GET", "/secure", &[("authorization", &b)])
    };
    assert_eq!((get("rs256"), get("rotated")), (200, 401));
    std::fs::copy(dir.file("jwks2.json"), &jwks).unwrap();
    // A reload re-reads the JWKS file.
    let yaml = http_yaml(origin.addr, 0, &jwt_yaml(&jwks));
    p.swap(Config::from_yaml(&yaml).unwrap()).expect("swap");
    assert_eq!((get("rs256"), get("rotated")), (401, 200));
}

/// Serves the file at `path` as JSON to every `GET /keys`, counting them (500 while the file
/// is missing).
struct KeyServer {
    addr: SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl KeyServer {
    fn start(path: std::path::PathBuf) -> KeyServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if !buf.starts_with(b"GET /keys HTTP/1.0\r\n") {
                    let _ = c.write_all(b"HTTP/1.0 404 Not Found\r\n\r\n");
                    continue;
                }
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(body) = std::fs::read(&path) else {
                    let _ = c.write_all(b"HTTP/1.0 500 Internal Server Error\r\n\r\n");
                    continue;
                };
                let _ = write!(c, "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = c.write_all(&body);
            }
        });
        KeyServer { addr, hits }
    }
}

/// Minted tokens, a key server serving `jwks.json` from a copy it can change, an origin.
fn idp(
    name: &str,
) -> (
    TempDir,
    serde_json::Value,
    std::path::PathBuf,
    KeyServer,
    Origin,
) {
    let dir = TempDir::new(name);
    let t = mint(&dir);
    let served = dir.file("served.json");
    std::fs::copy(dir.file("jwks.json"), &served).unwrap();
    let keys = KeyServer::start(served.clone());
    (dir, t, served, keys, Origin::start("app"))
}

/// The `idp` cluster, a `jwksUri` rule (plus `rule_extra` lines) and a token-required policy.
fn idp_yaml(keys: &KeyServer, rule_extra: &str) -> String {
    format!(
        "  - name: idp
    endpoints: [\"{}\"]
    connect_timeout: 2s
request_authentication:
  - name: jwt
    jwtRules:
      - issuer: https://issuer.test
        jwksUri: http://idp.test/keys
        jwksCluster: idp
{rule_extra}authorization_policies:
  - name: need-token
    rules: [{{from: [{{source: {{requestPrincipals: [\"https://issuer.test/*\"]}}}}]}}]
",
        keys.addr
    )
}

#[test]
fn jwks_is_fetched_through_a_cluster_at_load_and_again_on_reload() {
    if !have_python_modules("jwt, cryptography") {
        return;
    }
    let (dir, t, served, keys, origin) = idp("authz-jwks-uri");
    let yaml = http_yaml(origin.addr, 0, &idp_yaml(&keys, ""));
    let (mut p, addr) = {
        let s = Server::start(Config::from_yaml(&yaml).unwrap(), 1).unwrap();
        let a = s.addr("web").unwrap();
        (s, a)
    };
    assert_eq!(keys.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let get = |name: &str| {
        let b = format!("Bearer {}", t[name].as_str().unwrap());
        status(addr, "GET", "/x", &[("authorization", &b)])
    };
    assert_eq!((get("rs256"), get("rotated")), (200, 401));
    assert_eq!(
        status(addr, "GET", "/x", &[]),
        403,
        "no token: requestPrincipals unmet"
    );
    std::fs::copy(dir.file("jwks2.json"), &served).unwrap();
    p.swap(Config::from_yaml(&yaml).unwrap()).expect("swap");
    assert_eq!((get("rs256"), get("rotated")), (401, 200));
    // An unreachable key server is a config error naming the field.
    let dead = support::DeadPort::new();
    let bad = yaml.replace(&keys.addr.to_string(), &dead.addr.to_string());
    let e = Config::from_yaml(&bad).unwrap_err().to_string();
    assert!(
        e.contains("request_authentication[0].jwtRules[0].jwksUri") && e.contains("line"),
        "{e}"
    );
}

/// Polls `f` every 100 ms until it holds or `within` passes.
fn eventually(within: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The scraped value of `shardcar_jwks_refresh_total` for the `jwt` block's rule and `result`.
fn jwks_refreshes(text: &str, result: &str) -> u64 {
    let series = format!(
        "shardcar_jwks_refresh_total{{provider=\"jwt\",issuer=\"https://issuer.test\",result=\"{result}\"}} "
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series}in\n{text}"));
    line.parse().unwrap()
}

#[test]
fn jwks_is_refreshed_every_interval_and_a_failed_fetch_keeps_the_keys() {
    if !have_python_modules("jwt, cryptography") {
        return;
    }
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};
    let (dir, t, served, keys, origin) = idp("authz-jwks-timer");
    let extra = idp_yaml(&keys, "        jwksRefreshInterval: 300ms\n");
    let p = Server::start(
        Config::from_yaml(&http_yaml(origin.addr, 0, &extra)).unwrap(),
        2,
    )
    .unwrap();
    let addr = p.addr("web").unwrap();
    let get = |name: &str| {
        let b = format!("Bearer {}", t[name].as_str().unwrap());
        status(addr, "GET", "/x", &[("authorization", &b)])
    };
    assert_eq!((get("rs256"), get("rotated")), (200, 401));
    let remote = p.jwks().remotes()[0].clone();
    let admin = admin_of(&p);
    let text = scrape(admin);
    promtool_clean(&text);
    assert!(
        text.contains("# TYPE shardcar_jwks_refresh_total counter"),
        "{text}"
    );
    let failures_at_start = jwks_refreshes(&text, "failure");
    assert_eq!(failures_at_start, 0);
    assert!(
        eventually(Duration::from_secs(5), || remote.refreshed.load(Relaxed)
            >= 2),
        "refreshed on the timer"
    );
    // The refreshes are on the admin's Prometheus page (both shards read the same counter).
    let text = scrape(admin);
    let scraped = jwks_refreshes(&text, "success");
    assert!(scraped >= 2, "{text}");
    assert!(scraped <= remote.refreshed.load(Relaxed), "{text}");
    // The key server fails (500, then a document that is no JWKS): the keys in force stay.
    std::fs::remove_file(&served).unwrap();
    let failed = remote.failed.load(Relaxed);
    assert!(eventually(Duration::from_secs(5), || remote
        .failed
        .load(Relaxed)
        >= failed + 2));
    std::fs::write(&served, "{\"keys\": 42}").unwrap();
    let failed = remote.failed.load(Relaxed);
    assert!(eventually(Duration::from_secs(5), || remote
        .failed
        .load(Relaxed)
        >= failed + 2));
    assert_eq!((get("rs256"), get("rotated")), (200, 401), "old keys kept");
    let text = scrape(admin);
    assert!(jwks_refreshes(&text, "failure") >= failed + 2, "{text}");
    assert!(jwks_refreshes(&text, "success") >= scraped, "{text}");
    promtool_clean(&text);
    // The rotated set at the key server is honoured after one interval, with no reload.
    std::fs::copy(dir.file("jwks2.json"), &served).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || (get("rs256"), get("rotated"))
            == (401, 200)),
        "the rotated JWKS is in force"
    );
    let hits = keys.hits.load(SeqCst);
    assert!(hits >= 6, "{hits} fetches");
    // Dropping the server stops its refresh thread.
    drop(p);
    std::thread::sleep(Duration::from_millis(700));
    let after = keys.hits.load(SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(keys.hits.load(SeqCst), after, "no fetches after shutdown");
}

const CLIENT_ID: &str = tls_support::CLIENT_ID;
const EVIL_ID: &str = "spiffe://example.org/ns/default/sa/evil";

/// The dev CA with `server` (also DNS localhost), `client` and `evil` SVIDs on disk.
fn pki() -> tls_support::TestPki {
    let t = tls_support::TestPki::new();
    let evil = t.ca.issue(&t.spec(EVIL_ID)).unwrap();
    t.write_issued("evil", &evil);
    t
}

fn p(t: &tls_support::TestPki, f: &str) -> String {
    t.path(f).display().to_string()
}

/// A STRICT mTLS listener block (client certificate required) serving `server`'s SVID.
fn strict(t: &tls_support::TestPki) -> String {
    format!(
        "    tls:
      mode: STRICT
      cert: {}
      key: {}
      trust_bundles: {{example.org: {}}}
      require_client_certificate: true
",
        p(t, "server.pem"),
        p(t, "server-key.pem"),
        p(t, "ca.pem")
    )
}

#[test]
fn principals_from_mtls_peers_decide_http_requests_sidecar_to_sidecar() {
    let t = pki();
    let origin = Origin::start("app");
    // Sidecar B: inbound, STRICT mTLS, only the client workload may call.
    let b_yaml = format!(
        "listeners:
  - name: inbound
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
{}clusters:
  - name: app
    endpoints: [\"{}\"]
authorization_policies:
  - name: only-client
    rules:
      - from: [{{source: {{principals: [\"{CLIENT_ID}\"]}}}}]
      - from: [{{source: {{namespaces: [default]}}}}]
        to: [{{operation: {{paths: [/public]}}}}]
",
        strict(&t),
        origin.addr
    );
    let b = Server::start(Config::from_yaml(&b_yaml).unwrap(), 1).unwrap();
    let b_addr = b.addr("inbound").unwrap();
    // Sidecar A: two outbound listeners, one presenting `client`, one `evil`.
    let out = |name: &str, who: &str| {
        format!(
            "  - name: {name}
    endpoints: [\"{b_addr}\"]
    tls:
      sni: localhost
      cert: {}
      key: {}
      trust_bundles: {{example.org: {}}}
      expected_identities: [{{exact: \"{}\"}}]
",
            p(&t, &format!("{who}.pem")),
            p(&t, &format!("{who}-key.pem")),
            p(&t, "ca.pem"),
            tls_support::SERVER_ID
        )
    };
    let listener = |name: &str, cluster: &str| {
        format!(
            "  - name: {name}
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: {cluster}
"
        )
    };
    let a_yaml = format!(
        "listeners:\n{}{}clusters:\n{}{}",
        listener("as-client", "to-b"),
        listener("as-evil", "to-b-evil"),
        out("to-b", "client"),
        out("to-b-evil", "evil")
    );
    let a = Server::start(Config::from_yaml(&a_yaml).unwrap(), 1).unwrap();
    let good = a.addr("as-client").unwrap();
    let evil = a.addr("as-evil").unwrap();
    assert_eq!(
        status(good, "GET", "/anything", &[]),
        200,
        "exact principal"
    );
    assert_denied(&req(evil, "GET", "/anything", &[]), "other principal");
    assert_eq!(status(evil, "GET", "/public", &[]), 200, "namespace + path");
    assert_eq!(counters(&b)[..2], [2, 1]);
}

/// One TLS connection presenting `who`'s SVID: whether `ping` came back.
fn tls_echoes(t: &tls_support::TestPki, addr: SocketAddr, who: &str) -> bool {
    let issued = shardcar::tls::devca::Issued {
        cert_pem: std::fs::read_to_string(t.path(&format!("{who}.pem"))).unwrap(),
        key_pem: std::fs::read_to_string(t.path(&format!("{who}-key.pem"))).unwrap(),
        ..t.client.clone()
    };
    let mut s = shardcar::tls::ClientSettings::new(t.bundles());
    s.client_cert = Some(tls_support::certified(&issued));
    let r = tls_support::client(addr, s.build().unwrap(), "localhost");
    assert!(r.handshake.is_ok(), "{who}: {:?}", r.handshake);
    matches!(r.echo, Some(Ok(ref b)) if b == b"ping")
}

#[test]
fn tcp_principals_from_mtls_are_checked_after_the_handshake() {
    let t = pki();
    let echo = EchoServer::start();
    let yaml = format!(
        "listeners:
  - name: l4
    address: 127.0.0.1:0
    protocol: tcp
    cluster: echo
{}clusters:
  - name: echo
    endpoints: [\"{}\"]
authorization_policies:
  - name: default-ns-but-evil
    rules:
      - from: [{{source: {{principals: [\"example.org/ns/default/*\"], notPrincipals: [\"*/sa/evil\"]}}}}]
",
        strict(&t),
        echo.addr
    );
    let srv = Server::start(Config::from_yaml(&yaml).unwrap(), 1).unwrap();
    let addr = srv.addr("l4").unwrap();
    assert!(tls_echoes(&t, addr, "client"), "prefix principal");
    assert!(!tls_echoes(&t, addr, "evil"), "notPrincipals: closed");
    assert_eq!(counters(&srv)[2..4], [1, 1]);
}

/// The `shardcar` binary on `config` (one shard, no file watch); stops by handle on drop.
struct Binary {
    child: std::process::Child,
    web: SocketAddr,
}

impl Binary {
    fn spawn(config: &std::path::Path) -> Binary {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shardcar"))
            .args(["--shards", "1", "--no-watch", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let web = loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "proxy exited early");
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.get(1) == Some(&"web") {
                break w[2].parse().unwrap();
            }
        };
        Binary { child, web }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reload_rereads_the_jwks_file() {
    if !have_python_modules("jwt, cryptography") {
        return;
    }
    let dir = TempDir::new("authz-jwks-hup");
    let t = mint(&dir);
    let origin = Origin::start("app");
    let jwks = dir.file("active.json");
    std::fs::copy(dir.file("jwks.json"), &jwks).unwrap();
    let config = dir.file("config.yaml");
    std::fs::write(&config, http_yaml(origin.addr, 0, &jwt_yaml(&jwks))).unwrap();
    let bin = Binary::spawn(&config);
    let get = |name: &str| {
        let b = format!("Bearer {}", t[name].as_str().unwrap());
        status(bin.web, "GET", "/secure", &[("authorization", &b)])
    };
    assert_eq!((get("rs256"), get("rotated")), (200, 401));
    std::fs::copy(dir.file("jwks2.json"), &jwks).unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &bin.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP");
    // The reload is asynchronous: bounded wait for the new keys.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get("rotated") != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "new JWKS not in force after 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get("rs256"), 401, "the old key is gone");
}
