//! Builders for integration tests: an echo origin, a hand-held upstream, configs and an
//! in-process proxy, all on 127.0.0.1 port 0 and all stopped by their handles.
#![allow(dead_code)]

pub mod admin;
pub mod client;
pub mod grpc;
pub mod hold;
pub mod origin;
pub mod script;
pub mod status;
pub mod tools;
pub mod xds;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use shardcar::{Config, Server};

/// An origin that echoes every byte back and half-closes when the client does.
pub struct EchoServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if c.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = c.shutdown(Shutdown::Write);
                });
            }
        });
        EchoServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port nothing listens on, held for the whole test: the socket is bound but never listens,
/// so connects to it are refused and no other process can take the port meanwhile.
pub struct DeadPort {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        s.bind(&any.into()).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        DeadPort { addr, _socket: s }
    }
}

/// A single-listener L4 config forwarding to `endpoints`.
pub fn l4_yaml(
    mode: &str,
    endpoints: &[SocketAddr],
    extra_listener: &str,
    extra_cluster: &str,
) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "drain_timeout: 5s
listeners:
  - name: l4
    address: 127.0.0.1:0
    protocol: tcp
    l4_mode: {mode}
    cluster: up
{extra_listener}clusters:
  - name: up
    endpoints: [{}]
    connect_timeout: 500ms
{extra_cluster}",
        eps.join(", ")
    )
}

/// One `web` http listener routing everything to cluster `app` at `origin`, with
/// `cluster_extra` YAML appended to the cluster; one shard.
pub fn http_proxy_to(origin: SocketAddr, cluster_extra: &str) -> (Server, SocketAddr) {
    let yaml = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
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
{cluster_extra}"
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

pub fn start_proxy(yaml: &str, shards: usize) -> (Server, SocketAddr) {
    let config = Config::from_yaml(yaml).expect("test config is valid");
    let server = Server::start(config, shards).expect("proxy starts");
    let addr = server.addr("l4").expect("listener l4");
    (server, addr)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` on one thread while reading everything back on this one; returns what came back.
pub fn round_trip(stream: TcpStream, data: Arc<Vec<u8>>) -> Vec<u8> {
    let mut w = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = stream;
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    got
}

/// Names of this process's threads (`/proc/self/task/*/comm`).
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

/// Accepts one connection, or `None` if none arrives within `limit`.
pub fn accept_within(l: &TcpListener, limit: Duration) -> Option<TcpStream> {
    l.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + limit;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}
