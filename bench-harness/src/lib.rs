//! `shardbench`: turns "Shardcar is fast" into a table anyone can reproduce.
//!
//! Map: `scenario` (data files: what to measure) → `run` (starts origin and targets, runs
//! repetitions interleaved) using `target` (direct, Shardcar, peers from `peers/` templates),
//! `load` (one `shardload` run), `bulk` (GiB-scale copy), `memory` (RSS with idle connections)
//! and `proc` (pinning, handles, /proc readings) → `results` (samples and derived cells, the
//! `results.json` file) → `report` (summary.md, README index), `chart` (SVG) and `gate` (the CI
//! comparison with `perf-reports/baseline.json`). `stats` holds the arithmetic.
#![forbid(unsafe_code)]

pub mod bulk;
pub mod chart;
pub mod env;
pub mod gate;
pub mod load;
pub mod memory;
pub mod proc;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod stats;
pub mod target;
