//! Stage one of config loading: the YAML shape, exactly as written, with `deny_unknown_fields` so
//! a misspelt key is an error rather than silently ignored. Nothing here is validated beyond
//! types; `typed.rs` turns this into the checked [`super::Config`].

use serde::Deserialize;

pub use super::h2::RawH2;
pub use super::raw_http::{RawPool, RawVirtualHost};
pub use super::scalar::Scalar;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How long open connections may run after SIGTERM before they are closed (default 30s).
    pub drain_timeout: Option<Scalar>,
    /// `SO_MARK` on every upstream socket (a number, or a `0x` string), so the interception
    /// rules never capture the proxy's own connections.
    pub upstream_mark: Option<RawNumber>,
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub clusters: Vec<RawCluster>,
    pub admin: Option<super::admin::RawAdmin>,
    /// Istio-shaped authorization policies and JWT rules (see `config::authz`).
    #[serde(default)]
    pub authorization_policies: Vec<super::authz::RawAuthzPolicy>,
    #[serde(default)]
    pub request_authentication: Vec<super::authz::RawRequestAuthn>,
    pub metrics: Option<super::metrics::RawMetrics>,
    /// Egress control (see `config::egress`).
    pub outbound_traffic_policy: Option<super::egress::RawEgress>,
    /// Overload manager: connection/request caps and RSS watermarks.
    pub overload: Option<super::overload::RawOverload>,
    /// Span export over OTLP/HTTP (see `config::trace_export`).
    pub tracing: Option<super::trace_export::RawTracing>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: String,
    pub address: String,
    /// `tcp` (default), `http`, `http2` or `auto`.
    #[serde(default)]
    pub protocol: Option<String>,
    pub backlog: Option<u32>,
    /// Open connections allowed on this listener, for the whole process (split across shards).
    pub max_connections: Option<u32>,
    pub idle_timeout: Option<Scalar>,
    /// `tcp` only.
    pub l4_mode: Option<String>,
    /// `tcp` only (required there): where connections go.
    pub cluster: Option<String>,
    #[serde(default)]
    pub original_dst: bool,
    #[serde(default)]
    pub transparent: bool,
    /// `http` only (required there).
    pub virtual_hosts: Option<Vec<RawVirtualHost>>,
    /// `http` only; see [`super::HttpSettings`] for meanings and defaults.
    pub request_headers_timeout: Option<Scalar>,
    pub first_byte_timeout: Option<Scalar>,
    pub max_request_headers_size: Option<Scalar>,
    pub max_request_headers: Option<usize>,
    pub max_request_line_size: Option<Scalar>,
    pub retry_buffer_size: Option<Scalar>,
    /// `http` only; path normalisation before routing (see [`crate::route::normalize`]).
    pub normalize_path: Option<bool>,
    pub merge_slashes: Option<bool>,
    /// `keep_unchanged`, `reject_request` (default) or `unescape_and_forward`.
    pub path_with_escaped_slashes: Option<String>,
    /// `http`/`http2` only: downstream HTTP/2 limits.
    pub http2: Option<RawH2>,
    /// `auto` only: see [`super::AutoSettings`].
    pub sniff_timeout: Option<Scalar>,
    pub opaque_ports: Option<Vec<u16>>,
    /// TLS termination (see [`crate::tls::config`]): `http`, `http2`, `tcp` and `auto`.
    pub tls: Option<crate::tls::config::RawListenerTls>,
    /// Access-log sinks (see `config::access_log`): every protocol.
    #[serde(default)]
    pub access_log: Vec<super::access_log::RawAccessLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: String,
    /// `static` (default, with `endpoints`) or `original_dst` (forward to the pre-NAT address).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub connect_timeout: Option<Scalar>,
    /// `original_dst` only: connect to this IP and the original port (inbound delivery to the
    /// local application, e.g. `127.0.0.1`).
    pub override_ip: Option<String>,
    pub lb_policy: Option<String>,
    /// Upstream connection pool (used by `http` listeners' routes).
    pub pool: Option<RawPool>,
    /// Most headers in an upstream HTTP response (default 100, at most 128).
    pub max_response_headers: Option<usize>,
    /// `http1` (default) or `http2` (h2c prior knowledge).
    pub protocol: Option<String>,
    /// Upstream HTTP/2 connection settings.
    pub http2: Option<RawH2>,
    /// Circuit-breaker thresholds (process-wide, divided among shards).
    pub circuit_breakers: Option<super::breaker::RawBreakers>,
    /// Passive health checking (Envoy's `outlier_detection`).
    pub outlier_detection: Option<super::outlier::RawOutlier>,
    /// Active health checking (Envoy's `health_checks`, one per cluster).
    pub health_check: Option<super::health::RawHealthCheck>,
    /// Percent of endpoints that must be healthy, else balance over all (default 50; 0: never).
    pub healthy_panic_threshold: Option<u32>,
    /// Linkerd-style retry budget for requests to this cluster.
    pub retry_budget: Option<super::budget::RawRetryBudget>,
    /// TLS / mTLS to the endpoints (see [`crate::tls::config`]).
    pub tls: Option<crate::tls::config::RawClusterTls>,
    /// DNS clusters: re-resolve this often (default 5s).
    pub dns_refresh_rate: Option<Scalar>,
    /// DNS clusters: re-resolve after the records' TTL instead.
    pub respect_dns_ttl: Option<bool>,
    /// DNS clusters: nameservers (`ip:port`), default those of /etc/resolv.conf.
    #[serde(default)]
    pub dns_resolvers: Vec<String>,
}

/// A YAML integer, or a string such as `"0x539"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawNumber {
    Int(u64),
    Str(String),
}
