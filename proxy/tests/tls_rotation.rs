//! Rotation without restart: the server's certificate files are replaced on disk; new
//! handshakes see the new serial within 2 s, a live connection keeps working, and bad files
//! (garbage, a key that does not match, an expired certificate) are rejected and counted while
//! the old material stays in force.

mod tls_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use rustls::pki_types::ServerName;
use shardcar::tls::source::{BundleFile, IdentityFiles};
use shardcar::tls::{
    self, CertSource, ClientAuth, ClientSettings, IdentityMatcher, Reloader, ServerSettings,
};
use time::OffsetDateTime;
use tls_support::*;

fn source(pki: &TestPki) -> CertSource {
    CertSource {
        identities: vec![IdentityFiles {
            cert: pki.path("server.pem"),
            key: pki.path("server-key.pem"),
            svid: true,
        }],
        bundles: vec![BundleFile {
            trust_domain: td(),
            path: pki.path("ca.pem"),
        }],
    }
}

fn build(m: &tls::Material) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut s = ServerSettings::new(m.identities[0].certified.clone());
    s.client_auth = ClientAuth::Svid {
        bundles: m.bundles.clone(),
        matcher: IdentityMatcher::any(),
        required: true,
    };
    s.build().map_err(|e| e.to_string())
}

fn hex(n: u64) -> String {
    // rcgen encodes the serial as big-endian bytes without leading zeros (plus a 0 when the
    // top bit is set); our serials are 63-bit, so the top bit is never set.
    let b = n.to_be_bytes();
    let first = b.iter().position(|x| *x != 0).unwrap_or(7);
    b[first..].iter().map(|x| format!("{x:02x}")).collect()
}

fn serial_seen(srv: &TlsEchoServer, c: &Arc<rustls::ClientConfig>) -> String {
    client(srv.addr, c.clone(), "localhost")
        .handshake
        .unwrap()
        .peer_serial_hex()
        .unwrap()
}

/// Waits until new handshakes show `want`; returns how long it took.
fn wait_for_serial(srv: &TlsEchoServer, c: &Arc<rustls::ClientConfig>, want: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        if serial_seen(srv, c) == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "new serial {want} not seen within 2 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Log output of every thread (the reloader logs from its own), sent line by line.
#[derive(Clone)]
struct LogSink(std::sync::mpsc::Sender<Vec<u8>>);

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Logs {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    text: std::cell::RefCell<String>,
}

impl Logs {
    fn text(&self) -> String {
        let mut t = self.text.borrow_mut();
        while let Ok(b) = self.rx.try_recv() {
            t.push_str(&String::from_utf8_lossy(&b));
        }
        t.clone()
    }
}

#[test]
fn rotation_reaches_new_handshakes_and_bad_files_keep_the_old_material() {
    let (log_tx, rx) = std::sync::mpsc::channel();
    let logs = Logs {
        rx,
        text: Default::default(),
    };
    let sink = LogSink(log_tx);
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();
    let pki = TestPki::new();
    let (tx, rx) = std::sync::mpsc::channel::<Arc<rustls::ServerConfig>>();
    let (reloader, first) = Reloader::start("test", source(&pki), build, move |cfg| {
        let _ = tx.send(cfg);
    })
    .unwrap();
    let srv = TlsEchoServer::start(first);
    // Carries new configs to the server, as the shard command channel will.
    let to_server = srv.config_sender();
    let pump = std::thread::spawn(move || {
        for c in rx {
            let _ = to_server.send(c);
        }
    });
    let mut cs = ClientSettings::new(pki.bundles());
    cs.client_cert = Some(certified(&pki.client));
    cs.resumption = false; // every handshake is a full one, so it sees the current certificate
    let c = cs.build().unwrap();
    assert_eq!(serial_seen(&srv, &c), hex(pki.server.serial));

    // A live connection opened before the rotations.
    let addr = srv.addr;
    let live_cfg = c.clone();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let live = std::thread::spawn(move || {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tcp = monoio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let (mut s, _) = tls::connect(live_cfg, name, tcp).await.unwrap();
            go_rx.recv().unwrap(); // blocks this runtime, which has nothing else to do
            s.write_all(b"still here".to_vec()).await.0.unwrap();
            let (r, b) = s.read(vec![0u8; 64]).await;
            done_tx.send(b[..r.unwrap()].to_vec()).unwrap();
        });
    });

    for round in 0..3 {
        let next = pki.ca.issue(&pki.spec(SERVER_ID)).unwrap();
        pki.write_issued("server", &next);
        let took = wait_for_serial(&srv, &c, &hex(next.serial));
        eprintln!("rotation {round}: new serial seen after {took:?}");
    }
    assert_eq!(reloader.stats().applied(), 3);
    let current = serial_seen(&srv, &c);

    // Bad versions: each is rejected once, the current certificate stays.
    let unrelated = pki.ca.issue(&pki.spec(SERVER_ID)).unwrap();
    let mut expired = pki.spec(SERVER_ID);
    expired.not_before = OffsetDateTime::now_utc() - time::Duration::days(2);
    expired.not_after = OffsetDateTime::now_utc() - time::Duration::days(1);
    let expired = pki.ca.issue(&expired).unwrap();
    let good_key = std::fs::read_to_string(pki.path("server-key.pem")).unwrap();
    let garbage = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
    let bad: Vec<(&str, String, String, (&str, &str))> = vec![
        (
            "garbage",
            garbage.into(),
            good_key.clone(),
            ("server.pem\"", "reason=\"bad PEM"),
        ),
        (
            "key mismatch",
            unrelated.cert_pem.clone(),
            good_key.clone(),
            (
                "server-key.pem\"",
                "reason=\"the private key does not match",
            ),
        ),
        (
            "expired",
            expired.cert_pem.clone(),
            expired.key_pem.clone(),
            ("server.pem\"", "reason=\"certificate expired at"),
        ),
    ];
    for (n, (name, cert, key, (file, reason))) in bad.into_iter().enumerate() {
        pki.write("server-key.pem", &key);
        pki.write("server.pem", &cert);
        let t0 = Instant::now();
        while reloader.stats().rejected() < n as u64 + 1 {
            assert!(t0.elapsed() < Duration::from_secs(2), "{name} not rejected");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            serial_seen(&srv, &c),
            current,
            "{name}: old material in force"
        );
        let text = logs.text();
        let line = text
            .lines()
            .find(|l| l.contains("reload rejected") && l.contains(file) && l.contains(reason))
            .unwrap_or_else(|| {
                panic!("{name}: no log line naming the file and reason in:\n{text}")
            });
        assert!(line.contains("WARN"), "{line}");
    }
    assert_eq!(reloader.stats().applied(), 3, "no bad version was applied");

    go_tx.send(()).unwrap();
    let echoed = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        echoed, b"still here",
        "the live connection kept its session"
    );
    live.join().unwrap();
    drop(reloader);
    drop(srv);
    pump.join().unwrap();
}
