//! Outlier detection for one cluster on one shard (Envoy's passive health checking): outcomes of
//! upstream tries feed per-endpoint counters, a counter reaching its threshold ejects the
//! endpoint, and the balancer skips ejected endpoints until they return.
//!
//! **Per shard, not shared by message.** Each shard keeps its own counters and ejections in
//! `Cell`s and decides alone. Sharing would mean a message per outcome (or per threshold
//! crossing) to the control thread and an ejection snapshot back to every shard: an allocation
//! and a cross-core wake-up on the data path, and ejections that lag the traffic that caused
//! them. Per shard, recording an outcome is a few non-atomic increments on the shard's own
//! cache lines. What it costs, said plainly: a shard learns only from its own traffic, so with N
//! shards an endpoint that fails every request has taken up to N × threshold failures before
//! every shard has ejected it (each shard ejects after its own `threshold`, at the same request
//! rate, because the kernel's REUSEPORT spread gives every shard a similar share), and
//! `max_ejection_percent` and `success_rate` are applied to each shard's view (so they hold for
//! the whole process too). An endpoint that is really down is ejected everywhere within
//! `threshold` requests per shard.
//!
//! **Semantics (Envoy's).** Outcomes: an HTTP status from the upstream, a local-origin failure
//! (connect refused or timed out, reset or timeout before a response head), or a connect that
//! succeeded. Without `split_external_local_origin_errors`, local-origin failures count as
//! gateway errors (5xx and 502–504 counters) and only a response below 500 — or, for L4, a
//! connect — resets the counters. With it, local-origin failures have their own counter, reset
//! by any connect or response. A counter that reaches its threshold ejects the endpoint for
//! `base_ejection_time × ejections` (at most `max_ejection_time`), unless that would put more
//! than `max_ejection_percent` of endpoints out (`ejections_overflow` counts those). Ejected
//! endpoints return at the first `interval` tick after their time is up; each tick an endpoint
//! is not ejected, its ejection multiplier decreases by one. Success rate: at each tick,
//! endpoints with at least `request_volume` outcomes in the interval are compared when at least
//! `minimum_hosts` of them qualify, and those below mean − stdev_factor/1000 · σ are ejected.
//!
//! **Ticks without a timer.** The tick runs when the balancer picks an endpoint and the tick is
//! due (one clock read per pick only while something is pending: an ejection, a decaying
//! multiplier or success-rate counting). A cluster nobody sends to needs no review.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::config::OutlierPolicy;

/// What one upstream try told us about an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head with this status.
    Status(u16),
    /// Connect refused or timed out; reset, timeout or garbage before a response head.
    LocalFailure,
    /// A connection was made. `last`: nothing else will be learnt (L4); HTTP waits for the
    /// response.
    Connected { last: bool },
}

/// Why an endpoint was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
    SuccessRate,
}

#[derive(Debug, Default)]
struct Host {
    c5xx: Cell<u32>,
    gateway: Cell<u32>,
    local: Cell<u32>,
    ejected_at: Cell<Option<Instant>>,
    /// Ejection multiplier: incremented per ejection, decremented per healthy tick.
    ejections: Cell<u32>,
    sr_ok: Cell<u32>,
    sr_total: Cell<u32>,
}

impl Host {
    fn reset_consecutive(&self) {
        self.c5xx.set(0);
        self.gateway.set(0);
        self.local.set(0);
    }
}

/// Counters and gauge of one cluster's outlier detection on one shard.
#[derive(Debug, Default)]
pub struct Counters {
    pub ejections_enforced_total: Cell<u64>,
    pub ejections_consecutive_5xx: Cell<u64>,
    pub ejections_consecutive_gateway_failure: Cell<u64>,
    pub ejections_consecutive_local_origin_failure: Cell<u64>,
    pub ejections_success_rate: Cell<u64>,
    /// Ejections not made because `max_ejection_percent` was reached.
    pub ejections_overflow: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// One cluster's outlier state on one shard.
#[derive(Debug)]
pub struct Outlier {
    policy: OutlierPolicy,
    hosts: Box<[Host]>,
    ejected: Cell<u32>,
    next_tick: Cell<Option<Instant>>,
    pub counters: Counters,
}

impl Outlier {
    pub fn new(policy: OutlierPolicy, endpoints: usize) -> Outlier {
        Outlier {
            policy,
            hosts: (0..endpoints).map(|_| Host::default()).collect(),
            ejected: Cell::new(0),
            next_tick: Cell::new(None),
            counters: Counters::default(),
        }
    }

    pub fn is_ejected(&self, i: usize) -> bool {
        self.hosts[i].ejected_at.get().is_some()
    }

    /// Endpoints ejected now (gauge).
    pub fn ejected_now(&self) -> u32 {
        self.ejected.get()
    }

    /// Runs the interval review if one is due. Called before each pick.
    #[inline]
    pub fn poll(&self) {
        if let Some(due) = self.next_tick.get() {
            let now = Instant::now();
            if now >= due {
                self.tick(now);
            }
        }
    }

    /// Records one outcome of a try against endpoint `i`. The clock is read only when an
    /// ejection happens or a tick must be armed.
    pub fn record(&self, i: usize, outcome: Outcome) {
        self.record_at(i, outcome, None);
    }

    /// [`record`](Self::record) at a given time (`None`: now, read only if needed).
    pub(crate) fn record_at(&self, i: usize, outcome: Outcome, now: Option<Instant>) {
        let now = || now.unwrap_or_else(Instant::now);
        let h = &self.hosts[i];
        let p = &self.policy;
        let split = p.split_external_local_origin_errors;
        let (failed_5xx, failed_gateway) = match outcome {
            Outcome::Status(s) => {
                if split {
                    h.local.set(0);
                }
                (s >= 500, matches!(s, 502..=504))
            }
            Outcome::LocalFailure if split => {
                let n = h.local.get() + 1;
                h.local.set(n);
                if p.consecutive_local_origin_failure == Some(n) {
                    self.eject(i, Kind::ConsecutiveLocalOriginFailure, now());
                }
                return;
            }
            Outcome::LocalFailure => (true, true),
            Outcome::Connected { .. } if split => {
                h.local.set(0);
                return;
            }
            Outcome::Connected { last: true } => (false, false),
            Outcome::Connected { last: false } => return,
        };
        if p.success_rate.is_some() {
            h.sr_total.set(h.sr_total.get() + 1);
            if !failed_5xx {
                h.sr_ok.set(h.sr_ok.get() + 1);
            }
            if self.next_tick.get().is_none() {
                self.arm(now());
            }
        }
        if !failed_5xx {
            h.c5xx.set(0);
            h.gateway.set(0);
            return;
        }
        let n = h.c5xx.get() + 1;
        h.c5xx.set(n);
        if p.consecutive_5xx == Some(n) {
            self.eject(i, Kind::Consecutive5xx, now());
            return;
        }
        if failed_gateway {
            let g = h.gateway.get() + 1;
            h.gateway.set(g);
            if p.consecutive_gateway_failure == Some(g) {
                self.eject(i, Kind::ConsecutiveGatewayFailure, now());
            }
        } else {
            h.gateway.set(0);
        }
    }

    /// How long endpoint `i` stays out this time.
    fn ejection_time(&self, i: usize) -> Duration {
        let p = &self.policy;
        p.base_ejection_time
            .saturating_mul(self.hosts[i].ejections.get().max(1))
            .min(p.max_ejection_time.max(p.base_ejection_time))
    }

    fn eject(&self, i: usize, kind: Kind, now: Instant) {
        let h = &self.hosts[i];
        if h.ejected_at.get().is_some() {
            return;
        }
        let n = self.hosts.len() as u64;
        // Envoy's rule: eject only if the share ejected afterwards stays within the limit.
        if 100 * (u64::from(self.ejected.get()) + 1)
            > u64::from(self.policy.max_ejection_percent) * n
        {
            bump(&self.counters.ejections_overflow);
            return;
        }
        h.ejected_at.set(Some(now));
        h.ejections.set(h.ejections.get() + 1);
        h.reset_consecutive();
        self.ejected.set(self.ejected.get() + 1);
        let c = &self.counters;
        bump(&c.ejections_enforced_total);
        bump(match kind {
            Kind::Consecutive5xx => &c.ejections_consecutive_5xx,
            Kind::ConsecutiveGatewayFailure => &c.ejections_consecutive_gateway_failure,
            Kind::ConsecutiveLocalOriginFailure => &c.ejections_consecutive_local_origin_failure,
            Kind::SuccessRate => &c.ejections_success_rate,
        });
        self.arm(now);
        tracing::warn!(
            endpoint = i,
            reason = ?kind,
            ejections = h.ejections.get(),
            ejection_ms = self.ejection_time(i).as_millis() as u64,
            "outlier detection ejected an endpoint"
        );
    }

    /// Makes sure a tick is due within one interval.
    fn arm(&self, now: Instant) {
        if self.next_tick.get().is_none() {
            self.next_tick.set(Some(now + self.policy.interval));
        }
    }

    /// The interval review: returns, multiplier decay, success rate.
    pub(crate) fn tick(&self, now: Instant) {
        for (i, h) in self.hosts.iter().enumerate() {
            match h.ejected_at.get() {
                Some(at) if now.saturating_duration_since(at) >= self.ejection_time(i) => {
                    h.ejected_at.set(None);
                    h.reset_consecutive();
                    self.ejected.set(self.ejected.get() - 1);
                    tracing::info!(endpoint = i, "outlier detection returned an endpoint");
                }
                Some(_) => {}
                None if h.ejections.get() > 0 => h.ejections.set(h.ejections.get() - 1),
                None => {}
            }
        }
        if self.policy.success_rate.is_some() {
            self.success_rate(now);
        }
        let pending = self
            .hosts
            .iter()
            .any(|h| h.ejected_at.get().is_some() || h.ejections.get() > 0);
        self.next_tick
            .set(pending.then(|| now + self.policy.interval));
    }

    fn success_rate(&self, now: Instant) {
        let Some(sr) = self.policy.success_rate else {
            return;
        };
        let rate = |h: &Host| f64::from(h.sr_ok.get()) / f64::from(h.sr_total.get());
        let judged = || {
            self.hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.sr_total.get() >= sr.request_volume)
        };
        let count = judged().count();
        if count as u32 >= sr.minimum_hosts && count > 0 {
            let mean = judged().map(|(_, h)| rate(h)).sum::<f64>() / count as f64;
            let var = judged().map(|(_, h)| (rate(h) - mean).powi(2)).sum::<f64>() / count as f64;
            let threshold = mean - f64::from(sr.stdev_factor) / 1000.0 * var.sqrt();
            let low: Vec<usize> = judged()
                .filter(|(_, h)| rate(h) < threshold)
                .map(|(i, _)| i)
                .collect();
            for i in low {
                self.eject(i, Kind::SuccessRate, now);
            }
        }
        for h in self.hosts.iter() {
            h.sr_ok.set(0);
            h.sr_total.set(0);
        }
    }
}

/// One cluster's outlier detection as a shard reports it (summed over shards).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlierStats {
    pub cluster: String,
    /// Endpoints ejected now (gauge; summed over shards, each shard ejects on its own).
    pub ejections_active: u64,
    pub ejections_enforced_total: u64,
    pub ejections_consecutive_5xx: u64,
    pub ejections_consecutive_gateway_failure: u64,
    pub ejections_consecutive_local_origin_failure: u64,
    pub ejections_success_rate: u64,
    pub ejections_overflow: u64,
}

impl Outlier {
    pub fn stats(&self, cluster: &str) -> OutlierStats {
        let c = &self.counters;
        OutlierStats {
            cluster: cluster.to_owned(),
            ejections_active: u64::from(self.ejected.get()),
            ejections_enforced_total: c.ejections_enforced_total.get(),
            ejections_consecutive_5xx: c.ejections_consecutive_5xx.get(),
            ejections_consecutive_gateway_failure: c.ejections_consecutive_gateway_failure.get(),
            ejections_consecutive_local_origin_failure: c
                .ejections_consecutive_local_origin_failure
                .get(),
            ejections_success_rate: c.ejections_success_rate.get(),
            ejections_overflow: c.ejections_overflow.get(),
        }
    }
}

/// Adds `more` into `into`, by cluster name.
pub fn merge_stats(into: &mut Vec<OutlierStats>, more: &[OutlierStats]) {
    for m in more {
        match into.iter_mut().find(|o| o.cluster == m.cluster) {
            Some(o) => {
                o.ejections_active += m.ejections_active;
                o.ejections_enforced_total += m.ejections_enforced_total;
                o.ejections_consecutive_5xx += m.ejections_consecutive_5xx;
                o.ejections_consecutive_gateway_failure += m.ejections_consecutive_gateway_failure;
                o.ejections_consecutive_local_origin_failure +=
                    m.ejections_consecutive_local_origin_failure;
                o.ejections_success_rate += m.ejections_success_rate;
                o.ejections_overflow += m.ejections_overflow;
            }
            None => into.push(m.clone()),
        }
    }
}

#[cfg(test)]
#[path = "outlier_tests.rs"]
mod tests;
