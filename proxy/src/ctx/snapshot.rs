//! A shard's view of one config generation: the immutable `Arc<Config>` every shard shares, plus
//! what this shard derives from it and owns — its own clone of each listener's route table (so
//! regex match caches are never shared across threads) and its load-balancer state per cluster.
//!
//! A cluster's balancer is built on its first use on this shard ([`Snapshot::balancer`]): an
//! xDS config carries thousands of clusters, most of which a given shard never sends to, and
//! an unbuilt one costs a pointer. Stats report an unbuilt cluster as a fresh balancer would.
//!
//! State that must survive a reload is keyed by name: when a new config arrives, a cluster whose
//! name and settings are unchanged keeps its balancer (round-robin cursor, in-flight counts,
//! ejections, idle pooled connections); a changed or new cluster starts fresh (unbuilt).

use std::cell::{OnceCell, RefCell};
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
    /// Per cluster (indexed like `config.clusters`), built on first use ([`Self::balancer`]).
    clusters: Vec<OnceCell<Rc<Balancer>>>,
    /// This shard's index (seeds its balancers).
    pub shard: usize,
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
            .map(|p| p.built().map(|b| (b.cluster().name.as_str(), b)).collect())
            .unwrap_or_default();
        let clusters = config
            .clusters
            .iter()
            .map(|c| {
                let cell = OnceCell::new();
                if let Some(b) = by_name.get(c.name.as_str()).filter(|b| b.same_cluster(c)) {
                    let _ = cell.set(Rc::clone(b));
                }
                cell
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
            shard,
            shards,
            config,
        }
    }

    /// Cluster `i`'s balancer on this shard, built now if this is its first use.
    pub fn balancer(&self, i: usize) -> &Rc<Balancer> {
        self.clusters[i].get_or_init(|| self.fresh(i))
    }

    /// The balancers built so far (those that hold state: pools, counts, ejections).
    pub fn built(&self) -> impl Iterator<Item = &Rc<Balancer>> {
        self.clusters.iter().filter_map(OnceCell::get)
    }

    /// Every cluster's balancer for reporting: the built one, or for a cluster not used yet
    /// on this shard a fresh one (what it would report: zeros, thresholds), not kept.
    pub fn balancers(&self) -> impl Iterator<Item = Rc<Balancer>> + '_ {
        (0..self.clusters.len()).map(|i| {
            self.clusters[i]
                .get()
                .cloned()
                .unwrap_or_else(|| self.fresh(i))
        })
    }

    /// The balancer of the cluster called `name`, built if need be.
    pub fn balancer_named(&self, name: &str) -> Option<&Rc<Balancer>> {
        let i = self.config.clusters.iter().position(|c| c.name == name)?;
        Some(self.balancer(i))
    }

    fn fresh(&self, i: usize) -> Rc<Balancer> {
        Rc::new(Balancer::new(
            self.config.clusters[i].clone(),
            0x9E37_79B9_7F4A_7C15 ^ (self.shard as u64 + 1),
            self.shards,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "\
listeners:
  - name: l
    address: 127.0.0.1:0
    cluster: a
clusters:
  - name: a
    endpoints: [\"127.0.0.1:80\", \"127.0.0.1:81\"]
  - name: b
    endpoints: [\"127.0.0.1:82\"]
";

    #[test]
    fn balancers_are_built_on_first_use_and_carried_over_built() {
        let config = Arc::new(Config::from_yaml(TWO).unwrap());
        let s = Snapshot::build(config.clone(), None, 0, 2);
        assert_eq!(s.built().count(), 0, "nothing built before first use");
        // Reporting shows both clusters without building either.
        let names: Vec<String> = s.balancers().map(|b| b.cluster().name.clone()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(s.built().count(), 0);
        let a = s.balancer(0).clone();
        assert!(Rc::ptr_eq(&a, s.balancer(0)), "built once");
        assert_eq!(a.pick().unwrap().0.addr.port(), 80);
        assert_eq!(s.built().count(), 1);
        // A reload of the same settings keeps the built balancer (its cursor moved on) and
        // leaves the unused cluster unbuilt.
        let next = Snapshot::build(config, Some(&s), 0, 2);
        assert_eq!(next.built().count(), 1);
        assert!(Rc::ptr_eq(&a, next.balancer(0)));
        assert_eq!(next.balancer(0).pick().unwrap().0.addr.port(), 81);
        assert_eq!(next.balancer_named("b").unwrap().cluster().name, "b");
        assert_eq!(next.built().count(), 2);
    }
}
