//! The HTTP/1.1 connection and request core over real sockets: what an idle timeout, a retry,
//! a route timeout, an absolute-form target, a pooled connection and a config swap mean.
//! Each test pins down a defect found in review and fails against the code before its fix.

mod support;

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::script::{ok, read_request, ScriptOrigin};

/// A `web` listener (extra listener YAML in `listener_extra`) whose catch-all route goes to
/// cluster `app` at `origin` (extra route YAML in `route_extra`, extra cluster YAML in
/// `cluster_extra`).
fn yaml(
    origin: SocketAddr,
    listener_extra: &str,
    route_extra: &str,
    cluster_extra: &str,
) -> String {
    format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
{listener_extra}    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: \"/\"}}
            cluster: app
{route_extra}clusters:
  - name: app
    endpoints: [\"{origin}\"]
    connect_timeout: 500ms
{cluster_extra}"
    )
}

fn start(yaml: &str) -> (Server, SocketAddr) {
    let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let server = Server::start(config, 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

/// The sweeper tick for these tests' shortest timeout (a quarter of it, at least 25 ms).
fn tick(shortest: Duration) -> Duration {
    (shortest / 4).clamp(Duration::from_millis(25), Duration::from_millis(250))
}

#[test]
fn idle_timeout_spares_a_download_that_keeps_moving() {
    // A chunk every 100 ms for 1.2 s through a listener whose idle timeout is 300 ms: bytes
    // keep moving, so the response must arrive whole.
    let origin = ScriptOrigin::start(|_, mut r, log| {
        if read_request(&mut r, &log).is_none() {
            return;
        }
        let w = r.get_mut();
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for _ in 0..12 {
            std::thread::sleep(Duration::from_millis(100));
            if w.write_all(b"5\r\nhello\r\n").is_err() {
                return;
            }
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let (server, addr) = start(&yaml(origin.addr, "    idle_timeout: 300ms\n", "", ""));
    let mut c = Client::connect(addr);
    let r = c.get("/stream");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello".repeat(12));
    // …and a connection that is really idle is closed after the timeout, not before.
    let idle = Duration::from_millis(300);
    let t0 = Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "idle connection kept open"
    );
    let took = t0.elapsed();
    // Configured value, plus up to two ticks (the sweeper notices the last bytes at the next
    // tick and does not count the first quiet one), plus 100 ms of scheduling on a busy host.
    let bound = idle + 2 * tick(idle) + Duration::from_millis(100);
    assert!(
        took >= idle && took <= bound,
        "closed after {took:?}, bound {idle:?}..{bound:?}"
    );
    assert!(server.total_stats().idle_timeouts >= 1);
    server.shutdown();
}

/// An origin whose first connection answers one request, then reads the next request in full
/// and closes without answering (as a crashing or restarting server does). Later connections
/// answer normally.
fn dies_after_reading_the_second_request() -> ScriptOrigin {
    ScriptOrigin::start(|i, mut r, log| {
        let mut n = 0;
        while let Some(_req) = read_request(&mut r, &log) {
            n += 1;
            if i == 0 && n == 2 {
                return; // request read in full; the connection closes unanswered
            }
            if ok(r.get_mut(), "done").is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_post_on_a_pooled_connection_that_dies_is_not_sent_twice() {
    let origin = dies_after_reading_the_second_request();
    // A retry policy makes the proxy keep the body, so the POST could be replayed; it must not
    // be, because the upstream had all of it and may have acted on it.
    let retry = "            retry_policy: {retry_on: [5xx]}\n";
    let (server, addr) = start(&yaml(origin.addr, "", retry, ""));
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/first").status, 200);
    c.send(b"POST /pay HTTP/1.1\r\nHost: t\r\ncontent-length: 3\r\n\r\nabc");
    let r = c.read_response(false).expect("a response");
    assert_eq!(
        r.status, 502,
        "the POST may have been executed: not retried"
    );
    assert_eq!(r.header("x-shardcar-flag"), Some("UR"));
    assert_eq!(origin.count("POST "), 1, "the upstream saw the POST twice");
    server.shutdown();
}

#[test]
fn a_get_on_a_pooled_connection_that_dies_is_retried_once() {
    let origin = dies_after_reading_the_second_request();
    let (server, addr) = start(&yaml(origin.addr, "", "", ""));
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/first").status, 200);
    let r = c.get("/second");
    assert_eq!(r.status, 200);
    assert_eq!(origin.count("GET /second"), 2);
    server.shutdown();
}

#[test]
fn a_pooled_connection_the_upstream_closed_is_not_used() {
    // The origin answers one request per connection, then closes it (FIN) without saying
    // `connection: close`. The proxy must notice before reusing it, so even a POST (which it
    // may not resend) goes through.
    let origin = ScriptOrigin::start(|_, mut r, log| {
        if read_request(&mut r, &log).is_some() {
            let _ = ok(r.get_mut(), "once");
        }
    });
    let (server, addr) = start(&yaml(origin.addr, "", "", ""));
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/a").status, 200);
    std::thread::sleep(Duration::from_millis(100)); // the FIN reaches the proxy's socket
    c.send(b"POST /b HTTP/1.1\r\nHost: t\r\ncontent-length: 1\r\n\r\nx");
    assert_eq!(c.read_response(false).unwrap().status, 200);
    assert_eq!(origin.count("POST "), 1);
    assert_eq!(server.total_stats().pool_dropped_dead, 1);
    server.shutdown();
}

#[test]
fn a_get_reuses_a_fresh_pooled_connection_unchecked_and_is_resent_if_it_was_dead() {
    // The same origin: one request per connection, then FIN without `connection: close`. A
    // GET (resent for free if its connection is dead) takes a connection idle for less than
    // `UNCHECKED_REUSE` (1 s) without the liveness check, finds it dead and goes out again on a
    // new one; after longer idle the check runs and drops the dead connection at checkout.
    let origin = ScriptOrigin::start(|_, mut r, log| {
        if read_request(&mut r, &log).is_some() {
            let _ = ok(r.get_mut(), "once");
        }
    });
    let (server, addr) = start(&yaml(origin.addr, "", "", ""));
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/a").status, 200);
    std::thread::sleep(Duration::from_millis(100)); // the FIN reaches the proxy's socket
    assert_eq!(c.get("/b").status, 200);
    assert_eq!(
        server.total_stats().pool_dropped_dead,
        0,
        "a fresh connection was checked at checkout"
    );
    assert_eq!(origin.count("GET /b"), 1);
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(c.get("/c").status, 200);
    assert_eq!(server.total_stats().pool_dropped_dead, 1);
    assert_eq!(origin.count("GET /c"), 1);
    server.shutdown();
}

#[test]
fn expired_pooled_connections_are_closed() {
    let origin = ScriptOrigin::start(|_, mut r, log| {
        while read_request(&mut r, &log).is_some() {
            if ok(r.get_mut(), "hi").is_err() {
                return;
            }
        }
        log.lock().unwrap().push("EOF".into());
    });
    let (server, addr) = start(&yaml(
        origin.addr,
        "",
        "",
        "    pool: {idle_timeout: 200ms}\n",
    ));
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/").status, 200);
    // The pool sweep runs every second: the idle upstream connection is closed within 200 ms
    // plus one sweep period, with no request needed to notice it.
    let deadline = Instant::now() + Duration::from_millis(200 + 1000 + 300);
    while origin.count("EOF") == 0 {
        assert!(
            Instant::now() < deadline,
            "expired pooled connection still open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.total_stats().pool_expired, 1);
    server.shutdown();
}

#[test]
fn route_timeout_starts_when_the_upload_is_complete() {
    // A 300 ms route timeout; the client uploads for 800 ms; the origin answers at once once
    // the body is in. Envoy starts the timer when the downstream request is complete: 200.
    let origin = ScriptOrigin::start(|_, mut r, log| {
        while let Some(req) = read_request(&mut r, &log) {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            if ok(r.get_mut(), &body).is_err() {
                return;
            }
        }
    });
    let (server, addr) = start(&yaml(origin.addr, "", "            timeout: 300ms\n", ""));
    let mut c = Client::connect(addr);
    c.send(b"POST /up HTTP/1.1\r\nHost: t\r\ntransfer-encoding: chunked\r\n\r\n");
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(100));
        c.send(b"2\r\nab\r\n");
    }
    c.send(b"0\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "flag {:?}", r.header("x-shardcar-flag"));
    assert_eq!(r.text(), "ab".repeat(8));
    server.shutdown();
}

#[test]
fn absolute_form_routes_on_the_target_authority_and_forwards_origin_form() {
    let seen = ScriptOrigin::start(|_, mut r, log| {
        while read_request(&mut r, &log).is_some() {
            if ok(r.get_mut(), "other").is_err() {
                return;
            }
        }
    });
    let wrong = ScriptOrigin::start(|_, mut r, log| {
        while read_request(&mut r, &log).is_some() {
            if ok(r.get_mut(), "wrong").is_err() {
                return;
            }
        }
    });
    let config = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: api
        domains: [\"api.example\"]
        routes: [{{match: {{prefix: /}}, cluster: wrong}}]
      - name: other
        domains: [\"other.example\"]
        routes: [{{match: {{prefix: /}}, cluster: other}}]
clusters:
  - {{name: other, endpoints: [\"{}\"]}}
  - {{name: wrong, endpoints: [\"{}\"]}}
",
        seen.addr, wrong.addr
    );
    let (server, addr) = start(&config);
    let mut c = Client::connect(addr);
    c.send(b"GET http://other.example:8080/x?y=1 HTTP/1.1\r\nHost: api.example\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), "other");
    let head = seen.log.lock().unwrap()[0].clone();
    assert!(head.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("host: other.example:8080\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("host: api.example"),
        "{head}"
    );
    server.shutdown();
}

#[test]
fn repeated_x_forwarded_for_headers_are_all_kept_in_order() {
    let origin = ScriptOrigin::start(|_, mut r, log| {
        if let Some(req) = read_request(&mut r, &log) {
            let xff = req.header("x-forwarded-for").unwrap_or_default();
            let _ = ok(r.get_mut(), &xff);
        }
    });
    let (server, addr) = start(&yaml(origin.addr, "", "", ""));
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1");
    server.shutdown();
}

#[test]
fn response_filters_edit_the_response_head() {
    let origin = ScriptOrigin::start(|_, mut r, log| {
        if read_request(&mut r, &log).is_some() {
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nserver: leaky/1.0\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    let (server, addr) = start(&yaml(
        origin.addr,
        "",
        "            response_headers_to_remove: [server]\n            response_headers_to_add: [{name: x-served-by, value: shardcar}]\n",
        "",
    ));
    let r = Client::connect(addr).get("/");
    assert_eq!(r.header("server"), None);
    assert_eq!(r.header("x-served-by"), Some("shardcar"));
    server.shutdown();
}

#[test]
fn max_connections_pauses_accepting_until_one_closes() {
    let origin = ScriptOrigin::start(|_, mut r, log| {
        while read_request(&mut r, &log).is_some() {
            if ok(r.get_mut(), "hi").is_err() {
                return;
            }
        }
    });
    let (server, addr) = start(&yaml(origin.addr, "    max_connections: 2\n", "", ""));
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    assert_eq!(a.get("/").status, 200);
    assert_eq!(b.get("/").status, 200);
    // The third connection completes its handshake in the kernel's backlog, but nobody
    // accepts it while two are open.
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    match third.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("third connection served past max_connections: {other:?}"),
    }
    drop(a);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut r = std::io::BufReader::new(third);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
    assert!(server.total_stats().accept_paused >= 1);
    drop(b);
    server.shutdown();
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_first_byte_timeout() {
    let origin = ScriptOrigin::start(|_, _, _| {});
    let (server, addr) = start(&yaml(
        origin.addr,
        "    first_byte_timeout: 300ms\n",
        "",
        "",
    ));
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "silent connection kept open"
    );
    let took = t0.elapsed();
    let limit = Duration::from_millis(300);
    // Armed at accept: fires after the value and at most one tick later, plus scheduling.
    let bound = limit + tick(limit) + Duration::from_millis(100);
    assert!(
        took >= limit && took <= bound,
        "closed after {took:?}, bound {limit:?}..{bound:?}"
    );
    assert_eq!(server.total_stats().deadline_timeouts, 1);
    server.shutdown();
}

#[test]
fn a_slow_head_gets_408_within_the_head_timeout() {
    let origin = ScriptOrigin::start(|_, _, _| {});
    let (server, addr) = start(&yaml(
        origin.addr,
        "    request_headers_timeout: 300ms\n",
        "",
        "",
    ));
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send(b"GET / HTTP/1.1\r\n");
    // Keep trickling bytes: traffic must not extend the head deadline.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(50));
        c.send(b"x-a: 1\r\n");
    }
    let r = c.read_response(false).expect("a 408");
    let took = t0.elapsed();
    assert_eq!(r.status, 408);
    let limit = Duration::from_millis(300);
    let bound = limit + tick(limit) + Duration::from_millis(100);
    assert!(
        took >= limit && took <= bound,
        "answered after {took:?}, bound {limit:?}..{bound:?}"
    );
    server.shutdown();
}

#[test]
fn a_head_split_into_one_byte_reads_is_parsed_once_complete() {
    let origin = ScriptOrigin::start(|_, mut r, log| {
        if read_request(&mut r, &log).is_some() {
            let _ = ok(r.get_mut(), "whole");
        }
    });
    let (server, addr) = start(&yaml(origin.addr, "", "", ""));
    let mut c = Client::connect(addr);
    let head = format!(
        "GET /split HTTP/1.1\r\nHost: t\r\n{}\r\n",
        "x-pad: 0123456789\r\n".repeat(40)
    );
    for b in head.as_bytes() {
        c.send(std::slice::from_ref(b));
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), "whole");
    server.shutdown();
}

#[test]
fn swapped_routes_apply_to_new_requests_and_in_flight_ones_finish() {
    let named = |name: &'static str, delay: u64| {
        ScriptOrigin::start(move |_, mut r, log| {
            while read_request(&mut r, &log).is_some() {
                std::thread::sleep(Duration::from_millis(delay));
                if ok(r.get_mut(), name).is_err() {
                    return;
                }
            }
        })
    };
    let (a, b) = (named("a", 400), named("b", 0));
    let two = |target: &str| {
        format!(
            "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes: [{{match: {{prefix: /}}, cluster: {target}}}]
clusters:
  - {{name: a, endpoints: [\"{}\"]}}
  - {{name: b, endpoints: [\"{}\"]}}
",
            a.addr, b.addr
        )
    };
    let config = Config::from_yaml(&two("a")).unwrap();
    let mut server = Server::start(config, 2).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    let mut slow = Client::connect(addr);
    slow.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100)); // the slow request is in flight on a
    server.swap(Config::from_yaml(&two("b")).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // shards apply the swap
    for _ in 0..6 {
        // New connections and a new request on an old connection alike.
        assert_eq!(Client::connect(addr).get("/").text(), "b");
    }
    assert_eq!(slow.read_response(false).unwrap().text(), "a");
    assert_eq!(slow.get("/again").text(), "b");
    assert!(server.stats().iter().all(|s| s.generation == 1));
    // A swap whose new listener cannot bind (not a local address) is refused and the running
    // config stays.
    let mut other = two("a");
    other = other.replace(
        "clusters:",
        "  - {name: nowhere, address: \"192.0.2.1:9\", protocol: tcp, cluster: a}\nclusters:",
    );
    assert!(server.swap(Config::from_yaml(&other).unwrap()).is_err());
    assert_eq!(Client::connect(addr).get("/").text(), "b");
    server.shutdown();
}

#[test]
fn an_http10_client_gets_a_chunked_response_close_delimited() {
    let origin = ScriptOrigin::start(|_, mut r, log| {
        if read_request(&mut r, &log).is_some() {
            let _ = r.get_mut().write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
            );
        }
    });
    let (server, addr) = start(&yaml(origin.addr, "", "", ""));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap(); // ends with the proxy's close
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "hello world");
    server.shutdown();
}

#[test]
fn http_upstream_sockets_carry_the_upstream_mark() {
    // SO_MARK needs CAP_NET_ADMIN. `ss -e` shows a socket's mark: the pooled keepalive
    // connection to the origin must carry it, as L4 upstream connections do, so capture rules
    // that skip marked packets do not capture the proxy's own HTTP traffic again.
    let probe = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if probe.set_mark(1).is_err() {
        let why = "SO_MARK needs CAP_NET_ADMIN";
        if std::env::var("SHARDCAR_ALLOW_SKIP").as_deref() != Ok("1") {
            panic!("{why}: run as root, or set SHARDCAR_ALLOW_SKIP=1 to skip");
        }
        eprintln!("SKIPPED http_upstream_sockets_carry_the_upstream_mark: {why}");
        return;
    }
    let origin = ScriptOrigin::start(|_, mut r, log| {
        while read_request(&mut r, &log).is_some() {
            if ok(r.get_mut(), "hi").is_err() {
                return;
            }
        }
    });
    let config = format!("upstream_mark: 0x539\n{}", yaml(origin.addr, "", "", ""));
    let (server, addr) = start(&config);
    assert_eq!(Client::connect(addr).get("/").status, 200);
    let out = std::process::Command::new("ss")
        .args(["-tnie", "dst", &origin.addr.to_string()])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ESTAB"),
        "no pooled upstream connection:\n{text}"
    );
    assert!(
        text.contains("fwmark:0x539"),
        "upstream socket not marked:\n{text}"
    );
    server.shutdown();
}

#[test]
fn normalised_paths_are_routed_and_forwarded_and_encoded_slashes_refused() {
    let origin = ScriptOrigin::start(|_, mut r, log| {
        while read_request(&mut r, &log).is_some() {
            if ok(r.get_mut(), "app").is_err() {
                return;
            }
        }
    });
    // /admin is answered locally: a dot segment or an escape must not get around it.
    let route = "          - match: {prefix: \"/admin\"}\n            direct_response: {status: 403, body: no}\n";
    let config = format!(
        "listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
    normalize_path: true
    merge_slashes: true
    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
{route}          - match: {{prefix: \"/\"}}
            cluster: app
clusters:
  - name: app
    endpoints: [\"{}\"]
",
        origin.addr
    );
    let (server, addr) = start(&config);
    let mut c = Client::connect(addr);
    assert_eq!(c.get("/public/../admin/x").status, 403);
    assert_eq!(c.get("/%61dmin").status, 403);
    assert_eq!(c.get("//admin").status, 403);
    let r = c.get("/a/./b//%7Ec?q=/../x");
    assert_eq!(r.text(), "app");
    let head = origin.log.lock().unwrap().last().cloned().unwrap();
    assert!(
        head.starts_with("GET /a/b/~c?q=/../x HTTP/1.1\r\n"),
        "{head}"
    );
    let r = c.get("/a%2Fb");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-shardcar-flag"), Some("DPE"));
    server.shutdown();
}
