//! Per-shard metrics (DESIGN.md §4c): counters and fixed-bucket [`histogram`]s owned by one
//! shard and written only by it (plain fields behind a `RefCell` the shard never holds across
//! an await), found per request by a packed integer key ([`table`]), snapshotted as label
//! strings when the control side asks ([`snapshot`]), merged there across shards and exposed
//! in the Prometheus text format ([`prometheus`]).
//!
//! What is recorded, from each finished [`Record`]:
//! - Istio's standard metrics ([`istio`]; off with `metrics: {istio: false}`): `istio_requests_total`,
//!   `istio_request_duration_milliseconds`, `istio_request_bytes`, `istio_response_bytes`,
//!   and for TCP `istio_tcp_{sent,received}_bytes_total`,
//!   `istio_tcp_connections_{opened,closed}_total`, with Istio's label set.
//! - Envoy-analogous operational stats ([`ops`]), prefix `shardcar_`: per listener
//!   (`downstream_cx_*`, `downstream_rq` by class) and per cluster (`upstream_rq*`,
//!   `upstream_rq_time`, connect failures, retries, pool reuse, breaker, ejections).
//!
//! Cost on the data path (measured with callgrind on the h1 proxy path, see the note in
//! `telemetry::record`): the record's fills are plain stores; the hand-off is one `u128` hash
//! lookup per table (Istio series, cluster) plus ~12 cell updates and three bucket searches,
//! ~0.4k instructions per request; a new label combination allocates once.

pub mod histogram;
pub mod istio;
pub mod ops;
pub mod prometheus;
pub mod snapshot;
pub mod table;

use std::cell::RefCell;

pub use histogram::{Buckets, Histogram, HistogramSnapshot};
pub use snapshot::{Family, Kind, MetricsSnapshot, Value};

use super::record::Record;
use crate::ctx::{ConnCtx, Snapshot};

/// One shard's metrics. `!Send`; the shard is the only writer.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    istio: RefCell<istio::IstioTables>,
    ops: RefCell<ops::OpsTables>,
}

impl ShardMetrics {
    /// An HTTP request finished (`conn`: the connection it came on; `snap`: the snapshot it
    /// was routed with, which `rec.cluster` indexes).
    pub fn on_http(&self, rec: &Record, conn: &ConnCtx, snap: &Snapshot) {
        if snap.config.metrics.istio {
            let principal = peer_principal(conn);
            self.istio.borrow_mut().http(rec, principal, snap);
        }
        self.ops.borrow_mut().request(rec, snap);
    }

    /// A TCP connection was accepted for proxying.
    pub fn on_tcp_open(&self, rec: &Record, principal: Option<&str>, snap: &Snapshot) {
        if snap.config.metrics.istio {
            self.istio.borrow_mut().tcp_open(rec, principal, snap);
        }
    }

    /// A proxied TCP connection ended (`rec.bytes_*` are its totals).
    pub fn on_tcp_close(&self, rec: &Record, principal: Option<&str>, snap: &Snapshot) {
        if snap.config.metrics.istio {
            self.istio.borrow_mut().tcp_close(rec, principal, snap);
        }
        self.ops.borrow_mut().tcp_close(rec, snap);
    }

    /// A downstream connection was accepted on listener `idx`.
    pub fn on_accept(&self, idx: usize) {
        self.ops.borrow_mut().accept(idx);
    }

    /// The egress policy of listener `idx` refused a request or connection.
    pub fn on_egress_blocked(
        &self,
        idx: usize,
        path: crate::egress::Path,
        why: crate::egress::Blocked,
    ) {
        self.ops.borrow_mut().egress_blocked(idx, path, why);
    }

    /// A downstream connection of listener `idx` closed.
    pub fn on_close(&self, idx: usize) {
        self.ops.borrow_mut().close(idx);
    }

    /// Everything this shard has recorded, as label strings (`snap`: the current snapshot,
    /// for listener names and the clusters' pool, breaker and ejection state).
    pub fn snapshot(&self, snap: &Snapshot) -> MetricsSnapshot {
        let mut out = MetricsSnapshot::default();
        self.istio.borrow().snapshot(&mut out);
        self.ops.borrow().snapshot(snap, &mut out);
        out
    }
}

/// The connection's verified peer identity (a SPIFFE ID), when mTLS established one.
pub fn peer_principal(conn: &ConnCtx) -> Option<&str> {
    conn.tls
        .as_ref()
        .and_then(|t| t.peer.as_ref())
        .map(|p| p.as_str())
}
