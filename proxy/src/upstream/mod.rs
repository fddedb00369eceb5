//! Upstream connections, whatever the protocol above them: [`connect`] is the single place a
//! socket to an upstream is made (mark, timeout, later TLS), and [`h1`] checks connections out
//! of and back into a cluster's per-shard HTTP/1 pool.
//!
//! The pool interface is protocol-shaped on purpose: HTTP/1 connections are exclusive (one
//! request at a time, returned only after a clean end), while an HTTP/2 pool (shared,
//! multiplexed streams over one connection per endpoint) will sit beside [`h1`] behind the same
//! checkout step in the exchange.

mod connect;
pub mod h1;

pub use connect::{connect, ConnectError, ConnectOpts};
