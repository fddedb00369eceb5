//! Telemetry beside the data path: access logs (Envoy's format language, compiled at config
//! load, rendered on the shard) and trace-context codecs (W3C `traceparent`, B3). Tap builds on
//! the same facts.

pub mod access_log;
pub mod trace;
