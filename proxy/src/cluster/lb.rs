//! Per-shard load balancing over a static endpoint list.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::outlier::{Outcome, Outlier};
use super::{H2Pool, Pools};

use crate::config::{Cluster, ClusterKind, Endpoint, LbPolicy};

/// One shard's balancer for one cluster.
#[derive(Debug)]
pub struct Balancer {
    cluster: Arc<Cluster>,
    cursor: Cell<usize>,
    in_flight: Rc<[Cell<u32>]>,
    rng: Cell<u64>,
    /// Idle upstream connections (HTTP/1).
    pub pools: Pools,
    /// Shared multiplexed connections (HTTP/2 clusters).
    pub h2: H2Pool,
    /// Circuit breaker (this shard's share of the cluster's thresholds).
    pub breaker: super::Breaker,
    /// Passive health (outlier detection), this shard's view.
    pub outlier: Outlier,
    /// Active health, as the health checker last reported it.
    pub health: super::health::ActiveHealth,
    /// Retry budget (this shard's window).
    pub budget: super::budget::RetryBudget,
    /// This shard's view of the cluster's TLS client config (`tls:` block), if any.
    pub tls: Option<crate::tls::live::LocalLive<rustls::ClientConfig>>,
    /// `protocol: auto`: what ALPN chose on this shard's first connection.
    pub learned: Cell<Option<crate::config::UpstreamProtocol>>,
}

/// Marks a request/connection in flight on an endpoint until dropped.
#[derive(Debug)]
pub struct InFlight {
    counts: Rc<[Cell<u32>]>,
    idx: usize,
    /// The circuit-breaker slot this request holds, released with it.
    admitted: Option<super::Admitted>,
}

impl InFlight {
    /// The endpoint (index in the cluster) this request went to.
    pub fn endpoint(&self) -> usize {
        self.idx
    }

    /// Ties a circuit-breaker slot to this request's lifetime.
    pub fn hold(mut self, slot: super::Admitted) -> InFlight {
        self.admitted = Some(slot);
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.counts[self.idx];
        c.set(c.get().saturating_sub(1));
    }
}

impl Balancer {
    pub fn new(cluster: Arc<Cluster>, seed: u64, shards: usize) -> Balancer {
        let n = match &cluster.kind {
            ClusterKind::Static(eps) => eps.len(),
            ClusterKind::OriginalDst { .. } => 0,
        };
        Balancer {
            learned: Cell::new(None),
            tls: cluster
                .tls
                .as_ref()
                .map(|t| crate::tls::live::LocalLive::new(&t.live)),
            pools: Pools::new(cluster.pool, n),
            h2: H2Pool::new(n),
            breaker: super::Breaker::new(cluster.breakers.max_requests, shards)
                .with_retries(cluster.breakers.max_retries, shards)
                .with_connections(
                    cluster.breakers.max_connections,
                    cluster.breakers.max_pending_requests,
                    shards,
                ),
            outlier: Outlier::new(cluster.outlier, n),
            health: super::health::ActiveHealth::new(n),
            budget: super::budget::RetryBudget::new(cluster.retry_budget, shards),
            cluster,
            cursor: Cell::new(0),
            in_flight: (0..n).map(|_| Cell::new(0)).collect(),
            rng: Cell::new(seed | 1),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Whether `c` is this balancer's cluster unchanged (same `Arc`, or equal settings).
    pub fn same_cluster(&self, c: &Arc<Cluster>) -> bool {
        Arc::ptr_eq(&self.cluster, c) || *self.cluster == **c
    }

    /// xorshift64*: cheap, per-shard, good enough to pick two endpoints.
    fn next_random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Picks an endpoint of a static cluster; `None` for an `original_dst` cluster.
    pub fn pick(&self) -> Option<(&Endpoint, InFlight)> {
        let ClusterKind::Static(eps) = &self.cluster.kind else {
            return None;
        };
        if eps.is_empty() {
            return None; // a DNS cluster whose names resolve to nothing (yet)
        }
        let idx = self.choose(eps.len());
        Some((&eps[idx], self.mark_in_flight(idx)))
    }

    /// Like [`pick`](Self::pick) but skipping endpoints ejected by outlier detection or failing
    /// active health checks — unless fewer than `healthy_panic_threshold` percent are left, then
    /// over all of them (panic mode, `cluster::health`); `None` when none is available and panic
    /// mode is off (HTTP answers 503 `UH`). Returns the endpoint index for pooling and health reports.
    pub fn pick_healthy(&self) -> Option<(usize, &Endpoint, InFlight)> {
        self.pick_avoiding(None)
    }

    /// [`pick_healthy`](Self::pick_healthy) for a retry: another endpoint than `avoid` (the one
    /// the previous try went to) when another is available.
    pub fn pick_avoiding(&self, avoid: Option<usize>) -> Option<(usize, &Endpoint, InFlight)> {
        let ClusterKind::Static(eps) = &self.cluster.kind else {
            return None;
        };
        if eps.is_empty() {
            // An EDS cluster whose endpoints were all removed: 503 UH.
            return None;
        }
        self.outlier.poll();
        let n = eps.len();
        if n == 0 {
            return None; // a DNS cluster whose names resolve to nothing (yet): 503 UH
        }
        let mut first = self.choose(n);
        if self.outlier.ejected_now() == 0 && self.health.down_count() == 0 {
            if avoid == Some(first) && n > 1 {
                first = (first + 1) % n;
            }
            return Some((first, &eps[first], self.mark_in_flight(first)));
        }
        if avoid == Some(first) && n > 1 {
            first = (first + 1) % n;
        }
        let healthy = |i: usize| !self.outlier.is_ejected(i) && !self.health.is_down(i);
        let available = (0..n).filter(|i| healthy(*i)).count();
        let idx = if available * 100 < self.cluster.panic_threshold as usize * n {
            // Panic mode (see `cluster::health`): every endpoint is a candidate.
            let p = &self.health.panics;
            p.set(p.get() + 1);
            first
        } else {
            let other = (0..n)
                .map(|k| (first + k) % n)
                .find(|i| healthy(*i) && Some(*i) != avoid);
            other.or(avoid.filter(|a| healthy(*a)))?
        };
        Some((idx, &eps[idx], self.mark_in_flight(idx)))
    }

    /// A connect to endpoint `idx` failed (refused, unreachable, timed out).
    pub fn connect_failed(&self, idx: usize) {
        self.outlier.record(idx, Outcome::LocalFailure);
    }

    /// Endpoints ejected now (the `outlier_detection_ejections_active` gauge).
    pub fn ejected_now(&self) -> usize {
        self.outlier.ejected_now() as usize
    }

    /// An HTTP connect to endpoint `idx` succeeded (the response decides the rest).
    pub fn connect_succeeded(&self, idx: usize) {
        self.outlier.record(idx, Outcome::Connected { last: false });
    }

    /// An L4 connect to endpoint `idx` succeeded: all the proxy learns about this connection.
    pub fn l4_connected(&self, idx: usize) {
        self.outlier.record(idx, Outcome::Connected { last: true });
    }

    /// How one HTTP try against endpoint `idx` ended: a response head with a status, or a
    /// failure. Failures that say nothing about the endpoint (a dead pooled connection, the
    /// client, the proxy's own limits) and connect failures (already counted) are not recorded.
    pub fn answered(&self, idx: usize, result: Result<u16, crate::http::Failure>) {
        use crate::http::Failure as F;
        let outcome = match result {
            Ok(status) => Outcome::Status(status),
            Err(F::Reset | F::Timeout | F::Protocol | F::TooManyHeaders) => Outcome::LocalFailure,
            Err(_) => return,
        };
        self.outlier.record(idx, outcome);
    }

    fn mark_in_flight(&self, idx: usize) -> InFlight {
        let c = &self.in_flight[idx];
        c.set(c.get() + 1);
        InFlight {
            counts: self.in_flight.clone(),
            idx,
            admitted: None,
        }
    }

    fn choose(&self, n: usize) -> usize {
        match (self.cluster.lb_policy, n) {
            (_, 1) => 0,
            (LbPolicy::RoundRobin, n) => {
                let i = self.cursor.get();
                self.cursor.set((i + 1) % n);
                i
            }
            (LbPolicy::LeastRequest, n) => {
                let r = self.next_random();
                let a = (r % n as u64) as usize;
                let mut b = ((r >> 32) % (n as u64 - 1)) as usize;
                if b >= a {
                    b += 1;
                }
                if self.in_flight[b].get() < self.in_flight[a].get() {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// Every endpoint as this shard sees it (`/clusters`): health, ejection, requests in flight.
    pub fn endpoint_views(&self) -> Vec<crate::shard::EndpointView> {
        let ClusterKind::Static(eps) = &self.cluster.kind else {
            return Vec::new();
        };
        self.outlier.poll();
        eps.iter()
            .enumerate()
            .map(|(i, e)| crate::shard::EndpointView {
                addr: e.addr,
                written: e.written().into_owned(),
                failed_active_hc: self.health.is_down(i),
                ejected: self.outlier.is_ejected(i),
                active_requests: self.in_flight[i].get(),
            })
            .collect()
    }

    /// Current in-flight count of endpoint `addr` on this shard (for tests and metrics).
    pub fn in_flight_of(&self, addr: SocketAddr) -> u32 {
        match &self.cluster.kind {
            ClusterKind::Static(eps) => eps
                .iter()
                .position(|e| e.addr == addr)
                .map_or(0, |i| self.in_flight[i].get()),
            ClusterKind::OriginalDst { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cluster(policy: LbPolicy, n: u16) -> Arc<Cluster> {
        let eps = (1..=n)
            .map(|p| {
                Endpoint::new(
                    SocketAddr::from(([127, 0, 0, 1], p)),
                    &format!("127.0.0.1:{p}"),
                )
            })
            .collect();
        Arc::new(Cluster {
            name: "c".into(),
            kind: ClusterKind::Static(eps),
            connect_timeout: Duration::from_secs(1),
            lb_policy: policy,
            pool: Default::default(),
            max_response_headers: 100,
            protocol: Default::default(),
            h2: Default::default(),
            breakers: Default::default(),
            outlier: Default::default(),
            health: None,
            panic_threshold: 50,
            retry_budget: None,
            tls: None,
            dns: None,
        })
    }

    #[test]
    fn a_retry_avoids_the_previous_endpoint_and_panic_counts_it_as_available() {
        let b = Balancer::new(cluster(LbPolicy::RoundRobin, 3), 7, 1);
        // Nothing down: the round-robin choice is skipped when it is the one to avoid.
        let (i, _, _) = b.pick_avoiding(Some(0)).unwrap();
        assert_eq!(i, 1);
        // Endpoint 2 fails its health check: 2 of 3 available (67% ≥ 50%, no panic); avoiding
        // 0 leaves only 1, and avoiding the only healthy one falls back to it.
        b.health.apply(&[true, true, false]);
        for _ in 0..6 {
            let (i, _, _) = b.pick_avoiding(Some(0)).unwrap();
            assert_eq!(i, 1);
        }
        assert_eq!(
            b.health.panics.get(),
            0,
            "the avoided endpoint still counts as available"
        );
        let (i, _, _) = b.pick_avoiding(Some(1)).unwrap();
        assert_eq!(i, 0);
        b.health.apply(&[true, false, false]);
        // 1 of 3 available: below 50%, panic mode picks over all.
        let picked: Vec<usize> = (0..3).map(|_| b.pick_healthy().unwrap().0).collect();
        assert_eq!(b.health.panics.get(), 3);
        assert!(picked.contains(&1) || picked.contains(&2), "{picked:?}");
    }

    #[test]
    fn round_robin_cycles() {
        let b = Balancer::new(cluster(LbPolicy::RoundRobin, 3), 7, 1);
        let ports: Vec<u16> = (0..6).map(|_| b.pick().unwrap().0.addr.port()).collect();
        assert_eq!(ports, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let b = Balancer::new(cluster(LbPolicy::LeastRequest, 2), 7, 1);
        let mut held = Vec::new();
        // Hold 10 in flight on whichever endpoints get picked; P2C with two endpoints always
        // compares both, so the counts never differ by more than one.
        for _ in 0..10 {
            held.push(b.pick().unwrap().1);
        }
        let a = b.in_flight_of(SocketAddr::from(([127, 0, 0, 1], 1)));
        let c = b.in_flight_of(SocketAddr::from(([127, 0, 0, 1], 2)));
        assert_eq!(a + c, 10);
        assert!(a.abs_diff(c) <= 1, "{a} vs {c}");
        drop(held);
        assert_eq!(b.in_flight_of(SocketAddr::from(([127, 0, 0, 1], 1))), 0);
    }
}
