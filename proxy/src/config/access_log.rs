//! A listener's `access_log:` block: a list of sinks, each a file (or `/dev/stdout`) with a
//! format (Envoy's text language, or `json_format` key → format; Envoy's default format when
//! neither is given) and optional filters, all of which must pass:
//!
//! ```yaml
//! access_log:
//!   - path: /var/log/shardcar/access.log
//!     format: "%START_TIME% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%\n"
//!     filter: {min_status: 400, min_duration: 100ms, sample_percent: 10}
//!   - path: /dev/stdout
//!     json_format: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%"}
//! ```
//!
//! The format is compiled here (an unknown command is an error naming the field and line);
//! the writer behind `path` is started by the control side ([`crate::telemetry::access_log::writer`]),
//! which fills [`AccessLogConf::live`] before the config reaches a shard.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use super::raw::Scalar;
use super::scalar::duration_field;
use super::ConfigError;
use crate::telemetry::access_log::writer::LogSender;
use crate::telemetry::access_log::{Format, ENVOY_DEFAULT_FORMAT};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    pub path: String,
    pub format: Option<String>,
    pub json_format: Option<serde_yaml::Mapping>,
    pub filter: Option<RawLogFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogFilter {
    /// Log only responses with a status ≥ this (TCP connections have status 0).
    pub min_status: Option<u16>,
    /// Log only requests (connections) that took at least this long.
    pub min_duration: Option<Scalar>,
    /// Log this share of what passes the other filters (0–100, fractions allowed).
    pub sample_percent: Option<f64>,
}

/// Which finished requests a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogFilter {
    pub min_status: Option<u16>,
    pub min_duration: Option<Duration>,
    /// Out of 1,000,000; `None` logs everything.
    pub sample_per_million: Option<u32>,
}

impl LogFilter {
    /// Whether a request with `status` that took `duration` is logged; `draw` is a uniform
    /// random number, asked for only when sampling is on.
    pub fn admits(&self, status: u16, duration: Duration, draw: impl FnOnce() -> u64) -> bool {
        self.min_status.is_none_or(|m| status >= m)
            && self.min_duration.is_none_or(|d| duration >= d)
            && self
                .sample_per_million
                .is_none_or(|p| (draw() % 1_000_000) < u64::from(p))
    }
}

/// One typed sink.
#[derive(Debug, Clone)]
pub struct AccessLogConf {
    pub path: PathBuf,
    pub format: Arc<Format>,
    pub filter: LogFilter,
    /// The queue to the writer thread of `path`, set once by the control side when the config
    /// is activated (before any shard sees it).
    pub live: Arc<OnceLock<LogSender>>,
}

pub fn build_access_logs(
    at: &str,
    raw: &[RawAccessLog],
) -> Result<Vec<AccessLogConf>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| build_one(&format!("{at}.access_log[{i}]"), r))
        .collect()
}

fn build_one(at: &str, raw: &RawAccessLog) -> Result<AccessLogConf, ConfigError> {
    let field = |f: &str| format!("{at}.{f}");
    if raw.path.trim().is_empty() {
        return Err(ConfigError::new(field("path"), "must not be empty"));
    }
    let format = match (&raw.format, &raw.json_format) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("json_format"),
                "give either format or json_format, not both",
            ))
        }
        (Some(f), None) => {
            Format::text(f).map_err(|e| ConfigError::new(field("format"), e.to_string()))?
        }
        (None, Some(map)) => {
            if map.is_empty() {
                return Err(ConfigError::new(field("json_format"), "must not be empty"));
            }
            let mut pairs = Vec::with_capacity(map.len());
            for (k, v) in map {
                let Some(k) = k.as_str() else {
                    return Err(ConfigError::new(
                        field("json_format"),
                        format!("keys must be strings, not {k:?}"),
                    ));
                };
                let v = match v {
                    serde_yaml::Value::String(s) => s.clone(),
                    serde_yaml::Value::Number(n) => n.to_string(),
                    other => {
                        return Err(ConfigError::new(
                            format!("{at}.json_format.{k}"),
                            format!("must be a format string, not {other:?}"),
                        ))
                    }
                };
                pairs.push((k.to_string(), v));
            }
            Format::json(&pairs)
                .map_err(|e| ConfigError::new(field("json_format"), e.to_string()))?
        }
        (None, None) => {
            Format::text(ENVOY_DEFAULT_FORMAT).expect("Envoy's default format compiles")
        }
    };
    let mut filter = LogFilter::default();
    if let Some(f) = &raw.filter {
        filter.min_status = f.min_status;
        if let Some(s) = f.min_status {
            if !(100..=599).contains(&s) {
                return Err(ConfigError::new(
                    field("filter.min_status"),
                    format!("{s} is not an HTTP status (100..599)"),
                ));
            }
        }
        if f.min_duration.is_some() {
            filter.min_duration = Some(duration_field(
                field("filter.min_duration"),
                &f.min_duration,
                Duration::ZERO,
            )?);
        }
        if let Some(p) = f.sample_percent {
            if !(0.0..=100.0).contains(&p) || p.is_nan() {
                return Err(ConfigError::new(
                    field("filter.sample_percent"),
                    format!("{p} is not a percentage (0..100)"),
                ));
            }
            filter.sample_per_million = Some((p * 10_000.0).round() as u32);
        }
    }
    Ok(AccessLogConf {
        path: PathBuf::from(&raw.path),
        format: Arc::new(format),
        filter,
        live: Arc::default(),
    })
}
