//! A cluster's `health_check:` block (Envoy's `core.v3.HealthCheck`, one checker per cluster) and
//! `healthy_panic_threshold` (Envoy's `common_lb_config.healthy_panic_threshold`), raw and
//! typed. The checks run on their own thread ([`crate::health`]).

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::scalar::{duration_field, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub unhealthy_threshold: Option<u32>,
    pub healthy_threshold: Option<u32>,
    /// Exactly one of `http`, `tcp`, `grpc`.
    pub http: Option<RawHttpCheck>,
    pub tcp: Option<RawEmpty>,
    pub grpc: Option<RawGrpcCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpCheck {
    pub path: String,
    pub host: Option<String>,
    /// Statuses that pass (default `[200]`).
    #[serde(default)]
    pub expected_statuses: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrpcCheck {
    /// The `service` of the `HealthCheckRequest` (default "": the whole server).
    #[serde(default)]
    pub service_name: String,
    pub authority: Option<String>,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET path` with `Host: host` (default: the cluster name); passes on an expected status.
    Http {
        path: String,
        host: String,
        expected: Vec<u16>,
    },
    /// A TCP connect that succeeds passes.
    Tcp,
    /// `grpc.health.v1.Health/Check` over h2c; passes on `SERVING`.
    Grpc { service: String, authority: String },
}

/// Typed active health check of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
    /// Failed probes in a row that mark a healthy endpoint unhealthy (default 3).
    pub unhealthy_threshold: u32,
    /// Passed probes in a row that mark an unhealthy endpoint healthy (default 2).
    pub healthy_threshold: u32,
    pub probe: Probe,
}

/// Envoy's default panic threshold, in percent of endpoints healthy.
pub const DEFAULT_PANIC_THRESHOLD: u32 = 50;

fn host_like(path: String, h: &str) -> Result<String, ConfigError> {
    if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()) || h.contains('/') {
        return Err(ConfigError::new(path, format!("invalid host {h:?}")));
    }
    Ok(h.to_string())
}

pub fn build_health(
    at: &str,
    cluster: &str,
    raw: Option<&RawHealthCheck>,
) -> Result<Option<HealthCheck>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let f = |n: &str| format!("{at}.{n}");
    let interval = duration_field(f("interval"), &raw.interval, Duration::from_secs(5))?;
    let timeout = duration_field(f("timeout"), &raw.timeout, Duration::from_secs(1))?;
    for (name, v) in [("interval", interval), ("timeout", timeout)] {
        if v.is_zero() {
            return Err(ConfigError::new(f(name), "must be greater than 0"));
        }
    }
    let unhealthy_threshold = raw.unhealthy_threshold.unwrap_or(3);
    let healthy_threshold = raw.healthy_threshold.unwrap_or(2);
    for (name, v) in [
        ("unhealthy_threshold", unhealthy_threshold),
        ("healthy_threshold", healthy_threshold),
    ] {
        if v == 0 {
            return Err(ConfigError::new(f(name), "must be at least 1"));
        }
    }
    let probe = match (&raw.http, &raw.tcp, &raw.grpc) {
        (Some(h), None, None) => {
            if !h.path.starts_with('/') || h.path.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    f("http.path"),
                    format!(
                        "must be an origin-form path starting with `/`, got {:?}",
                        h.path
                    ),
                ));
            }
            let host = match &h.host {
                Some(x) => host_like(f("http.host"), x)?,
                None => cluster.to_string(),
            };
            for (k, s) in h.expected_statuses.iter().enumerate() {
                if !(100..=599).contains(s) {
                    return Err(ConfigError::new(
                        f(&format!("http.expected_statuses[{k}]")),
                        format!("invalid status {s}"),
                    ));
                }
            }
            let expected = if h.expected_statuses.is_empty() {
                vec![200]
            } else {
                h.expected_statuses.clone()
            };
            Probe::Http {
                path: h.path.clone(),
                host,
                expected,
            }
        }
        (None, Some(_), None) => Probe::Tcp,
        (None, None, Some(g)) => Probe::Grpc {
            service: g.service_name.clone(),
            authority: match &g.authority {
                Some(a) => host_like(f("grpc.authority"), a)?,
                None => cluster.to_string(),
            },
        },
        _ => {
            return Err(ConfigError::new(
                at,
                "exactly one of http, tcp or grpc is required",
            ))
        }
    };
    Ok(Some(HealthCheck {
        interval,
        timeout,
        unhealthy_threshold,
        healthy_threshold,
        probe,
    }))
}

pub fn build_panic_threshold(at: &str, raw: Option<u32>) -> Result<u32, ConfigError> {
    match raw {
        None => Ok(DEFAULT_PANIC_THRESHOLD),
        Some(p) if p <= 100 => Ok(p),
        Some(p) => Err(ConfigError::new(at, format!("{p} is over 100 (percent)"))),
    }
}
