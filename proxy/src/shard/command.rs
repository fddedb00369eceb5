//! The messages the control thread sends a shard — the only way anything reaches a running
//! shard — and the statistics a shard reports back. Channels are tokio's `sync` primitives
//! (no tokio runtime): an unbounded mpsc per shard, whose receiver wakes a monoio task, and a
//! oneshot per reply.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;

/// A command for one shard.
#[derive(Debug)]
pub enum ShardCommand {
    /// Use this config for new connections and new requests; running ones finish on theirs.
    /// Listeners the config no longer has stop accepting; added or rebound ones start on the
    /// sockets of the `Bind` sent just before.
    Swap(Arc<Config>),
    /// This shard's sockets for listeners the next `Swap` adds or rebinds, by listener name
    /// (bound on the control side, `SO_REUSEPORT`, one per shard).
    Bind(Vec<(String, std::net::TcpListener)>),
    /// Stop accepting, close idle keepalive connections, let the rest finish up to the
    /// config's `drain_timeout`, then stop the shard.
    Drain,
    /// Reply with this shard's counters.
    StatsSnapshot(oneshot::Sender<ShardStats>),
    /// The health checker's verdicts for one cluster's endpoints.
    Health(Arc<crate::health::HealthUpdate>),
    /// Reply with the config generation in use once every command before this one is done
    /// (the xDS client measures propagation and ACKs only after every shard applied a swap).
    Barrier(oneshot::Sender<u64>),
    /// Attach a tap (replacing one with the same id): matching requests are sent to it.
    Tap(crate::telemetry::tap_live::TapAttach),
    /// Detach the tap with this id.
    Untap(u64),
    /// A DNS cluster's endpoints changed (the `dns` resolver thread): a new snapshot
    /// generation with only that cluster's balancer replaced.
    Endpoints(Arc<crate::discovery::EndpointsUpdate>),
    /// The overload manager's RSS monitor changed what the shards must do.
    Overload(crate::overload::Actions),
    /// Reply with what this shard serves now: its accepting listeners and its clusters'
    /// endpoints (`/listeners`, `/clusters`).
    Inspect(oneshot::Sender<ShardView>),
    /// Stop accepting on every listener (`POST /drain_listeners`); open connections go on.
    /// `graceful`: also drain them as on SIGTERM (`connection: close` on the next response,
    /// GOAWAY on HTTP/2, idle ones closed after a grace), while the shard keeps running.
    DrainListeners { graceful: bool },
}

/// What one shard serves at the moment it answered an `Inspect`.
#[derive(Debug, Clone, Default)]
pub struct ShardView {
    pub shard: usize,
    /// Listeners accepting on this shard: name and bound address.
    pub listeners: Vec<(String, std::net::SocketAddr)>,
    pub clusters: Vec<ClusterView>,
}

/// One cluster of the shard's current snapshot.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub name: String,
    /// `original_dst` clusters have no endpoint list.
    pub original_dst: bool,
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint as this shard's balancer sees it.
#[derive(Debug, Clone)]
pub struct EndpointView {
    pub addr: std::net::SocketAddr,
    /// As written in the config (`host:port`).
    pub written: String,
    /// Failing active health checks (the checker's last verdict).
    pub failed_active_hc: bool,
    /// Ejected by this shard's outlier detection.
    pub ejected: bool,
    /// Requests (or TCP connections) in flight to it from this shard.
    pub active_requests: u32,
}

pub type CommandSender = mpsc::UnboundedSender<ShardCommand>;
pub type CommandReceiver = mpsc::UnboundedReceiver<ShardCommand>;

/// One shard's counters at the moment it answered. The control side sums them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub shard: usize,
    /// Config generation in use (0 = the one the shard started with).
    pub generation: u64,
    pub active_connections: usize,
    pub accepted: u64,
    /// Times a listener reached its `max_connections` share and paused accepting.
    pub accept_paused: u64,
    /// Accept errors (EMFILE and friends) that made the loop back off.
    pub accept_errors: u64,
    /// Idle connections that gave their read buffers back.
    pub parked: u64,
    /// Gauges: bytes of client read buffer HTTP/1 connections hold (a parked one holds
    /// `http1::conn::PARKED_READ`), and L4 copy buffers (16 KiB arena slots) in use.
    pub read_buffer_bytes: u64,
    pub copy_buffers_in_use: u64,
    pub idle_timeouts: u64,
    pub deadline_timeouts: u64,
    /// Upstream HTTP/1 requests on pooled / new connections; idle pooled connections dropped
    /// because the upstream closed them or sent stray bytes; ones closed after `idle_timeout`.
    pub pool_reused: u64,
    pub pool_connected: u64,
    pub pool_dropped_dead: u64,
    pub pool_expired: u64,
    /// Downstream HTTP/2: connections, streams, connections closed by a flood guard.
    pub h2_connections: u64,
    pub h2_streams: u64,
    pub h2_guard_closes: u64,
    /// Upstream HTTP/2: connections opened, and streams that shared an open one.
    pub h2_upstream_connected: u64,
    pub h2_upstream_multiplexed: u64,
    /// Circuit-breaker fullness and overflows per cluster that has thresholds.
    pub breakers: Vec<crate::cluster::breaker::BreakerStats>,
    /// Outlier-detection ejections (gauge and counters) per static cluster.
    pub outlier: Vec<crate::cluster::outlier::OutlierStats>,
    /// Fault injection: requests delayed, requests aborted, delays running now (gauge).
    pub fault_delays_injected: u64,
    pub fault_aborts_injected: u64,
    pub fault_active_delays: u64,
    /// Traffic mirroring (`crate::http1::mirror`): copies answered, dropped at the in-flight
    /// bound, skipped (streamed body), failed (counters) and out now (gauge).
    pub mirror_sent: u64,
    pub mirror_dropped: u64,
    pub mirror_skipped: u64,
    pub mirror_failed: u64,
    pub mirror_in_flight: u64,
    /// Overload manager (`crate::overload`): connections closed over
    /// `max_downstream_connections`, requests refused over `max_active_requests` and above the
    /// RSS reject watermark, times each RSS action started (counters); whether each action is
    /// on (gauge, shards summed) and requests active now (gauge).
    pub overload_cx_overflow: u64,
    pub overload_rq_overflow: u64,
    pub overload_rq_rejected: u64,
    pub overload_stop_accepting_entered: u64,
    pub overload_reject_requests_entered: u64,
    pub overload_stop_accepting: u64,
    pub overload_reject_requests: u64,
    pub overload_active_requests: u64,
    /// Active health (unhealthy endpoints, panic-mode picks) per health-checked cluster.
    pub health: Vec<crate::cluster::health::HealthStats>,
    /// Retries not made because the cluster's retry budget was spent.
    pub retry_budget_exhausted: u64,
    /// TLS handshakes and failures by reason, both directions.
    pub tls: crate::tls::stats::TlsCounts,
    /// Authorization: requests allowed, denied; connections allowed, denied; JWTs refused.
    pub authz: [u64; 5],
    /// Labelled metrics (Istio's and the `shardcar_` listener/cluster stats).
    pub metrics: crate::telemetry::metrics::MetricsSnapshot,
    /// Access-log lines handed to a writer, and dropped because its queue was full.
    pub access_log_lines: u64,
    pub access_log_dropped: u64,
    /// Tap lines sent, and matching requests not sent (rate cap, full queue).
    pub tap_events: u64,
    pub tap_dropped: u64,
    /// Spans dropped on the shard because the exporter's queue was full (summed).
    pub tracing_spans_dropped: u64,
    /// The exporter's counters — spans exported, failed requests, spans in failed requests —
    /// read by every shard from the one exporter, so merged by `max`, not summed.
    pub tracing_exporter: [u64; 3],
    /// JWKS refresh counters per fetched key set (control-side, read by every shard: merged
    /// by `max`).
    pub jwks: Vec<crate::authz::refresh::JwksCount>,
    /// Certificate rotations per `tls:` block (control-side watchers: merged by `max`).
    pub tls_reloads: Vec<crate::tls::runtime::ReloadCount>,
}

impl ShardStats {
    /// Adds another shard's counters (generation and shard id: the highest seen).
    pub fn merge(&mut self, o: &ShardStats) {
        self.shard = self.shard.max(o.shard);
        self.generation = self.generation.max(o.generation);
        self.active_connections += o.active_connections;
        self.accepted += o.accepted;
        self.accept_paused += o.accept_paused;
        self.accept_errors += o.accept_errors;
        self.parked += o.parked;
        self.read_buffer_bytes += o.read_buffer_bytes;
        self.copy_buffers_in_use += o.copy_buffers_in_use;
        self.idle_timeouts += o.idle_timeouts;
        self.deadline_timeouts += o.deadline_timeouts;
        self.pool_reused += o.pool_reused;
        self.pool_connected += o.pool_connected;
        self.pool_dropped_dead += o.pool_dropped_dead;
        self.pool_expired += o.pool_expired;
        self.h2_connections += o.h2_connections;
        self.h2_streams += o.h2_streams;
        self.h2_guard_closes += o.h2_guard_closes;
        self.h2_upstream_connected += o.h2_upstream_connected;
        self.h2_upstream_multiplexed += o.h2_upstream_multiplexed;
        crate::cluster::breaker::merge_stats(&mut self.breakers, &o.breakers);
        crate::cluster::outlier::merge_stats(&mut self.outlier, &o.outlier);
        self.fault_delays_injected += o.fault_delays_injected;
        self.fault_aborts_injected += o.fault_aborts_injected;
        self.fault_active_delays += o.fault_active_delays;
        self.mirror_sent += o.mirror_sent;
        self.mirror_dropped += o.mirror_dropped;
        self.mirror_skipped += o.mirror_skipped;
        self.mirror_failed += o.mirror_failed;
        self.mirror_in_flight += o.mirror_in_flight;
        self.overload_cx_overflow += o.overload_cx_overflow;
        self.overload_rq_overflow += o.overload_rq_overflow;
        self.overload_rq_rejected += o.overload_rq_rejected;
        self.overload_stop_accepting_entered += o.overload_stop_accepting_entered;
        self.overload_reject_requests_entered += o.overload_reject_requests_entered;
        self.overload_stop_accepting += o.overload_stop_accepting;
        self.overload_reject_requests += o.overload_reject_requests;
        self.overload_active_requests += o.overload_active_requests;
        crate::cluster::health::merge_stats(&mut self.health, &o.health);
        self.retry_budget_exhausted += o.retry_budget_exhausted;
        self.tls.merge(&o.tls);
        for (a, b) in self.authz.iter_mut().zip(o.authz) {
            *a += b;
        }
        self.metrics.merge(&o.metrics);
        self.access_log_lines += o.access_log_lines;
        self.access_log_dropped += o.access_log_dropped;
        self.tap_events += o.tap_events;
        self.tap_dropped += o.tap_dropped;
        self.tracing_spans_dropped += o.tracing_spans_dropped;
        for (a, b) in self.tracing_exporter.iter_mut().zip(o.tracing_exporter) {
            *a = (*a).max(b);
        }
        crate::authz::refresh::merge_counts(&mut self.jwks, &o.jwks);
        crate::tls::runtime::merge_reload_counts(&mut self.tls_reloads, &o.tls_reloads);
    }
}
