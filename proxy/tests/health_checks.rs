//! Active health checks (`health_check:`) over real sockets, two shards: the checker's verdicts
//! reach every shard as messages; an endpoint failing its HTTP check (status, path and Host as
//! configured) gets no traffic and gets it back once it passes again; TCP connect checks and gRPC
//! health v1 checks (a grpcio `grpc_health` server switched between SERVING and NOT_SERVING) flip
//! endpoints the same way; and the panic threshold: with every endpoint failing, traffic goes to
//! all of them (50%, the default), or nowhere (503 `UH`) with `healthy_panic_threshold: 0`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shardcar::{Config, Server};
use support::client::Client;
use support::grpc::PyServer;
use support::status::StatusOrigin;
use support::tools::have_python_modules;

const SHARDS: usize = 2;
/// How long a verdict may take to flip: thresholds × 100 ms interval, probe timeouts, and a
/// loaded two-core machine. Only liveness: the test waits for the flip, it does not time it.
const FLIP: Duration = Duration::from_secs(5);

fn yaml(endpoints: &[SocketAddr], check: &str, extra: &str) -> String {
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
    endpoints: [{}]
    connect_timeout: 500ms
{extra}    health_check:
      interval: 100ms
      timeout: 500ms
      unhealthy_threshold: 2
      healthy_threshold: 2
{check}",
        eps.join(", ")
    )
}

const HTTP_CHECK: &str =
    "      http: {path: /healthz/ready, host: hc.internal, expected_statuses: [200, 204]}\n";

fn start(yaml: &str) -> (Server, SocketAddr) {
    let server = Server::start(Config::from_yaml(yaml).unwrap(), SHARDS).expect("proxy starts");
    let addr = server.addr("web").unwrap();
    (server, addr)
}

/// Unhealthy endpoints of `app` as each shard sees them.
fn unhealthy(server: &Server) -> Vec<u64> {
    server
        .stats()
        .iter()
        .map(|s| {
            s.health
                .iter()
                .find(|h| h.cluster == "app")
                .map_or(0, |h| h.unhealthy)
        })
        .collect()
}

fn wait_unhealthy(server: &Server, n: u64) {
    let t0 = Instant::now();
    while unhealthy(server) != vec![n; SHARDS] {
        assert!(
            t0.elapsed() < FLIP,
            "shards report {:?}, waiting for {n} each",
            unhealthy(server)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` requests, each on a new connection (so both shards serve some); their bodies.
fn bodies(addr: SocketAddr, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = Client::connect(addr).get("/x");
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
        })
        .collect()
}

#[test]
fn an_endpoint_failing_its_http_check_gets_no_traffic_until_it_passes_again() {
    let flaky = StatusOrigin::start("flaky", 200);
    flaky.set_health(204); // an expected status
    let good = StatusOrigin::start("good", 200);
    let (server, addr) = start(&yaml(&[flaky.addr, good.addr], HTTP_CHECK, ""));
    // Probes arrive with the configured path and Host.
    let t0 = Instant::now();
    while flaky.requests_to("/healthz/ready") < 2 {
        assert!(t0.elapsed() < FLIP, "no probes");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(flaky
        .hosts_of("/healthz")
        .iter()
        .all(|h| h == "hc.internal"));
    assert_eq!(unhealthy(&server), vec![0; SHARDS]);

    flaky.set_health(503);
    wait_unhealthy(&server, 1);
    let before = flaky.requests_to("/x");
    let got = bodies(addr, 20);
    assert!(got.iter().all(|b| b == "good"), "{got:?}");
    assert_eq!(
        flaky.requests_to("/x"),
        before,
        "an unhealthy endpoint got traffic"
    );

    flaky.set_health(200);
    wait_unhealthy(&server, 0);
    let got = bodies(addr, 20);
    assert!(got.iter().any(|b| b == "flaky"), "{got:?}");
    server.shutdown();
}

#[test]
fn tcp_checks_follow_whether_the_endpoint_accepts() {
    // Bound but not listening: connects are refused until the test calls listen().
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let closed = s.local_addr().unwrap().as_socket().unwrap();
    let good = StatusOrigin::start("good", 200);
    let (server, addr) = start(&yaml(&[closed, good.addr], "      tcp: {}\n", ""));
    wait_unhealthy(&server, 1);
    let got = bodies(addr, 10);
    assert!(got.iter().all(|b| b == "good"), "{got:?}");
    s.listen(128).unwrap();
    wait_unhealthy(&server, 0);
    server.shutdown();
}

#[test]
fn grpc_health_v1_checks_follow_serving_status() {
    if !have_python_modules("grpc, grpc_health.v1") {
        return;
    }
    let mut hs = PyServer::run("health_server.py", &[]);
    let other = PyServer::run("health_server.py", &[]);
    let check = "      grpc: {service_name: \"\"}\n";
    let (server, _) = start(&yaml(&[hs.addr, other.addr], check, ""));
    // SERVING: stays healthy over several probes.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(unhealthy(&server), vec![0; SHARDS]);
    hs.tell("NOT_SERVING");
    wait_unhealthy(&server, 1);
    hs.tell("SERVING");
    wait_unhealthy(&server, 0);
    server.shutdown();
}

#[test]
fn with_every_endpoint_failing_the_panic_threshold_balances_over_all() {
    let a = StatusOrigin::start("a", 200);
    let b = StatusOrigin::start("b", 200);
    a.set_health(503);
    b.set_health(503);
    let (server, addr) = start(&yaml(&[a.addr, b.addr], HTTP_CHECK, ""));
    wait_unhealthy(&server, 2);
    // 0% healthy < 50%: panic mode, both endpoints serve.
    let got = bodies(addr, 20);
    assert!(
        got.iter().any(|x| x == "a") && got.iter().any(|x| x == "b"),
        "{got:?}"
    );
    let panics: u64 = server.total_stats().health[0].lb_healthy_panic;
    assert_eq!(panics, 20);
    server.shutdown();

    // Threshold 0: no panic mode, no endpoint available → 503 UH.
    let (server, addr) = start(&yaml(
        &[a.addr, b.addr],
        HTTP_CHECK,
        "    healthy_panic_threshold: 0\n",
    ));
    wait_unhealthy(&server, 2);
    let r = Client::connect(addr).get("/x");
    assert_eq!((r.status, r.header("x-shardcar-flag")), (503, Some("UH")));
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
            "    health_check: {interval: 0, tcp: {}}\n",
            "health_check.interval",
            "greater than 0",
        ),
        (
            "    health_check: {unhealthy_threshold: 0, tcp: {}}\n",
            "health_check.unhealthy_threshold",
            "at least 1",
        ),
        (
            "    health_check: {tcp: {}, http: {path: /h}}\n",
            "health_check",
            "exactly one of http, tcp or grpc",
        ),
        (
            "    health_check: {http: {path: h}}\n",
            "health_check.http.path",
            "starting with `/`",
        ),
        (
            "    health_check: {http: {path: /h, expected_statuses: [99]}}\n",
            "health_check.http.expected_statuses[0]",
            "invalid status",
        ),
        (
            "    healthy_panic_threshold: 101\n",
            "healthy_panic_threshold",
            "over 100",
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

#[test]
fn an_original_dst_cluster_cannot_be_health_checked() {
    let odst = "listeners:
  - name: out
    address: 127.0.0.1:0
    protocol: tcp
    original_dst: true
    cluster: passthrough
clusters:
  - name: passthrough
    type: original_dst
    health_check: {tcp: {}}
";
    let e = Config::from_yaml(odst).unwrap_err().to_string();
    assert!(
        e.contains("clusters[0].health_check:")
            && e.contains("original_dst")
            && e.contains(" at line "),
        "{e}"
    );
}
