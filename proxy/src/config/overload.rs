//! The `overload:` block (Envoy's overload manager with the `global_downstream_max_connections`
//! monitor, `stop_accepting_connections` and `stop_accepting_requests` actions on a memory
//! monitor): process-wide caps on downstream connections and active requests, divided among
//! shards, and RSS watermarks sampled on the control side (`crate::overload`).

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::scalar::{duration_field, parse_size, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverload {
    pub max_downstream_connections: Option<u32>,
    pub max_active_requests: Option<u32>,
    pub rss_stop_accepting: Option<Scalar>,
    pub rss_reject_requests: Option<Scalar>,
    pub refresh_interval: Option<Scalar>,
}

/// Typed overload settings (all off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overload {
    /// Open downstream connections, process-wide (each shard `ceil(max / shards)`); a
    /// connection over it is closed at accept.
    pub max_downstream_connections: Option<u32>,
    /// Requests in progress, process-wide (each shard its share); over it → 503 `OM`.
    pub max_active_requests: Option<u32>,
    /// RSS above which listeners stop accepting (bytes).
    pub rss_stop_accepting: Option<u64>,
    /// RSS above which new requests are answered 503 `OM` (bytes).
    pub rss_reject_requests: Option<u64>,
    /// How often the RSS is sampled (default 250ms).
    pub refresh_interval: Duration,
}

impl Overload {
    /// Whether an RSS watermark is set (then the monitor thread runs).
    pub fn watches_rss(&self) -> bool {
        self.rss_stop_accepting.is_some() || self.rss_reject_requests.is_some()
    }
}

pub const DEFAULT_REFRESH: Duration = Duration::from_millis(250);

pub fn build_overload(raw: &Option<RawOverload>) -> Result<Overload, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Overload {
            refresh_interval: DEFAULT_REFRESH,
            ..Overload::default()
        });
    };
    for (f, v) in [
        ("max_downstream_connections", raw.max_downstream_connections),
        ("max_active_requests", raw.max_active_requests),
    ] {
        if v == Some(0) {
            return Err(ConfigError::new(
                format!("overload.{f}"),
                "must be at least 1",
            ));
        }
    }
    // Bytes, KiB, MiB, or GiB (watermarks are usually gigabytes).
    let size = |f: &str, v: &Option<Scalar>| {
        v.as_ref()
            .map(|s| {
                let t = s.0.trim();
                let r = match t.strip_suffix("GiB") {
                    Some(n) => n
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .and_then(|n| n.checked_mul(1 << 30))
                        .ok_or_else(|| format!("invalid size {t:?}")),
                    None => parse_size(t).map(|n| n as u64),
                };
                r.map_err(|m| ConfigError::new(format!("overload.{f}"), m))
            })
            .transpose()
    };
    let stop = size("rss_stop_accepting", &raw.rss_stop_accepting)?;
    let reject = size("rss_reject_requests", &raw.rss_reject_requests)?;
    if let (Some(s), Some(r)) = (stop, reject) {
        if r < s {
            return Err(ConfigError::new(
                "overload.rss_reject_requests",
                "must not be below rss_stop_accepting (the second watermark is the higher one)",
            ));
        }
    }
    let refresh_interval = duration_field(
        "overload.refresh_interval".into(),
        &raw.refresh_interval,
        DEFAULT_REFRESH,
    )?;
    if refresh_interval < Duration::from_millis(10) {
        return Err(ConfigError::new(
            "overload.refresh_interval",
            "must be at least 10ms",
        ));
    }
    Ok(Overload {
        max_downstream_connections: raw.max_downstream_connections,
        max_active_requests: raw.max_active_requests,
        rss_stop_accepting: stop,
        rss_reject_requests: reject,
        refresh_interval,
    })
}
