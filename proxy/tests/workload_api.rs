//! The SPIFFE Workload API as an identity source: a Python grpcio Workload API server (built
//! from `proxy/proto/workload.proto`) streams X509-SVIDs over a unix socket; a listener and a
//! cluster with `workload_api:` serve and present them. A new SVID is used by new handshakes
//! within 2 s, a bad one is rejected and counted with the old one kept, and a dropped stream
//! is reopened. The xDS client presents the Workload API SVID to an mTLS control plane (the
//! Python one of `tests/py/xds_server.py`), and the rotated one when it reconnects.

mod support;
mod tls_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardcar::tls::devca::Issued;
use shardcar::tls::ClientSettings;
use shardcar::{Config, Server};
use support::tools::{have_python_modules, python, script};
use tls_support::*;

/// The test Workload API server, stopped (killed by handle) when dropped.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &TempDir) -> Agent {
        let socket = dir.path("agent.sock");
        let mut child = Command::new(python())
            .arg(script("workload_api_server.py"))
            .arg(&socket)
            .arg(&dir.0)
            .arg(SERVER_ID)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn workload_api_server.py");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "workload_api_server.py did not start");
        Agent {
            child,
            stdin,
            stdout,
            socket,
        }
    }

    fn tell(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok", "{cmd}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn put_svid(pki: &TestPki, i: &Issued) {
    pki.write("svid-key.pem", &i.key_pem);
    pki.write("svid.pem", &i.cert_pem);
}

fn server_svid(pki: &TestPki) -> Issued {
    let mut s = pki.spec(SERVER_ID);
    s.dns = vec!["localhost".into()];
    pki.ca.issue(&s).unwrap()
}

fn hex(n: u64) -> String {
    let b = n.to_be_bytes();
    let first = b.iter().position(|x| *x != 0).unwrap_or(7);
    b[first..].iter().map(|x| format!("{x:02x}")).collect()
}

fn client_config(pki: &TestPki, with_cert: bool) -> Arc<rustls::ClientConfig> {
    let mut c = ClientSettings::new(pki.bundles());
    if with_cert {
        c.client_cert = Some(certified(&pki.client));
    }
    c.build().unwrap()
}

/// The serial of the certificate a new handshake sees (after an echo round trip).
fn serial(addr: std::net::SocketAddr, c: &Arc<rustls::ClientConfig>) -> String {
    let r = client(addr, c.clone(), "localhost");
    let facts = r.handshake.expect("handshake");
    assert_eq!(r.echo.unwrap().unwrap(), b"ping");
    facts.peer_serial_hex().unwrap()
}

fn wait_for(addr: std::net::SocketAddr, c: &Arc<rustls::ClientConfig>, want: &str) {
    let t0 = Instant::now();
    while serial(addr, c) != want {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "serial {want} not served within 2 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(yaml: &str) -> Server {
    Server::start(Config::from_yaml(yaml).unwrap(), 1).unwrap()
}

#[test]
fn svids_from_the_workload_api_serve_rotate_and_survive_bad_updates_and_stream_loss() {
    if !have_python_modules("grpc, grpc_tools") {
        return;
    }
    let pki = TestPki::new();
    let first = server_svid(&pki);
    put_svid(&pki, &first);
    pki.write("bundle.pem", &pki.ca.cert_pem.clone());
    let mut agent = Agent::start(&pki.dir);
    let echo = support::EchoServer::start();
    let sock = agent.socket.display().to_string();
    // B: inbound, STRICT mTLS with its SVID and bundle from the Workload API.
    let b = start(&format!(
        "listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: tcp
    cluster: echo
    tls:
      workload_api: {sock}
      require_client_certificate: true
clusters:
  - name: echo
    endpoints: [\"{}\"]
",
        echo.addr
    ));
    let addr = b.addr("in").unwrap();
    let with_cert = client_config(&pki, true);
    assert_eq!(serial(addr, &with_cert), hex(first.serial));
    let r = client(addr, client_config(&pki, false), "localhost");
    assert!(
        r.handshake.is_err() || r.echo.is_some_and(|e| e.is_err()),
        "no client certificate: refused"
    );

    // A new SVID at the agent: new handshakes see it within 2 s.
    let second = server_svid(&pki);
    put_svid(&pki, &second);
    agent.tell("send");
    wait_for(addr, &with_cert, &hex(second.serial));
    assert_eq!(b.tls().applied(), 1);

    // A bad update (a key that does not match the certificate): rejected, counted, old kept.
    let third = server_svid(&pki);
    pki.write("svid-key.pem", &pki.client.key_pem);
    pki.write("svid.pem", &third.cert_pem);
    agent.tell("send");
    let t0 = Instant::now();
    while b.tls().rejected() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "bad SVID not rejected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        serial(addr, &with_cert),
        hex(second.serial),
        "old SVID kept"
    );

    // The stream ends; the client reconnects and takes what the agent has now.
    let fourth = server_svid(&pki);
    put_svid(&pki, &fourth);
    agent.tell("send");
    wait_for(addr, &with_cert, &hex(fourth.serial));
    agent.tell("drop");
    let fifth = server_svid(&pki);
    put_svid(&pki, &fifth);
    agent.tell("send");
    wait_for(addr, &with_cert, &hex(fifth.serial));

    // A: outbound, presenting its client SVID from the Workload API to B.
    let a = start(&format!(
        "listeners:
  - name: out
    address: 127.0.0.1:0
    protocol: tcp
    cluster: b
clusters:
  - name: b
    endpoints: [\"{addr}\"]
    tls:
      workload_api: {sock}
      expected_identities: [{{exact: \"{SERVER_ID}\"}}]
"
    ));
    let data = Arc::new(support::payload(64 * 1024, 3));
    let got = support::round_trip(support::connect(a.addr("out").unwrap()), data.clone());
    assert!(got == *data, "A → mTLS (Workload API SVIDs both sides) → B");
}

#[test]
fn a_block_needs_its_first_svid_and_takes_no_files_beside_the_workload_api() {
    let dir = TempDir::new("wl-none");
    let sock = dir.path("nobody.sock").display().to_string();
    let yaml = format!(
        "listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: tcp
    cluster: c
    tls: {{workload_api: {sock}, cert: a.pem}}
clusters:
  - name: c
    endpoints: [\"127.0.0.1:9\"]
"
    );
    let e = Config::from_yaml(&yaml).unwrap_err().to_string();
    assert!(e.contains("workload_api"), "{e}");
}

/// A PEM certificate's base64 body, whitespace removed (to compare two encoders' PEM).
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

/// Waits for the control plane to see a stream opened over TLS; returns the client's
/// certificate (its PEM body) and SANs.
fn xds_peer(cp: &mut support::xds::ControlPlane) -> (String, serde_json::Value) {
    let ev = cp.wait("stream", |v| v["open"] == true, Duration::from_secs(20));
    (
        pem_body(ev["peer_cert"].as_str().unwrap_or_default()),
        ev["peer_sans"].clone(),
    )
}

#[test]
fn the_xds_client_presents_its_workload_api_svid_to_the_control_plane_and_rotates_it() {
    use support::xds::{free_port, get_until, ControlPlane, Sidecar};
    if !have_python_modules("grpc, grpc_tools, envoy.service.discovery.v3.ads_pb2_grpc") {
        return;
    }
    let pki = TestPki::new();
    // The agent hands the sidecar the `client` SVID; the control plane serves `server`'s and
    // requires a client certificate from the same CA.
    let first = pki.ca.issue(&pki.spec(CLIENT_ID)).unwrap();
    put_svid(&pki, &first);
    pki.write("bundle.pem", &pki.ca.cert_pem.clone());
    let mut agent = Agent::start(&pki.dir);
    let p = |f: &str| pki.path(f).display().to_string();
    let tls_args = [
        "--cert",
        &p("server.pem"),
        "--key",
        &p("server-key.pem"),
        "--ca",
        &p("ca.pem"),
    ];
    let mut cp = ControlPlane::start_with(0, &tls_args);
    let cp_port = cp.port;
    let origin = support::origin::Origin::start("app");
    let port = free_port();
    cp.serve_web(port, &[origin.addr]);
    let cluster = format!(
        "{{name: xds, endpoints: [\"127.0.0.1:{cp_port}\"], protocol: http2, connect_timeout: 1s, \
         tls: {{workload_api: {}, expected_identities: [{{exact: \"{SERVER_ID}\"}}]}}}}",
        agent.socket.display()
    );
    let sidecar = Sidecar::start_with_cluster(&cluster, "", "");
    let lis: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (s, body) = get_until(lis, "/name", |s, b| s == 200 && b == "app");
    assert_eq!((s, body.as_str()), (200, "app"), "config over mTLS serves");
    cp.acked("LDS");
    let (cert, sans) = xds_peer(&mut cp);
    assert_eq!(cert, pem_body(&first.cert_pem), "the Workload API SVID");
    assert!(
        sans.to_string().contains(CLIENT_ID),
        "the control plane sees the SPIFFE ID: {sans}"
    );

    // The agent rotates the SVID; the control plane restarts: the reconnect presents the
    // new one.
    let second = pki.ca.issue(&pki.spec(CLIENT_ID)).unwrap();
    put_svid(&pki, &second);
    agent.tell("send");
    std::thread::sleep(Duration::from_millis(300));
    cp.stop();
    sidecar.dump_until("the stream lost", |d| d["xds"]["connected"].is_null());
    let mut cp = ControlPlane::start_with(cp_port, &tls_args);
    cp.serve_web(port, &[origin.addr]);
    let (cert, _) = xds_peer(&mut cp);
    assert_eq!(cert, pem_body(&second.cert_pem), "the rotated SVID");
    cp.acked("LDS");
    let (s, _) = get_until(lis, "/name", |s, b| s == 200 && b == "app");
    assert_eq!(s, 200);
}
