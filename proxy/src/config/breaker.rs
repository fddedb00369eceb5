//! A cluster's `circuit_breakers:` block (Envoy's `circuit_breakers.thresholds`, one priority).

use serde::Deserialize;

use super::error::ConfigError;

/// Raw `circuit_breakers:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreakers {
    /// Process-wide concurrent requests to the cluster (divided among shards).
    pub max_requests: Option<u32>,
    /// Process-wide concurrent retries to the cluster (divided among shards).
    pub max_retries: Option<u32>,
    /// Process-wide open upstream connections to the cluster (divided among shards).
    pub max_connections: Option<u32>,
    /// Process-wide requests waiting for a connection (divided among shards).
    pub max_pending_requests: Option<u32>,
}

/// Typed breaker thresholds (process-wide; each shard enforces its share).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breakers {
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
}

pub fn build_breakers(at: &str, raw: Option<&RawBreakers>) -> Result<Breakers, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Breakers::default());
    };
    for (field, v) in [
        ("max_requests", raw.max_requests),
        ("max_retries", raw.max_retries),
        ("max_connections", raw.max_connections),
        ("max_pending_requests", raw.max_pending_requests),
    ] {
        if v == Some(0) {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                "must be at least 1",
            ));
        }
    }
    Ok(Breakers {
        max_requests: raw.max_requests,
        max_retries: raw.max_retries,
        max_connections: raw.max_connections,
        max_pending_requests: raw.max_pending_requests,
    })
}
