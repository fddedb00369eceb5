//! The versioned result document (`--json FILE`), exactly as documented in `loadgen/SCHEMA.md`.
//! These types are plain data: building them from shard statistics lives in `summary`, printing
//! them for humans in `table`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema tag consumers must check.
pub const SCHEMA: &str = "shardload/v1";

/// One run's result document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub tool: Tool,
    pub started_at: String,
    pub config: ConfigEcho,
    pub summary: Summary,
    pub latency_us: Latency,
    pub status: BTreeMap<String, u64>,
    pub errors: ErrorCounts,
    pub generator: Generator,
    pub timeseries: Vec<Second>,
    pub find_max: Option<FindMax>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// The run configuration as the generator understood it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigEcho {
    pub urls: Vec<String>,
    pub method: String,
    pub protocol: String,
    pub tls: bool,
    pub mode: String,
    pub target_rps: Option<f64>,
    pub concurrency: Option<u64>,
    pub connections: u64,
    pub streams: u64,
    pub shards: u64,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    pub warmup_s: f64,
    pub timeout_s: f64,
    pub body_size: u64,
    pub ring: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub measured_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub achieved_rps: f64,
    pub rate_ratio: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Latency distribution in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub stdev: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

/// Failed requests by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub connect: u64,
    pub timeout: u64,
    pub reset: u64,
    pub protocol: u64,
    pub tls: u64,
    pub other: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.reset + self.protocol + self.tls + self.other
    }
}

/// A short distribution (µs) for generator-health figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Generator health: was the generator itself the bottleneck?
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Generator {
    pub sends: u64,
    pub late_sends: u64,
    pub late_fraction: f64,
    pub lag_us: Spread,
    pub queued_sends: u64,
    pub queue_wait_us: Spread,
    pub bottleneck: bool,
    pub warning: Option<String>,
}

/// One second of the measurement window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Second {
    pub t_s: u64,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// The knee search (`--find-max`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FindMax {
    pub slo_p99_us: f64,
    pub max_rps: Option<f64>,
    pub steps: Vec<FindStep>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FindStep {
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub p99_us: f64,
    pub errors: u64,
    pub generator_bottleneck: bool,
    pub ok: bool,
}
