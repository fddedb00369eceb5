//! A route's `fault:` block (Envoy's `envoy.extensions.filters.http.fault.v3.HTTPFault`), raw and
//! typed into [`crate::route::fault::Fault`]; the module doc there has an example.

use serde::Deserialize;

use super::error::ConfigError;
use super::scalar::{parse_duration, Scalar};
use crate::route::fault::{Abort, Delay, Fault, MILLION};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub delay: Option<RawDelay>,
    pub abort: Option<RawAbort>,
    /// Honour `x-envoy-fault-*` request headers (default false).
    pub header_control: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelay {
    pub fixed_delay: Scalar,
    /// Share of requests delayed, in percent (`0`–`100`, fractions allowed).
    pub percentage: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAbort {
    /// Status for HTTP requests (default 503 when only `grpc_status` is given).
    pub http_status: Option<u16>,
    /// gRPC status for gRPC requests (default: mapped from `http_status`).
    pub grpc_status: Option<u32>,
    pub percentage: f64,
}

fn per_million(path: String, pct: f64) -> Result<u32, ConfigError> {
    if !(0.0..=100.0).contains(&pct) {
        return Err(ConfigError::new(
            path,
            format!("{pct} is not a percentage (0 to 100)"),
        ));
    }
    Ok((pct * f64::from(MILLION / 100)).round() as u32)
}

pub fn build_fault(at: &str, raw: &RawFault) -> Result<Fault, ConfigError> {
    if raw.delay.is_none() && raw.abort.is_none() {
        return Err(ConfigError::new(at, "needs a delay, an abort or both"));
    }
    let delay = raw
        .delay
        .as_ref()
        .map(|d| {
            let path = format!("{at}.delay.fixed_delay");
            let fixed = parse_duration(&d.fixed_delay).map_err(|m| ConfigError::new(path, m))?;
            Ok::<_, ConfigError>(Delay {
                fixed,
                per_million: per_million(format!("{at}.delay.percentage"), d.percentage)?,
            })
        })
        .transpose()?;
    let abort = raw
        .abort
        .as_ref()
        .map(|a| {
            if a.http_status.is_none() && a.grpc_status.is_none() {
                return Err(ConfigError::new(
                    format!("{at}.abort"),
                    "needs http_status, grpc_status or both",
                ));
            }
            let http_status = a.http_status.unwrap_or(503);
            if !(200..=599).contains(&http_status) {
                return Err(ConfigError::new(
                    format!("{at}.abort.http_status"),
                    format!("invalid status {http_status} (expected 200-599)"),
                ));
            }
            if let Some(g) = a.grpc_status.filter(|g| *g > 16) {
                return Err(ConfigError::new(
                    format!("{at}.abort.grpc_status"),
                    format!("invalid gRPC status {g} (expected 0-16)"),
                ));
            }
            Ok(Abort {
                http_status,
                grpc_status: a.grpc_status,
                per_million: per_million(format!("{at}.abort.percentage"), a.percentage)?,
            })
        })
        .transpose()?;
    Ok(Fault {
        delay,
        abort,
        header_control: raw.header_control.unwrap_or(false),
    })
}
