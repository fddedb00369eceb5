//! A cluster's `retry_budget:` block (Linkerd's retry budget: `retryRatio`,
//! `minRetriesPerSecond`, `ttl`), raw and typed; see `crate::cluster::budget`.

use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;
use super::scalar::{duration_field, Scalar};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryBudget {
    /// Retries allowed as a percentage of requests (default 20).
    pub retry_percent: Option<u32>,
    /// Retries allowed per second whatever the traffic, process-wide (default 10).
    pub min_retries_per_second: Option<u32>,
    /// The window requests and retries are counted over (default 10s, whole seconds 1s–60s).
    pub ttl: Option<Scalar>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudgetSettings {
    pub retry_percent: u32,
    pub min_retries_per_second: u32,
    pub ttl_secs: u32,
}

pub fn build_budget(
    at: &str,
    raw: Option<&RawRetryBudget>,
) -> Result<Option<RetryBudgetSettings>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let ttl = duration_field(format!("{at}.ttl"), &raw.ttl, Duration::from_secs(10))?;
    let max = crate::cluster::budget::MAX_TTL_SECS;
    if ttl.subsec_nanos() != 0 || ttl.as_secs() == 0 || ttl.as_secs() > u64::from(max) {
        return Err(ConfigError::new(
            format!("{at}.ttl"),
            format!("must be whole seconds from 1s to {max}s"),
        ));
    }
    let retry_percent = raw.retry_percent.unwrap_or(20);
    if retry_percent > 1000 {
        return Err(ConfigError::new(
            format!("{at}.retry_percent"),
            format!("{retry_percent} is over 1000 (ten retries per request)"),
        ));
    }
    Ok(Some(RetryBudgetSettings {
        retry_percent,
        min_retries_per_second: raw.min_retries_per_second.unwrap_or(10),
        ttl_secs: ttl.as_secs() as u32,
    }))
}
