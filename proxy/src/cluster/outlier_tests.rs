//! Unit tests of the outlier state machine, on a virtual clock.

use std::time::{Duration, Instant};

use super::{Outcome, Outlier};
use crate::config::{OutlierPolicy, SuccessRate};

const S: Duration = Duration::from_secs(1);

fn policy() -> OutlierPolicy {
    OutlierPolicy {
        consecutive_5xx: Some(3),
        consecutive_gateway_failure: None,
        consecutive_local_origin_failure: None,
        split_external_local_origin_errors: false,
        interval: S,
        base_ejection_time: 10 * S,
        max_ejection_time: 25 * S,
        max_ejection_percent: 100,
        success_rate: None,
    }
}

fn fail(o: &Outlier, i: usize, n: usize, now: Instant) {
    for _ in 0..n {
        o.record_at(i, Outcome::Status(503), Some(now));
    }
}

#[test]
fn consecutive_5xx_ejects_and_a_success_resets_the_count() {
    let o = Outlier::new(policy(), 2);
    let t = Instant::now();
    fail(&o, 0, 2, t);
    o.record_at(0, Outcome::Status(200), Some(t));
    fail(&o, 0, 2, t);
    assert!(!o.is_ejected(0));
    fail(&o, 0, 1, t);
    assert!(o.is_ejected(0));
    assert_eq!(o.counters.ejections_consecutive_5xx.get(), 1);
}

#[test]
fn ejection_time_grows_with_each_ejection_and_is_capped() {
    let o = Outlier::new(policy(), 2);
    let t0 = Instant::now();
    fail(&o, 0, 3, t0);
    o.tick(t0 + 9 * S);
    assert!(o.is_ejected(0), "10 s the first time");
    o.tick(t0 + 10 * S);
    assert!(!o.is_ejected(0));
    let t1 = t0 + 10 * S;
    fail(&o, 0, 3, t1);
    o.tick(t1 + 19 * S);
    assert!(o.is_ejected(0), "20 s the second time");
    o.tick(t1 + 20 * S);
    assert!(!o.is_ejected(0));
    let t2 = t1 + 20 * S;
    fail(&o, 0, 3, t2);
    o.tick(t2 + 24 * S);
    assert!(o.is_ejected(0), "30 s capped at 25 s");
    o.tick(t2 + 25 * S);
    assert!(!o.is_ejected(0));
    // Healthy ticks decay the multiplier (3 → 0), so the next ejection is 10 s again.
    for k in 1..=3 {
        o.tick(t2 + (25 + k) * S);
    }
    let t3 = t2 + 28 * S;
    fail(&o, 0, 3, t3);
    o.tick(t3 + 10 * S);
    assert!(!o.is_ejected(0));
}

#[test]
fn max_ejection_percent_is_never_exceeded() {
    let o = Outlier::new(
        OutlierPolicy {
            max_ejection_percent: 50,
            ..policy()
        },
        4,
    );
    let t = Instant::now();
    for i in 0..4 {
        fail(&o, i, 3, t);
    }
    assert_eq!(o.ejected_now(), 2);
    assert_eq!(o.counters.ejections_overflow.get(), 2);
}

#[test]
fn local_origin_failures_count_as_gateway_errors_unless_split() {
    let o = Outlier::new(policy(), 1);
    let t = Instant::now();
    for _ in 0..3 {
        o.record_at(0, Outcome::LocalFailure, Some(t));
        o.record_at(0, Outcome::Connected { last: false }, Some(t));
    }
    assert!(
        o.is_ejected(0),
        "an HTTP connect success does not reset 5xx"
    );
    let split = Outlier::new(
        OutlierPolicy {
            split_external_local_origin_errors: true,
            consecutive_local_origin_failure: Some(2),
            ..policy()
        },
        1,
    );
    split.record_at(0, Outcome::LocalFailure, Some(t));
    split.record_at(0, Outcome::Connected { last: false }, Some(t));
    split.record_at(0, Outcome::LocalFailure, Some(t));
    fail(&split, 0, 2, t);
    assert!(
        !split.is_ejected(0),
        "a response resets the local-origin count"
    );
    split.record_at(0, Outcome::LocalFailure, Some(t));
    assert!(!split.is_ejected(0));
    split.record_at(0, Outcome::LocalFailure, Some(t));
    assert!(split.is_ejected(0));
    assert_eq!(
        split
            .counters
            .ejections_consecutive_local_origin_failure
            .get(),
        1
    );
}

#[test]
fn success_rate_ejects_the_statistical_outlier() {
    let o = Outlier::new(
        OutlierPolicy {
            consecutive_5xx: None,
            success_rate: Some(SuccessRate {
                minimum_hosts: 5,
                request_volume: 100,
                stdev_factor: 1900,
            }),
            ..policy()
        },
        6,
    );
    let t = Instant::now();
    for i in 0..6 {
        for k in 0..100 {
            let bad = if i == 5 { k % 2 == 0 } else { k % 50 == 0 };
            o.record_at(i, Outcome::Status(if bad { 500 } else { 200 }), Some(t));
        }
    }
    o.tick(t + S);
    assert!(o.is_ejected(5));
    assert_eq!(o.ejected_now(), 1);
    assert_eq!(o.counters.ejections_success_rate.get(), 1);
}
