//! Retry budgets (a cluster's `retry_budget:`, Linkerd's model) and retries going to another
//! endpoint, over real sockets: against an origin that always answers 503, retries stay within
//! `retry_percent` of requests plus the `min_retries_per_second × ttl` reserve (counted exactly
//! at the origin, refusals counted by the proxy); a retry after a 503 from one endpoint goes to
//! the other, so with one bad endpoint of two every client sees 200 (HTTP/1.1 and HTTP/2).

mod support;

use std::net::SocketAddr;

use shardcar::{Config, Server};
use support::client::Client;
use support::status::StatusOrigin;
use support::tools::{have, run};

fn proxy(endpoints: &[SocketAddr], cluster_extra: &str, num_retries: u32) -> (Server, SocketAddr) {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
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
            retry_policy: {{retry_on: [5xx], num_retries: {num_retries}}}
clusters:
  - name: app
    endpoints: [{}]
    connect_timeout: 500ms
{cluster_extra}",
        eps.join(", ")
    );
    let server = Server::start(Config::from_yaml(&yaml).unwrap(), 1).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

fn send(addr: SocketAddr, n: usize) {
    let mut c = Client::connect(addr);
    for _ in 0..n {
        assert_eq!(c.get("/x").status, 503);
    }
}

#[test]
fn retries_stay_within_the_percentage_of_requests() {
    let bad = StatusOrigin::start("bad", 503);
    // 20% of 100 requests, no reserve: 20 retries, though each request could make 3 (the
    // 60 s window outlasts the burst).
    let budget = "    retry_budget: {retry_percent: 20, min_retries_per_second: 0, ttl: 60s}\n";
    let (server, addr) = proxy(&[bad.addr], budget, 3);
    send(addr, 100);
    assert_eq!(bad.requests(), 120);
    assert!(server.total_stats().retry_budget_exhausted >= 80);
    server.shutdown();
    // Without a budget every request retries three times.
    let unbudgeted = StatusOrigin::start("bad", 503);
    let (server, addr) = proxy(&[unbudgeted.addr], "", 3);
    send(addr, 100);
    assert_eq!(unbudgeted.requests(), 400);
    assert_eq!(server.total_stats().retry_budget_exhausted, 0);
    server.shutdown();
}

#[test]
fn the_reserve_allows_min_retries_per_second_over_the_ttl() {
    let bad = StatusOrigin::start("bad", 503);
    // 0%, 1/s over 20 s: a reserve of 20 retries for the whole burst (well within 20 s).
    let budget = "    retry_budget: {retry_percent: 0, min_retries_per_second: 1, ttl: 20s}\n";
    let (server, addr) = proxy(&[bad.addr], budget, 3);
    let t0 = std::time::Instant::now();
    send(addr, 50);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "the burst outlasted the ttl"
    );
    assert_eq!(bad.requests(), 70);
    server.shutdown();
}

#[test]
fn a_retry_goes_to_another_endpoint() {
    // Least request over two idle endpoints is a coin toss per try: without avoiding the
    // failed endpoint, a quarter of requests would end on the bad one twice.
    let bad = StatusOrigin::start("bad", 503);
    let good = StatusOrigin::start("good", 200);
    let (server, addr) = proxy(&[bad.addr, good.addr], "    lb_policy: least_request\n", 1);
    let mut c = Client::connect(addr);
    for i in 0..60 {
        let r = c.get("/x");
        assert_eq!((r.status, r.text().as_str()), (200, "good"), "request {i}");
    }
    assert!(
        bad.requests() > 10,
        "the bad endpoint got {} first tries",
        bad.requests()
    );
    if have("h2load", &["--version"]) {
        let url = format!("http://{addr}/x");
        let out = run("h2load", &["-n", "200", "-c", "1", "-m", "1", &url]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx"),
            "{text}"
        );
    }
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
";
    for (bad, field, says) in [
        (
            "    retry_budget: {ttl: 1500ms}\n",
            "retry_budget.ttl",
            "whole seconds",
        ),
        (
            "    retry_budget: {ttl: 2m}\n",
            "retry_budget.ttl",
            "whole seconds",
        ),
        (
            "    retry_budget: {retry_percent: 5000}\n",
            "retry_budget.retry_percent",
            "over 1000",
        ),
    ] {
        let e = Config::from_yaml(&format!("{base}{bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("clusters[0].{field}:"))
                && e.contains(says)
                && e.contains(" at line "),
            "{bad:?}: {e}"
        );
    }
}
