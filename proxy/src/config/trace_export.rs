//! The `tracing:` block: span export over OTLP/HTTP (protobuf) to a collector, with the
//! share of traces this proxy starts that are sampled:
//!
//! ```yaml
//! tracing:
//!   otlp:
//!     address: 127.0.0.1:4318     # the collector's OTLP/HTTP port (host:port)
//!     path: /v1/traces            # default
//!   sampling: 100                 # percent of traces this proxy starts (default 100)
//!   service_name: reviews         # resource `service.name` (default "shardcar")
//!   batch_size: 512               # spans per export request (default 512)
//!   flush_interval: 1s            # a partial batch is sent at the latest after this
//! ```
//! Without the block no span is kept (trace headers are still propagated). `tracing:
//! {propagation: false}` turns trace propagation off (Envoy without a tracer): trace headers
//! pass through untouched, none is generated, and no span is kept; it takes no other field.
//! An incoming
//! sampled flag (`traceparent`, B3) is honoured whatever `sampling` says; `sampling` decides
//! only for traces this hop starts, and the flag it picks is the one sent upstream.
//! [`TracingConf::live`] is filled by the control side's exporter registry
//! ([`crate::telemetry::otlp::Exporters`]) before the config reaches a shard.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use super::scalar::duration_field;
use super::scalar::Scalar;
use super::ConfigError;
use crate::telemetry::otlp::Link;

pub const DEFAULT_PATH: &str = "/v1/traces";
pub const DEFAULT_BATCH: usize = 512;
pub const DEFAULT_FLUSH: Duration = Duration::from_secs(1);
/// Largest `batch_size` (one export request stays well under a collector's 4 MiB default).
pub const MAX_BATCH: usize = 8192;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    pub propagation: Option<bool>,
    pub otlp: Option<RawOtlp>,
    pub sampling: Option<f64>,
    pub service_name: Option<String>,
    pub batch_size: Option<u64>,
    pub flush_interval: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    pub address: Option<String>,
    pub path: Option<String>,
}

/// Typed `tracing:` settings.
#[derive(Debug, Clone)]
pub struct TracingConf {
    /// The collector, `host:port` (resolved by the exporter thread, never on a shard).
    pub address: String,
    /// The request path, `/v1/traces` by default.
    pub path: String,
    /// Percent of traces this hop starts that are sampled, 0–100.
    pub sampling: f64,
    pub service_name: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// The exporter's queue and counters, set on the control side at activation.
    pub live: Arc<OnceLock<Link>>,
}

impl TracingConf {
    /// Whether two configs would run the same exporter (the `live` link aside).
    pub fn same_exporter(&self, o: &TracingConf) -> bool {
        self.address == o.address
            && self.path == o.path
            && self.service_name == o.service_name
            && self.batch_size == o.batch_size
            && self.flush_interval == o.flush_interval
    }
}

fn host_port(v: &str) -> bool {
    match v.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

/// Whether trace headers are propagated (`tracing.propagation`, default true).
pub fn build_propagation(raw: &Option<RawTracing>) -> Result<bool, ConfigError> {
    let Some(raw) = raw else {
        return Ok(true);
    };
    if raw.propagation != Some(false) {
        return Ok(true);
    }
    let set = [
        ("otlp", raw.otlp.is_some()),
        ("sampling", raw.sampling.is_some()),
        ("service_name", raw.service_name.is_some()),
        ("batch_size", raw.batch_size.is_some()),
        ("flush_interval", raw.flush_interval.is_some()),
    ];
    match set.iter().find(|(_, on)| *on) {
        Some((field, _)) => Err(ConfigError::new(
            format!("tracing.{field}"),
            "needs `propagation: true`: spans and sampling apply only to propagated traces",
        )),
        None => Ok(false),
    }
}

pub fn build_tracing(raw: &Option<RawTracing>) -> Result<Option<TracingConf>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.propagation == Some(false) {
        return Ok(None);
    }
    let err = |field: &str, m: String| ConfigError::new(format!("tracing.{field}"), m);
    let Some(otlp) = &raw.otlp else {
        return Err(err(
            "otlp",
            "required: the collector to export spans to".into(),
        ));
    };
    let address = match &otlp.address {
        Some(a) if host_port(a.trim()) => a.trim().to_string(),
        Some(a) => {
            return Err(err(
                "otlp.address",
                format!("expected host:port, got {a:?}"),
            ))
        }
        None => return Err(err("otlp.address", "required (host:port)".into())),
    };
    let path = otlp.path.clone().unwrap_or_else(|| DEFAULT_PATH.into());
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(err(
            "otlp.path",
            format!("expected an absolute path, got {path:?}"),
        ));
    }
    let sampling = raw.sampling.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&sampling) {
        return Err(err(
            "sampling",
            format!("expected a percentage 0–100, got {sampling}"),
        ));
    }
    let service_name = raw
        .service_name
        .clone()
        .unwrap_or_else(|| "shardcar".into());
    if service_name.trim().is_empty() {
        return Err(err("service_name", "must not be empty".into()));
    }
    let batch_size = match raw.batch_size {
        None => DEFAULT_BATCH,
        Some(n) if (1..=MAX_BATCH as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(err(
                "batch_size",
                format!("expected 1–{MAX_BATCH}, got {n}"),
            ))
        }
    };
    let flush_interval = duration_field(
        "tracing.flush_interval".into(),
        &raw.flush_interval,
        DEFAULT_FLUSH,
    )?;
    if flush_interval.is_zero() {
        return Err(err("flush_interval", "must be above 0".into()));
    }
    Ok(Some(TracingConf {
        address,
        path,
        sampling,
        service_name,
        batch_size,
        flush_interval,
        live: Arc::default(),
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// Seven lines: `tracing:` starts on line 8.
    pub const BASE: &str = "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    cluster: app\nclusters:\n  - name: app\n    endpoints: [\"127.0.0.1:1\"]\n";

    fn load(block: &str) -> Result<Config, String> {
        Config::from_yaml(&format!("{BASE}{block}")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_fields() {
        let c = load("tracing:\n  otlp: {address: \"localhost:4318\"}\n").unwrap();
        let t = c.tracing.unwrap();
        assert_eq!(
            (t.address.as_str(), t.path.as_str(), t.sampling),
            ("localhost:4318", "/v1/traces", 100.0)
        );
        assert_eq!((t.batch_size, t.flush_interval.as_millis()), (512, 1000));
        let c = load(
            "tracing:\n  otlp: {address: \"10.0.0.1:4318\", path: /otlp/v1/traces}\n  sampling: 12.5\n  service_name: web\n  batch_size: 8\n  flush_interval: 50ms\n",
        )
        .unwrap();
        let t = c.tracing.unwrap();
        assert_eq!(
            (t.path.as_str(), t.sampling, t.service_name.as_str()),
            ("/otlp/v1/traces", 12.5, "web")
        );
        assert_eq!((t.batch_size, t.flush_interval.as_millis()), (8, 50));
        assert!(load("").unwrap().tracing.is_none());
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let e = load("tracing:\n  otlp: {address: \"h:4318\"}\n  sampling: 150\n").unwrap_err();
        assert!(
            e.contains("tracing.sampling") && e.contains("line 10"),
            "{e}"
        );
        let e = load("tracing:\n  otlp: {address: nope}\n").unwrap_err();
        assert!(e.contains("tracing.otlp.address"), "{e}");
        let e = load("tracing:\n  otlp: {address: \"h:1\"}\n  sample: 3\n").unwrap_err();
        assert!(e.contains("sample"), "{e}");
        let e = load("tracing:\n  sampling: 3\n").unwrap_err();
        assert!(e.contains("tracing.otlp"), "{e}");
        let e = load("tracing:\n  otlp: {address: \"h:1\"}\n  batch_size: 0\n").unwrap_err();
        assert!(e.contains("tracing.batch_size"), "{e}");
        let e = load("tracing:\n  otlp: {address: \"h:1\"}\n  flush_interval: 0s\n").unwrap_err();
        assert!(e.contains("tracing.flush_interval"), "{e}");
    }

    #[test]
    fn propagation_can_be_turned_off_alone() {
        let c = load("").unwrap();
        assert!(c.trace_propagation);
        let c = load("tracing:\n  propagation: false\n").unwrap();
        assert!(!c.trace_propagation && c.tracing.is_none());
        assert!(crate::telemetry::otlp::sampler_for(&c).is_none());
        let c = load("tracing:\n  propagation: true\n  otlp: {address: \"h:1\"}\n").unwrap();
        assert!(c.trace_propagation && c.tracing.is_some());
        let e = load("tracing:\n  propagation: false\n  otlp: {address: \"h:1\"}\n").unwrap_err();
        assert!(
            e.contains("tracing.otlp") && e.contains("propagation"),
            "{e}"
        );
        let e = load("tracing:\n  propagation: false\n  sampling: 5\n").unwrap_err();
        assert!(e.contains("tracing.sampling"), "{e}");
    }
}
