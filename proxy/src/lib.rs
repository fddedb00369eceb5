//! Shardcar: a thread-per-core io_uring sidecar proxy.
//!
//! Data flows top to bottom: [`listener`] (REUSEPORT sockets per shard) → [`l4`] (copy or
//! splice movers) → [`cluster`] (per-shard load balancing) → upstream. Beside the data path:
//! [`config`] (two-stage YAML loading), [`shard`] (one runtime per core), [`server`] (start and
//! stop), [`intercept`] (iptables/nft capture rules), [`upstream`] (marked upstream connects)
//! and [`sys`], the only module allowed `unsafe`.
#![deny(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod config;
pub mod http1;
pub mod intercept;
pub mod l4;
pub mod listener;
pub mod route;
pub mod server;
pub mod shard;
pub mod sys;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use server::Server;
