//! Telemetry beside the data path: the per-request [`record`] every protocol fills and hands
//! to its shard's [`shard::ShardTelemetry`] once; per-shard [`metrics`] (Istio's standard
//! metrics and `shardcar_` operational stats, merged on scrape); access logs (Envoy's format
//! language, compiled at config load, rendered on the shard); trace-context codecs (W3C
//! `traceparent`, B3) and their [`propagate`]ion on forwarded requests, span export over OTLP
//! ([`otlp`], batched off the shard), and tap's filters, rate cap and JSON lines.

pub mod access_log;
pub mod id_hex;
pub mod metrics;
pub mod otlp;
pub mod propagate;
pub mod record;
pub mod shard;
pub mod tap;
pub mod tap_live;
pub mod trace;
pub mod view;

pub use record::{Flags, Protocol, Record};
pub use shard::ShardTelemetry;
pub use view::RequestView;
