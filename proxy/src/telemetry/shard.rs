//! A shard's telemetry sinks and the hand-off every protocol calls once per finished request
//! (or TCP connection) with its [`Record`]: metrics always; the request's listener's access
//! logs when it has any (they live in the request's snapshot); attached taps (one branch when
//! none is); span export (one branch without a `tracing:` block). None of them is called from
//! inside a codec.

use std::cell::Cell;

use super::access_log::sink;
use super::metrics::ShardMetrics;
use super::propagate::Sampler;
use super::record::Record;
use super::tap_live::ShardTaps;
use super::view::RequestView;
use crate::ctx::{ConnCtx, Rng, Snapshot};

/// One shard's telemetry state. `!Send`, single writer.
#[derive(Debug)]
pub struct ShardTelemetry {
    pub metrics: ShardMetrics,
    pub taps: ShardTaps,
    /// Access-log sampling.
    rng: Rng,
    /// Sampling of traces this shard starts (the current config's `tracing.sampling`);
    /// `None` with trace propagation off.
    sampler: Cell<Option<Sampler>>,
}

impl Default for ShardTelemetry {
    fn default() -> Self {
        ShardTelemetry {
            metrics: ShardMetrics::default(),
            taps: ShardTaps::default(),
            rng: Rng::for_shard(0x51),
            sampler: Cell::new(Some(Sampler::ALL)),
        }
    }
}

impl ShardTelemetry {
    /// The sampler for traces this shard starts; `None` when trace propagation is off.
    pub fn sampler(&self) -> Option<Sampler> {
        self.sampler.get()
    }

    /// Installs the sampler of a new config.
    pub fn set_sampler(&self, s: Option<Sampler>) {
        self.sampler.set(s);
    }

    /// Randomness for the trace headers of one forwarded request; `None` when trace
    /// propagation is off (the headers then pass through untouched).
    pub fn fresh_trace(&self, rng: &Rng) -> Option<super::propagate::Fresh> {
        self.sampler
            .get()
            .map(|s| super::propagate::Fresh::draw(|| rng.next(), s))
    }

    /// An HTTP request (HTTP/1 or HTTP/2 stream) finished; fixes `rec.duration`.
    pub fn http_done(
        &self,
        rec: &mut Record,
        conn: &ConnCtx,
        snap: &Snapshot,
        req: &dyn RequestView,
    ) {
        rec.finish();
        self.metrics.on_http(rec, conn, snap);
        if let Some(sinks) = snap.access_logs.get(rec.listener as usize) {
            if !sinks.is_empty() {
                sink::log_http(sinks, rec, conn, snap, req, &self.rng);
            }
        }
        if self.taps.on() {
            self.taps.offer(rec, conn, req);
        }
        if let Some(spans) = &snap.spans {
            spans.offer(rec, req, || {
                let s = self.sampler.get().unwrap_or(Sampler::ALL);
                super::propagate::Fresh::draw(|| self.rng.next(), s)
            });
        }
    }

    /// Whether a finished request on `listener` of `snap` is read by more than metrics (an
    /// access log, a tap or span export): the HTTP/1 codec then keeps a copy of a head its
    /// body would overwrite.
    pub fn wants_head(&self, snap: &Snapshot, listener: usize) -> bool {
        self.taps.on()
            || snap.spans.is_some()
            || snap
                .access_logs
                .get(listener)
                .is_some_and(|s| !s.is_empty())
    }

    /// A TCP proxy connection started (its upstream cluster chosen).
    pub fn tcp_open(&self, rec: &Record, principal: Option<&str>, snap: &Snapshot) {
        self.metrics.on_tcp_open(rec, principal, snap);
    }

    /// A TCP proxy connection ended; fixes `rec.duration`. `peer`: the client's address.
    pub fn tcp_done(
        &self,
        rec: &mut Record,
        peer: Option<std::net::SocketAddr>,
        principal: Option<&str>,
        snap: &Snapshot,
    ) {
        rec.finish();
        self.metrics.on_tcp_close(rec, principal, snap);
        if let Some(sinks) = snap.access_logs.get(rec.listener as usize) {
            if !sinks.is_empty() {
                sink::log_tcp(sinks, rec, peer, principal, snap, &self.rng);
            }
        }
    }

    /// A downstream connection was accepted on / closed from listener `idx`.
    pub fn accepted(&self, idx: usize) {
        self.metrics.on_accept(idx);
    }
    /// Listener `idx`'s egress policy refused a request or connection.
    pub fn egress_blocked(
        &self,
        idx: usize,
        path: crate::egress::Path,
        why: crate::egress::Blocked,
    ) {
        self.metrics.on_egress_blocked(idx, path, why);
    }
    pub fn closed(&self, idx: usize) {
        self.metrics.on_close(idx);
    }
}
