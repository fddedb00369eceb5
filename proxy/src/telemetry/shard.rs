//! A shard's telemetry sinks and the hand-off every protocol calls once per finished request
//! (or TCP connection) with its [`Record`]. Consumers (metrics today; access logs and tap
//! attach here too) read the record; none of them is called from inside a codec.

use super::metrics::ShardMetrics;
use super::record::Record;
use crate::ctx::{ConnCtx, Snapshot};

/// One shard's telemetry state. `!Send`, single writer.
#[derive(Debug, Default)]
pub struct ShardTelemetry {
    pub metrics: ShardMetrics,
}

impl ShardTelemetry {
    /// An HTTP request (HTTP/1 or HTTP/2 stream) finished; fixes `rec.duration`.
    pub fn http_done(&self, rec: &mut Record, conn: &ConnCtx, snap: &Snapshot) {
        rec.finish();
        self.metrics.on_http(rec, conn, snap);
    }

    /// A TCP proxy connection started (its upstream cluster chosen).
    pub fn tcp_open(&self, rec: &Record, principal: Option<&str>, snap: &Snapshot) {
        self.metrics.on_tcp_open(rec, principal, snap);
    }

    /// A TCP proxy connection ended; fixes `rec.duration`.
    pub fn tcp_done(&self, rec: &mut Record, principal: Option<&str>, snap: &Snapshot) {
        rec.finish();
        self.metrics.on_tcp_close(rec, principal, snap);
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
