//! `shardload`: the load generator (filled in by the loadgen issue).
#![forbid(unsafe_code)]
