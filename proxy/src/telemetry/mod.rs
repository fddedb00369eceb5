//! Telemetry beside the data path: access logs (Envoy's format language, compiled at config
//! load, rendered on the shard). Trace propagation and tap build on the same facts.

pub mod access_log;
