//! A shard's view of one config generation: the immutable `Arc<Config>` every shard shares, plus
//! what this shard derives from it and owns — its own clone of each listener's route table (so
//! regex match caches are never shared across threads) and its load-balancer state per cluster.
//!
//! State that must survive a reload is keyed by name: when a new config arrives, a cluster whose
//! name and settings are unchanged keeps its balancer (round-robin cursor, in-flight counts,
//! ejections, idle pooled connections); a changed or new cluster starts fresh.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::cluster::Balancer;
use crate::config::Config;
use crate::route::RouteTable;

#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    /// Counts swaps on this shard: 0 for the config the shard started with.
    pub generation: u64,
    /// Per listener (indexed like `config.listeners`); `None` for tcp listeners.
    pub routes: Vec<Option<RouteTable>>,
    /// Per cluster (indexed like `config.clusters`).
    pub clusters: Vec<Rc<Balancer>>,
    /// Shards in the process (global thresholds are divided by it).
    pub shards: usize,
    /// Per listener: this shard's view of its TLS server config (`None` without `tls:`).
    pub listener_tls: Vec<Option<crate::tls::live::LocalLive<rustls::ServerConfig>>>,
    /// Per listener: this shard's access-log sinks (buffers and writer queues).
    pub access_logs: Vec<Vec<crate::telemetry::access_log::sink::ShardSink>>,
    /// Access-log line counters, carried from snapshot to snapshot.
    pub log_counters: Rc<crate::telemetry::access_log::sink::LogCounters>,
    /// This shard's span buffer, when the config has a `tracing:` block.
    pub spans: Option<crate::telemetry::otlp::shard::ShardSpans>,
    /// Span counters, carried from snapshot to snapshot.
    pub span_counters: Rc<crate::telemetry::otlp::shard::SpanCounters>,
}

impl Snapshot {
    /// Builds this shard's snapshot of `config`, reusing `prev`'s balancers by cluster name when
    /// the cluster's settings are unchanged.
    pub fn build(
        config: Arc<Config>,
        prev: Option<&Snapshot>,
        shard: usize,
        shards: usize,
    ) -> Snapshot {
        // By name in a map: an xDS config carries thousands of clusters.
        let by_name: std::collections::HashMap<&str, &Rc<Balancer>> = prev
            .map(|p| {
                p.clusters
                    .iter()
                    .map(|b| (b.cluster().name.as_str(), b))
                    .collect()
            })
            .unwrap_or_default();
        let clusters = config
            .clusters
            .iter()
            .map(|c| {
                by_name
                    .get(c.name.as_str())
                    .filter(|b| b.same_cluster(c))
                    .map(|b| Rc::clone(b))
                    .unwrap_or_else(|| {
                        Rc::new(Balancer::new(
                            c.clone(),
                            0x9E37_79B9_7F4A_7C15 ^ (shard as u64 + 1),
                            shards,
                        ))
                    })
            })
            .collect();
        let log_counters = prev.map(|p| p.log_counters.clone()).unwrap_or_default();
        let span_counters = prev.map(|p| p.span_counters.clone()).unwrap_or_default();
        Snapshot {
            spans: crate::telemetry::otlp::shard::build(&config, &span_counters),
            span_counters,
            access_logs: crate::telemetry::access_log::sink::build(&config, &log_counters),
            log_counters,
            routes: config
                .listeners
                .iter()
                .map(|l| l.http.as_ref().map(|h| h.routes.clone()))
                .collect(),
            listener_tls: config
                .listeners
                .iter()
                .map(|l| {
                    l.tls
                        .as_ref()
                        .map(|t| crate::tls::live::LocalLive::new(&t.live))
                })
                .collect(),
            generation: prev.map_or(0, |p| p.generation + 1),
            clusters,
            shards,
            config,
        }
    }

    /// Index of the listener called `name`.
    pub fn listener_index(&self, name: &str) -> Option<usize> {
        self.config.listeners.iter().position(|l| l.name == name)
    }
}

/// The shard's current snapshot. Readers clone the `Rc` (one non-atomic increment).
#[derive(Debug)]
pub struct SnapshotCell(RefCell<Rc<Snapshot>>);

impl SnapshotCell {
    pub fn new(s: Snapshot) -> SnapshotCell {
        SnapshotCell(RefCell::new(Rc::new(s)))
    }

    pub fn current(&self) -> Rc<Snapshot> {
        self.0.borrow().clone()
    }

    /// Installs a new config generation; connections and requests already running keep theirs.
    pub fn swap(&self, config: Arc<Config>, shard: usize) -> Rc<Snapshot> {
        let prev = self.current();
        let next = Rc::new(Snapshot::build(config, Some(&prev), shard, prev.shards));
        *self.0.borrow_mut() = next.clone();
        next
    }
}
