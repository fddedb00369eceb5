//! Accuracy against known truth: fixed delays, a one-off stall (coordinated omission), and the
//! achieved rate. Runs are short and serialised; bounds are what the mechanism guarantees plus
//! room for a noisy shared 2-core CI machine.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn fixed_5ms_delay_reports_p50_between_5_and_6_ms() {
    let _g = timing();
    let o = origin(|o| o.delay = Duration::from_millis(5));
    let out = shardload::run(&open(&format!("http://{}/", o.addr()), 200.0, 2.0)).unwrap();
    let r = &out.report;
    assert_eq!(r.summary.errors, 0, "{:?}", out.stats.first_error);
    assert!(r.latency_us.count >= 390, "count {}", r.latency_us.count);
    assert!(
        (5000.0..=6000.0).contains(&r.latency_us.p50),
        "p50 {} µs",
        r.latency_us.p50
    );
    // Nothing can be faster than the origin's delay.
    assert!(r.latency_us.min >= 5000.0, "min {}", r.latency_us.min);
}

/// The origin holds every response due in a 500 ms window. At 1,000 rps open loop, the ~500
/// requests intended during the stall all wait for its end, so their latencies (from the
/// intended time) spread evenly over 0..500 ms: ≈250 are ≥ 250 ms and ≈400 are ≥ 100 ms.
/// (The issue asked for "≥ 400 with latency ≥ 250 ms"; with a 500 ms stall at 1,000 rps only
/// ~250 can be — those intended in its first half — so we assert the arithmetic truth.)
/// A closed loop with 10 connections records only its ~10 stalled in-flight requests.
#[test]
fn stall_is_recorded_in_open_loop_but_omitted_in_closed_loop() {
    let _g = timing();
    let stall = Some((Duration::from_millis(1000), Duration::from_millis(500)));
    let o = origin(|o| o.stall = stall);
    let mut p = open(&format!("http://{}/", o.addr()), 1000.0, 3.0);
    p.connections = 50;
    let open_run = shardload::run(&p).unwrap();
    drop(o);
    let h = &open_run.stats.latency;
    let ge250 = h.count_between(250_000, h.max());
    let ge100 = h.count_between(100_000, h.max());
    assert_eq!(open_run.report.summary.errors, 0);
    assert!(h.len() >= 2900, "open loop recorded {} samples", h.len());
    assert!((200..=330).contains(&ge250), "open loop ≥250 ms: {ge250}");
    assert!(ge100 >= 350, "open loop ≥100 ms: {ge100}");
    assert!(h.max() >= 450_000, "max {} µs", h.max());

    let o = origin(|o| o.stall = stall);
    let closed_run = shardload::run(&closed(&format!("http://{}/", o.addr()), 10, 3.0)).unwrap();
    let hc = &closed_run.stats.latency;
    let c250 = hc.count_between(250_000, hc.max());
    assert!(
        hc.max() >= 400_000,
        "closed loop saw the stall: max {}",
        hc.max()
    );
    assert!(c250 <= 10, "closed loop ≥250 ms: {c250}");
    assert!(
        ge250 >= 20 * c250.max(1),
        "open {ge250} vs closed {c250}: the difference is the coordinated omission"
    );
}

#[test]
fn open_loop_2000_rps_for_3s_achieves_the_rate() {
    let _g = timing();
    let o = origin(|_| {});
    let out = shardload::run(&open(&format!("http://{}/", o.addr()), 2000.0, 3.0)).unwrap();
    let s = &out.report.summary;
    assert_eq!(s.errors, 0);
    assert!(
        (1940.0..=2060.0).contains(&s.achieved_rps),
        "achieved {} rps",
        s.achieved_rps
    );
    // The generator kept its schedule. The `bottleneck` warning fires at 1% of sends more than
    // 1 ms late, which a CI machine shared with compile jobs can reach; a broken scheduler is
    // late on far more than 10%.
    assert!(
        out.report.generator.late_fraction < 0.10,
        "{:?}",
        out.report.generator
    );
    // Per-second series covers the window.
    assert!(out.report.timeseries.len() >= 3);
    let mid = &out.report.timeseries[1];
    assert!((1800..=2200).contains(&mid.requests), "{mid:?}");
}

#[test]
fn warmup_is_excluded_and_request_count_is_exact() {
    let _g = timing();
    let o = origin(|_| {});
    let mut p = open(&format!("http://{}/", o.addr()), 500.0, 1.0);
    p.stop = shardload::Stop::Requests(300);
    p.warmup = Duration::from_millis(200);
    let out = shardload::run(&p).unwrap();
    assert_eq!(out.report.summary.requests, 300);
    assert_eq!(
        out.report.generator.sends, 400,
        "100 warm-up + 300 measured"
    );
}
