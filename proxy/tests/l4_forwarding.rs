//! L4 forwarding over real sockets: integrity, half-close, resets, timeouts, idle kernel threads.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

fn integrity(mode: &str, shards: usize) {
    let echo = EchoServer::start();
    let (server, addr) = start_proxy(&l4_yaml(mode, &[echo.addr], "", ""), shards);
    let data = Arc::new(payload(16 << 20, 42));
    let got = round_trip(connect(addr), data.clone());
    assert_eq!(got.len(), data.len(), "{mode}: length");
    assert!(got == *data, "{mode}: payload corrupted");
    server.shutdown();
}

#[test]
fn sixteen_mib_round_trips_in_copy_mode() {
    integrity("copy", 1);
}

#[test]
fn sixteen_mib_round_trips_in_splice_mode() {
    integrity("splice", 1);
}

#[test]
fn sixteen_mib_round_trips_on_two_shards_both_modes() {
    integrity("copy", 2);
    integrity("splice", 2);
}

/// Test-held upstream: the proxy connects to `l`, the test accepts and drives that side.
fn held_upstream(mode: &str) -> (shardcar::Server, std::net::TcpStream, std::net::TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (server, addr) = start_proxy(&l4_yaml(mode, &[l.local_addr().unwrap()], "", ""), 1);
    let client = connect(addr);
    let (up, _) = l.accept().unwrap();
    up.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (server, client, up)
}

fn half_close_client_first(mode: &str) {
    let (server, mut client, mut up) = held_upstream(mode);
    client.write_all(b"request").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    up.read_to_end(&mut got).unwrap(); // upstream sees the FIN
    assert_eq!(got, b"request");
    // ...and can still answer on the other direction.
    up.write_all(b"late answer").unwrap();
    up.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"late answer", "{mode}");
    server.shutdown();
}

fn half_close_upstream_first(mode: &str) {
    let (server, mut client, mut up) = held_upstream(mode);
    up.write_all(b"banner").unwrap();
    up.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"banner");
    client.write_all(b"still talking").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    up.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"still talking", "{mode}");
    server.shutdown();
}

#[test]
fn half_close_each_direction_copy() {
    half_close_client_first("copy");
    half_close_upstream_first("copy");
}

#[test]
fn half_close_each_direction_splice() {
    half_close_client_first("splice");
    half_close_upstream_first("splice");
}

fn upstream_reset_reaches_client(mode: &str) {
    let (server, mut client, up) = held_upstream(mode);
    socket2::SockRef::from(&up)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(up); // RST
    let mut buf = [0u8; 16];
    let err = client
        .read(&mut buf)
        .expect_err("client must see the reset, not EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{mode}");
    server.shutdown();
}

fn client_reset_reaches_upstream(mode: &str) {
    let (server, client, mut up) = held_upstream(mode);
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let mut buf = [0u8; 16];
    let err = up
        .read(&mut buf)
        .expect_err("upstream must see the reset, not EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{mode}");
    server.shutdown();
}

#[test]
fn resets_propagate_copy() {
    upstream_reset_reaches_client("copy");
    client_reset_reaches_upstream("copy");
}

#[test]
fn resets_propagate_splice() {
    upstream_reset_reaches_client("splice");
    client_reset_reaches_upstream("splice");
}

#[test]
fn refused_upstream_closes_client_promptly() {
    let dead = DeadPort::new();
    let (server, addr) = start_proxy(&l4_yaml("copy", &[dead.addr], "", ""), 1);
    let started = Instant::now();
    let mut client = connect(addr);
    let mut buf = [0u8; 1];
    let n = client.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    server.shutdown();
}

#[test]
fn unanswered_connect_times_out() {
    // A listener whose accept queue is full drops SYNs, so the proxy's connect hangs.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let full: TcpListener = sock.into();
    let up = full.local_addr().unwrap();
    let _fillers: Vec<_> = (0..3)
        .filter_map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            s.set_nonblocking(true).ok()?;
            let _ = s.connect(&up.into());
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50)); // let the handshakes fill the queue
    let (server, addr) = start_proxy(&l4_yaml("copy", &[up], "", ""), 1);
    let started = Instant::now();
    let mut client = connect(addr);
    let mut buf = [0u8; 1];
    let n = client.read(&mut buf).unwrap_or(0);
    let took = started.elapsed();
    assert_eq!(n, 0);
    // connect_timeout is 500ms in l4_yaml.
    assert!(
        took >= Duration::from_millis(450),
        "closed before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_millis(3000),
        "closed too late: {took:?}"
    );
    server.shutdown();
}

#[test]
fn idle_connections_are_closed_after_idle_timeout() {
    let echo = EchoServer::start();
    const IDLE: Duration = Duration::from_millis(300);
    // The sweeper ticks every IDLE / 4. It sees the last bytes at the next tick (≤ 1 tick),
    // and the first quiet tick after that may be partial, so it is not counted (≤ 1 tick):
    // the close comes at most IDLE + 2 ticks after the last byte, and never before IDLE.
    const TICK: Duration = Duration::from_millis(75);
    // Timer wake-up and test-thread scheduling on a loaded two-core CI machine.
    const SCHEDULING: Duration = Duration::from_millis(100);
    let yaml = l4_yaml("copy", &[echo.addr], "    idle_timeout: 300ms\n", "");
    let (server, addr) = start_proxy(&yaml, 1);
    let mut client = connect(addr);
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).unwrap();
    let started = Instant::now();
    let n = client.read(&mut buf).unwrap();
    assert_eq!(n, 0, "idle timeout closes with FIN");
    let took = started.elapsed();
    assert!(
        took >= IDLE && took <= IDLE + 2 * TICK + SCHEDULING,
        "closed after {took:?}"
    );
    server.shutdown();
}

#[test]
fn splice_idle_connections_create_no_kernel_threads() {
    let echo = EchoServer::start();
    let (server, addr) = start_proxy(&l4_yaml("splice", &[echo.addr], "", ""), 1);
    let mut clients = Vec::new();
    for i in 0..200u32 {
        let mut c = connect(addr);
        // One round trip each proves the connection is fully proxied before it idles.
        c.write_all(&i.to_be_bytes()).unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        assert_eq!(u32::from_be_bytes(b), i);
        clients.push(c);
    }
    let iou = thread_names()
        .iter()
        .filter(|n| n.starts_with("iou-wrk"))
        .count();
    assert_eq!(iou, 0, "idle splice connections parked io-wq threads");
    drop(clients);
    server.shutdown();
}

#[test]
fn round_robin_spreads_connections_over_endpoints() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let eps = [a.local_addr().unwrap(), b.local_addr().unwrap()];
    let (server, addr) = start_proxy(&l4_yaml("copy", &eps, "", ""), 1);
    let _clients: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    for l in [&a, &b] {
        for _ in 0..2 {
            accept_within(l, Duration::from_secs(5)).expect("round robin sends two to each");
        }
    }
    server.shutdown();
}

#[test]
fn parked_idle_connection_carries_traffic_again() {
    let echo = EchoServer::start();
    let (server, addr) = start_proxy(&l4_yaml("copy", &[echo.addr], "", ""), 1);
    let mut client = connect(addr);
    let mut buf = [0u8; 5];
    client.write_all(b"hello").unwrap();
    client.read_exact(&mut buf).unwrap();
    // Stay quiet past PARK_AFTER (1 s) so the sweeper cancels the reads and frees the buffers.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(
        server.total_stats().parked,
        1,
        "the idle connection was not parked"
    );
    let data = Arc::new(payload(1 << 20, 9));
    let got = round_trip(client, data.clone());
    assert!(got == *data, "traffic after parking is intact");
    server.shutdown();
}

#[test]
fn an_endpoint_ejected_after_connect_failures_gets_no_more_connections() {
    let dead = DeadPort::new();
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let eps = [dead.addr, live.local_addr().unwrap()];
    let (server, addr) = start_proxy(&l4_yaml("copy", &eps, "", ""), 1);
    // Round robin alternates, so the first ten connections try the dead endpoint five times:
    // five consecutive connect failures eject it (EJECT_AFTER_FAILURES, per shard).
    let mut reached = 0;
    let mut held = Vec::new();
    for _ in 0..10 {
        let c = connect(addr);
        match accept_within(&live, Duration::from_millis(300)) {
            Some(s) => {
                reached += 1;
                held.push((c, s));
            }
            None => {
                let mut c = c;
                assert_eq!(
                    c.read(&mut [0u8; 1]).unwrap_or(0),
                    0,
                    "refused upstream: closed"
                );
            }
        }
    }
    assert_eq!(reached, 5);
    // Ejected for 10 s: every new connection now goes to the live endpoint.
    for i in 0..10 {
        let c = connect(addr);
        let s = accept_within(&live, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("connection {i} went to the ejected endpoint"));
        held.push((c, s));
    }
    drop(held);
    server.shutdown();
}
