//! Outlier detection (`outlier_detection:`) over real sockets: an endpoint answering 5xx is
//! ejected after exactly `consecutive_5xx` of them and traffic goes to the healthy one; it
//! returns after `base_ejection_time` (within one `interval` tick plus the client's request
//! spacing), and its next ejection lasts twice as long; `max_ejection_percent` caps how many are
//! out; HTTP/2 downstreams and HTTP/2 upstreams feed the same counters.
//!
//! Timing is read from the origin's own arrival clock: the ejecting 5xx arrived at the origin
//! before the proxy saw it (so the ejection started later), and the first request after the
//! return arrived after the return, so `arrival(return) − arrival(last 5xx)` is at least the
//! ejection time; it exceeds it by at most one interval tick, one client request gap per tick
//! (ticks run on the next pick once due; the gap is measured), and the loopback round trip
//! ([`SLACK`]).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::status::StatusOrigin;
use support::tools::{have, run};

const INTERVAL: Duration = Duration::from_millis(500);
const BASE: Duration = Duration::from_millis(1000);
/// Pause between client requests in the timing test.
const PACE: Duration = Duration::from_millis(5);
/// Beyond the tick and the request gaps: the origin's answer and the loopback round trip.
const SLACK: Duration = Duration::from_millis(10);

fn yaml(endpoints: &[SocketAddr], protocol: &str, outlier: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
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
    protocol: {protocol}
    endpoints: [{}]
    connect_timeout: 500ms
    outlier_detection:
{outlier}",
        eps.join(", ")
    )
}

fn outlier(consecutive_5xx: u32, max_pct: u32) -> String {
    format!(
        "      consecutive_5xx: {consecutive_5xx}
      interval: {}ms
      base_ejection_time: {}ms
      max_ejection_time: 10s
      max_ejection_percent: {max_pct}
",
        INTERVAL.as_millis(),
        BASE.as_millis()
    )
}

fn start(yaml: &str) -> (Server, SocketAddr) {
    let server = Server::start(Config::from_yaml(yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

fn stats(server: &Server) -> shardcar::cluster::outlier::OutlierStats {
    let s = server.total_stats();
    s.outlier
        .into_iter()
        .find(|o| o.cluster == "app")
        .expect("outlier stats for app")
}

#[test]
fn a_5xx_endpoint_is_ejected_after_consecutive_5xx_and_traffic_goes_to_the_healthy_one() {
    let bad = StatusOrigin::start("bad", 503);
    let good = StatusOrigin::start("good", 200);
    let (server, addr) = start(&yaml(&[bad.addr, good.addr], "http1", &outlier(3, 50)));
    let mut c = Client::connect(addr);
    // Round robin alternates: six requests give the bad endpoint its three 5xx.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(c.get("/x").status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(bad.requests(), 3);
    let s = stats(&server);
    assert_eq!(
        (
            s.ejections_active,
            s.ejections_consecutive_5xx,
            s.ejections_enforced_total
        ),
        (1, 1, 1)
    );
    // Ejected: everything goes to the healthy endpoint (well within the 600 ms ejection).
    for i in 0..20 {
        let r = c.get("/x");
        assert_eq!((r.status, r.text().as_str()), (200, "good"), "request {i}");
    }
    assert_eq!(bad.requests(), 3, "the ejected endpoint got traffic");
    server.shutdown();
}

/// Sends paced requests until the bad origin has seen `n` in total (or `limit` passes).
/// Returns the longest gap between two requests sent.
fn drive_until(c: &mut Client, bad: &StatusOrigin, n: usize, limit: Duration) -> Duration {
    let t0 = Instant::now();
    let mut gap = Duration::ZERO;
    let mut last = Instant::now();
    while bad.requests() < n {
        gap = gap.max(last.elapsed());
        last = Instant::now();
        assert!(
            t0.elapsed() < limit,
            "bad endpoint saw {} of {n}",
            bad.requests()
        );
        c.get("/x");
        std::thread::sleep(PACE);
    }
    gap
}

#[test]
fn an_ejected_endpoint_returns_after_base_ejection_time_and_the_next_ejection_is_twice_as_long() {
    let bad = StatusOrigin::start("bad", 503);
    let good = StatusOrigin::start("good", 200);
    let (server, addr) = start(&yaml(&[bad.addr, good.addr], "http1", &outlier(3, 50)));
    let mut c = Client::connect(addr);
    let limit = Duration::from_secs(10);
    for (k, ejection) in [(1u32, BASE), (2, 2 * BASE)] {
        let before = 3 * k as usize;
        drive_until(&mut c, &bad, before, limit); // the k-th ejection
        let gap = drive_until(&mut c, &bad, before + 1, limit); // back
        let a = bad.arrivals();
        let out = a[before] - a[before - 1];
        // Ticks run on the first pick after they are due, so each of the ejection's ticks, and
        // the pick that sees the return, may come up to one request gap late.
        let ticks = (ejection.as_millis() / INTERVAL.as_millis()) as u32 + 1;
        let most = ejection + INTERVAL + gap * ticks + SLACK;
        assert!(
            out >= ejection && out <= most,
            "ejection {k}: out for {out:?}, expected {ejection:?} to {most:?} (request gap {gap:?})"
        );
    }
    assert_eq!(stats(&server).ejections_consecutive_5xx, 2);
    server.shutdown();
}

#[test]
fn max_ejection_percent_caps_the_endpoints_out() {
    // Three endpoints, two of them bad, at most 50% out: 1/3 ejected is within, 2/3 is not.
    let bad1 = StatusOrigin::start("bad1", 500);
    let bad2 = StatusOrigin::start("bad2", 500);
    let good = StatusOrigin::start("good", 200);
    let eps = [bad1.addr, bad2.addr, good.addr];
    let (server, addr) = start(&yaml(&eps, "http1", &outlier(3, 50)));
    let mut c = Client::connect(addr);
    for _ in 0..30 {
        c.get("/x");
    }
    let s = stats(&server);
    assert_eq!(s.ejections_active, 1, "{s:?}");
    assert!(s.ejections_overflow >= 1, "{s:?}");
    let (n1, n2) = (bad1.requests(), bad2.requests());
    assert_eq!(n1.min(n2), 3, "one bad endpoint ejected after 3: {n1} {n2}");
    assert!(n1.max(n2) > 3, "the other still gets traffic: {n1} {n2}");
    server.shutdown();
}

#[test]
fn http2_downstream_outcomes_feed_outlier_detection() {
    if !have("curl", &["--version"]) {
        return;
    }
    let bad = StatusOrigin::start("bad", 502);
    let good = StatusOrigin::start("good", 200);
    let (server, addr) = start(&yaml(&[bad.addr, good.addr], "http1", &outlier(3, 50)));
    let url = format!("http://{addr}/x");
    for _ in 0..16 {
        let out = run(
            "curl",
            &["-sS", "--http2-prior-knowledge", "--max-time", "10", &url],
        );
        assert!(out.status.success());
    }
    assert_eq!(bad.requests(), 3);
    assert_eq!(stats(&server).ejections_consecutive_5xx, 1);
    server.shutdown();
}

#[test]
fn http2_upstream_outcomes_feed_outlier_detection() {
    // Each endpoint of the h2 cluster is an inner proxy (an `http` listener also speaks h2c)
    // in front of a status origin.
    let bad = StatusOrigin::start("bad", 503);
    let good = StatusOrigin::start("good", 200);
    // Never ejecting (0%), and quick to drain: the outer proxy's h2 connections stay open.
    let inner = |o: &StatusOrigin| {
        let never = "      max_ejection_percent: 0\n";
        start(&format!(
            "drain_timeout: 1s\n{}",
            yaml(&[o.addr], "http1", never)
        ))
    };
    let (inner_bad, inner_good) = (inner(&bad), inner(&good));
    let eps = [inner_bad.1, inner_good.1];
    let (server, addr) = start(&yaml(&eps, "http2", &outlier(3, 50)));
    let mut c = Client::connect(addr);
    for _ in 0..16 {
        c.get("/x");
    }
    assert_eq!(bad.requests(), 3);
    assert_eq!(stats(&server).ejections_consecutive_5xx, 1);
    server.shutdown();
    inner_bad.0.shutdown();
    inner_good.0.shutdown();
}

#[test]
fn gateway_failure_and_local_origin_triggers() {
    // consecutive_gateway_failure counts 502–504 only: 500s never eject with 5xx off.
    let o = StatusOrigin::start("o", 500);
    let good = StatusOrigin::start("good", 200);
    let policy = "      consecutive_5xx: 0
      consecutive_gateway_failure: 2
      max_ejection_percent: 50
";
    let (server, addr) = start(&yaml(&[o.addr, good.addr], "http1", policy));
    let mut c = Client::connect(addr);
    for _ in 0..10 {
        c.get("/x");
    }
    assert_eq!(stats(&server).ejections_active, 0);
    o.set_status(504);
    for _ in 0..10 {
        c.get("/x");
    }
    let s = stats(&server);
    assert_eq!(
        (s.ejections_active, s.ejections_consecutive_gateway_failure),
        (1, 1)
    );
    server.shutdown();

    // Split local-origin errors: refused connects eject through their own counter.
    let dead = support::DeadPort::new();
    let policy = "      split_external_local_origin_errors: true
      consecutive_local_origin_failure: 2
      max_ejection_percent: 50
";
    let (server, addr) = start(&yaml(&[dead.addr, good.addr], "http1", policy));
    let mut c = Client::connect(addr);
    let flags: Vec<u16> = (0..10).map(|_| c.get("/x").status).collect();
    assert_eq!(flags.iter().filter(|s| **s == 503).count(), 2, "{flags:?}");
    assert_eq!(stats(&server).ejections_consecutive_local_origin_failure, 1);
    server.shutdown();
}

#[test]
fn config_errors_name_the_field_and_line() {
    let base = "listeners:
  - name: l4
    address: 127.0.0.1:0
    protocol: tcp
    cluster: up
clusters:
  - name: up
    endpoints: [\"127.0.0.1:1\"]
    outlier_detection:
";
    for (bad, field, says) in [
        (
            "      max_ejection_percent: 101\n",
            "max_ejection_percent",
            "over 100",
        ),
        ("      interval: 0\n", "interval", "greater than 0"),
        (
            "      base_ejection_time: 10s\n      max_ejection_time: 1s\n",
            "max_ejection_time",
            "at least base_ejection_time",
        ),
        (
            "      consecutive_local_origin_failure: 3\n",
            "consecutive_local_origin_failure",
            "split_external_local_origin_errors",
        ),
        ("      intervl: 1s\n", "intervl", "unknown field"),
    ] {
        let e = Config::from_yaml(&format!("{base}{bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("clusters[0].outlier_detection.{field}"))
                && e.contains(says)
                && e.contains(" at line "),
            "{bad:?}: {e}"
        );
    }
}
