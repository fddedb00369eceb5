//! `protocol: auto` listeners: one port serves HTTP/1.1 (through the routes), h2c with prior
//! knowledge, and opaque TCP to the listener's `cluster` — a TLS ClientHello (curl to an
//! `openssl s_server` behind the proxy), arbitrary bytes (echoed), a server-first protocol
//! whose client sends nothing (it reaches the upstream's greeting after `sniff_timeout`), and
//! `opaque_ports` that skip the sniff.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::origin::Origin;
use support::tools::{have, run, TempDir};
use support::EchoServer;

fn auto_yaml(address: &str, extra: &str, http: SocketAddr, opaque: SocketAddr) -> String {
    format!(
        "listeners:
  - name: auto
    address: {address}
    protocol: auto
    cluster: opaque
{extra}    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{http}\"]
  - name: opaque
    endpoints: [\"{opaque}\"]
"
    )
}

fn start(yaml: &str) -> Server {
    let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Server::start(config, 1).expect("proxy starts")
}

/// An upstream that greets first (like SMTP or MySQL), then echoes.
fn greeter() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let _ = c.write_all(b"220 ready\r\n");
                let mut buf = [0u8; 1024];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Reads until `want` bytes arrived; the time it took.
fn read_exact_timed(s: &mut TcpStream, want: usize) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = vec![0u8; want];
    s.read_exact(&mut out).expect("bytes within 10 s");
    (out, t.elapsed())
}

#[test]
fn http1_and_h2c_go_through_the_routes() {
    if !have("curl", &["--version"]) {
        return;
    }
    let origin = Origin::start("o1");
    let echo = EchoServer::start();
    let p = start(&auto_yaml("127.0.0.1:0", "", origin.addr, echo.addr));
    let addr = p.addr("auto").unwrap();
    let mut c = Client::connect(addr);
    let r = c.get("/name");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "o1"),
        "HTTP/1.1 routed"
    );
    let out = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-w",
            " %{http_version}",
            &format!("http://{addr}/name"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "o1 2", "h2c routed");
}

#[test]
fn other_bytes_are_opaque_and_replayed() {
    let origin = Origin::start("o1");
    let echo = EchoServer::start();
    let p = start(&auto_yaml("127.0.0.1:0", "", origin.addr, echo.addr));
    let mut s = TcpStream::connect(p.addr("auto").unwrap()).unwrap();
    let msg = b"\x00\x01\x02 binary protocol \xff";
    s.write_all(msg).unwrap();
    let (got, _) = read_exact_timed(&mut s, msg.len());
    assert_eq!(got, msg, "sniffed bytes reached the opaque upstream first");
    // Lower-case is no HTTP method: opaque too.
    let mut s = TcpStream::connect(p.addr("auto").unwrap()).unwrap();
    s.write_all(b"get / HTTP/1.1\r\n\r\n").unwrap();
    let (got, _) = read_exact_timed(&mut s, 18);
    assert_eq!(got, b"get / HTTP/1.1\r\n\r\n");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tls_client_hello_passes_through_to_a_tls_upstream() {
    if !have("openssl", &["version"]) || !have("curl", &["--version"]) {
        return;
    }
    let dir = TempDir::new("auto-tls");
    let (key, cert) = (dir.file("k.pem"), dir.file("c.pem"));
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=opaque-upstream",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Killed(
        Command::new("openssl")
            .args(["s_server", "-accept", &port.to_string(), "-www", "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tls_up: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(tls_up).is_err() {
        assert!(Instant::now() < deadline, "s_server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let origin = Origin::start("o1");
    let p = start(&auto_yaml("127.0.0.1:0", "", origin.addr, tls_up));
    let out = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            "opaque-upstream:443:127.0.0.1",
            "--connect-to",
            &format!("opaque-upstream:443:{}", p.addr("auto").unwrap()),
            "https://opaque-upstream/",
        ],
    );
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "TLS end to end through the proxy");
    assert!(
        page.contains("s_server"),
        "the TLS upstream answered: {page}"
    );
}

#[test]
fn server_first_protocol_gets_its_greeting_after_the_sniff_timeout() {
    let origin = Origin::start("o1");
    let up = greeter();
    let p = start(&auto_yaml(
        "127.0.0.1:0",
        "    sniff_timeout: 100ms\n",
        origin.addr,
        up,
    ));
    let mut s = TcpStream::connect(p.addr("auto").unwrap()).unwrap();
    let (got, took) = read_exact_timed(&mut s, 11);
    assert_eq!(got, b"220 ready\r\n");
    assert!(
        took >= Duration::from_millis(100),
        "the proxy waited for the sniff timeout: {took:?}"
    );
    s.write_all(b"EHLO x\r\n").unwrap();
    let (got, _) = read_exact_timed(&mut s, 8);
    assert_eq!(got, b"EHLO x\r\n", "then bytes flow both ways");
}

#[test]
fn opaque_ports_skip_the_sniff() {
    let origin = Origin::start("o1");
    let up = greeter();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A sniff timeout far longer than the greeting may take, so waiting for it would show.
    let extra = format!("    sniff_timeout: 5s\n    opaque_ports: [{port}]\n");
    let p = start(&auto_yaml(
        &format!("127.0.0.1:{port}"),
        &extra,
        origin.addr,
        up,
    ));
    let mut s = TcpStream::connect(p.addr("auto").unwrap()).unwrap();
    let (got, took) = read_exact_timed(&mut s, 11);
    assert_eq!(got, b"220 ready\r\n");
    assert!(
        took < Duration::from_secs(4),
        "no sniff on an opaque port: {took:?}"
    );
}

#[test]
fn auto_settings_are_checked_and_named() {
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let yaml = auto_yaml("127.0.0.1:0", "    sniff_timeout: 0s\n", up, up);
    let e = Config::from_yaml(&yaml).unwrap_err().to_string();
    assert!(
        e.contains("listeners[0].sniff_timeout: must be above 0"),
        "{e}"
    );
    let yaml = auto_yaml("127.0.0.1:0", "", up, up).replace("    cluster: opaque\n", "");
    let e = Config::from_yaml(&yaml).unwrap_err().to_string();
    assert!(e.contains("listeners[0].cluster"), "{e}");
    let yaml = auto_yaml("127.0.0.1:0", "    opaque_ports: [25]\n", up, up)
        .replace("protocol: auto\n    cluster: opaque\n", "protocol: http\n");
    let e = Config::from_yaml(&yaml).unwrap_err().to_string();
    assert!(
        e.contains("listeners[0].opaque_ports: only a protocol: auto listener takes opaque_ports"),
        "{e}"
    );
}
