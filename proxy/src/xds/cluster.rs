//! `Cluster` and `ClusterLoadAssignment` → the config's cluster shape.
//!
//! Mapped: `name`, `type` STATIC / EDS / ORIGINAL_DST (`eds_cluster_config.service_name`),
//! `connect_timeout`, `lb_policy` ROUND_ROBIN / LEAST_REQUEST, `load_assignment` (STATIC),
//! `circuit_breakers.thresholds[DEFAULT]` `max_requests` / `max_retries` (`max_connections`,
//! `max_pending_requests` only when unset or ≥ 2³¹, i.e. unlimited), `outlier_detection`
//! (`consecutive_5xx`, `consecutive_gateway_failure`, `interval`, `base_ejection_time`,
//! `max_ejection_time`, `max_ejection_percent`), `common_lb_config.healthy_panic_threshold`,
//! HTTP/2 upstreams (`http2_protocol_options` or `typed_extension_protocol_options`
//! `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` with `explicit_http_config`),
//! `transport_socket` TLS with SDS secrets (see [`super::secret`]). Ignored because they only
//! label: `alt_stat_name`, `metadata`. Anything else set → NACK naming it.
//!
//! Endpoints: `lb_endpoints[].endpoint.address.socket_address` (IP and port value) of
//! priority 0; `health_status` UNHEALTHY / DRAINING / TIMEOUT leave the endpoint out;
//! unequal `load_balancing_weight`s and priorities > 0 are NACKed (no weighted LB yet).

// Deprecated fields are still what many control planes send; they are mapped, not refused.
#![allow(deprecated)]

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address};
use envoy_types::pb::envoy::config::endpoint::v3::{lb_endpoint, ClusterLoadAssignment};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use prost::Message;
use serde_json::{json, Map, Value};

use super::check::{done, duration, nack, Unsupported};
use super::secret::TlsUse;

/// A translated cluster: its config shape (JSON text; an EDS cluster's without `endpoints`,
/// which come from its assignment), plus what it waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct XCluster {
    pub name: String,
    pub raw: Box<str>,
    /// The `ClusterLoadAssignment` name an EDS cluster needs (its endpoints come from there).
    pub eds: Option<String>,
    /// SDS secret names its TLS needs.
    pub secrets: Vec<String>,
}

const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub fn translate(mut c: Cluster, tls: &TlsUse<'_>) -> Result<XCluster, Unsupported> {
    let name = std::mem::take(&mut c.name);
    let who = format!("Cluster {name:?}");
    let mut raw = Map::new();
    raw.insert("name".into(), json!(name));
    c.alt_stat_name.clear();
    c.metadata = None;
    let mut eds = None;
    match c.cluster_discovery_type.take() {
        None | Some(cluster::ClusterDiscoveryType::Type(0)) => {
            let cla = c.load_assignment.take().unwrap_or_default();
            let eps = endpoints(&who, "load_assignment.", cla)?;
            if eps.is_empty() {
                return Err(nack(
                    &who,
                    "load_assignment",
                    "a STATIC cluster needs endpoints",
                ));
            }
            raw.insert("endpoints".into(), json!(eps));
        }
        Some(cluster::ClusterDiscoveryType::Type(3)) => {
            let cfg = c.eds_cluster_config.take().unwrap_or_default();
            let service = if cfg.service_name.is_empty() {
                name.clone()
            } else {
                cfg.service_name
            };
            raw.insert("type".into(), json!("eds"));
            eds = Some(service);
        }
        Some(cluster::ClusterDiscoveryType::Type(4)) => {
            raw.insert("type".into(), json!("original_dst"));
            c.lb_policy = match c.lb_policy {
                // CLUSTER_PROVIDED is what ORIGINAL_DST clusters say.
                6 => 0,
                o => o,
            };
        }
        Some(other) => {
            return Err(nack(
                &who,
                "type",
                format!("{other:?}: only STATIC, EDS and ORIGINAL_DST are supported"),
            ))
        }
    }
    if let Some(t) = c.connect_timeout.take() {
        raw.insert("connect_timeout".into(), json!(duration(&t)));
    }
    match std::mem::take(&mut c.lb_policy) {
        0 => {}
        1 => {
            raw.insert("lb_policy".into(), json!("least_request"));
        }
        o => {
            return Err(nack(
                &who,
                "lb_policy",
                format!("{o}: only ROUND_ROBIN and LEAST_REQUEST"),
            ))
        }
    }
    if let Some(cb) = c.circuit_breakers.take() {
        raw.insert("circuit_breakers".into(), breakers(&who, cb)?);
    }
    if let Some(od) = c.outlier_detection.take() {
        raw.insert("outlier_detection".into(), outlier(&who, od)?);
    }
    if let Some(mut lb) = c.common_lb_config.take() {
        if let Some(p) = lb.healthy_panic_threshold.take() {
            raw.insert(
                "healthy_panic_threshold".into(),
                json!(p.value.round() as u32),
            );
        }
        done(&who, "common_lb_config.", &lb)?;
    }
    if c.http2_protocol_options.take().is_some() {
        raw.insert("protocol".into(), json!("http2"));
    }
    for (k, any) in std::mem::take(&mut c.typed_extension_protocol_options) {
        if k != HTTP_OPTIONS {
            return Err(nack(
                &who,
                format!("typed_extension_protocol_options[{k}]"),
                "not supported",
            ));
        }
        let mut o = HttpProtocolOptions::decode(any.value.as_slice()).map_err(|e| {
            nack(
                &who,
                format!("typed_extension_protocol_options[{k}]"),
                e.to_string(),
            )
        })?;
        o.common_http_protocol_options = None;
        if let Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(e)) =
            o.upstream_protocol_options.take()
        {
            use http_protocol_options::explicit_http_config::ProtocolConfig as P;
            match e.protocol_config {
                Some(P::Http2ProtocolOptions(_)) => {
                    raw.insert("protocol".into(), json!("http2"));
                }
                Some(P::HttpProtocolOptions(_)) | None => {}
                Some(P::Http3ProtocolOptions(_)) => {
                    return Err(nack(
                        &who,
                        format!("typed_extension_protocol_options[{k}].explicit_http_config"),
                        "HTTP/3 is not supported",
                    ));
                }
            }
        }
        done(&who, &format!("typed_extension_protocol_options[{k}]."), &o)?;
    }
    let mut secrets = Vec::new();
    if let Some(ts) = c.transport_socket.take() {
        let (block, names) = tls.upstream(&who, ts)?;
        raw.insert("tls".into(), block);
        secrets = names;
    }
    done(&who, "", &c)?;
    Ok(XCluster {
        name,
        raw: Value::Object(raw).to_string().into_boxed_str(),
        eds,
        secrets,
    })
}

fn breakers(
    who: &str,
    mut cb: envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers,
) -> Result<Value, Unsupported> {
    let mut out = Map::new();
    for (i, mut t) in std::mem::take(&mut cb.thresholds).into_iter().enumerate() {
        let at = format!("circuit_breakers.thresholds[{i}].");
        if t.priority != 0 {
            // Only the DEFAULT priority exists here; HIGH thresholds govern nothing.
            continue;
        }
        if let Some(v) = t.max_requests.take() {
            out.insert("max_requests".into(), json!(v.value));
        }
        if let Some(v) = t.max_retries.take() {
            out.insert("max_retries".into(), json!(v.value));
        }
        for (f, v) in [
            ("max_connections", t.max_connections.take()),
            ("max_pending_requests", t.max_pending_requests.take()),
        ] {
            if v.is_some_and(|v| v.value < 1 << 31) {
                return Err(nack(
                    who,
                    format!("{at}{f}"),
                    "only unlimited (unset or ≥ 2^31) is supported",
                ));
            }
        }
        t.track_remaining = false;
        done(who, &at, &t)?;
    }
    done(who, "circuit_breakers.", &cb)?;
    Ok(Value::Object(out))
}

fn outlier(
    who: &str,
    mut od: envoy_types::pb::envoy::config::cluster::v3::OutlierDetection,
) -> Result<Value, Unsupported> {
    let mut out = Map::new();
    if let Some(v) = od.consecutive_5xx.take() {
        out.insert("consecutive_5xx".into(), json!(v.value));
    }
    if let Some(v) = od.consecutive_gateway_failure.take() {
        out.insert("consecutive_gateway_failure".into(), json!(v.value));
    }
    // Envoy's enforcing_* percentages: 100 is what we do; other values are NACKed below.
    if od
        .enforcing_consecutive_5xx
        .as_ref()
        .is_some_and(|v| v.value == 100)
    {
        od.enforcing_consecutive_5xx = None;
    }
    if od
        .enforcing_consecutive_gateway_failure
        .as_ref()
        .is_some_and(|v| v.value == 100)
    {
        od.enforcing_consecutive_gateway_failure = None;
    }
    for (f, v) in [
        ("interval", od.interval.take()),
        ("base_ejection_time", od.base_ejection_time.take()),
        ("max_ejection_time", od.max_ejection_time.take()),
    ] {
        if let Some(d) = v {
            out.insert(f.into(), json!(duration(&d)));
        }
    }
    if let Some(v) = od.max_ejection_percent.take() {
        out.insert("max_ejection_percent".into(), json!(v.value));
    }
    done(who, "outlier_detection.", &od)?;
    Ok(Value::Object(out))
}

/// `host:port` strings of the usable endpoints.
pub fn endpoints(
    who: &str,
    at: &str,
    mut cla: ClusterLoadAssignment,
) -> Result<Vec<String>, Unsupported> {
    let mut out = Vec::new();
    let mut weight = None;
    cla.cluster_name.clear();
    for (i, mut loc) in std::mem::take(&mut cla.endpoints).into_iter().enumerate() {
        let at = format!("{at}endpoints[{i}].");
        if loc.priority != 0 {
            return Err(nack(
                who,
                format!("{at}priority"),
                "only priority 0 is supported",
            ));
        }
        loc.locality = None;
        loc.metadata = None;
        loc.load_balancing_weight = None;
        for (j, mut lb) in std::mem::take(&mut loc.lb_endpoints)
            .into_iter()
            .enumerate()
        {
            let at = format!("{at}lb_endpoints[{j}].");
            let w = lb.load_balancing_weight.take().map_or(1, |w| w.value);
            if *weight.get_or_insert(w) != w {
                return Err(nack(
                    who,
                    format!("{at}load_balancing_weight"),
                    "unequal endpoint weights are not supported",
                ));
            }
            lb.metadata = None;
            // UNKNOWN 0, HEALTHY 1, UNHEALTHY 2, DRAINING 3, TIMEOUT 4, DEGRADED 5.
            let usable = !matches!(std::mem::take(&mut lb.health_status), 2..=4);
            let Some(lb_endpoint::HostIdentifier::Endpoint(mut ep)) = lb.host_identifier.take()
            else {
                return Err(nack(
                    who,
                    format!("{at}endpoint"),
                    "an endpoint address is required",
                ));
            };
            let addr = socket(who, &format!("{at}endpoint.address."), ep.address.take())?;
            ep.hostname.clear();
            ep.health_check_config = None;
            done(who, &format!("{at}endpoint."), &ep)?;
            done(who, &at, &lb)?;
            if usable {
                out.push(addr);
            }
        }
        done(who, &at, &loc)?;
    }
    cla.policy = None;
    done(who, at, &cla)?;
    Ok(out)
}

/// `socket_address` with an IP and a port value → `ip:port` (`[v6]:port`).
pub fn socket(who: &str, at: &str, a: Option<Address>) -> Result<String, Unsupported> {
    let Some(address::Address::SocketAddress(mut sa)) = a.and_then(|a| a.address) else {
        return Err(nack(
            who,
            format!("{at}socket_address"),
            "a socket address is required",
        ));
    };
    let port = match sa.port_specifier.take() {
        Some(socket_address::PortSpecifier::PortValue(p)) if p <= 65535 => p,
        _ => {
            return Err(nack(
                who,
                format!("{at}socket_address.port_value"),
                "a port value is required",
            ))
        }
    };
    let ip: std::net::IpAddr = sa.address.parse().map_err(|_| {
        nack(
            who,
            format!("{at}socket_address.address"),
            format!("{:?} is not an IP address", sa.address),
        )
    })?;
    sa.address.clear();
    done(who, &format!("{at}socket_address."), &sa)?;
    Ok(std::net::SocketAddr::new(ip, port as u16).to_string())
}
