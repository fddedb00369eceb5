//! The `admin:` block: where the control-side admin API (Envoy's paths) and the Istio-agent
//! health/metrics port listen. Absent block → no admin server (tests and embedded users that
//! do not want fixed ports); present → `address` defaults to `127.0.0.1:15000` and
//! `health_address` to `127.0.0.1:15020` (`health_address: off` disables that one).

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:15000";
pub const DEFAULT_HEALTH_ADDRESS: &str = "127.0.0.1:15020";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: Option<String>,
    pub health_address: Option<String>,
}

/// Typed admin settings; `None` addresses are not served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminSettings {
    pub address: Option<SocketAddr>,
    pub health_address: Option<SocketAddr>,
}

fn addr(field: &str, v: Option<&str>, default: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match v.unwrap_or(default) {
        "off" => Ok(None),
        s => s.parse().map(Some).map_err(|_| {
            ConfigError::new(
                format!("admin.{field}"),
                format!("expected ip:port or off, got {s:?}"),
            )
        }),
    }
}

pub fn build_admin(raw: &Option<RawAdmin>) -> Result<AdminSettings, ConfigError> {
    let Some(raw) = raw else {
        return Ok(AdminSettings::default());
    };
    Ok(AdminSettings {
        address: addr("address", raw.address.as_deref(), DEFAULT_ADMIN_ADDRESS)?,
        health_address: addr(
            "health_address",
            raw.health_address.as_deref(),
            DEFAULT_HEALTH_ADDRESS,
        )?,
    })
}
