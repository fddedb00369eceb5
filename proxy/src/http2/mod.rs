//! The HTTP/2 codec (`protocol: http2` listeners, and h2c-with-prior-knowledge clients of
//! `protocol: http` listeners, told apart by [`detect`]).
//!
//! The `h2` crate runs over monoio through `monoio-compat`'s tokio-IO adapter (h2 needs only
//! tokio's IO traits, no tokio runtime). [`server`] drives a connection; each stream
//! ([`stream`]) becomes a protocol-neutral `RequestCtx` and goes through the same route
//! selection, filters, retry decisions ([`crate::http::retry::Retrier`]) and failure mapping
//! as HTTP/1, then to an HTTP/1 ([`to_h1`]) or HTTP/2 ([`to_h2`]) upstream. [`respond`] sends
//! within the client's flow-control window and answers gRPC requests' errors as trailers-only
//! statuses; `crate::http1::dechunk` turns an HTTP/1 chunked body into DATA frames and trailers.
//!
//! # Flood guards (each closes only the abusing connection)
//! - Rapid reset (CVE-2023-44487): `max_resets_per_second` ([`guard`] counts RST_STREAM
//!   frames) and h2's `max_pending_accept_reset_streams` (streams reset before the proxy
//!   accepted them); beyond either, GOAWAY ENHANCE_YOUR_CALM.
//! - SETTINGS, PING, PRIORITY and empty-DATA floods: `max_control_frames_per_second`;
//!   WINDOW_UPDATE beyond 10 per DATA frame sent (+100) ([`guard`]).
//! - Streams the proxy must reset for the client's errors: `max_local_error_reset_streams`.
//! - CONTINUATION floods and HPACK bombs: `max_header_list_size` caps the header block (h2
//!   counts the block while it accumulates and refuses it past the limit).
//! - Zero-window stalls: `stream_idle_timeout` resets a stream that gets no window or DATA.
//! - Concurrency: `max_concurrent_streams`; memory per stream: `max_send_buffer_size`.
//!
//! The `h2` crate keeps its stream store behind an `Arc<Mutex>`; on a shard it is only ever
//! taken by the shard's own thread, so it is uncontended (a compare-and-swap per operation).

pub(crate) mod coalesce;
pub mod detect;
pub mod guard;
pub mod respond;
mod server;
pub mod stream;
mod to_h1;
pub mod to_h2;

pub use server::serve;

use std::cell::Cell;

/// The HTTP/2 layer's per-shard counters (single writer: the shard).
#[derive(Debug, Default)]
pub struct H2State {
    /// Client connections that completed the HTTP/2 handshake.
    pub connections: Cell<u64>,
    /// Streams accepted from clients.
    pub streams: Cell<u64>,
    /// Connections a flood guard or protocol error closed with GOAWAY.
    pub guard_closes: Cell<u64>,
}

impl H2State {
    pub(crate) fn bump(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }
}
