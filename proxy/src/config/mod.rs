//! Configuration: YAML in, an immutable typed [`Config`] out.
//!
//! Loading is two-stage (DESIGN.md §5): [`raw`] deserialises with `deny_unknown_fields`, then
//! [`typed`] converts and cross-checks (durations, addresses, names, references). Host names in
//! endpoints are resolved here, at load time, never on the data path. Every error names its field
//! path and line ([`ConfigError`]).

mod access_log;
mod admin;
mod authz;
mod auto;
mod breaker;
mod budget;
pub mod dns;
mod egress;
mod error;
mod fault;
mod h2;
mod health;
mod http;
mod lines;
mod metrics;
mod outlier;
pub mod overload;
mod raw;
mod raw_http;
mod routes;
mod scalar;
mod tls;
mod trace_export;
mod typed;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use access_log::{AccessLogConf, LogFilter};
pub use admin::AdminSettings;
pub use auto::AutoSettings;
pub use breaker::Breakers;
pub use budget::RetryBudgetSettings;
pub use error::ConfigError;
pub use h2::H2Settings;
pub use health::{HealthCheck, Probe};
pub use metrics::MetricsSettings;
pub use outlier::{OutlierPolicy, SuccessRate};
pub use scalar::{parse_duration, parse_size, parse_u32};
pub use trace_export::TracingConf;

/// The most headers a header-count limit (`max_request_headers`, `max_response_headers`) may
/// be set to: the parser holds that many header slots.
pub const MAX_HEADER_COUNT: usize = 128;

/// The embedded default config, used when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yaml");

/// A validated configuration snapshot. Shared read-only between shards as `Arc<Config>`.
#[derive(Debug, Clone)]
pub struct Config {
    pub drain_timeout: Duration,
    /// `SO_MARK` for upstream sockets (see `shardcar intercept --mark`).
    pub upstream_mark: Option<u32>,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Arc<Cluster>>,
    /// The control-side admin API (the `admin:` block); off when the block is absent.
    pub admin: AdminSettings,
    /// Where Istio's workload labels come from (the `metrics:` block).
    pub metrics: MetricsSettings,
    /// The overload manager (the `overload:` block; off without it).
    pub overload: overload::Overload,
    /// Span export (the `tracing:` block; no spans without it).
    pub tracing: Option<Arc<TracingConf>>,
    /// Trace headers continued or started on every forwarded request (`tracing.propagation`,
    /// default true); off, they pass through untouched.
    pub trace_propagation: bool,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// L4 forwarding to the listener's `cluster`.
    Tcp,
    /// HTTP/1.1 L7 proxying through the listener's route table (`Listener::http`); a client
    /// that opens with the HTTP/2 preface (h2c with prior knowledge) is served as HTTP/2.
    Http,
    /// HTTP/2 only (h2c with prior knowledge), same route table and settings.
    Http2,
    /// Detected per connection ([`crate::detect::auto`]): HTTP/1.x and the HTTP/2 preface
    /// through the route table, anything else (TLS, other protocols, silence) as opaque TCP
    /// to the listener's `cluster`.
    Auto,
}

/// What a cluster's endpoints speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// h2c with prior knowledge: one multiplexed connection per endpoint per shard.
    Http2,
    /// TLS clusters only: ALPN (`h2`, `http/1.1`) chooses, learned per shard at first use
    /// (see [`crate::upstream::auto_protocol`]).
    Auto,
}

/// Settings of a `protocol: http` listener.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub routes: crate::route::RouteTable,
    /// A client must send a whole request head within this (default 10s) → else 408. It runs
    /// from the head's first byte.
    pub request_headers_timeout: Duration,
    /// A new connection must send its first byte within this (default 10s), else it is closed
    /// without a response (nothing was asked). Keepalive connections between requests are
    /// governed by the listener's `idle_timeout` instead.
    pub first_byte_timeout: Duration,
    /// Request line + headers limit (default 60 KiB) → 431.
    pub max_request_headers_bytes: usize,
    /// Header count limit (default 100, at most [`MAX_HEADER_COUNT`]) → 431.
    pub max_request_headers: usize,
    /// Request line limit (default 8 KiB) → 414.
    pub max_request_line_bytes: usize,
    /// Largest request body kept in memory so the request can be retried (default 64 KiB).
    pub retry_buffer_bytes: usize,
    /// Path normalisation before routing (default: none; [`PathOptions::is_active`] is false).
    ///
    /// [`PathOptions::is_active`]: crate::route::normalize::PathOptions::is_active
    pub path: crate::route::normalize::PathOptions,
    /// Downstream HTTP/2 limits (the listener's `http2:` block).
    pub h2: H2Settings,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            routes: Default::default(),
            request_headers_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(10),
            max_request_headers_bytes: 60 * 1024,
            max_request_headers: 100,
            max_request_line_bytes: 8 * 1024,
            retry_buffer_bytes: 64 * 1024,
            path: Default::default(),
            h2: H2Settings::default(),
        }
    }
}

/// Per-shard upstream connection pool settings of a cluster (HTTP only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Idle keepalive connections kept per endpoint per shard (default 256: 100 requests in
    /// flight to one endpoint, h2load -c10 -m10 through an h2 listener, reopened 10 % of its
    /// connections with 64).
    pub max_idle_per_endpoint: usize,
    /// Close an idle pooled connection after this long (default 60s).
    pub idle_timeout: Duration,
    /// Close a connection after this many requests (`None`: unlimited).
    pub max_requests_per_connection: Option<u32>,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            max_idle_per_endpoint: 256,
            idle_timeout: Duration::from_secs(60),
            max_requests_per_connection: None,
        }
    }
}

/// How a `tcp` listener moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Mode {
    /// Owned-buffer read/write through the runtime.
    Copy,
    /// Zero-copy socket → pipe → socket, driven by readiness + non-blocking `splice(2)`.
    Splice,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: Protocol,
    pub backlog: u32,
    /// Open connections allowed on this listener for the whole process; each of N shards takes
    /// `ceil(max / N)` (the kernel spreads connections evenly, so the total stays within
    /// N−1 of the limit). At the limit a shard stops accepting — new connections wait in the
    /// listen backlog — until one of its connections closes. `None`: no limit.
    pub max_connections: Option<u32>,
    /// Close a connection after this long with no bytes in either direction (`None`: never).
    pub idle_timeout: Option<Duration>,
    pub l4_mode: L4Mode,
    /// Index into [`Config::clusters`]: where a `tcp` listener forwards (`None` for `http`).
    pub cluster: Option<usize>,
    /// Recover the pre-NAT destination with `SO_ORIGINAL_DST` (iptables REDIRECT).
    pub original_dst: bool,
    /// Set `IP_TRANSPARENT` (TPROXY); the destination is the accepted socket's local address.
    pub transparent: bool,
    /// Present exactly when `protocol` is `Http`, `Http2` or `Auto`.
    pub http: Option<Arc<HttpSettings>>,
    /// Present exactly when `protocol` is `Auto`.
    pub auto: Option<AutoSettings>,
    /// TLS termination (STRICT or PERMISSIVE), when the listener has a `tls:` block.
    pub tls: Option<crate::tls::config::ListenerTlsConf>,
    /// Authorization policies and JWT rules that select this listener (also compiled into
    /// every route's filter chain); `None` when none does.
    pub authz: Option<Arc<crate::authz::ListenerAuthz>>,
    /// Access-log sinks (the `access_log:` list), in order.
    pub access_log: Vec<AccessLogConf>,
    /// The `registry_only` outbound traffic policy, when `outbound_traffic_policy` names this
    /// listener (`None` under `allow_any`: nothing is checked).
    pub egress: Option<Arc<crate::egress::EgressPolicy>>,
}

/// An upstream endpoint: the address resolved at load time and how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// How it was written, kept only when that is not the address's own text (a host name):
    /// an xDS config carries tens of thousands of `ip:port` endpoints.
    written: Option<Box<str>>,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, written: &str) -> Endpoint {
        let own = written.parse::<SocketAddr>() == Ok(addr) && addr.to_string() == written;
        Endpoint {
            addr,
            written: (!own).then(|| written.into()),
        }
    }

    /// How the endpoint was written (`/clusters`, `/config_dump`).
    pub fn written(&self) -> std::borrow::Cow<'_, str> {
        match &self.written {
            Some(w) => std::borrow::Cow::Borrowed(w),
            None => std::borrow::Cow::Owned(self.addr.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    /// Power of two choices over per-shard in-flight counts.
    LeastRequest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterKind {
    /// A fixed endpoint list.
    Static(Vec<Endpoint>),
    /// Each connection goes to its own original destination (outbound passthrough), or to
    /// `override_ip` at the original port (inbound delivery to the local application).
    OriginalDst { override_ip: Option<IpAddr> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub kind: ClusterKind,
    pub connect_timeout: Duration,
    pub lb_policy: LbPolicy,
    pub pool: PoolSettings,
    /// Most headers accepted in an upstream response (default 100, at most
    /// [`MAX_HEADER_COUNT`]); more → 502 `UPE`.
    pub max_response_headers: usize,
    /// HTTP/1.1 (default) or HTTP/2 to the endpoints.
    pub protocol: UpstreamProtocol,
    /// Upstream HTTP/2 connection settings (the cluster's `http2:` block).
    pub h2: H2Settings,
    /// `circuit_breakers:` thresholds (process-wide; see `cluster::breaker`).
    pub breakers: Breakers,
    /// `outlier_detection:` policy (per shard; see `cluster::outlier`).
    pub outlier: OutlierPolicy,
    /// `health_check:` (run off the data path; see `crate::health`).
    pub health: Option<Box<HealthCheck>>,
    /// `healthy_panic_threshold` in percent (default 50; 0 turns panic mode off).
    pub panic_threshold: u32,
    /// `retry_budget:` (per shard; see `cluster::budget`).
    pub retry_budget: Option<RetryBudgetSettings>,
    /// TLS origination to the endpoints, when the cluster has a `tls:` block.
    pub tls: Option<Box<crate::tls::config::ClusterTlsConf>>,
    /// `type: strict_dns | logical_dns`: where the endpoints come from (`crate::discovery`).
    pub dns: Option<Box<dns::DnsDiscovery>>,
}

impl Listener {
    /// The cluster a `tcp` listener forwards to (validated at load time).
    pub fn tcp_cluster(&self) -> usize {
        self.cluster
            .expect("config validation: tcp listeners name a cluster")
    }
}

impl Config {
    /// Parses and validates YAML text.
    pub fn from_yaml(src: &str) -> Result<Config, ConfigError> {
        let index = lines::LineIndex::build(src);
        let de = serde_yaml::Deserializer::from_str(src);
        let raw: raw::RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map(|l| l.line());
            let path = if path == "." { String::new() } else { path };
            let mut msg = inner.to_string();
            // serde_yaml appends " at line L column C"; we print the line ourselves.
            if let Some(cut) = msg.find(" at line ") {
                msg.truncate(cut);
            }
            // serde_yaml prefixes the path it knows ("listeners[0]: "); we print the full one.
            if let Some((head, rest)) = msg.split_once(": ") {
                if !head.contains(' ') && path.starts_with(head) {
                    msg = rest.to_string();
                }
            }
            ConfigError {
                line: line.or_else(|| index.line_of(&path)),
                path,
                message: msg,
            }
        })?;
        typed::build(raw, false).map_err(|mut e| {
            e.line = index.line_of(&e.path);
            e
        })
    }

    /// Validates a config assembled by the xDS client (`crate::xds`): the same shape as the
    /// YAML, as a JSON value. It may have no listener, and `type: eds` clusters (possibly
    /// without endpoints). Errors name the field path (no line: there is no file).
    pub fn from_xds_value(value: serde_json::Value) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError {
                line: None,
                path: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            }
        })?;
        typed::build(raw, true)
    }

    /// [`Config::from_xds_value`] for the JSON text the xDS client composes (read straight into
    /// the raw config, no `serde_json::Value` stage).
    pub fn from_xds_text(text: &str) -> Result<Config, ConfigError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: raw::RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let mut message = e.into_inner().to_string();
            // serde_json appends " at line L column C" (of a one-line document: noise).
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            ConfigError {
                line: None,
                path: if path == "." { String::new() } else { path },
                message,
            }
        })?;
        typed::build(raw, true)
    }

    /// Reads and validates a config file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Config::from_yaml(&src)
    }

    /// The embedded default.
    pub fn embedded_default() -> Config {
        Config::from_yaml(DEFAULT_CONFIG_YAML).expect("embedded default config is valid")
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_http;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_path;
#[cfg(test)]
mod tests_tls;
