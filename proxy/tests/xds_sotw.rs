//! xDS State of the World against the Python control plane (`tests/py/xds_server.py`,
//! grpcio + xds-protos): initial config → a request flows; node identification; a route
//! change; an unsupported field NACKed with the field named while the old config serves;
//! endpoints added and removed under 2,000 req/s with zero failed requests; listener
//! removal; `/config_dump` versions and nonces.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use support::origin::Origin;
use support::tools::{have_python_modules, TempDir};
use support::xds::*;

fn ready() -> bool {
    have_python_modules("grpc, envoy.service.discovery.v3.ads_pb2_grpc")
}

#[test]
fn sotw_config_routes_nack_endpoints_under_load() {
    if !ready() {
        return;
    }
    let (a, b, c) = (Origin::start("a"), Origin::start("b"), Origin::start("c"));
    let port = free_port();
    let lis: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cp = ControlPlane::start(0);
    cp.serve_web(port, &[a.addr]);
    let sidecar = Sidecar::start(cp.port, "", "");

    // The node as the control plane saw it.
    let node = cp.wait("node", |_| true, Duration::from_secs(20));
    assert_eq!(node["id"], "sidecar-1");
    assert_eq!(node["cluster"], "test");
    assert_eq!(node["metadata"]["NAMESPACE"], "default");
    assert_eq!(node["user_agent"], "shardcar");

    // Initial config: a request flows to the EDS endpoint.
    let (s, body) = get_until(lis, "/name", |s, b| s == 200 && b == "a");
    assert_eq!((s, body.as_str()), (200, "a"), "initial config serves");
    for kind in ["CDS", "EDS", "LDS", "RDS"] {
        cp.wait("ack", |v| v["type"] == kind, Duration::from_secs(10));
    }

    // A route change: /name goes to a new cluster.
    cp.set("CDS", vec![eds_cluster("web"), eds_cluster("other")]);
    route_name_to_other(&mut cp, lis, ("b", b.addr), "the route change took effect");

    // An unsupported, behaviour-changing field: NACK naming it; the old config stays.
    let mut bad = eds_cluster("bad");
    bad["dnsLookupFamily"] = json!("V4_ONLY");
    cp.set("CDS", vec![eds_cluster("web"), eds_cluster("other"), bad]);
    let err = cp.nacked("CDS");
    assert!(
        err.contains("Cluster \"bad\"") && err.contains("dns_lookup_family"),
        "NACK names resource and field: {err}"
    );
    assert_eq!(
        http_get(lis, "/name", "app.test"),
        (200, "b".into()),
        "old config keeps serving"
    );
    let d = sidecar.dump_until("the CDS error", |d| {
        d["xds"]["types"]["CDS"]["last_error"].is_string()
    });
    let cds = &d["xds"]["types"]["CDS"];
    assert!(cds["last_error"]
        .as_str()
        .unwrap()
        .contains("dns_lookup_family"));
    assert!(
        cds["nonce"].as_str().is_some_and(|n| !n.is_empty()),
        "nonce shown: {cds}"
    );
    assert_eq!(d["xds"]["node"]["id"], "sidecar-1");
    // A good CDS again clears the error and is ACKed at its version.
    cp.set("CDS", vec![eds_cluster("web"), eds_cluster("other")]);
    let ack = cp.acked("CDS");
    let v = ack["version"].as_str().unwrap().to_string();
    sidecar.dump_until("the CDS version", |d| {
        d["xds"]["types"]["CDS"]["version"] == v.as_str()
            && d["xds"]["types"]["CDS"]["last_error"].is_null()
    });

    // Endpoints added and removed while shardload runs at 2,000 req/s: zero failures.
    let dir = TempDir::new("xds-load");
    let out = dir.file("load.json");
    let load = load(&format!("http://{lis}/"), 2000, 6, &out);
    std::thread::sleep(Duration::from_millis(800));
    for set in [
        &[a.addr, c.addr][..],
        &[c.addr],
        &[a.addr, c.addr],
        &[a.addr],
        &[c.addr, a.addr],
    ] {
        cp.update("EDS", vec![cla("web", set)]);
        cp.acked("EDS");
        std::thread::sleep(Duration::from_millis(700));
    }
    let c_before = c.requests.load(std::sync::atomic::Ordering::SeqCst);
    let (requests, errors, non200) = load_result(load, &out);
    assert!(requests >= 10_000, "the load ran: {requests} requests");
    assert_eq!(
        (errors, non200),
        (0, 0),
        "no failed request while endpoints changed"
    );
    assert!(
        c_before > 100,
        "the added endpoint took traffic ({c_before} requests)"
    );

    // Endpoint removal to zero: 503 (no endpoint), not a stale endpoint.
    cp.update("EDS", vec![cla("web", &[])]);
    cp.acked("EDS");
    assert_eq!(http_get(lis, "/x", "app.test").0, 503);

    // Listener removal: the port stops accepting.
    cp.set("LDS", vec![]);
    cp.acked("LDS");
    let (s, _) = get_until(lis, "/", |s, _| s == 0);
    assert_eq!(s, 0, "the removed listener no longer answers");
    drop(sidecar);
}
