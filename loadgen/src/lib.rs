//! `shardload`: a thread-per-core HTTP load generator (HTTP/1.1, HTTP/2, TLS) whose open-loop
//! latency is measured from each request's *intended* send time (no coordinated omission), plus
//! `origin`, the fixed-response test server used by tests and benchmarks.
//!
//! Library map: `plan` (what to run) → `run` (shards) → `engine` (one shard: `schedule`,
//! workers over `client::{h1,h2}`, `stats`) → `summary` (the [`report::Report`], schema in
//! `loadgen/SCHEMA.md`) → `table` (for humans). `findmax` searches the knee. `timer` is the
//! sub-millisecond timer both the schedule and the origin's delays use.
#![forbid(unsafe_code)]

pub mod client;
pub mod engine;
pub mod findmax;
pub mod origin;
pub mod plan;
pub mod report;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod summary;
pub mod table;
pub mod timer;
pub mod tls;

pub use plan::{Mode, Plan, Protocol, Stop, Target, TlsOptions};
pub use run::{run, Outcome};
