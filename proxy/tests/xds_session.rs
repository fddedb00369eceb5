//! xDS sessions against the Python control plane (`tests/py/xds_server.py`): a Delta session
//! (incremental updates keep what they do not name, `removed_resources`, NACK); a control-plane
//! restart for both APIs (the config stays in force while it is gone, then resyncs — Delta
//! with `initial_resource_versions`, so unchanged resources are not sent again); SDS
//! certificate rotation while new TLS handshakes run at load, with zero failed requests.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::origin::Origin;
use support::tools::{have_python_modules, python, TempDir};
use support::xds::*;

fn ready() -> bool {
    have_python_modules("grpc, envoy.service.discovery.v3.ads_pb2_grpc")
}

fn cluster_names(d: &Value) -> Vec<String> {
    let mut v: Vec<String> = d["config"]["clusters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn delta_session_applies_increments_removals_and_nacks() {
    if !ready() {
        return;
    }
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let port = free_port();
    let lis: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cp = ControlPlane::start(0);
    cp.serve_web(port, &[a.addr]);
    let sidecar = Sidecar::start(cp.port, "  api: delta\n", "");

    cp.wait(
        "stream",
        |v| v["api"] == "delta" && v["open"] == true,
        Duration::from_secs(20),
    );
    let (s, body) = get_until(lis, "/name", |s, b| s == 200 && b == "a");
    assert_eq!(
        (s, body.as_str()),
        (200, "a"),
        "initial Delta config serves"
    );
    for kind in ["CDS", "EDS", "LDS", "RDS"] {
        cp.wait(
            "ack",
            |v| v["type"] == kind && v["api"] == "delta",
            Duration::from_secs(10),
        );
    }
    let d = sidecar.dump_until("api delta", |d| d["xds"]["api"] == "delta");
    assert_eq!(cluster_names(&d), vec!["web", "xds"]);

    // One more cluster: the Delta response carries only it; `web` must stay.
    cp.update("CDS", vec![eds_cluster("other")]);
    let has = |v: &Value, n: &str| v["names"].as_array().is_some_and(|a| a.contains(&json!(n)));
    let sent = cp.wait(
        "sent",
        |v| v["type"] == "CDS" && has(v, "other"),
        Duration::from_secs(10),
    );
    assert_eq!(
        sent["names"],
        json!(["other"]),
        "the server sent only the change"
    );
    route_name_to_other(
        &mut cp,
        lis,
        ("b", b.addr),
        "the new cluster is routed to; `web`, not named by the increment, still serves",
    );
    sidecar.dump_until("both clusters", |d| {
        cluster_names(d) == ["other", "web", "xds"]
    });

    // A bad cluster in an increment: NACK naming the field; the running config stays.
    let mut bad = eds_cluster("bad");
    bad["dnsLookupFamily"] = json!("V4_ONLY");
    cp.update("CDS", vec![bad]);
    let err = cp.nacked("CDS");
    assert!(
        err.contains("Cluster \"bad\"") && err.contains("dns_lookup_family"),
        "Delta NACK names resource and field: {err}"
    );
    assert_eq!(http_get(lis, "/name", "app.test"), (200, "b".into()));
    assert_eq!(http_get(lis, "/x", "app.test").0, 200);

    // Removal: route away from `other`, then remove it (and the bad one) by name.
    cp.set("RDS", vec![route_config("r1", &[("/", "web")])]);
    let (s, body) = get_until(lis, "/name", |s, b| s == 200 && b == "a");
    assert_eq!((s, body.as_str()), (200, "a"));
    cp.remove("CDS", &["other", "bad"]);
    let sent = cp.wait(
        "sent",
        |v| v["type"] == "CDS" && v["removed"] == json!(["bad", "other"]),
        Duration::from_secs(10),
    );
    assert_eq!(sent["names"], json!([]));
    let d = sidecar.dump_until("`other` removed", |d| {
        cluster_names(d) == ["web", "xds"] && d["xds"]["types"]["CDS"]["last_error"].is_null()
    });
    assert_eq!(d["xds"]["types"]["CDS"]["resources"], 1);
    // Its endpoints are unsubscribed and dropped with it.
    sidecar.dump_until("EDS down to one", |d| {
        d["xds"]["types"]["EDS"]["resources"] == 1 && d["xds"]["types"]["EDS"]["subscribed"] == 1
    });
    assert_eq!(http_get(lis, "/name", "app.test"), (200, "a".into()));
    drop(sidecar);
}

/// Serves, loses the control plane (the config stays), gets a new one on the same port with
/// a changed endpoint (resync). Returns the new control plane.
fn restart(api: &str) -> ControlPlane {
    let (a, b) = (Origin::start("a"), Origin::start("b"));
    let port = free_port();
    let lis: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cp = ControlPlane::start(0);
    let cp_port = cp.port;
    cp.serve_web(port, &[a.addr]);
    let sidecar = Sidecar::start(cp.port, &format!("  api: {api}\n"), "");
    let (s, body) = get_until(lis, "/name", |s, b| s == 200 && b == "a");
    assert_eq!(
        (s, body.as_str()),
        (200, "a"),
        "{api}: initial config serves"
    );
    cp.acked("EDS");

    cp.stop();
    sidecar.dump_until("the stream lost", |d| d["xds"]["connected"].is_null());
    // Gone for ~1.5 s (several failed reconnects): every request still served as before.
    let end = Instant::now() + Duration::from_millis(1500);
    let mut n = 0;
    while Instant::now() < end {
        assert_eq!(
            http_get(lis, "/name", "app.test"),
            (200, "a".into()),
            "{api}: the last config stays in force without a control plane"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(n > 10);

    // A new control plane on the same address, with `web` moved to `b`.
    let mut cp = ControlPlane::start(cp_port);
    cp.serve_web(port, &[b.addr]);
    let (s, body) = get_until(lis, "/name", |s, b| s == 200 && b == "b");
    assert_eq!(
        (s, body.as_str()),
        (200, "b"),
        "{api}: resynced after the restart"
    );
    cp.acked("EDS");
    let d = sidecar.dump_until("reconnected", |d| {
        d["xds"]["connected"].is_string() && d["xds"]["connects"] == 2
    });
    assert_eq!(d["xds"]["api"], api);
    cp
}

#[test]
fn sotw_control_plane_restart_keeps_config_then_resyncs() {
    if !ready() {
        return;
    }
    restart("sotw");
}

#[test]
fn delta_control_plane_restart_resyncs_with_initial_versions() {
    if !ready() {
        return;
    }
    let mut cp = restart("delta");
    // The client named what it had: the new server sent only the endpoint change, not the
    // unchanged cluster, route and listener again.
    let sent = cp.wait("sent", |v| v["type"] == "EDS", Duration::from_secs(5));
    assert_eq!(sent["names"], json!(["web"]));
    std::thread::sleep(Duration::from_millis(300));
    let resent: Vec<&Value> = cp
        .events()
        .iter()
        .filter(|v| v["event"] == "sent" && v["type"] != "EDS")
        .collect();
    assert!(
        resent.is_empty(),
        "unchanged resources sent again after the restart: {resent:?}"
    );
}

fn certs(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .arg("certs")
        .args(args)
        .args(["--dir".as_ref(), dir.as_os_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shardcar certs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The leaf certificate new handshakes on `addr` see, as base64 DER (no verification).
fn served_cert(addr: SocketAddr) -> String {
    let code = format!(
        "import ssl; print(ssl.get_server_certificate(('{}', {})))",
        addr.ip(),
        addr.port()
    );
    let out = Command::new(python()).args(["-c", &code]).output().unwrap();
    pem_body(&String::from_utf8_lossy(&out.stdout))
}

/// The first PEM block's base64, whitespace removed.
fn pem_body(pem: &str) -> String {
    pem.split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|r| r.split("-----END CERTIFICATE-----").next())
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

#[test]
fn sds_certificate_rotation_under_load_fails_no_request() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("xds-sds");
    let pki = dir.file("pki");
    certs(&pki, &["init", "--trust-domain", "test.local"]);
    let mut issued = Vec::new();
    for v in ["v1", "v2", "v3"] {
        certs(
            &pki,
            &[
                "issue",
                "--spiffe-id",
                "spiffe://test.local/ns/default/sa/gw",
                "--name",
                v,
                "--dns",
                "localhost",
            ],
        );
        let chain = std::fs::read_to_string(pki.join(format!("{v}.pem"))).unwrap();
        let key = std::fs::read_to_string(pki.join(format!("{v}-key.pem"))).unwrap();
        issued.push((chain, key));
    }
    let a = Origin::start("a");
    let port = free_port();
    let lis: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cp = ControlPlane::start(0);
    cp.set(
        "SDS",
        vec![cert_secret("gw-cert", &issued[0].0, &issued[0].1)],
    );
    cp.set("CDS", vec![eds_cluster("web")]);
    cp.set("EDS", vec![cla("web", &[a.addr])]);
    cp.set("RDS", vec![route_config("r1", &[("/", "web")])]);
    cp.set("LDS", vec![tls_listener("tls", port, "r1", "gw-cert")]);
    let _sidecar = Sidecar::start(cp.port, "", "");
    cp.acked("SDS");
    let end = Instant::now() + Duration::from_secs(10);
    while served_cert(lis) != pem_body(&issued[0].0) {
        assert!(Instant::now() < end, "the SDS certificate is never served");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Load where every request is a new connection and handshake (`connection: close`).
    let out = dir.file("load.json");
    let ca = pki.join("ca.pem");
    let load = load_with(
        &format!("https://{lis}/name"),
        1000,
        9,
        &out,
        &[
            "--ca",
            ca.to_str().unwrap(),
            "--sni",
            "localhost",
            "-H",
            "connection: close",
        ],
    );
    std::thread::sleep(Duration::from_millis(700));
    for (chain, key) in &issued[1..] {
        let t0 = Instant::now();
        cp.update("SDS", vec![cert_secret("gw-cert", chain, key)]);
        cp.acked("SDS");
        while served_cert(lis) != pem_body(chain) {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "the rotated certificate is not served within 3 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("rotation seen by new handshakes after {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(1000));
    }
    let (requests, errors, non200) = load_result(load, &out);
    assert!(requests >= 7_000, "the load ran: {requests} requests");
    assert_eq!(
        (errors, non200),
        (0, 0),
        "no failed request across two certificate rotations"
    );
    assert!(a.connections.load(std::sync::atomic::Ordering::SeqCst) > 0);
}
