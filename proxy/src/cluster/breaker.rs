//! Per-shard circuit breaker for one cluster: `max_requests` and `max_retries` (Envoy's
//! `circuit_breakers.thresholds.max_requests` / `max_retries`); `max_connections` and
//! `max_pending_requests` live in [`super::conn_gate`] and are reported with these.
//!
//! The configured threshold is process-wide; each shard enforces `ceil(max / shards)` on its own
//! `Cell` counter, so the hot path takes no lock and touches no shared cache line (the kernel's
//! REUSEPORT spread keeps shards evenly loaded, so the sum of shares tracks the global limit;
//! rounding up means a cluster may admit up to `shards - 1` more than configured, never fewer).
//! A request over the share is answered 503 with flag `UO` and `x-shardcar-overloaded: true`.
//! A retry over the `max_retries` share is not made (the client gets the try's answer), counted
//! as a retry overflow; a retry holds its slot until the request ends or retries again.

use std::cell::Cell;
use std::rc::Rc;

/// Active requests against a cluster on this shard, and this shard's share of the limit.
#[derive(Debug, Default)]
pub struct Breaker {
    limit: Option<u32>,
    active: Rc<Cell<u32>>,
    /// Requests refused because the share was full (`upstream_rq_pending_overflow`-like).
    pub overflows: Cell<u64>,
    retry_limit: Option<u32>,
    retries: Rc<Cell<u32>>,
    /// Retries not made because the `max_retries` share was full (`upstream_rq_retry_overflow`).
    pub retry_overflows: Cell<u64>,
    /// `max_connections` / `max_pending_requests` (see `cluster::conn_gate`).
    pub conns: super::conn_gate::ConnGate,
}

/// Holds one admitted request until dropped.
#[derive(Debug)]
pub struct Admitted(Rc<Cell<u32>>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl Breaker {
    /// `max` is the process-wide `max_requests`; this shard enforces `ceil(max / shards)`.
    pub fn new(max: Option<u32>, shards: usize) -> Breaker {
        Breaker {
            limit: max.map(|m| m.div_ceil(shards.max(1) as u32)),
            ..Breaker::default()
        }
    }

    /// Adds the `max_retries` threshold (process-wide; this shard enforces `ceil(max / shards)`).
    pub fn with_retries(mut self, max: Option<u32>, shards: usize) -> Breaker {
        self.retry_limit = max.map(|m| m.div_ceil(shards.max(1) as u32));
        self
    }

    /// Adds the `max_connections` and `max_pending_requests` thresholds (process-wide; this
    /// shard enforces `ceil(max / shards)` of each).
    pub fn with_connections(
        mut self,
        max_connections: Option<u32>,
        max_pending: Option<u32>,
        shards: usize,
    ) -> Breaker {
        self.conns = super::conn_gate::ConnGate::new(max_connections, max_pending, shards);
        self
    }

    /// Admits a retry, or `None` (counted) when the retry share is full.
    pub fn admit_retry(&self) -> Option<Admitted> {
        let n = self.retries.get();
        if self.retry_limit.is_some_and(|l| n >= l) {
            self.retry_overflows.set(self.retry_overflows.get() + 1);
            return None;
        }
        self.retries.set(n + 1);
        Some(Admitted(self.retries.clone()))
    }

    /// Admits a request, or `None` (counted) when the share is full.
    pub fn admit(&self) -> Option<Admitted> {
        let n = self.active.get();
        if self.limit.is_some_and(|l| n >= l) {
            self.overflows.set(self.overflows.get() + 1);
            return None;
        }
        self.active.set(n + 1);
        Some(Admitted(self.active.clone()))
    }

    /// Requests now admitted on this shard (the breaker's fullness gauge).
    pub fn active(&self) -> u32 {
        self.active.get()
    }

    /// This shard's share of `max_requests`, if set.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }
}

/// One cluster's breaker as a shard reports it (summed over shards by [`merge_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerStats {
    pub cluster: String,
    /// Requests holding a slot now (gauge).
    pub active_requests: u64,
    /// Sum of the shards' shares of `max_requests` (gauge; fullness = active / limit).
    pub max_requests: u64,
    /// Requests refused with 503 `UO` (counter).
    pub overflows: u64,
    /// Retries in flight (gauge) and the sum of the shards' `max_retries` shares (0: none set).
    pub active_retries: u64,
    pub max_retries: u64,
    /// Retries not made because `max_retries` was full (counter).
    pub retry_overflows: u64,
    /// Open upstream connections (gauge) and the sum of the `max_connections` shares (0: none).
    pub active_connections: u64,
    pub max_connections: u64,
    /// Connections not opened at `max_connections` (counter, Envoy's `upstream_cx_overflow`).
    pub cx_overflows: u64,
    /// Requests waiting for a connection (gauge) and the sum of the `max_pending_requests`
    /// shares (0: none set).
    pub pending_requests: u64,
    pub max_pending_requests: u64,
    /// Requests refused with 503 `UO` because `max_pending_requests` was full (counter).
    pub pending_overflows: u64,
}

impl Breaker {
    /// This breaker's figures, or `None` for a cluster without thresholds.
    pub fn stats(&self, cluster: &str) -> Option<BreakerStats> {
        let (max_cx, max_pending) = self.conns.limits();
        if self.limit.is_none()
            && self.retry_limit.is_none()
            && max_cx.is_none()
            && max_pending.is_none()
        {
            return None;
        }
        Some(BreakerStats {
            cluster: cluster.to_owned(),
            active_requests: u64::from(self.active()),
            max_requests: u64::from(self.limit.unwrap_or(0)),
            overflows: self.overflows.get(),
            active_retries: u64::from(self.retries.get()),
            max_retries: u64::from(self.retry_limit.unwrap_or(0)),
            retry_overflows: self.retry_overflows.get(),
            active_connections: u64::from(self.conns.open()),
            max_connections: u64::from(max_cx.unwrap_or(0)),
            cx_overflows: self.conns.cx_overflows.get(),
            pending_requests: u64::from(self.conns.pending_now()),
            max_pending_requests: u64::from(max_pending.unwrap_or(0)),
            pending_overflows: self.conns.pending_overflows.get(),
        })
    }
}

/// Adds `more` into `into`, by cluster name.
pub fn merge_stats(into: &mut Vec<BreakerStats>, more: &[BreakerStats]) {
    for m in more {
        match into.iter_mut().find(|b| b.cluster == m.cluster) {
            Some(b) => {
                b.active_requests += m.active_requests;
                b.max_requests += m.max_requests;
                b.overflows += m.overflows;
                b.active_retries += m.active_retries;
                b.max_retries += m.max_retries;
                b.retry_overflows += m.retry_overflows;
                b.active_connections += m.active_connections;
                b.max_connections += m.max_connections;
                b.cx_overflows += m.cx_overflows;
                b.pending_requests += m.pending_requests;
                b.max_pending_requests += m.max_pending_requests;
                b.pending_overflows += m.pending_overflows;
            }
            None => into.push(m.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_rounded_up_and_overflow_counted() {
        let b = Breaker::new(Some(5), 2);
        assert_eq!(b.limit(), Some(3));
        let held: Vec<_> = (0..3).map(|_| b.admit().unwrap()).collect();
        assert!(b.admit().is_none());
        assert_eq!(b.overflows.get(), 1);
        assert_eq!(b.active(), 3);
        drop(held);
        assert_eq!(b.active(), 0);
        assert!(b.admit().is_some());
    }

    #[test]
    fn unlimited_without_a_threshold() {
        let b = Breaker::new(None, 4);
        let held: Vec<_> = (0..1000).map(|_| b.admit().unwrap()).collect();
        assert_eq!(held.len(), 1000);
    }
}
