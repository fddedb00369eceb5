//! Envoy-analogous operational stats, prefix `shardcar_`: per listener (`listener` label) the
//! downstream connections and requests by response class; per cluster (`cluster_name` label)
//! upstream requests by class and code, request time, retries, timeouts, connect failures,
//! and — read from the cluster's balancer when a snapshot is taken — connections opened,
//! pool reuse, circuit-breaker fullness and overflows, and ejected endpoints.

use super::histogram::{Buckets, Histogram};
use super::snapshot::{Kind, MetricsSnapshot, Value};
use super::table::Table;
use crate::ctx::Snapshot;
use crate::egress::{Blocked, Path};
use crate::telemetry::record::{Flags, Record};

const CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default, Clone)]
struct ListenerSeries {
    cx_total: u64,
    cx_destroy: u64,
    rq: [u64; 6],
    /// Egress blocks by `[path][reason]` (`egress::Path`, `egress::Blocked`).
    egress_blocked: [[u64; 2]; 2],
}

#[derive(Debug)]
struct ClusterSeries {
    rq_total: u64,
    rq_class: [u64; 6],
    /// (status, count), few distinct codes: a linear scan beats hashing.
    rq_code: Vec<(u16, u64)>,
    rq_time: Histogram,
    rq_retry: u64,
    rq_timeout: u64,
    cx_connect_fail: u64,
}

impl ClusterSeries {
    fn new() -> ClusterSeries {
        ClusterSeries {
            rq_total: 0,
            rq_class: [0; 6],
            rq_code: Vec::new(),
            rq_time: Histogram::new(Buckets::DurationMs),
            rq_retry: 0,
            rq_timeout: 0,
            cx_connect_fail: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct OpsTables {
    /// By listener index (the listener set is fixed for a process's life).
    listeners: Vec<ListenerSeries>,
    clusters: Table<ClusterSeries>,
}

impl OpsTables {
    fn listener(&mut self, idx: usize) -> &mut ListenerSeries {
        if idx >= self.listeners.len() {
            self.listeners.resize(idx + 1, ListenerSeries::default());
        }
        &mut self.listeners[idx]
    }

    pub fn accept(&mut self, idx: usize) {
        self.listener(idx).cx_total += 1;
    }

    pub fn close(&mut self, idx: usize) {
        self.listener(idx).cx_destroy += 1;
    }

    pub fn egress_blocked(&mut self, idx: usize, path: Path, why: Blocked) {
        self.listener(idx).egress_blocked[path as usize][why as usize] += 1;
    }

    fn cluster(&mut self, c: u16, snap: &Snapshot) -> &mut ClusterSeries {
        let key = u128::from(snap.generation as u16) | u128::from(c) << 16;
        self.clusters.get(
            key,
            || {
                let name = snap.config.clusters.get(c as usize);
                vec![name.map_or_else(|| "unknown".into(), |c| c.name.clone())]
            },
            ClusterSeries::new,
        )
    }

    pub fn request(&mut self, rec: &Record, snap: &Snapshot) {
        let class = rec.class();
        self.listener(rec.listener as usize).rq[class] += 1;
        let Some(c) = rec.cluster else { return };
        let s = self.cluster(c, snap);
        if rec.flags.0 & Flags::UF.0 != 0 {
            s.cx_connect_fail += 1;
        }
        if rec.flags.0 & Flags::UT.0 != 0 {
            s.rq_timeout += 1;
        }
        s.rq_retry += u64::from(rec.retries);
        // Sent upstream: an endpoint was picked or answered (not shed by the breaker, no
        // healthy host, or a filter).
        if rec.upstream_host.is_none() && rec.upstream_first_byte.is_none() {
            return;
        }
        s.rq_total += 1;
        s.rq_class[class] += 1;
        match s.rq_code.iter_mut().find(|(code, _)| *code == rec.status) {
            Some((_, n)) => *n += 1,
            None => s.rq_code.push((rec.status, 1)),
        }
        if rec.upstream_first_byte.is_some() {
            s.rq_time.record(rec.duration.as_micros() as u64);
        }
    }

    pub fn tcp_close(&mut self, rec: &Record, snap: &Snapshot) {
        let Some(c) = rec.cluster else { return };
        if rec.flags.0 & Flags::UF.0 != 0 {
            self.cluster(c, snap).cx_connect_fail += 1;
        }
    }

    pub fn snapshot(&self, snap: &Snapshot, out: &mut MetricsSnapshot) {
        self.listeners_into(snap, out);
        self.clusters_into(out);
        balancers_into(snap, out);
    }

    fn listeners_into(&self, snap: &Snapshot, out: &mut MetricsSnapshot) {
        const L: &[&str] = &["listener"];
        const LC: &[&str] = &["listener", "response_code_class"];
        let name = |i: usize| {
            snap.config
                .listeners
                .get(i)
                .map_or_else(|| format!("#{i}"), |l| l.name.clone())
        };
        for (i, s) in self.listeners.iter().enumerate() {
            let n = name(i);
            out.family(
                "shardcar_listener_downstream_cx",
                "Downstream connections accepted.",
                Kind::Counter,
                L,
            )
            .int(vec![n.clone()], s.cx_total);
            out.family(
                "shardcar_listener_downstream_cx_destroy",
                "Downstream connections closed.",
                Kind::Counter,
                L,
            )
            .int(vec![n.clone()], s.cx_destroy);
            out.family(
                "shardcar_listener_downstream_cx_active",
                "Downstream connections open.",
                Kind::Gauge,
                L,
            )
            .int(vec![n.clone()], s.cx_total.saturating_sub(s.cx_destroy));
            let rq = out.family(
                "shardcar_listener_downstream_rq",
                "Downstream requests by response class.",
                Kind::Counter,
                LC,
            );
            for (c, v) in s.rq.iter().enumerate().filter(|(_, v)| **v > 0) {
                rq.int(vec![n.clone(), CLASSES[c].into()], *v);
            }
            if s.egress_blocked.iter().flatten().any(|v| *v > 0) {
                let eb = out.family(
                    "shardcar_listener_egress_blocked",
                    "Outbound requests (502 EB) and connections (reset) the registry_only policy refused.",
                    Kind::Counter,
                    &["listener", "protocol", "reason"],
                );
                for (p, path) in ["http", "tcp"].into_iter().enumerate() {
                    for (r, why) in [Blocked::NotRegistered, Blocked::Metadata]
                        .into_iter()
                        .enumerate()
                    {
                        eb.int(
                            vec![n.clone(), path.into(), why.label().into()],
                            s.egress_blocked[p][r],
                        );
                    }
                }
            }
        }
    }

    fn clusters_into(&self, out: &mut MetricsSnapshot) {
        const C: &[&str] = &["cluster_name"];
        for (l, s) in self.clusters.iter() {
            let mut int =
                |name, help, v| out.family(name, help, Kind::Counter, C).int(l.to_vec(), v);
            int(
                "shardcar_cluster_upstream_rq",
                "Requests sent upstream.",
                s.rq_total,
            );
            int(
                "shardcar_cluster_upstream_rq_retry",
                "Retries sent upstream.",
                s.rq_retry,
            );
            int(
                "shardcar_cluster_upstream_rq_timeout",
                "Requests answered 504 UT (route or per-try timeout).",
                s.rq_timeout,
            );
            int(
                "shardcar_cluster_upstream_cx_connect_fail",
                "Requests or TCP connections that failed to connect upstream (UF).",
                s.cx_connect_fail,
            );
            let xx = out.family(
                "shardcar_cluster_upstream_rq_xx",
                "Upstream requests by response class.",
                Kind::Counter,
                &["cluster_name", "response_code_class"],
            );
            for (c, v) in s.rq_class.iter().enumerate().filter(|(_, v)| **v > 0) {
                xx.int(vec![l[0].clone(), CLASSES[c].into()], *v);
            }
            let code = out.family(
                "shardcar_cluster_upstream_rq_code",
                "Upstream requests by response code.",
                Kind::Counter,
                &["cluster_name", "response_code"],
            );
            for (c, v) in &s.rq_code {
                code.int(vec![l[0].clone(), c.to_string()], *v);
            }
            out.family(
                "shardcar_cluster_upstream_rq_time",
                "Upstream request time in milliseconds (start to response complete).",
                Kind::Histogram,
                C,
            )
            .add(l.to_vec(), Value::Hist(s.rq_time.snapshot()));
        }
    }
}

/// What the current snapshot's balancers count themselves (pools, breaker, ejections).
fn balancers_into(snap: &Snapshot, out: &mut MetricsSnapshot) {
    const C: &[&str] = &["cluster_name"];
    for b in snap.balancers() {
        let name = vec![b.cluster().name.clone()];
        let mut put = |fam, help, kind, v| out.family(fam, help, kind, C).int(name.clone(), v);
        put(
            "shardcar_cluster_upstream_cx",
            "Upstream connections opened (HTTP/1 and HTTP/2).",
            Kind::Counter,
            b.pools.connected.get() + b.h2.connected.get(),
        );
        put(
            "shardcar_cluster_upstream_cx_pool_reused",
            "Upstream HTTP/1 requests on a pooled connection.",
            Kind::Counter,
            b.pools.reused.get(),
        );
        put(
            "shardcar_cluster_upstream_rq_multiplexed",
            "Upstream streams on a shared HTTP/2 connection.",
            Kind::Counter,
            b.h2.multiplexed.get(),
        );
        put(
            "shardcar_cluster_outlier_detection_ejections_active",
            "Endpoints ejected now.",
            Kind::Gauge,
            b.ejected_now() as u64,
        );
        if let Some(bs) = b.breaker.stats(&b.cluster().name) {
            put(
                "shardcar_cluster_upstream_rq_pending_overflow",
                "Requests shed by the circuit breaker (503 UO: max_requests or max_pending_requests).",
                Kind::Counter,
                bs.overflows + bs.pending_overflows,
            );
            put(
                "shardcar_cluster_upstream_cx_overflow",
                "Upstream connections not opened at the max_connections breaker.",
                Kind::Counter,
                bs.cx_overflows,
            );
            put(
                "shardcar_cluster_circuit_breakers_cx_active",
                "Open upstream connections (HTTP/1, HTTP/2, L4).",
                Kind::Gauge,
                bs.active_connections,
            );
            put(
                "shardcar_cluster_circuit_breakers_cx_max",
                "The circuit breaker's max_connections (sum of the shards' shares; 0 = none).",
                Kind::Gauge,
                bs.max_connections,
            );
            put(
                "shardcar_cluster_circuit_breakers_rq_pending_active",
                "Requests waiting for an upstream connection.",
                Kind::Gauge,
                bs.pending_requests,
            );
            put(
                "shardcar_cluster_circuit_breakers_rq_pending_max",
                "The circuit breaker's max_pending_requests (sum of the shards' shares; 0 = none).",
                Kind::Gauge,
                bs.max_pending_requests,
            );
            put(
                "shardcar_cluster_circuit_breakers_rq_active",
                "Requests holding a circuit-breaker slot.",
                Kind::Gauge,
                bs.active_requests,
            );
            put(
                "shardcar_cluster_circuit_breakers_rq_max",
                "The circuit breaker's max_requests (sum of the shards' shares).",
                Kind::Gauge,
                bs.max_requests,
            );
        }
    }
}
