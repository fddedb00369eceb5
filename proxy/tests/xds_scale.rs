//! xDS at scale (the figures in `proxy/src/xds/mod.rs` and the README; `#[ignore]`d, run
//! against the release binary):
//!
//! ```sh
//! cargo build --release -p shardcar
//! SHARDCAR_BIN=target/release/shardcar SHARDCAR_LOG=warn \
//!   cargo test -p shardcar --test xds_scale -- --ignored --nocapture
//! ```
//!
//! Propagation is the control plane's push (when `xds_server.py` hands the response to
//! gRPC) to the ACK it receives: the client ACKs only after every shard swapped, so this is
//! push → last shard applied plus the ACK's way back (an upper bound). Measured for a change
//! of every endpoint of 1,000 clusters × 10 endpoints, and for a single-endpoint change in
//! that config, over SotW (each EDS response carries all 1,000 assignments) and Delta (only
//! the changed one). Memory per cluster is the sidecar's RSS with 1,000 such clusters minus
//! its RSS with one, over 999; the in-process tests count live heap bytes with a counting
//! allocator (the whole sidecar against the control plane, and a breakdown by holder).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::origin::Origin;
use support::tools::have_python_modules;
use support::xds::*;

const CLUSTERS: usize = 1000;
const ENDPOINTS: usize = 10;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Cluster `c{i}`'s assignment: 10 endpoints on 127.1.x.y, ports shifted by `gen`.
fn assignment(i: usize, gen: u16) -> Value {
    let eps: Vec<SocketAddr> = (0..ENDPOINTS)
        .map(|e| {
            let n = i * ENDPOINTS + e;
            (
                [127, 1, (n >> 8) as u8, n as u8],
                10_000 + gen.wrapping_mul(7) % 20_000,
            )
                .into()
        })
        .collect();
    cla(&format!("c{i}"), &eps)
}

/// The process's CPU time (user + system), in ms (`/proc/PID/stat`, 100 Hz ticks).
fn cpu_ms(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 * 10.0
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() as f64 * f).ceil() as usize).saturating_sub(1)];
    (q(0.5), q(0.99), *v.last().unwrap())
}

/// Pushes `make(gen)` as EDS `rounds` times, each after the last was ACKed; returns the
/// push → ACK times in ms.
fn rounds(cp: &mut ControlPlane, rounds: u16, make: impl Fn(u16) -> Vec<Value>) -> Vec<f64> {
    (1..=rounds)
        .map(|gen| {
            cp.update("EDS", make(gen));
            let ack = cp.acked("EDS");
            (ack["t"].as_f64().unwrap() - ack["pushed"].as_f64().unwrap()) * 1000.0
        })
        .collect()
}

fn scale(api: &str) {
    if !have_python_modules("grpc, envoy.service.discovery.v3.ads_pb2_grpc") {
        return;
    }
    let a = Origin::start("a");
    let port = free_port();
    let lis: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cp = ControlPlane::start(0);
    cp.serve_web(port, &[a.addr]);
    let sidecar = Sidecar::start(cp.port, &format!("  api: {api}\n"), "");
    let (s, _) = get_until(lis, "/name", |s, b| s == 200 && b == "a");
    assert_eq!(s, 200);
    std::thread::sleep(Duration::from_secs(1));
    let rss_one = rss_kib(sidecar.pid());

    let mut clusters = vec![eds_cluster("web")];
    clusters.extend((0..CLUSTERS).map(|i| eds_cluster(&format!("c{i}"))));
    cp.update("EDS", (0..CLUSTERS).map(|i| assignment(i, 0)).collect());
    cp.set("CDS", clusters);
    cp.acked("CDS");
    sidecar.dump_until("1,001 clusters", |d| {
        d["config"]["clusters"].as_array().map(Vec::len) == Some(CLUSTERS + 2)
    });
    std::thread::sleep(Duration::from_secs(1));
    let rss_full = rss_kib(sidecar.pid());

    let c0 = cpu_ms(sidecar.pid());
    let all = rounds(&mut cp, 50, |g| {
        (0..CLUSTERS).map(|i| assignment(i, g)).collect()
    });
    let c1 = cpu_ms(sidecar.pid());
    let one = rounds(&mut cp, 100, |g| {
        vec![assignment(usize::from(g) % CLUSTERS, g + 100)]
    });
    let c2 = cpu_ms(sidecar.pid());
    println!(
        "{api}: sidecar CPU per update: {:.1} ms (every endpoint), {:.1} ms (one endpoint)",
        (c1 - c0) / 50.0,
        (c2 - c1) / 100.0
    );
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = rss_kib(sidecar.pid());
    assert_eq!(http_get(lis, "/name", "app.test"), (200, "a".into()));

    eprintln!("{api}: all-endpoint samples (ms, in order): {all:.0?}");
    let (p50, p99, max) = percentiles(all);
    println!(
        "{api}: every endpoint of {CLUSTERS} clusters x {ENDPOINTS}: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (50 pushes)"
    );
    let (p50, p99, max) = percentiles(one);
    println!(
        "{api}: one endpoint among them: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (100 pushes)"
    );
    println!(
        "{api}: RSS {rss_one} KiB with 1 cluster, {rss_full} KiB with {} ({:.2} KiB per cluster); {rss_after} KiB after the pushes ({:.2} KiB per cluster)",
        CLUSTERS + 1,
        (rss_full - rss_one) as f64 / CLUSTERS as f64,
        (rss_after - rss_one) as f64 / CLUSTERS as f64,
    );
    let d = sidecar.dump();
    println!(
        "{api}: client-side propagation (response received -> every shard swapped): {}",
        d["xds"]["propagation_ms"]
    );
}

#[test]
#[ignore = "scale figures: run against the release binary (see the module doc)"]
fn sotw_propagation_and_memory_at_1000_clusters() {
    scale("sotw");
}

#[test]
#[ignore = "scale figures: run against the release binary (see the module doc)"]
fn delta_propagation_and_memory_at_1000_clusters() {
    scale("delta");
}

/// Live heap bytes, for the per-cluster breakdown below.
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The config document the xDS client composes: `n` EDS clusters × 10 endpoints.
fn doc(n: usize) -> Value {
    let clusters: Vec<Value> = (0..n)
        .map(|i| {
            let eps: Vec<String> = (0..ENDPOINTS)
                .map(|e| format!("127.1.{}.{}:10007", (i * ENDPOINTS + e) >> 8, (i * ENDPOINTS + e) as u8))
                .collect();
            serde_json::json!({"name": format!("c{i}"), "type": "eds", "connect_timeout": "1s", "endpoints": eps})
        })
        .collect();
    serde_json::json!({"admin": {"address": "127.0.0.1:0", "health_address": "off"},
                       "clusters": clusters, "listeners": []})
}

#[test]
#[ignore = "scale figures (in-process, counting allocator)"]
fn memory_per_cluster_breakdown() {
    let per = |bytes: isize| bytes as f64 / CLUSTERS as f64;
    let t0 = live();
    let d = doc(CLUSTERS);
    let json_value = live() - t0;
    let t1 = live();
    let text = d.to_string();
    let json_text = live() - t1;
    let t2 = live();
    let config = shardcar::Config::from_xds_value(d.clone()).unwrap();
    let typed = live() - t2;
    let mut server =
        shardcar::Server::start(shardcar::Config::from_xds_value(doc(0)).unwrap(), 2).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t3 = live();
    server.swap(config).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let installed = live() - t3;
    println!(
        "per cluster (x{ENDPOINTS} endpoints): serde_json::Value {:.0} B, its text {:.0} B, typed Config {:.0} B, installed on 2 shards (Config + shard state) {:.0} B",
        per(json_value),
        per(json_text),
        per(typed),
        per(installed)
    );
    drop((d, text));
    drop(server);
}

/// The whole sidecar in this process (shards, control thread, xDS client) against the Python
/// control plane: live heap bytes per cluster, counted by the allocator above.
#[test]
#[ignore = "scale figures (in-process, counting allocator)"]
fn live_heap_per_cluster_in_process() {
    if !have_python_modules("grpc, envoy.service.discovery.v3.ads_pb2_grpc") {
        return;
    }
    let mut cp = ControlPlane::start(0);
    cp.set("CDS", vec![eds_cluster("web")]);
    cp.set("EDS", vec![cla("web", &["127.0.0.1:9".parse().unwrap()])]);
    let dir = support::tools::TempDir::new("xds-heap");
    let boot = shardcar::xds::Bootstrap::from_yaml(&format!(
        "node: {{id: n}}\nxds: {{cluster: xds, sds_dir: {}}}\nstatic_resources:\n  clusters:\n    \
         - {{name: xds, endpoints: [\"127.0.0.1:{}\"], protocol: http2}}\n",
        dir.file("sds").display(),
        cp.port
    ))
    .unwrap();
    let server = shardcar::Server::start(boot.initial.clone(), 2).unwrap();
    let (control, handle) = shardcar::reload::Control::new(server, None);
    let _t = std::thread::spawn(move || control.run());
    shardcar::xds::start(boot, handle.clone()).unwrap();
    cp.acked("EDS");
    std::thread::sleep(Duration::from_millis(500));
    let one = live();
    let mut clusters = vec![eds_cluster("web")];
    clusters.extend((0..CLUSTERS).map(|i| eds_cluster(&format!("c{i}"))));
    cp.update("EDS", (0..CLUSTERS).map(|i| assignment(i, 0)).collect());
    cp.set("CDS", clusters);
    cp.acked("CDS");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while handle
        .dump()
        .is_some_and(|d| d.matches("\"c999\"").count() == 0)
    {
        assert!(std::time::Instant::now() < end);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let full = live();
    println!(
        "live heap: {:.0} B per cluster (x{ENDPOINTS} endpoints, 2 shards, xDS client and control thread included)",
        (full - one) as f64 / CLUSTERS as f64
    );
    handle.shutdown();
}
