//! TLS test builders: a [`TestPki`] on disk (dev CA, SVIDs, broken SVIDs), a [`TlsEchoServer`]
//! built from `shardcar::tls` on 127.0.0.1:0 that records every handshake outcome, and a
//! client that connects with our own `tls::connect`.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use shardcar::tls::devca::{DevCa, Issued, SvidSpec};
use shardcar::tls::{self, SpiffeId, TlsFacts, TrustBundles, TrustDomain};

pub const DAY: Duration = Duration::from_secs(86_400);
pub const TD: &str = "example.org";
pub const SERVER_ID: &str = "spiffe://example.org/ns/default/sa/server";
pub const CLIENT_ID: &str = "spiffe://example.org/ns/default/sa/client";

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "shardcar-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes by rename, as a certificate manager should.
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)
        .unwrap()
        .write_all(contents.as_bytes())
        .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn td() -> TrustDomain {
    TrustDomain::new(TD).unwrap()
}

pub fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

pub fn certified(i: &Issued) -> Arc<CertifiedKey> {
    let chain = vec![CertificateDer::from_pem_slice(i.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(i.key_pem.as_bytes()).unwrap();
    let signer = tls::provider().key_provider.load_private_key(key).unwrap();
    Arc::new(CertifiedKey::new(chain, signer))
}

/// A dev CA for example.org with server and client SVIDs, all written to a temp dir:
/// `ca.pem`, `server.pem`/`server-key.pem` (also DNS `localhost`), `client.pem`/`client-key.pem`.
pub struct TestPki {
    pub dir: TempDir,
    pub ca: DevCa,
    pub server: Issued,
    pub client: Issued,
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = TempDir::new("pki");
        let ca = DevCa::new(&td(), DAY).unwrap();
        let mut s = SvidSpec::new(&id(SERVER_ID), DAY);
        s.dns = vec!["localhost".into()];
        let server = ca.issue(&s).unwrap();
        let client = ca.issue(&SvidSpec::new(&id(CLIENT_ID), DAY)).unwrap();
        let pki = TestPki {
            dir,
            ca,
            server,
            client,
        };
        pki.write("ca.pem", &pki.ca.cert_pem.clone());
        pki.write_issued("server", &pki.server.clone());
        pki.write_issued("client", &pki.client.clone());
        pki
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.path(f)
    }

    pub fn write(&self, f: &str, contents: &str) {
        write_atomic(&self.path(f), contents);
    }

    pub fn write_issued(&self, name: &str, i: &Issued) {
        self.write(&format!("{name}-key.pem"), &i.key_pem);
        self.write(&format!("{name}.pem"), &i.cert_pem);
    }

    pub fn bundles(&self) -> TrustBundles {
        let mut b = TrustBundles::new();
        b.add(
            td(),
            &[CertificateDer::from_pem_slice(self.ca.cert_pem.as_bytes()).unwrap()],
        )
        .unwrap();
        b
    }

    pub fn spec(&self, s: &str) -> SvidSpec {
        SvidSpec::new(&id(s), DAY)
    }
}

/// One handshake as the server saw it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(TlsFacts),
    Refused {
        label: &'static str,
        message: String,
    },
}

/// A TLS echo server on 127.0.0.1:0: echoes each read (closing after one that contains
/// `bye`); answers `GET ` with a one-shot HTTP/1.1 response naming the peer and ALPN. New
/// configs arrive by message, as they reach a shard; outcomes leave by message.
pub struct TlsEchoServer {
    pub addr: SocketAddr,
    config_tx: mpsc::Sender<Arc<rustls::ServerConfig>>,
    outcomes_rx: mpsc::Receiver<Outcome>,
    seen: RefCell<Vec<Outcome>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsEchoServer {
    pub fn start(config: Arc<rustls::ServerConfig>) -> TlsEchoServer {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (config_tx, config_rx) = mpsc::channel::<Arc<rustls::ServerConfig>>();
        let (outcomes_tx, outcomes_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = monoio::net::TcpListener::from_std(l).unwrap();
                let mut cfg = config;
                loop {
                    let Ok((stream, _)) = l.accept().await else {
                        continue;
                    };
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    while let Ok(c) = config_rx.try_recv() {
                        cfg = c;
                    }
                    let (cfg, o) = (cfg.clone(), outcomes_tx.clone());
                    monoio::spawn(async move {
                        match tls::accept(cfg, stream).await {
                            Ok((tls, facts)) => {
                                let _ = o.send(Outcome::Ok(facts.clone()));
                                serve(tls, facts).await;
                            }
                            Err(e) => {
                                let _ = o.send(Outcome::Refused {
                                    label: e.label(),
                                    message: e.to_string(),
                                });
                            }
                        }
                    });
                }
            });
        });
        TlsEchoServer {
            addr,
            config_tx,
            outcomes_rx,
            seen: RefCell::new(Vec::new()),
            stop,
            thread: Some(thread),
        }
    }

    /// New connections from now on use `c`.
    pub fn set_config(&self, c: Arc<rustls::ServerConfig>) {
        self.config_tx.send(c).unwrap();
    }

    /// A sender for configs, for a reloader callback on another thread.
    pub fn config_sender(&self) -> mpsc::Sender<Arc<rustls::ServerConfig>> {
        self.config_tx.clone()
    }

    /// The `n`th handshake outcome (0-based), waiting up to 5 s for it.
    pub fn outcome(&self, n: usize) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = self.seen.borrow_mut();
        while seen.len() <= n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.outcomes_rx.recv_timeout(left) {
                Ok(o) => seen.push(o),
                Err(_) => panic!("no handshake outcome #{n}"),
            }
        }
        seen[n].clone()
    }
}

impl Drop for TlsEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve<S: AsyncReadRent + AsyncWriteRent>(mut s: S, facts: TlsFacts) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (r, b) = s.read(buf).await;
        buf = b;
        let n = match r {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if buf[..n].starts_with(b"GET ") {
            let body = format!(
                "peer={} alpn={}\n",
                facts.peer.as_ref().map(|p| p.as_str()).unwrap_or("-"),
                facts.alpn_str().unwrap_or("-")
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.into_bytes()).await;
            let _ = s.shutdown().await;
            return;
        }
        let bye = buf[..n].windows(3).any(|w| w == b"bye");
        let out = buf[..n].to_vec();
        if s.write_all(out).await.0.is_err() {
            return;
        }
        if bye {
            let _ = s.shutdown().await;
            return;
        }
    }
}

/// What our client saw: the handshake, then one echo round trip.
#[derive(Debug)]
pub struct ClientResult {
    pub handshake: Result<TlsFacts, tls::HandshakeError>,
    /// The echo of `ping`, or the error of the first read.
    pub echo: Option<std::io::Result<Vec<u8>>>,
}

/// Connects with `tls::connect`, sends `ping`, reads the echo.
pub fn client(addr: SocketAddr, config: Arc<rustls::ClientConfig>, sni: &str) -> ClientResult {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    rt.block_on(async move {
        let tcp = monoio::net::TcpStream::connect(addr).await.unwrap();
        let (mut s, facts) = match tls::connect(config, name, tcp).await {
            Ok(x) => x,
            Err(e) => {
                return ClientResult {
                    handshake: Err(e),
                    echo: None,
                }
            }
        };
        let echo = async {
            let (r, _) = s.write_all(b"ping".to_vec()).await;
            r?;
            let (r, b) = s.read(vec![0u8; 64]).await;
            let n = r?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
            Ok(b[..n].to_vec())
        };
        let echo = monoio::time::timeout(Duration::from_secs(5), echo)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("echo timed out")));
        ClientResult {
            handshake: Ok(facts),
            echo: Some(echo),
        }
    })
}
