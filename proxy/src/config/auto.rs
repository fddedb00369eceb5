//! Settings of a `protocol: auto` listener: how long protocol detection waits for the client's
//! first bytes (`sniff_timeout`, default 100 ms, like Istio's protocol sniffing) and which
//! original-destination ports are opaque without sniffing (`opaque_ports`, default the
//! server-first protocols SMTP 25 and MySQL 3306, where the client waits for the server to
//! speak first). See [`crate::detect`].

use std::time::Duration;

use super::raw::RawListener;
use super::scalar::duration_field;
use super::ConfigError;

/// Detection defaults.
pub const DEFAULT_SNIFF_TIMEOUT: Duration = Duration::from_millis(100);
pub const DEFAULT_OPAQUE_PORTS: &[u16] = &[25, 3306];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSettings {
    /// No byte from the client within this long: the connection is opaque TCP.
    pub sniff_timeout: Duration,
    /// Original-destination ports forwarded as opaque TCP at once.
    pub opaque_ports: Vec<u16>,
}

/// The `auto`-only fields set on a listener of another protocol, if any.
pub(super) fn auto_only_field(raw: &RawListener) -> Option<&'static str> {
    [
        ("sniff_timeout", raw.sniff_timeout.is_some()),
        ("opaque_ports", raw.opaque_ports.is_some()),
    ]
    .into_iter()
    .find_map(|(f, set)| set.then_some(f))
}

pub(super) fn build_auto(at: &str, raw: &RawListener) -> Result<AutoSettings, ConfigError> {
    let sniff_timeout = duration_field(
        format!("{at}.sniff_timeout"),
        &raw.sniff_timeout,
        DEFAULT_SNIFF_TIMEOUT,
    )?;
    if sniff_timeout.is_zero() {
        return Err(ConfigError::new(
            format!("{at}.sniff_timeout"),
            "must be above 0",
        ));
    }
    let opaque_ports = raw
        .opaque_ports
        .clone()
        .unwrap_or_else(|| DEFAULT_OPAQUE_PORTS.to_vec());
    if let Some(k) = opaque_ports.iter().position(|p| *p == 0) {
        return Err(ConfigError::new(
            format!("{at}.opaque_ports[{k}]"),
            "port 0 is not a port",
        ));
    }
    Ok(AutoSettings {
        sniff_timeout,
        opaque_ports,
    })
}
