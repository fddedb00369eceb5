//! Applying a route's fault decision ([`crate::route::fault`]), the same for every codec: the
//! delay is slept here (counted while it runs), and an abort becomes the local answer the codec
//! sends — status, flag `FI` and, for gRPC requests, the configured gRPC status (or the one the
//! HTTP status maps to). Counters are per shard (`Cell`s in [`crate::ctx::Services`]).

use std::cell::Cell;

use crate::ctx::Rng;
use crate::route::fault::Decision;
use crate::route::{FilterChain, RequestView};

/// Response flag of an aborted request (Envoy's `FI`).
pub const ABORT_FLAG: &str = "FI";
/// Body of an aborted request.
pub const ABORT_BODY: &[u8] = b"fault filter abort\n";

/// Fault-injection counters of one shard (Envoy's `fault.*` stats).
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Requests delayed (counted when the delay ends).
    pub delays_injected: Cell<u64>,
    /// Requests aborted.
    pub aborts_injected: Cell<u64>,
    /// Requests sleeping in a delay now (gauge).
    pub active_delays: Cell<u64>,
}

/// Keeps `active_delays` right when the request is dropped mid-delay (client gone).
struct Active<'a>(&'a FaultStats);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        let a = &self.0.active_delays;
        a.set(a.get().saturating_sub(1));
    }
}

/// The fault decision for a request on a route with `chain` (nothing, and no random draw, for
/// a route without a fault filter). Codecs call this where the request view is at hand.
#[inline]
pub fn decide(chain: &FilterChain, req: &dyn RequestView, rng: &Rng) -> Decision {
    match chain.fault() {
        Some(f) => f.decide(req, rng.next()),
        None => Decision::default(),
    }
}

/// Runs the delay, if any; returns the abort (HTTP status, gRPC status) to answer with, if any.
pub async fn apply(d: Decision, stats: &FaultStats) -> Option<(u16, Option<u32>)> {
    if let Some(t) = d.delay {
        stats.active_delays.set(stats.active_delays.get() + 1);
        let _active = Active(stats);
        monoio::time::sleep(t).await;
        stats.delays_injected.set(stats.delays_injected.get() + 1);
    }
    let abort = d.abort?;
    stats.aborts_injected.set(stats.aborts_injected.get() + 1);
    Some(abort)
}
