//! The HTTP/1.1 codec and connection driver (`protocol: http` listeners).
//!
//! Data flow per client connection: [`server`] reads a head (resumable end-of-head [`scan`],
//! then httparse + our strictness rules in [`head`]) and fills the protocol-neutral
//! [`crate::http::RequestCtx`] ([`target`]: absolute-form authority, path normalisation).
//! [`exchange`] selects the route and runs its filters, then either answers locally
//! ([`local`]) or [`forward`]s: retries and timeouts around single [`attempt`]s (an upstream
//! from `crate::upstream::h1`, the head from [`encode`], the body from [`body`]) and the
//! response [`relay`]ed back. `Upgrade` and `CONNECT` switch the connection to the L4 tunnel
//! after the 101/2xx.
//!
//! Hot path: heads are parsed into spans of the connection's read buffer (no per-request heap
//! allocation for headers once the span vectors are warm); upstream heads are written into a
//! scratch buffer taken from a per-shard pool; small responses go out in one write with their
//! head. The criterion bench `http1` measures parse → route → serialize.

pub mod attempt;
pub mod body;
pub mod chunked;
pub mod conn;
pub mod dechunk;
pub mod encode;
pub mod exchange;
pub mod forward;
pub mod head;
pub mod local;
pub mod mirror;
pub mod outcome;
pub mod relay;
pub mod response_head;
pub mod scan;
pub mod server;
pub mod target;
pub mod to_h2;

pub use server::serve;

use crate::ctx::Services;
use crate::l4::L4State;

/// The HTTP/1 layer's per-shard state.
#[derive(Debug, Default)]
pub struct H1State {
    /// Spare buffers for upstream exchanges.
    pub scratch: conn::Scratch,
}

/// What an HTTP/1 connection borrows from its shard.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub svc: &'a Services,
    pub h1: &'a H1State,
    pub l4: &'a L4State,
}
