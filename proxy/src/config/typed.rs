//! Stage two: raw YAML structs → typed, cross-checked [`Config`](super::Config).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::auto::{auto_only_field, build_auto};
use super::h2::build_h2;
use super::http::{build_http, build_pool, header_count_field, http_only_field, tcp_only_field};
use super::raw::{RawCluster, RawConfig, RawListener, RawNumber};
use super::scalar::{duration_field, parse_u32};
use super::{
    Cluster, ClusterKind, Config, ConfigError, Endpoint, L4Mode, LbPolicy, Listener, Protocol,
    UpstreamProtocol,
};

const DEFAULT_BACKLOG: u32 = 1024;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RESPONSE_HEADERS: usize = 100;

/// Splits `host:port` and resolves it (once, here, never on the data path).
fn parse_endpoint(path: String, s: &str) -> Result<Endpoint, ConfigError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| ConfigError::new(path.clone(), format!("expected host:port, got {s:?}")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ConfigError::new(path.clone(), format!("invalid port {port:?}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(ConfigError::new(path, format!("missing host in {s:?}")));
    }
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| ConfigError::new(path.clone(), format!("cannot resolve {host:?}: {e}")))?
        .next()
        .ok_or_else(|| ConfigError::new(path, format!("{host:?} resolved to no address")))?;
    Ok(Endpoint::new(addr, s))
}

fn build_cluster(i: usize, raw: &RawCluster, xds: bool) -> Result<Cluster, ConfigError> {
    let at = |f: &str| format!("clusters[{i}].{f}");
    if raw.name.is_empty() {
        return Err(ConfigError::new(at("name"), "must not be empty"));
    }
    let lb_policy = match raw.lb_policy.as_deref() {
        None | Some("round_robin") => LbPolicy::RoundRobin,
        Some("least_request") => LbPolicy::LeastRequest,
        Some(o) => {
            return Err(ConfigError::new(
                at("lb_policy"),
                format!("unknown policy {o:?} (expected round_robin or least_request)"),
            ))
        }
    };
    let kind = match raw.kind.as_deref() {
        // From xDS only (EDS): the endpoint list may be empty (every endpoint removed → 503 UH).
        Some("eds") if xds => ClusterKind::Static(
            raw.endpoints
                .iter()
                .enumerate()
                .map(|(j, e)| parse_endpoint(format!("clusters[{i}].endpoints[{j}]"), e))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None | Some("static") => {
            if raw.endpoints.is_empty() {
                return Err(ConfigError::new(
                    at("endpoints"),
                    "a static cluster needs at least one endpoint",
                ));
            }
            let eps = raw
                .endpoints
                .iter()
                .enumerate()
                .map(|(j, e)| parse_endpoint(format!("clusters[{i}].endpoints[{j}]"), e))
                .collect::<Result<Vec<_>, _>>()?;
            if raw.override_ip.is_some() {
                return Err(ConfigError::new(
                    at("override_ip"),
                    "only an original_dst cluster takes override_ip",
                ));
            }
            ClusterKind::Static(eps)
        }
        Some("original_dst") => {
            if !raw.endpoints.is_empty() {
                return Err(ConfigError::new(
                    at("endpoints"),
                    "an original_dst cluster takes no endpoints",
                ));
            }
            let override_ip = raw
                .override_ip
                .as_deref()
                .map(|ip| {
                    ip.parse::<IpAddr>().map_err(|_| {
                        ConfigError::new(at("override_ip"), format!("invalid IP address {ip:?}"))
                    })
                })
                .transpose()?;
            ClusterKind::OriginalDst { override_ip }
        }
        // Endpoints arrive from the resolver (`crate::discovery`), none until then.
        Some("strict_dns") | Some("logical_dns") => ClusterKind::Static(Vec::new()),
        Some(o) => {
            return Err(ConfigError::new(
                at("type"),
                format!(
                    "unknown cluster type {o:?} (expected static, original_dst, strict_dns or logical_dns)"
                ),
            ))
        }
    };
    let dns = match raw.kind.as_deref() {
        Some("strict_dns") => Some(Box::new(super::dns::build_dns(i, raw, false)?)),
        Some("logical_dns") => Some(Box::new(super::dns::build_dns(i, raw, true)?)),
        _ => {
            super::dns::reject_on_other(i, raw)?;
            None
        }
    };
    if matches!(kind, ClusterKind::OriginalDst { .. }) {
        let per_endpoint = [
            ("health_check", raw.health_check.is_some()),
            ("outlier_detection", raw.outlier_detection.is_some()),
        ];
        if let Some((f, _)) = per_endpoint.iter().find(|(_, set)| *set) {
            return Err(ConfigError::new(
                at(f),
                "an original_dst cluster has no endpoints to check or eject",
            ));
        }
    }
    Ok(Cluster {
        name: raw.name.clone(),
        kind,
        connect_timeout: duration_field(
            at("connect_timeout"),
            &raw.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        lb_policy,
        pool: build_pool(&format!("clusters[{i}]"), &raw.pool)?,
        max_response_headers: header_count_field(
            at("max_response_headers"),
            raw.max_response_headers,
            DEFAULT_MAX_RESPONSE_HEADERS,
        )?,
        protocol: match raw.protocol.as_deref() {
            None | Some("http1") => UpstreamProtocol::Http1,
            Some("http2") => UpstreamProtocol::Http2,
            Some("auto") if raw.tls.is_some() => UpstreamProtocol::Auto,
            Some("auto") => {
                return Err(ConfigError::new(
                    at("protocol"),
                    "auto needs a tls: block (ALPN chooses between h2 and http/1.1)",
                ))
            }
            Some(o) => {
                return Err(ConfigError::new(
                    at("protocol"),
                    format!("unknown protocol {o:?} (expected http1, http2 or auto)"),
                ))
            }
        },
        h2: build_h2(&at("http2"), raw.http2.as_ref())?,
        breakers: super::breaker::build_breakers(
            &at("circuit_breakers"),
            raw.circuit_breakers.as_ref(),
        )?,
        outlier: super::outlier::build_outlier(
            &at("outlier_detection"),
            raw.outlier_detection.as_ref(),
        )?,
        health: super::health::build_health(
            &at("health_check"),
            &raw.name,
            raw.health_check.as_ref(),
        )?
        .map(Box::new),
        panic_threshold: super::health::build_panic_threshold(
            &at("healthy_panic_threshold"),
            raw.healthy_panic_threshold,
        )?,
        retry_budget: super::budget::build_budget(&at("retry_budget"), raw.retry_budget.as_ref())?,
        tls: super::tls::cluster_tls(&at("tls"), raw)?.map(Box::new),
        dns,
    })
}

fn build_listener(
    i: usize,
    raw: &RawListener,
    clusters: &[Arc<Cluster>],
) -> Result<Listener, ConfigError> {
    let at = |f: &str| format!("listeners[{i}].{f}");
    if raw.name.is_empty() {
        return Err(ConfigError::new(at("name"), "must not be empty"));
    }
    let address: SocketAddr = raw.address.parse().map_err(|_| {
        ConfigError::new(
            at("address"),
            format!(
                "invalid socket address {:?} (expected ip:port)",
                raw.address
            ),
        )
    })?;
    let protocol = match raw.protocol.as_deref() {
        None | Some("tcp") => Protocol::Tcp,
        Some("http") => Protocol::Http,
        Some("http2") => Protocol::Http2,
        Some("auto") => Protocol::Auto,
        Some(o) => {
            return Err(ConfigError::new(
                at("protocol"),
                format!("unknown protocol {o:?} (expected tcp, http, http2 or auto)"),
            ))
        }
    };
    let misplaced = match protocol {
        Protocol::Tcp => http_only_field(raw).map(|f| (f, "http")),
        Protocol::Http | Protocol::Http2 => tcp_only_field(raw).map(|f| (f, "tcp")),
        // Takes both sets: routes for HTTP, `cluster` for opaque TCP.
        Protocol::Auto => None,
    };
    let misplaced = misplaced.or_else(|| match protocol {
        Protocol::Auto => None,
        _ => auto_only_field(raw).map(|f| (f, "auto")),
    });
    if let Some((f, only)) = misplaced {
        return Err(ConfigError::new(
            at(f),
            format!("only a protocol: {only} listener takes {f}"),
        ));
    }
    let l4_mode = match raw.l4_mode.as_deref() {
        None | Some("copy") => L4Mode::Copy,
        Some("splice") => L4Mode::Splice,
        Some(o) => {
            return Err(ConfigError::new(
                at("l4_mode"),
                format!("unknown mode {o:?} (expected copy or splice)"),
            ))
        }
    };
    let backlog = raw.backlog.unwrap_or(DEFAULT_BACKLOG);
    if backlog == 0 {
        return Err(ConfigError::new(at("backlog"), "must be at least 1"));
    }
    let idle = duration_field(at("idle_timeout"), &raw.idle_timeout, DEFAULT_IDLE_TIMEOUT)?;
    let (cluster, http) = match protocol {
        Protocol::Tcp => (Some(tcp_cluster(&at, raw, clusters)?), None),
        Protocol::Http | Protocol::Http2 => {
            let at = format!("listeners[{i}]");
            (None, Some(Arc::new(build_http(&at, raw, clusters)?)))
        }
        Protocol::Auto => {
            let cluster = tcp_cluster(&at, raw, clusters)?;
            let at = format!("listeners[{i}]");
            (
                Some(cluster),
                Some(Arc::new(build_http(&at, raw, clusters)?)),
            )
        }
    };
    let auto = match protocol {
        Protocol::Auto => Some(build_auto(&format!("listeners[{i}]"), raw)?),
        _ => None,
    };
    if raw.max_connections == Some(0) {
        return Err(ConfigError::new(
            at("max_connections"),
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    Ok(Listener {
        name: raw.name.clone(),
        address,
        protocol,
        backlog,
        max_connections: raw.max_connections,
        idle_timeout: (!idle.is_zero()).then_some(idle),
        l4_mode,
        cluster,
        original_dst: raw.original_dst,
        transparent: raw.transparent,
        http,
        auto,
        tls: super::tls::listener_tls(&at("tls"), raw)?,
        authz: None,
        access_log: super::access_log::build_access_logs(
            &format!("listeners[{i}]"),
            &raw.access_log,
        )?,
        egress: None,
    })
}

fn tcp_cluster(
    at: &dyn Fn(&str) -> String,
    raw: &RawListener,
    clusters: &[Arc<Cluster>],
) -> Result<usize, ConfigError> {
    let Some(name) = &raw.cluster else {
        return Err(ConfigError::new(
            at("cluster"),
            "a tcp listener needs a cluster",
        ));
    };
    let cluster = clusters
        .iter()
        .position(|c| &c.name == name)
        .ok_or_else(|| ConfigError::new(at("cluster"), format!("unknown cluster {name:?}")))?;
    if matches!(clusters[cluster].kind, ClusterKind::OriginalDst { .. })
        && !(raw.original_dst || raw.transparent)
    {
        return Err(ConfigError::new(
            at("cluster"),
            format!("cluster {name:?} is original_dst but this listener sets neither original_dst nor transparent"),
        ));
    }
    Ok(cluster)
}

fn check_unique<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        if !seen.insert(n) {
            return Err(ConfigError::new(
                format!("{what}[{i}].name"),
                format!("duplicate name {n:?}"),
            ));
        }
    }
    Ok(())
}

/// `xds`: the config comes from the xDS client (`crate::xds`), which may have no listener yet
/// and clusters of `type: eds` whose endpoint lists may be empty.
pub(super) fn build(raw: RawConfig, xds: bool) -> Result<Config, ConfigError> {
    check_unique("clusters", raw.clusters.iter().map(|c| c.name.as_str()))?;
    check_unique("listeners", raw.listeners.iter().map(|l| l.name.as_str()))?;
    let clusters = raw
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| build_cluster(i, c, xds).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut listeners = raw
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| build_listener(i, l, &clusters))
        .collect::<Result<Vec<_>, _>>()?;
    super::authz::attach(&raw, &mut listeners, &clusters)?;
    super::egress::attach(raw.outbound_traffic_policy.as_ref(), &mut listeners)?;
    if listeners.is_empty() && !xds {
        return Err(ConfigError::new(
            "listeners",
            "at least one listener is required",
        ));
    }
    let mut addrs = HashSet::new();
    for (i, l) in listeners.iter().enumerate() {
        if l.address.port() != 0 && !addrs.insert(l.address) {
            return Err(ConfigError::new(
                format!("listeners[{i}].address"),
                format!("address {} is used twice", l.address),
            ));
        }
    }
    let upstream_mark = match &raw.upstream_mark {
        None => None,
        Some(n) => {
            let v = match n {
                RawNumber::Int(i) => u32::try_from(*i).map_err(|_| i.to_string()),
                RawNumber::Str(s) => parse_u32(s),
            }
            .map_err(|m| {
                ConfigError::new("upstream_mark", format!("expected a 32-bit mark: {m}"))
            })?;
            if v == 0 {
                return Err(ConfigError::new(
                    "upstream_mark",
                    "0 means no mark; leave it out",
                ));
            }
            Some(v)
        }
    };
    Ok(Config {
        upstream_mark,
        drain_timeout: duration_field(
            "drain_timeout".into(),
            &raw.drain_timeout,
            DEFAULT_DRAIN_TIMEOUT,
        )?,
        metrics: super::metrics::build_metrics(&raw.metrics, &listeners)?,
        listeners,
        clusters,
        admin: super::admin::build_admin(&raw.admin)?,
        overload: super::overload::build_overload(&raw.overload)?,
        tracing: super::trace_export::build_tracing(&raw.tracing)?.map(std::sync::Arc::new),
        trace_propagation: super::trace_export::build_propagation(&raw.tracing)?,
    })
}
