//! Idle connections give their buffers back: the proxy's own gauges of held read buffers
//! (`read_buffer_bytes` for HTTP/1 client reads, `copy_buffers_in_use` for L4 copy slots),
//! before and after the sweeper parks quiet connections. Deterministic: no RSS is read.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::origin::Origin;
use support::*;

const CONNS: usize = 20;
/// `http1::conn::INITIAL_READ_BUFFER` and `PARKED_READ`.
const READ_BUFFER: u64 = 4096;
const PARKED_READ: u64 = 64;

/// Waits (bounded) until `cond` holds for the merged stats, returning the last snapshot.
fn wait_stats(
    server: &Server,
    what: &str,
    cond: impl Fn(&shardcar::shard::ShardStats) -> bool,
) -> shardcar::shard::ShardStats {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = server.total_stats();
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < until,
            "{what} within 10 s: parked {}, read_buffer_bytes {}, copy_buffers_in_use {}",
            s.parked,
            s.read_buffer_bytes,
            s.copy_buffers_in_use
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_proxy(origin: &Origin) -> (Server, std::net::SocketAddr) {
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
    endpoints: [\"{}\"]
",
        origin.addr
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

#[test]
fn parked_keepalive_connections_hold_only_a_tiny_read_buffer() {
    let origin = Origin::start("a");
    let (server, addr) = http_proxy(&origin);
    let mut clients: Vec<Client> = (0..CONNS).map(|_| Client::connect(addr)).collect();
    for c in &mut clients {
        assert_eq!(c.get("/name").text(), "a");
    }
    // Right after their requests every connection waits with its full read buffer (parking
    // needs PARK_AFTER = 1 s of quiet, far longer than these requests take).
    let busy = server.total_stats();
    assert!(
        busy.read_buffer_bytes >= CONNS as u64 * READ_BUFFER,
        "active connections hold their read buffers: {}",
        busy.read_buffer_bytes
    );
    // Parking cancels the pending reads; each connection then re-reads with a tiny buffer.
    wait_stats(
        &server,
        "every connection parked, holding at most PARKED_READ bytes of read buffer",
        |s| s.parked >= CONNS as u64 && s.read_buffer_bytes <= CONNS as u64 * PARKED_READ,
    );
    // And they still serve: the next request on each works, with a full buffer again.
    for c in &mut clients {
        assert_eq!(c.get("/name").text(), "a");
    }
    assert!(server.total_stats().read_buffer_bytes >= CONNS as u64 * READ_BUFFER);
    drop(clients);
    server.shutdown();
}

#[test]
fn parked_l4_connections_return_their_copy_buffers() {
    let echo = EchoServer::start();
    let (server, addr) = start_proxy(&l4_yaml("copy", &[echo.addr], "", ""), 1);
    let mut clients: Vec<_> = (0..CONNS).map(|_| connect(addr)).collect();
    let mut buf = [0u8; 5];
    for c in &mut clients {
        c.write_all(b"hello").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }
    // One 16 KiB slot per direction while traffic flows.
    assert_eq!(
        server.total_stats().copy_buffers_in_use,
        2 * CONNS as u64,
        "active connections hold two copy buffers each"
    );
    wait_stats(
        &server,
        "every connection parked, its copy buffers back in the arena",
        |s| s.parked >= CONNS as u64 && s.copy_buffers_in_use == 0,
    );
    for c in &mut clients {
        c.write_all(b"again").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"again");
    }
    drop(clients);
    server.shutdown();
}
