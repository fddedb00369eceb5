//! mTLS through the proxy's data path, over real sockets with real clients: two sidecars
//! chained like a mesh (curl → A plaintext → mTLS → B STRICT → origin, B forwarding A's
//! SPIFFE ID as XFCC to HTTP/1.1 and h2c apps), wrong identities refused on both sides with
//! the reason in the log, ALPN h2 (curl --http2, openssl s_client) on a STRICT listener,
//! PERMISSIVE plaintext and TLS on one port, a TLS-terminated L4 tunnel, and certificate
//! rotation while the proxy runs.

mod support;
mod tls_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use shardcar::tls::devca::Issued;
use shardcar::tls::ClientSettings;
use shardcar::{Config, Server};
use support::admin::{admin_of, promtool_clean, scrape, sum_of};
use support::grpc::PyServer;
use support::script::{read_request, ScriptOrigin};
use support::tools::{have, have_python_modules};
use tls_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_shardcar");
const A_ID: &str = "spiffe://example.org/ns/default/sa/a";
const B_ID: &str = "spiffe://example.org/ns/default/sa/b";
const EVIL_ID: &str = "spiffe://example.org/ns/default/sa/evil";

/// A dev CA and SVIDs for sidecars A and B (B also for DNS `localhost`, for curl) and an
/// "evil" workload, written as `ca.pem`, `NAME.pem`, `NAME-key.pem`.
struct Pki {
    t: TestPki,
}

impl Pki {
    fn new() -> Pki {
        let t = TestPki::new();
        let a = t.ca.issue(&t.spec(A_ID)).unwrap();
        let mut spec = t.spec(B_ID);
        spec.dns = vec!["localhost".into()];
        let b = t.ca.issue(&spec).unwrap();
        let evil = t.ca.issue(&t.spec(EVIL_ID)).unwrap();
        t.write_issued("a", &a);
        t.write_issued("b", &b);
        t.write_issued("evil", &evil);
        Pki { t }
    }

    fn p(&self, f: &str) -> String {
        self.t.path(f).display().to_string()
    }

    /// A fresh SVID for B (new serial), for rotation.
    fn reissue_b(&self) -> Issued {
        let mut spec = self.t.spec(B_ID);
        spec.dns = vec!["localhost".into()];
        self.t.ca.issue(&spec).unwrap()
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        ClientSettings::new(self.t.bundles()).build().unwrap()
    }

    /// A listener `tls:` block serving B's SVID.
    fn server_block(&self, mode: &str, extra: &str) -> String {
        format!(
            "    tls:
      mode: {mode}
      cert: {}
      key: {}
      trust_bundles: {{example.org: {}}}
{extra}",
            self.p("b.pem"),
            self.p("b-key.pem"),
            self.p("ca.pem")
        )
    }

    /// A cluster `tls:` block presenting `who`'s SVID and expecting `expect`.
    fn client_block(&self, who: &str, expect: &str) -> String {
        format!(
            "    tls:
      cert: {}
      key: {}
      trust_bundles: {{example.org: {}}}
      expected_identities: [{{exact: \"{expect}\"}}]
",
            self.p(&format!("{who}.pem")),
            self.p(&format!("{who}-key.pem")),
            self.p("ca.pem")
        )
    }
}

/// An origin answering every request with the XFCC header it received (`-` without one).
fn xfcc_origin() -> ScriptOrigin {
    ScriptOrigin::start(|_, mut r, log| {
        while let Some(req) = read_request(&mut r, &log) {
            let body = req.header("x-forwarded-client-cert").unwrap_or("-".into());
            let proto = req.header("x-forwarded-proto").unwrap_or_default();
            let w = r.get_mut();
            let msg = format!("{body} {proto}");
            if support::script::ok(w, &msg).is_err() {
                return;
            }
        }
    })
}

fn http_listener(name: &str, cluster: &str, tls: &str) -> String {
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
{tls}"
    )
}

fn cluster(name: &str, ep: SocketAddr, tls: &str) -> String {
    format!(
        "  - name: {name}
    endpoints: [\"{ep}\"]
    connect_timeout: 2s
{tls}"
    )
}

fn start(yaml: &str) -> Server {
    let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Server::start(config, 1).expect("proxy starts")
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Sidecar B: a STRICT listener requiring a client certificate with A's identity, to `origin`.
fn sidecar_b(pki: &Pki, origin: SocketAddr) -> String {
    let tls = pki.server_block(
        "STRICT",
        &format!("      require_client_certificate: true\n      allowed_identities: [{{exact: \"{A_ID}\"}}]\n"),
    );
    format!(
        "listeners:\n{}clusters:\n{}",
        http_listener("inbound", "app", &tls),
        cluster("app", origin, "")
    )
}

/// Sidecar A: a plaintext listener to B over mTLS, presenting `who`, expecting `expect`.
fn sidecar_a(pki: &Pki, b: SocketAddr, who: &str, expect: &str) -> String {
    format!(
        "listeners:\n{}clusters:\n{}",
        http_listener("outbound", "b", ""),
        cluster("b", b, &pki.client_block(who, expect))
    )
}

#[test]
fn two_sidecars_carry_a_request_over_mtls_and_b_sees_a_identity() {
    if !have("curl", &["--version"]) {
        eprintln!("SKIPPED: curl not installed");
        return;
    }
    let pki = Pki::new();
    let origin = xfcc_origin();
    let b = start(&sidecar_b(&pki, origin.addr));
    let b_addr = b.addr("inbound").unwrap();
    let a = start(&sidecar_a(&pki, b_addr, "a", B_ID));
    let a_addr = a.addr("outbound").unwrap();
    for i in 0..3 {
        let (ok, out) = curl(&[&format!("http://{a_addr}/hello")]);
        assert!(ok, "request {i}: {out}");
        assert_eq!(out, format!("URI={A_ID} https"), "request {i}");
    }
    let (bs, as_) = (b.total_stats(), a.total_stats());
    assert!(bs.tls.handshakes >= 1, "{:?}", bs.tls);
    assert!(as_.tls.upstream_handshakes >= 1, "{:?}", as_.tls);
    // Keepalive: three requests, one pooled mTLS connection.
    assert_eq!(as_.tls.upstream_handshakes, 1, "{:?}", as_.tls);
    let text = scrape(admin_of(&a));
    assert_eq!(
        sum_of(&text, "shardcar_tls_handshakes_total{side=\"upstream\"}"),
        1,
        "{text}"
    );
    // A client cannot forge its identity: B drops a client's own XFCC header.
    let (ok, out) = curl(&[
        "-H",
        "x-forwarded-client-cert: URI=spiffe://example.org/ns/default/sa/admin",
        &format!("http://{a_addr}/"),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out, format!("URI={A_ID} https"));
}

#[test]
fn an_http2_cluster_over_mtls_uses_alpn_h2_to_the_next_sidecar() {
    if !have("curl", &["--version"]) {
        eprintln!("SKIPPED: curl not installed");
        return;
    }
    let pki = Pki::new();
    let origin = xfcc_origin();
    let b = start(&sidecar_b(&pki, origin.addr));
    let b_addr = b.addr("inbound").unwrap();
    let a_yaml = sidecar_a(&pki, b_addr, "a", B_ID).replace(
        "    connect_timeout: 2s\n    tls:",
        "    connect_timeout: 2s\n    protocol: http2\n    tls:",
    );
    assert!(a_yaml.contains("protocol: http2"), "{a_yaml}");
    let a = start(&a_yaml);
    let a_addr = a.addr("outbound").unwrap();
    for i in 0..3 {
        let (ok, out) = curl(&[&format!("http://{a_addr}/x")]);
        assert!(ok, "request {i}: {out}");
        assert_eq!(out, format!("URI={A_ID} https"), "request {i}");
    }
    // B's HTTP/2 server took one multiplexed connection (ALPN h2) for all three.
    assert_eq!(b.total_stats().h2_connections, 1);
    assert_eq!(a.total_stats().tls.upstream_handshakes, 1);
}

#[test]
fn an_auto_cluster_speaks_what_alpn_chose() {
    if !have("curl", &["--version"]) {
        eprintln!("SKIPPED: curl not installed");
        return;
    }
    let pki = Pki::new();
    let origin = xfcc_origin();
    for (alpn, h2) in [("", true), ("      alpn: [http/1.1]\n", false)] {
        let b_yaml = sidecar_b(&pki, origin.addr).replace(
            "      require_client_certificate: true\n",
            &format!("      require_client_certificate: true\n{alpn}"),
        );
        let b = start(&b_yaml);
        let a_yaml = sidecar_a(&pki, b.addr("inbound").unwrap(), "a", B_ID).replace(
            "    connect_timeout: 2s\n    tls:",
            "    connect_timeout: 2s\n    protocol: auto\n    tls:",
        );
        let a = start(&a_yaml);
        let a_addr = a.addr("outbound").unwrap();
        for i in 0..3 {
            let (ok, out) = curl(&[&format!("http://{a_addr}/x")]);
            assert!(ok, "alpn {alpn:?} request {i}: {out}");
            assert_eq!(out, format!("URI={A_ID} https"));
        }
        let (bs, as_) = (b.total_stats(), a.total_stats());
        assert_eq!(bs.h2_connections, u64::from(h2), "B offers {alpn:?}");
        // One probe, then one pooled (h1) or multiplexed (h2) connection for all three.
        assert_eq!(as_.tls.upstream_handshakes, 2, "{:?}", as_.tls);
    }
}

/// An h2c (prior knowledge) origin answering every request with the XFCC and
/// x-forwarded-proto it received (`-` for a missing one), like [`xfcc_origin`] over HTTP/2.
fn h2c_xfcc_origin() -> PyServer {
    PyServer::run(
        "h2_header_echo.py",
        &["x-forwarded-client-cert", "x-forwarded-proto"],
    )
}

#[test]
fn b_forwards_a_identity_as_xfcc_to_an_h2c_app_from_h1_and_h2_and_drops_a_forged_one() {
    if !have("curl", &["--version"]) || !have_python_modules("h2") {
        eprintln!("SKIPPED: curl or python h2 not installed");
        return;
    }
    let pki = Pki::new();
    let origin = h2c_xfcc_origin();
    // B's cluster to the app speaks HTTP/2 (h2c).
    let b_yaml = sidecar_b(&pki, origin.addr).replace(
        "    connect_timeout: 2s\n",
        "    connect_timeout: 2s\n    protocol: http2\n",
    );
    assert!(b_yaml.contains("protocol: http2"), "{b_yaml}");
    let b = start(&b_yaml);
    let b_addr = b.addr("inbound").unwrap();
    // A → B over HTTP/1.1 (B translates h1 → h2) and over HTTP/2 (B relays h2 → h2).
    for a_proto in ["", "    protocol: http2\n"] {
        let a_yaml = sidecar_a(&pki, b_addr, "a", B_ID).replace(
            "    connect_timeout: 2s\n    tls:",
            &format!("    connect_timeout: 2s\n{a_proto}    tls:"),
        );
        let a = start(&a_yaml);
        let a_addr = a.addr("outbound").unwrap();
        for i in 0..2 {
            let (ok, out) = curl(&[&format!("http://{a_addr}/x")]);
            assert!(ok, "A cluster {a_proto:?} request {i}: {out}");
            assert_eq!(out, format!("URI={A_ID} https"), "A cluster {a_proto:?}");
        }
    }
    assert_eq!(
        b.total_stats().h2_connections,
        1,
        "A's http2 cluster used h2"
    );
    // Straight to B with A's SVID and a forged XFCC, over both client protocols: B sends
    // the verified peer's identity, never the client's header.
    let port = b_addr.port();
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let (ok, out) = curl(&[
            flag,
            "--cacert",
            &pki.p("ca.pem"),
            "--cert",
            &pki.p("a.pem"),
            "--key",
            &pki.p("a-key.pem"),
            "-H",
            "x-forwarded-client-cert: URI=spiffe://example.org/ns/default/sa/admin",
            "-H",
            "x-forwarded-proto: gopher",
            "-w",
            " %{http_version}",
            &format!("https://localhost:{port}/forged"),
        ]);
        assert!(ok, "{flag}: {out}");
        assert_eq!(out, format!("URI={A_ID} https {version}"), "{flag}");
    }
    // Without a verified peer (plaintext here) there is no XFCC to send: a client's own is
    // dropped on both paths to the h2c app.
    let plain = start(&format!(
        "listeners:\n{}clusters:\n{}    protocol: http2\n",
        http_listener("plain", "app", ""),
        cluster("app", origin.addr, "")
    ));
    let url = format!("http://{}/forged", plain.addr("plain").unwrap());
    for flag in ["--http1.1", "--http2-prior-knowledge"] {
        let (ok, out) = curl(&[
            flag,
            "-H",
            "x-forwarded-client-cert: URI=spiffe://example.org/ns/default/sa/admin",
            &url,
        ]);
        assert!(ok, "{flag}: {out}");
        assert_eq!(out, "- http", "{flag}");
    }
}

/// A sidecar process whose log (stderr) goes to a file.
struct Proc {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
    log: PathBuf,
}

impl Proc {
    fn spawn(dir: &TempDir, name: &str, yaml: &str, listeners: usize) -> Proc {
        let cfg = dir.path(&format!("{name}.yaml"));
        std::fs::write(&cfg, yaml).unwrap();
        let log = dir.path(&format!("{name}.log"));
        let mut child = Command::new(BIN)
            .args(["--shards", "1", "--config"])
            .arg(&cfg)
            .env("SHARDCAR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addrs = HashMap::new();
        while addrs.len() < listeners {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!(
                    "{name} exited: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let mut w = line.split_whitespace();
            if let (Some("listening"), Some(n), Some(a)) = (w.next(), w.next(), w.next()) {
                addrs.insert(n.to_string(), a.parse().unwrap());
            }
        }
        Proc { child, addrs, log }
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    /// Waits for a log line containing every one of `needles`.
    fn log_line(&self, needles: &[&str], limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(l.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn wrong_identities_are_refused_on_both_sides_with_the_reason_logged() {
    if !have("curl", &["--version"]) {
        eprintln!("SKIPPED: curl not installed");
        return;
    }
    let pki = Pki::new();
    let dir = TempDir::new("mtls-procs");
    let origin = xfcc_origin();
    let b = Proc::spawn(&dir, "b", &sidecar_b(&pki, origin.addr), 1);
    let b_addr = b.addr("inbound");
    // The server side refuses: A presents the "evil" SVID, which B does not allow.
    let a_evil = Proc::spawn(&dir, "a-evil", &sidecar_a(&pki, b_addr, "evil", B_ID), 1);
    let (_, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/", a_evil.addr("outbound")),
    ]);
    assert!(out.starts_with('5'), "refused upstream → 5xx, got {out}");
    let line = b.log_line(
        &["tls handshake failed", "identity_not_allowed"],
        Duration::from_secs(5),
    );
    let line = line.expect("B logs the refusal with its reason");
    assert!(line.contains(EVIL_ID), "{line}");
    // The client side refuses: A expects an identity B does not have.
    let a_picky = Proc::spawn(&dir, "a-picky", &sidecar_a(&pki, b_addr, "a", EVIL_ID), 1);
    let (_, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/", a_picky.addr("outbound")),
    ]);
    assert!(
        out.starts_with('5'),
        "unexpected upstream identity → 5xx, got {out}"
    );
    let line = a_picky.log_line(
        &["upstream tls handshake failed", "identity_not_allowed"],
        Duration::from_secs(5),
    );
    let line = line.expect("A logs the refusal with its reason");
    assert!(line.contains(B_ID), "{line}");
    // Refusals end only their own connections: the right identities still get through.
    let a_good = Proc::spawn(&dir, "a-good", &sidecar_a(&pki, b_addr, "a", B_ID), 1);
    let (ok, out) = curl(&[&format!("http://{}/", a_good.addr("outbound"))]);
    assert!(ok && out == format!("URI={A_ID} https"), "{out}");
}

/// A STRICT listener without client certificates (curl has no SVID), to `origin`.
fn strict_web(pki: &Pki, origin: SocketAddr, mode: &str) -> Server {
    start(&format!(
        "listeners:\n{}clusters:\n{}",
        http_listener("web", "app", &pki.server_block(mode, "")),
        cluster("app", origin, "")
    ))
}

#[test]
fn alpn_h2_on_a_strict_listener_is_served_by_the_h2_server() {
    if !have("curl", &["--version"]) || !have("openssl", &["version"]) {
        eprintln!("SKIPPED: curl or openssl not installed");
        return;
    }
    let pki = Pki::new();
    let origin = xfcc_origin();
    let srv = strict_web(&pki, origin.addr, "STRICT");
    let port = srv.addr("web").unwrap().port();
    let url = format!("https://localhost:{port}/");
    let ca = pki.p("ca.pem");
    let (ok, out) = curl(&["--http2", "--cacert", &ca, "-w", " %{http_version}", &url]);
    assert!(ok, "{out}");
    assert_eq!(out, "- https 2", "served over HTTP/2");
    let (ok, out) = curl(&["--http1.1", "--cacert", &ca, "-w", " %{http_version}", &url]);
    assert!(ok, "{out}");
    assert_eq!(out, "- https 1.1");
    assert_eq!(
        srv.total_stats().h2_connections,
        1,
        "h2 server took the ALPN h2 one"
    );
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-alpn",
            "h2",
        ])
        .args(["-servername", "localhost", "-CAfile", &ca])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("ALPN protocol: h2"), "{text}");
    assert!(
        text.contains("TLSv1.3") && text.contains("Verify return code: 0 (ok)"),
        "{text}"
    );
    // Plaintext to a STRICT listener is a failed handshake, counted by reason.
    let (ok, _) = curl(&[&format!("http://127.0.0.1:{port}/")]);
    assert!(!ok, "plaintext refused on STRICT");
    let t = srv.total_stats().tls;
    let failed = t.failures.iter().map(|(_, n)| n).sum::<u64>();
    assert!(failed >= 1, "{t:?}");
    assert_eq!(t.plaintext, 0);
    // The same counts on the admin's Prometheus page, by side and reason.
    let text = scrape(admin_of(&srv));
    promtool_clean(&text);
    let down = "shardcar_tls_handshakes_total{side=\"downstream\"}";
    assert_eq!(sum_of(&text, down), t.handshakes, "{text}");
    assert!(t.handshakes >= 3, "{t:?}");
    let failures = "shardcar_tls_handshake_failures_total{side=\"downstream\",reason=";
    assert_eq!(sum_of(&text, failures), failed, "{text}");
}

#[test]
fn permissive_serves_plaintext_and_tls_on_one_port() {
    if !have("curl", &["--version"]) {
        eprintln!("SKIPPED: curl not installed");
        return;
    }
    let pki = Pki::new();
    let origin = xfcc_origin();
    let srv = strict_web(&pki, origin.addr, "PERMISSIVE");
    let port = srv.addr("web").unwrap().port();
    let (ok, out) = curl(&[&format!("http://127.0.0.1:{port}/")]);
    assert!(ok, "{out}");
    assert_eq!(out, "- http");
    let (ok, out) = curl(&[
        "--cacert",
        &pki.p("ca.pem"),
        &format!("https://localhost:{port}/"),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out, "- https");
    let t = srv.total_stats().tls;
    assert_eq!((t.plaintext, t.handshakes), (1, 1), "{t:?}");
    let text = scrape(admin_of(&srv));
    assert_eq!(
        sum_of(&text, "shardcar_tls_permissive_plaintext_total "),
        1,
        "{text}"
    );
    assert_eq!(
        sum_of(&text, "shardcar_tls_handshakes_total{side=\"downstream\"}"),
        1,
        "{text}"
    );
}

/// A TLS client over a blocking socket, verifying B's SVID; returns the stream and B's serial.
fn tls_client(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

fn serial(s: &rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> String {
    let der = &s.conn.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn tls_terminated_l4_tunnel_carries_bytes_both_ways() {
    let pki = Pki::new();
    let echo = support::EchoServer::start();
    let yaml = format!(
        "listeners:
  - name: l4
    address: 127.0.0.1:0
    protocol: tcp
    cluster: echo
{}clusters:\n{}",
        pki.server_block("STRICT", ""),
        cluster("echo", echo.addr, "")
    );
    let srv = start(&yaml);
    let mut s = tls_client(srv.addr("l4").unwrap(), &pki.client_config());
    let data = support::payload(256 * 1024, 7);
    let writer_data = data.clone();
    // Write and read concurrently: the tunnel must move both directions at once.
    let mut got = vec![0u8; data.len()];
    let mut off = 0;
    let mut sent = 0;
    while off < data.len() {
        if sent < writer_data.len() {
            let n = (writer_data.len() - sent).min(16 * 1024);
            s.write_all(&writer_data[sent..sent + n]).unwrap();
            sent += n;
        }
        let n = s.read(&mut got[off..]).unwrap();
        assert!(n > 0, "tunnel closed after {off} bytes");
        off += n;
    }
    assert!(got == data, "echoed bytes differ");
    assert_eq!(srv.total_stats().tls.handshakes, 1);
}

#[test]
fn two_sidecars_carry_tcp_over_mtls() {
    let pki = Pki::new();
    let echo = support::EchoServer::start();
    let tls = pki.server_block(
        "STRICT",
        &format!("      require_client_certificate: true\n      allowed_identities: [{{exact: \"{A_ID}\"}}]\n"),
    );
    let b = start(&format!(
        "listeners:\n  - name: l4\n    address: 127.0.0.1:0\n    protocol: tcp\n    cluster: echo\n{tls}clusters:\n{}",
        cluster("echo", echo.addr, "")
    ));
    let a = start(&format!(
        "listeners:\n  - name: l4\n    address: 127.0.0.1:0\n    protocol: tcp\n    cluster: b\nclusters:\n{}",
        cluster("b", b.addr("l4").unwrap(), &pki.client_block("a", B_ID))
    ));
    let data = Arc::new(support::payload(128 * 1024, 11));
    let got = support::round_trip(support::connect(a.addr("l4").unwrap()), data.clone());
    assert!(got == *data, "echoed {} of {} bytes", got.len(), data.len());
    assert_eq!(b.total_stats().tls.handshakes, 1);
    assert_eq!(a.total_stats().tls.upstream_handshakes, 1);
}

#[test]
fn rotation_new_handshakes_see_the_new_serial_and_a_bad_file_keeps_the_old() {
    let pki = Pki::new();
    let origin = xfcc_origin();
    let srv = strict_web(&pki, origin.addr, "STRICT");
    let addr = srv.addr("web").unwrap();
    let cfg = pki.client_config();
    let live = tls_client(addr, &cfg);
    let before = serial(&live);
    let next = pki.reissue_b();
    let want: String = {
        let der = rustls::pki_types::CertificateDer::from(rustls_pemfile_der(&next.cert_pem));
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        c.raw_serial().iter().map(|b| format!("{b:02x}")).collect()
    };
    assert_ne!(before, want);
    let t0 = Instant::now();
    pki.t.write_issued("b", &next);
    let seen = loop {
        let s = serial(&tls_client(addr, &cfg));
        if s == want || t0.elapsed() > Duration::from_secs(3) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = t0.elapsed();
    assert_eq!(seen, want, "new handshakes use the new certificate");
    assert!(took < Duration::from_secs(2), "rotation took {took:?}");
    assert_eq!(srv.tls().applied(), 1);
    // The live connection kept its session: a request on it still works.
    let mut live = live;
    live.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 12];
    live.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // A bad file is rejected and counted; the current material stays.
    pki.t.write(
        "b.pem",
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
    );
    let t1 = Instant::now();
    while srv.tls().rejected() == 0 && t1.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(srv.tls().rejected(), 1, "the bad file is counted");
    assert_eq!(
        serial(&tls_client(addr, &cfg)),
        want,
        "old material in force"
    );
    // Both on the admin's Prometheus page, per block.
    let text = scrape(admin_of(&srv));
    promtool_clean(&text);
    let series =
        |r: &str| format!("shardcar_tls_reloads_total{{block=\"listener/web\",result=\"{r}\"}} ");
    assert_eq!(sum_of(&text, &series("applied")), 1, "{text}");
    assert_eq!(sum_of(&text, &series("rejected")), 1, "{text}");
}

/// The DER of the first certificate in `pem`.
fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn idle_tls_keepalive_connection_is_parked_reused_and_closed_after_idle_timeout() {
    // The sweeper parks idle connections by cancelling their reads; over TLS the read is
    // rustls's, with the cancel reaching the socket under it: a parked connection must still
    // carry the next request intact, and an idle one must still close on time.
    let pki = Pki::new();
    let origin = xfcc_origin();
    let listener = http_listener("web", "app", &pki.server_block("STRICT", "")).replace(
        "    protocol: http\n",
        "    protocol: http\n    idle_timeout: 2s\n",
    );
    let srv = start(&format!(
        "listeners:\n{listener}clusters:\n{}",
        cluster("app", origin.addr, "")
    ));
    let mut s = tls_client(srv.addr("web").unwrap(), &pki.client_config());
    let get = |s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while !got.ends_with(b"- https") {
            let n = s.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    };
    get(&mut s);
    // Past PARK_AFTER (1 s) plus a sweeper tick (250 ms): parked.
    std::thread::sleep(Duration::from_millis(1600));
    assert!(
        srv.total_stats().parked >= 1,
        "the idle TLS connection was parked"
    );
    get(&mut s);
    let idle = Duration::from_secs(2);
    let t0 = Instant::now();
    let mut rest = [0u8; 64];
    // Closed (close_notify or EOF) rather than the client's read timeout (10 s).
    let r = s.read(&mut rest);
    let took = t0.elapsed();
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "idle connection kept open: {r:?}"
    );
    // Configured value, plus two sweeper ticks (250 ms each at this timeout), plus 100 ms of
    // scheduling on a busy host.
    let bound = idle + 2 * Duration::from_millis(250) + Duration::from_millis(100);
    assert!(
        took >= idle - Duration::from_millis(50) && took <= bound,
        "closed after {took:?}, bound {bound:?}"
    );
    assert!(srv.total_stats().idle_timeouts >= 1);
}

/// A reload (file or xDS) that leaves a TLS cluster's block unchanged keeps its balancer and
/// pooled mTLS connections; one that changes the block starts afresh.
#[test]
fn a_reload_keeps_the_pooled_mtls_connections_of_an_unchanged_tls_cluster() {
    if !have("curl", &["--version"]) {
        eprintln!("SKIPPED: curl not installed");
        return;
    }
    let pki = Pki::new();
    let origin = xfcc_origin();
    let b = start(&sidecar_b(&pki, origin.addr));
    let b_addr = b.addr("inbound").unwrap();
    let yaml = sidecar_a(&pki, b_addr, "a", B_ID);
    let mut a = start(&yaml);
    let a_addr = a.addr("outbound").unwrap();
    let get = |n: usize| {
        let (ok, out) = curl(&[&format!("http://{a_addr}/hello")]);
        assert!(ok, "request {n}: {out}");
        assert_eq!(out, format!("URI={A_ID} https"), "request {n}");
    };
    get(0);
    assert_eq!(a.total_stats().tls.upstream_handshakes, 1);
    // An unrelated change: one more cluster.
    let more = format!("{yaml}{}", cluster("other", origin.addr, ""));
    a.swap(Config::from_yaml(&more).unwrap()).expect("swap");
    get(1);
    assert_eq!(
        a.total_stats().tls.upstream_handshakes,
        1,
        "the unchanged TLS cluster lost its pooled connection on reload"
    );
    // A changed TLS block (another expected identity form) builds new material: new handshake.
    let changed = sidecar_a(&pki, b_addr, "a", "spiffe://example.org/ns/default/sa/b");
    let changed = changed.replace("exact:", "prefix:");
    assert_ne!(changed, yaml, "the block must differ");
    a.swap(Config::from_yaml(&changed).unwrap()).expect("swap");
    get(2);
    assert_eq!(a.total_stats().tls.upstream_handshakes, 2);
}
