//! One shard: a monoio runtime on one pinned thread that owns its listening sockets, its state
//! per layer and every connection it accepts. Nothing here is shared with other shards; the
//! only cross-thread input is the [`command`] channel (`Bind`, `Swap`, `Drain`,
//! `StatsSnapshot`). Its accept loops are kept by listener name in [`listeners`], so a swap can
//! add, remove and rebind listeners.
//!
//! State is split by layer: [`Services`] (snapshot, sweeper, randomness, own addresses — what
//! every layer may use), [`L4State`] (copy buffers, pipes) and [`H1State`] (scratch buffers),
//! plus the shard's own connection accounting. The shard hands them down; no layer imports the
//! shard.

mod accept;
pub mod command;
mod listeners;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use accept::ListenerSlot;
pub use command::{
    ClusterView, CommandReceiver, CommandSender, EndpointView, ShardCommand, ShardStats, ShardView,
};
pub use listeners::AcceptSet;

use crate::config::Config;
use crate::ctx::{OwnAddrs, Rng, Services, Snapshot, SnapshotCell, Sweeper};
use crate::http1::H1State;
use crate::http2::H2State;
use crate::l4::L4State;

/// When draining, how long an idle keepalive connection is left open before it is closed: a
/// client that sends its next request meanwhile gets the answer with `connection: close`
/// instead of racing the close (a request on the wire when the server closes is lost).
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// How often idle pooled upstream connections past their `idle_timeout` are closed.
const POOL_EVICT_EVERY: Duration = Duration::from_secs(1);

/// Everything one shard owns. `!Send` by design.
#[derive(Debug)]
pub struct Shard {
    pub svc: Services,
    pub l4: L4State,
    pub h1: H1State,
    pub h2: H2State,
    /// The accept loops, by listener name.
    pub accept: AcceptSet,
    /// Connections open on this shard.
    pub active: Cell<usize>,
    pub accepted: Cell<u64>,
}

/// The shortest timeout the sweeper must resolve: idle timeouts and HTTP head/first-byte ones.
fn shortest_timeout(config: &Config) -> Option<Duration> {
    config
        .listeners
        .iter()
        .flat_map(|l| {
            let http = l.http.as_deref();
            [
                l.idle_timeout,
                http.map(|h| h.request_headers_timeout),
                http.map(|h| h.first_byte_timeout),
            ]
        })
        .flatten()
        .min()
}

impl Shard {
    /// Builds a shard's state for `config`; `own` are the addresses its listeners are bound to.
    pub fn new(
        id: usize,
        shards: usize,
        config: Arc<Config>,
        own: Vec<std::net::SocketAddr>,
    ) -> std::io::Result<Shard> {
        let l4 = L4State::new(max_connections())?;
        let overload = crate::overload::OverloadState::default();
        overload.configure(&config.overload, shards);
        let sampler = crate::telemetry::otlp::sampler_for(&config);
        let shard = Shard {
            svc: Services {
                id,
                sweeper: Rc::new(Sweeper::new(shortest_timeout(&config))),
                snapshots: SnapshotCell::new(Snapshot::build(config, None, id, shards)),
                rng: Rng::for_shard(id),
                draining: Cell::new(false),
                own: OwnAddrs::new(own),
                faults: Default::default(),
                mirrors: Default::default(),
                overload,
                authz: Default::default(),
                telemetry: Default::default(),
            },
            l4,
            h1: H1State::default(),
            h2: H2State::default(),
            accept: AcceptSet::default(),
            active: Cell::new(0),
            accepted: Cell::new(0),
        };
        shard.svc.telemetry.set_sampler(sampler);
        Ok(shard)
    }

    fn stats(&self) -> ShardStats {
        let snap = self.svc.snapshots.current();
        let sw = &self.svc.sweeper;
        let mut s = ShardStats {
            shard: self.svc.id,
            generation: snap.generation,
            active_connections: self.active.get(),
            accepted: self.accepted.get(),
            accept_paused: self.accept.counts().0,
            accept_errors: self.accept.counts().1,
            parked: sw.parked_total.get(),
            read_buffer_bytes: sw.held_read_bytes(),
            copy_buffers_in_use: self.l4.bufs.in_use() as u64,
            idle_timeouts: sw.idle_aborts.get(),
            deadline_timeouts: sw.deadline_aborts.get(),
            ..ShardStats::default()
        };
        for b in snap.balancers() {
            s.pool_reused += b.pools.reused.get();
            s.pool_connected += b.pools.connected.get();
            s.pool_dropped_dead += b.pools.dropped_dead.get();
            s.pool_expired += b.pools.expired.get();
            s.h2_upstream_connected += b.h2.connected.get();
            s.h2_upstream_multiplexed += b.h2.multiplexed.get();
            s.breakers.extend(b.breaker.stats(&b.cluster().name));
            s.retry_budget_exhausted += b.budget.exhausted.get();
            if let crate::config::ClusterKind::Static(_) = b.cluster().kind {
                s.outlier.push(b.outlier.stats(&b.cluster().name));
                s.health.push(crate::cluster::health::HealthStats {
                    cluster: b.cluster().name.clone(),
                    unhealthy: u64::from(b.health.down_count()),
                    lb_healthy_panic: b.health.panics.get(),
                });
            }
        }
        let f = &self.svc.faults;
        s.fault_delays_injected = f.delays_injected.get();
        s.fault_aborts_injected = f.aborts_injected.get();
        s.fault_active_delays = f.active_delays.get();
        let m = &self.svc.mirrors;
        s.mirror_sent = m.sent.get();
        s.mirror_dropped = m.dropped.get();
        s.mirror_skipped = m.skipped.get();
        s.mirror_failed = m.failed.get();
        s.mirror_in_flight = u64::from(m.in_flight.get());
        let o = &self.svc.overload;
        s.overload_cx_overflow = o.cx_overflow.get();
        s.overload_rq_overflow = o.rq_overflow.get();
        s.overload_rq_rejected = o.rq_rejected.get();
        s.overload_stop_accepting_entered = o.stop_accepting_entered.get();
        s.overload_reject_requests_entered = o.reject_requests_entered.get();
        s.overload_stop_accepting = u64::from(o.actions().stop_accepting);
        s.overload_reject_requests = u64::from(o.actions().reject_requests);
        s.overload_active_requests = u64::from(o.active_requests());
        s.h2_connections = self.h2.connections.get();
        s.h2_streams = self.h2.streams.get();
        s.h2_guard_closes = self.h2.guard_closes.get();
        s.tls = crate::tls::stats::snapshot();
        let a = &self.svc.authz;
        s.authz = [
            a.allowed.get(),
            a.denied.get(),
            a.tcp_allowed.get(),
            a.tcp_denied.get(),
            a.jwt_rejected.get(),
        ];
        s.metrics = self.svc.telemetry.metrics.snapshot(&snap);
        let mut m = std::mem::take(&mut s.metrics);
        resilience_metrics(&s, &mut m);
        s.metrics = m;
        s.access_log_lines = snap.log_counters.lines.get();
        s.access_log_dropped = snap.log_counters.dropped.get();
        s.tracing_spans_dropped = snap.span_counters.dropped.get();
        s.tracing_exporter = snap
            .spans
            .as_ref()
            .map_or([0; 3], |sp| sp.export_counters());
        s.jwks = crate::authz::refresh::counts(&snap.config);
        s.tls_reloads = crate::tls::runtime::reload_counts(&snap.config);
        s.tap_events = self.svc.telemetry.taps.events.get();
        s.tap_dropped = self.svc.telemetry.taps.dropped.get();
        s
    }

    /// What this shard serves now (listeners accepting, clusters' endpoints).
    fn view(&self) -> ShardView {
        let snap = self.svc.snapshots.current();
        ShardView {
            shard: self.svc.id,
            listeners: self.accept.bound(),
            clusters: snap
                .balancers()
                .map(|b| ClusterView {
                    name: b.cluster().name.clone(),
                    original_dst: matches!(
                        b.cluster().kind,
                        crate::config::ClusterKind::OriginalDst { .. }
                    ),
                    endpoints: b.endpoint_views(),
                })
                .collect(),
        }
    }

    /// `POST /drain_listeners`: stop accepting everywhere; `graceful` also drains connections.
    fn drain_listeners(&self, graceful: bool) {
        self.accept.close_all();
        tracing::info!(
            shard = self.svc.id,
            graceful,
            "listeners drained: no new connections"
        );
        if graceful && !self.svc.draining.replace(true) {
            let sweeper = self.svc.sweeper.clone();
            monoio::spawn(async move {
                monoio::time::sleep(DRAIN_IDLE_GRACE).await;
                sweeper.abort_between_requests();
            });
        }
    }

    /// Applies the health checker's verdicts to the current snapshot's balancer of that cluster.
    fn health(&self, h: &crate::health::HealthUpdate) {
        let snap = self.svc.snapshots.current();
        if let Some(b) = snap.balancer_named(&h.cluster) {
            b.health.apply(&h.healthy);
        }
    }

    /// Installs a DNS cluster's new endpoints: a snapshot in which only its balancer is new
    /// (running requests finish on the old one, whose pools then close).
    fn endpoints(&self, u: &crate::discovery::EndpointsUpdate) {
        let snap = self.svc.snapshots.current();
        if let Some(next) = crate::discovery::apply(&snap.config, u) {
            let snap = self.svc.snapshots.swap(Arc::new(next), self.svc.id);
            tracing::debug!(shard = self.svc.id, cluster = %u.cluster, generation = snap.generation, "dns endpoints installed");
        }
    }

    fn swap(self: &Rc<Self>, config: Arc<Config>) {
        self.svc
            .overload
            .configure(&config.overload, self.svc.snapshots.current().shards);
        self.svc
            .sweeper
            .set_shortest_timeout(shortest_timeout(&config));
        self.svc
            .telemetry
            .set_sampler(crate::telemetry::otlp::sampler_for(&config));
        let snap = self.svc.snapshots.swap(config.clone(), self.svc.id);
        self.accept.reconcile(self, &config);
        tracing::info!(
            shard = self.svc.id,
            generation = snap.generation,
            "config swapped"
        );
    }
}

/// The mirroring and overload-manager figures `stats` just read, as Prometheus families
/// (`shardcar_mirror_*`, `shardcar_overload_*`; counters get `_total` on exposition; gauges
/// are summed over shards when merged).
fn resilience_metrics(s: &ShardStats, m: &mut crate::telemetry::metrics::MetricsSnapshot) {
    use crate::telemetry::metrics::Kind::{self, Counter, Gauge};
    let series: [(&'static str, &'static str, Kind, u64); 13] = [
        (
            "shardcar_mirror_sent",
            "Mirrored copies answered by the shadow cluster.",
            Counter,
            s.mirror_sent,
        ),
        (
            "shardcar_mirror_dropped",
            "Mirrored copies dropped at the in-flight bound (slow shadow).",
            Counter,
            s.mirror_dropped,
        ),
        (
            "shardcar_mirror_skipped",
            "Requests chosen for mirroring whose body streamed (not copied).",
            Counter,
            s.mirror_skipped,
        ),
        (
            "shardcar_mirror_failed",
            "Mirrored copies that failed or timed out.",
            Counter,
            s.mirror_failed,
        ),
        (
            "shardcar_mirror_in_flight",
            "Mirrored copies out now.",
            Gauge,
            s.mirror_in_flight,
        ),
        (
            "shardcar_overload_downstream_cx_overflow",
            "Connections closed at accept over max_downstream_connections.",
            Counter,
            s.overload_cx_overflow,
        ),
        (
            "shardcar_overload_rq_overflow",
            "Requests answered 503 OM over max_active_requests.",
            Counter,
            s.overload_rq_overflow,
        ),
        (
            "shardcar_overload_rq_rejected",
            "Requests answered 503 OM above rss_reject_requests.",
            Counter,
            s.overload_rq_rejected,
        ),
        (
            "shardcar_overload_stop_accepting_entered",
            "Times accepting stopped for rss_stop_accepting.",
            Counter,
            s.overload_stop_accepting_entered,
        ),
        (
            "shardcar_overload_reject_requests_entered",
            "Times request rejection started for rss_reject_requests.",
            Counter,
            s.overload_reject_requests_entered,
        ),
        (
            "shardcar_overload_stop_accepting",
            "Shards not accepting because of the RSS watermark.",
            Gauge,
            s.overload_stop_accepting,
        ),
        (
            "shardcar_overload_reject_requests",
            "Shards rejecting requests because of the RSS watermark.",
            Gauge,
            s.overload_reject_requests,
        ),
        (
            "shardcar_overload_active_requests",
            "Requests in progress (max_active_requests).",
            Gauge,
            s.overload_active_requests,
        ),
    ];
    for (name, help, kind, v) in series {
        m.family(name, help, kind, &[]).int(Vec::new(), v);
    }
}

/// Upper bound on connections this process can hold: half the fd limit (two fds each).
fn max_connections() -> u32 {
    (crate::sys::fd_limit().unwrap_or(65_536) / 2).clamp(1024, 1 << 20) as u32
}

/// Runs a shard: reports on `ready` whether it started (the process exits with the reason if
/// not), serves until a `Drain` command (or the control side going away), then drains open
/// connections up to the config's `drain_timeout` and returns.
pub async fn run(
    id: usize,
    shards: usize,
    config: Arc<Config>,
    sockets: Vec<std::net::TcpListener>,
    mut commands: CommandReceiver,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let own = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
    let shard = match Shard::new(id, shards, config.clone(), own) {
        Ok(s) => Rc::new(s),
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: cannot map copy buffers: {e}")));
            return;
        }
    };
    for (l, socket) in config.listeners.iter().zip(sockets) {
        if let Err(e) = shard
            .accept
            .start(&shard, &l.name, l.max_connections, socket)
        {
            let _ = ready.send(Err(format!(
                "shard {id}: cannot register listener {:?}: {e}",
                l.name
            )));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    monoio::spawn(shard.svc.sweeper.clone().run());
    monoio::spawn(evict_pools(shard.clone()));
    monoio::spawn(flush_logs(shard.clone()));
    while let Some(cmd) = commands.recv().await {
        match cmd {
            ShardCommand::Tap(t) => shard.svc.telemetry.taps.attach(t, shards),
            ShardCommand::Untap(id) => shard.svc.telemetry.taps.detach(id),
            ShardCommand::Bind(sockets) => shard.accept.stage(sockets),
            ShardCommand::Swap(c) => shard.swap(c),
            ShardCommand::Health(h) => shard.health(&h),
            ShardCommand::Endpoints(u) => shard.endpoints(&u),
            ShardCommand::Overload(a) => shard.svc.overload.apply(a),
            ShardCommand::StatsSnapshot(reply) => {
                let _ = reply.send(shard.stats());
            }
            ShardCommand::Barrier(reply) => {
                let _ = reply.send(shard.svc.snapshots.current().generation);
            }
            ShardCommand::Inspect(reply) => {
                let _ = reply.send(shard.view());
            }
            ShardCommand::DrainListeners { graceful } => shard.drain_listeners(graceful),
            ShardCommand::Drain => break,
        }
    }
    // Drain, or the control side is gone: stop accepting either way, and wait until every
    // listening socket is closed before draining, so none completes handshakes nobody serves.
    shard.accept.stop_all().await;
    drain(&shard, commands).await;
    let snap = shard.svc.snapshots.current();
    for sinks in &snap.access_logs {
        sinks.iter().for_each(|s| s.flush());
    }
    if let Some(s) = &snap.spans {
        s.flush();
    }
}

/// Closes expired idle upstream connections of the current snapshot's clusters.
async fn evict_pools(shard: Rc<Shard>) {
    loop {
        monoio::time::sleep(POOL_EVICT_EVERY).await;
        for b in shard.svc.snapshots.current().built() {
            b.pools.evict_expired();
        }
    }
}

/// Hands buffered access-log lines of the current snapshot to their writers every tick.
async fn flush_logs(shard: Rc<Shard>) {
    loop {
        monoio::time::sleep(crate::telemetry::access_log::sink::FLUSH_EVERY).await;
        let snap = shard.svc.snapshots.current();
        for sinks in &snap.access_logs {
            sinks.iter().for_each(|s| s.flush());
        }
        if let Some(s) = &snap.spans {
            s.flush();
        }
    }
}

/// Waits for open connections up to `drain_timeout`, still answering stats requests.
async fn drain(shard: &Shard, mut commands: CommandReceiver) {
    let timeout = shard.svc.snapshots.current().config.drain_timeout;
    let deadline = Instant::now() + timeout;
    shard.svc.draining.set(true);
    let idle_close_at = Instant::now() + DRAIN_IDLE_GRACE.min(timeout);
    let mut idle_closed = false;
    if shard.active.get() > 0 {
        tracing::info!(
            shard = shard.svc.id,
            open = shard.active.get(),
            ?timeout,
            "draining connections"
        );
    }
    while shard.active.get() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(
                shard = shard.svc.id,
                open = shard.active.get(),
                "drain timeout; closing remaining connections"
            );
            return;
        }
        if !idle_closed && Instant::now() >= idle_close_at {
            shard.svc.sweeper.abort_between_requests();
            idle_closed = true;
        }
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                ShardCommand::StatsSnapshot(reply) => {
                    let _ = reply.send(shard.stats());
                }
                ShardCommand::Inspect(reply) => {
                    let _ = reply.send(shard.view());
                }
                _ => {}
            }
        }
        let snap = shard.svc.snapshots.current();
        for sinks in &snap.access_logs {
            sinks.iter().for_each(|s| s.flush());
        }
        if let Some(s) = &snap.spans {
            s.flush();
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A shard with the embedded default config and no sockets, for unit tests of connection code.
#[cfg(test)]
pub fn test_shard() -> Shard {
    Shard::new(0, 1, Arc::new(Config::embedded_default()), Vec::new()).unwrap()
}

#[cfg(test)]
impl Shard {
    /// A connection context on listener `idx` from `peer`.
    pub fn conn_ctx(&self, idx: usize, peer: std::net::SocketAddr) -> crate::ctx::ConnCtx {
        crate::ctx::ConnCtx {
            peer: crate::ctx::PeerAddr(peer),
            local: crate::ctx::LocalAddr(peer),
            orig_dst: None,
            listener: idx,
            snapshot: self.svc.snapshots.current(),
            tls: None,
        }
    }
}
