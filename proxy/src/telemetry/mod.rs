//! Telemetry beside the data path: access logs (Envoy's format language, compiled at config
//! load, rendered on the shard), trace-context codecs (W3C `traceparent`, B3) and tap's
//! filters, rate cap and JSON lines.

pub mod access_log;
pub mod tap;
pub mod trace;
