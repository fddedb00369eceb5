//! A cluster's `outlier_detection:` block (Envoy's `envoy.config.cluster.v3.OutlierDetection`),
//! raw and typed. What each setting does at run time is in `crate::cluster::outlier`.
//!
//! Without the block a cluster keeps the proxy's historical passive health check: five
//! consecutive local-origin failures (connect refused or timed out, reset or timeout before a
//! response) eject an endpoint for 10 s, any share of endpoints may be ejected, HTTP statuses
//! are not looked at ([`OutlierPolicy::implicit`]). With the block, unset fields take Envoy's
//! defaults, except `consecutive_gateway_failure`, which is off unless set (Envoy sets it to 5 but
//! enforces it 0% of the time by default, which amounts to the same).

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::scalar::{duration_field, Scalar};

/// Raw `outlier_detection:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    /// Consecutive 5xx responses (and, unless split, local-origin failures) → ejection. `0`: off.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive 502/503/504 (and, unless split, local-origin failures) → ejection. `0`: off.
    pub consecutive_gateway_failure: Option<u32>,
    /// Consecutive local-origin failures → ejection; only with `split_external_local_origin_errors`.
    pub consecutive_local_origin_failure: Option<u32>,
    /// Count connect failures, resets and timeouts apart from HTTP statuses.
    pub split_external_local_origin_errors: Option<bool>,
    /// How often ejections are reviewed (returns, multiplier decay, success rate).
    pub interval: Option<Scalar>,
    pub base_ejection_time: Option<Scalar>,
    pub max_ejection_time: Option<Scalar>,
    pub max_ejection_percent: Option<u32>,
    /// Success-rate ejection (statistical outliers per interval); off without the block.
    pub success_rate: Option<RawSuccessRate>,
}

/// Raw `outlier_detection.success_rate:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuccessRate {
    pub minimum_hosts: Option<u32>,
    pub request_volume: Option<u32>,
    /// Ejection threshold: mean − (stdev_factor / 1000) · stdev (Envoy's units; default 1900).
    pub stdev_factor: Option<u32>,
}

/// Success-rate ejection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuccessRate {
    /// Endpoints with enough volume needed before any is judged (default 5).
    pub minimum_hosts: u32,
    /// Requests in one interval an endpoint needs to be judged (default 100).
    pub request_volume: u32,
    /// Threshold factor in thousandths of a standard deviation (default 1900 = 1.9σ).
    pub stdev_factor: u32,
}

/// Typed outlier-detection policy of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_failure: Option<u32>,
    pub consecutive_local_origin_failure: Option<u32>,
    pub split_external_local_origin_errors: bool,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
    pub success_rate: Option<SuccessRate>,
}

impl OutlierPolicy {
    /// The policy of a cluster without an `outlier_detection:` block.
    pub const fn implicit() -> OutlierPolicy {
        OutlierPolicy {
            consecutive_5xx: None,
            consecutive_gateway_failure: None,
            consecutive_local_origin_failure: Some(5),
            split_external_local_origin_errors: true,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 100,
            success_rate: None,
        }
    }
}

impl Default for OutlierPolicy {
    fn default() -> OutlierPolicy {
        OutlierPolicy::implicit()
    }
}

/// `0` turns a trigger off.
fn trigger(v: Option<u32>, default: Option<u32>) -> Option<u32> {
    match v {
        Some(0) => None,
        Some(n) => Some(n),
        None => default,
    }
}

fn positive(at: &str, field: &str, v: Duration) -> Result<Duration, ConfigError> {
    if v.is_zero() {
        return Err(ConfigError::new(
            format!("{at}.{field}"),
            "must be greater than 0",
        ));
    }
    Ok(v)
}

pub fn build_outlier(at: &str, raw: Option<&RawOutlier>) -> Result<OutlierPolicy, ConfigError> {
    let Some(raw) = raw else {
        return Ok(OutlierPolicy::implicit());
    };
    let f = |name: &str| format!("{at}.{name}");
    let interval = duration_field(f("interval"), &raw.interval, Duration::from_secs(10))?;
    let base = duration_field(
        f("base_ejection_time"),
        &raw.base_ejection_time,
        Duration::from_secs(30),
    )?;
    let max = duration_field(
        f("max_ejection_time"),
        &raw.max_ejection_time,
        Duration::from_secs(300),
    )?;
    let interval = positive(at, "interval", interval)?;
    let base = positive(at, "base_ejection_time", base)?;
    if max < base {
        return Err(ConfigError::new(
            f("max_ejection_time"),
            format!("must be at least base_ejection_time ({base:?})"),
        ));
    }
    let max_ejection_percent = raw.max_ejection_percent.unwrap_or(10);
    if max_ejection_percent > 100 {
        return Err(ConfigError::new(
            f("max_ejection_percent"),
            format!("{max_ejection_percent} is over 100"),
        ));
    }
    let success_rate = raw
        .success_rate
        .as_ref()
        .map(|s| {
            let sr = SuccessRate {
                minimum_hosts: s.minimum_hosts.unwrap_or(5),
                request_volume: s.request_volume.unwrap_or(100),
                stdev_factor: s.stdev_factor.unwrap_or(1900),
            };
            if sr.minimum_hosts == 0 || sr.request_volume == 0 {
                let which = if sr.minimum_hosts == 0 {
                    "minimum_hosts"
                } else {
                    "request_volume"
                };
                return Err(ConfigError::new(
                    format!("{at}.success_rate.{which}"),
                    "must be at least 1",
                ));
            }
            Ok(sr)
        })
        .transpose()?;
    let split = raw.split_external_local_origin_errors.unwrap_or(false);
    if !split && raw.consecutive_local_origin_failure.is_some() {
        return Err(ConfigError::new(
            f("consecutive_local_origin_failure"),
            "only counted with split_external_local_origin_errors: true (otherwise local-origin failures count as 5xx)",
        ));
    }
    Ok(OutlierPolicy {
        consecutive_5xx: trigger(raw.consecutive_5xx, Some(5)),
        consecutive_gateway_failure: trigger(raw.consecutive_gateway_failure, None),
        consecutive_local_origin_failure: trigger(
            raw.consecutive_local_origin_failure,
            split.then_some(5),
        ),
        split_external_local_origin_errors: split,
        interval,
        base_ejection_time: base,
        max_ejection_time: max,
        max_ejection_percent,
        success_rate,
    })
}
