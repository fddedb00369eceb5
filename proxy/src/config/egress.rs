//! The `outbound_traffic_policy:` block (see [`crate::egress`]):
//!
//! ```yaml
//! outbound_traffic_policy:
//!   mode: registry_only          # allow_any (default) | registry_only
//!   listeners: [outbound]        # the listeners carrying the application's outbound traffic
//!   registry:
//!     - hosts: ["api.example.com", "*.googleapis.com"]   # Host / :authority, or TLS SNI
//!       ports: [443]                                     # optional: any port when absent
//!     - cidrs: ["10.0.0.0/8", "169.254.169.254"]         # a metadata endpoint needs its own address
//! ```

use std::sync::Arc;

use serde::Deserialize;

use super::scalar::Scalar;
use super::{ConfigError, Listener};
use crate::authz::matcher::{parse_port, Cidr};
use crate::egress::{EgressPolicy, Entry, HostPattern};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgress {
    pub mode: Option<String>,
    pub listeners: Option<Vec<String>>,
    #[serde(default)]
    pub registry: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    pub hosts: Option<Vec<String>>,
    pub cidrs: Option<Vec<String>>,
    pub ports: Option<Vec<Scalar>>,
}

const AT: &str = "outbound_traffic_policy";

fn list<T>(
    at: &str,
    field: &str,
    v: &Option<Vec<impl AsRef<str>>>,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Box<[T]>, ConfigError> {
    v.iter()
        .flatten()
        .enumerate()
        .map(|(k, s)| f(s.as_ref()).map_err(|m| ConfigError::new(format!("{at}.{field}[{k}]"), m)))
        .collect()
}

fn entry(i: usize, e: &RawEntry) -> Result<Entry, ConfigError> {
    let at = format!("{AT}.registry[{i}]");
    let entry = Entry {
        hosts: list(&at, "hosts", &e.hosts, HostPattern::parse)?,
        cidrs: list(&at, "cidrs", &e.cidrs, Cidr::parse)?,
        ports: list(
            &at,
            "ports",
            &e.ports
                .as_ref()
                .map(|p| p.iter().map(|s| s.0.clone()).collect()),
            parse_port,
        )?,
    };
    if entry.hosts.is_empty() && entry.cidrs.is_empty() {
        return Err(ConfigError::new(
            at,
            "an entry needs hosts or cidrs (ports alone name no destination)",
        ));
    }
    Ok(entry)
}

/// Compiles the block and attaches the policy to the listeners it names (nothing under
/// `allow_any`, which checks nothing).
pub(super) fn attach(
    raw: Option<&RawEgress>,
    listeners: &mut [Listener],
) -> Result<(), ConfigError> {
    let Some(raw) = raw else { return Ok(()) };
    let registry_only = match raw.mode.as_deref() {
        None | Some("allow_any") | Some("ALLOW_ANY") => false,
        Some("registry_only") | Some("REGISTRY_ONLY") => true,
        Some(o) => {
            return Err(ConfigError::new(
                format!("{AT}.mode"),
                format!("unknown mode {o:?} (expected allow_any or registry_only)"),
            ))
        }
    };
    let registry = raw
        .registry
        .iter()
        .enumerate()
        .map(|(i, e)| entry(i, e))
        .collect::<Result<Box<[_]>, _>>()?;
    let Some(names) = &raw.listeners else {
        return Err(ConfigError::new(
            format!("{AT}.listeners"),
            "name the listeners that carry outbound traffic (e.g. [outbound])",
        ));
    };
    if names.is_empty() {
        return Err(ConfigError::new(
            format!("{AT}.listeners"),
            "must name at least one listener",
        ));
    }
    let mut picked = Vec::with_capacity(names.len());
    for (j, n) in names.iter().enumerate() {
        let idx = listeners.iter().position(|l| &l.name == n).ok_or_else(|| {
            ConfigError::new(
                format!("{AT}.listeners[{j}]"),
                format!("unknown listener {n:?}"),
            )
        })?;
        picked.push(idx);
    }
    if !registry_only {
        return Ok(());
    }
    let policy = Arc::new(EgressPolicy { registry });
    for idx in picked {
        listeners[idx].egress = Some(policy.clone());
    }
    Ok(())
}
