//! `wire`: the small pieces both the proxy (`shardcar`) and the load generator (`shardload`)
//! need, so they are written once: building a monoio runtime with the io_uring flags that make
//! thread-per-core cheap, and pinning shard threads to CPUs.
#![forbid(unsafe_code)]

pub mod runtime;

pub use runtime::{
    allowed_cpus, build_runtime, ring_override_from_env, spawn_shards, RingMode, ShardRuntime,
};
