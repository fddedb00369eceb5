//! A cluster's DNS discovery settings (`type: strict_dns | logical_dns`, Envoy's cluster types
//! of the same names): the names to resolve, how often, and which nameservers to ask. The
//! resolving itself is `crate::discovery`'s, on the control side.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::raw::RawCluster;
use super::scalar::duration_field;

/// Envoy's default `dns_refresh_rate`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// How a DNS cluster finds its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscovery {
    /// `host:port` entries as written; every address of every name is an endpoint
    /// (`strict_dns`), or only the first address of the one name (`logical_dns`).
    pub names: Vec<(String, u16)>,
    pub logical: bool,
    /// Re-resolve this often (`dns_refresh_rate`, default 5s) …
    pub refresh: Duration,
    /// … or, with `respect_dns_ttl: true`, after the records' smallest TTL (at least 1s).
    pub respect_ttl: bool,
    /// `dns_resolvers` (`ip:port`, port 53 if omitted); empty: the nameservers of
    /// `/etc/resolv.conf`.
    pub resolvers: Vec<SocketAddr>,
}

fn resolver(path: String, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| ConfigError::new(path, format!("expected ip or ip:port, got {s:?}")))
}

pub fn build_dns(i: usize, raw: &RawCluster, logical: bool) -> Result<DnsDiscovery, ConfigError> {
    let at = |f: &str| format!("clusters[{i}].{f}");
    if raw.endpoints.is_empty() {
        return Err(ConfigError::new(
            at("endpoints"),
            "a DNS cluster needs at least one host:port",
        ));
    }
    if logical && raw.endpoints.len() > 1 {
        return Err(ConfigError::new(
            at("endpoints"),
            "a logical_dns cluster takes exactly one host:port",
        ));
    }
    if raw.health_check.is_some() {
        return Err(ConfigError::new(
            at("health_check"),
            "active health checks are not supported on DNS clusters yet",
        ));
    }
    let mut names = Vec::with_capacity(raw.endpoints.len());
    for (j, e) in raw.endpoints.iter().enumerate() {
        let path = at(&format!("endpoints[{j}]"));
        let (host, port) = e.rsplit_once(':').ok_or_else(|| {
            ConfigError::new(path.clone(), format!("expected host:port, got {e:?}"))
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| ConfigError::new(path.clone(), format!("invalid port {port:?}")))?;
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !ok {
            return Err(ConfigError::new(
                path,
                format!("invalid host name {host:?}"),
            ));
        }
        names.push((host.trim_end_matches('.').to_ascii_lowercase(), port));
    }
    let refresh = duration_field(
        at("dns_refresh_rate"),
        &raw.dns_refresh_rate,
        DEFAULT_REFRESH,
    )?;
    if refresh < Duration::from_millis(10) {
        return Err(ConfigError::new(
            at("dns_refresh_rate"),
            "must be at least 10ms",
        ));
    }
    let resolvers = raw
        .dns_resolvers
        .iter()
        .enumerate()
        .map(|(j, r)| resolver(at(&format!("dns_resolvers[{j}]")), r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DnsDiscovery {
        names,
        logical,
        refresh,
        respect_ttl: raw.respect_dns_ttl.unwrap_or(false),
        resolvers,
    })
}

/// Settings only a DNS cluster takes: an error naming the first one set on another type.
pub fn reject_on_other(i: usize, raw: &RawCluster) -> Result<(), ConfigError> {
    let set = [
        ("dns_refresh_rate", raw.dns_refresh_rate.is_some()),
        ("respect_dns_ttl", raw.respect_dns_ttl.is_some()),
        ("dns_resolvers", !raw.dns_resolvers.is_empty()),
    ];
    match set.iter().find(|(_, s)| *s) {
        Some((f, _)) => Err(ConfigError::new(
            format!("clusters[{i}].{f}"),
            "only a strict_dns or logical_dns cluster takes this",
        )),
        None => Ok(()),
    }
}
