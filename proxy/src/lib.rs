//! Shardcar: a thread-per-core io_uring sidecar proxy.
//!
//! Data flows top to bottom: [`listener`] (REUSEPORT sockets per shard) → accept builds a
//! [`ctx::ConnCtx`] → [`detect`] (HTTP/1 or h2c preface) → [`l4`] (copy or splice), [`http1`]
//! or [`http2`] (codecs) over an [`io::Stream`] →
//! [`http`] (protocol-neutral request, retries) → [`route`] (virtual hosts, matches, filters; [`authz`] policies and JWT)
//! → [`cluster`] (per-shard load balancing, pools) → [`upstream`] (the one connect function).
//! Beside the data path: [`config`] (two-stage YAML loading), [`shard`] (one runtime per core,
//! state by layer, command channel), [`server`] (start, swap, stats, drain), [`intercept`]
//! (iptables/nft capture rules), [`admin`] (the control-side admin API), [`reload`] (SIGHUP,
//! file watch and `POST /reload` → validate → swap), [`xds`] (ADS client → the same swap) and [`sys`], the only module allowed `unsafe`. [`ctx`] holds
//! what all layers share (addresses, snapshots, the connection sweeper) and imports none of them.
#![deny(unsafe_code)]

pub mod admin;
pub mod authz;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod ctx;
pub mod detect;
pub mod discovery;
pub mod egress;
pub mod health;
pub mod http;
pub mod http1;
pub mod http2;
pub mod intercept;
pub mod io;
pub mod l4;
pub mod listener;
pub mod logging;
pub mod overload;
pub mod reload;
pub mod route;
pub mod secure;
pub mod server;
pub mod shard;
pub mod sys;
pub mod telemetry;
pub mod tls;
pub mod tls_io;
pub mod upgrade;
pub mod upstream;
pub mod xds;

pub use config::Config;
pub use server::Server;
