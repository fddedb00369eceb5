//! `shardload`: a thread-per-core HTTP load generator (HTTP/1.1, HTTP/2, TLS) whose open-loop
//! latency is measured from each request's *intended* send time (no coordinated omission), plus
//! `origin`, the fixed-response test server used by tests and benchmarks.
//!
//! The result document is [`report::Report`]; its JSON schema is `loadgen/SCHEMA.md`.
#![forbid(unsafe_code)]

pub mod report;
