//! Upstream connections, whatever the protocol above them: [`connect`] is the single place a
//! socket to an upstream is made (mark, timeout; TLS in [`connect_stream`]), [`UpStream`] is a plain or TLS connection, and [`h1`] checks connections out
//! of and back into a cluster's per-shard HTTP/1 pool.
//!
//! The pool interface is protocol-shaped on purpose: HTTP/1 connections are exclusive (one
//! request at a time, returned only after a clean end), while [`h2`] connections are shared
//! (multiplexed streams, up to the peer's concurrency limit, another connection when full).

mod auto;
mod connect;
pub mod h1;
pub mod h2;
mod stream;

pub use auto::auto_protocol;
pub use connect::{connect, connect_stream, tls_client, ConnectError, ConnectOpts};
pub use stream::UpStream;
