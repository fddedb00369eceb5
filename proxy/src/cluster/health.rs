//! One cluster's active health as one shard knows it: which endpoints the health checker (its
//! own thread, [`crate::health`]) last reported unhealthy, applied from `ShardCommand::Health`
//! messages, and how often the balancer went into panic mode. Endpoints start healthy.
//!
//! **Panic threshold** (Envoy's `healthy_panic_threshold`, default 50%): when fewer than that
//! share of endpoints are available (not failing active checks and not ejected by outlier
//! detection), the balancer picks among all endpoints as if every one were healthy — a mass
//! failure of checks is more likely the checker's or the network's fault than every endpoint's,
//! and sending to all beats refusing everything. With a threshold of 0 that never happens, and a
//! cluster with no endpoint available answers 503 `UH`.

use std::cell::Cell;

#[derive(Debug)]
pub struct ActiveHealth {
    down: Box<[Cell<bool>]>,
    count: Cell<u32>,
    /// Picks made in panic mode (Envoy's `upstream_rq_lb_healthy_panic`).
    pub panics: Cell<u64>,
}

impl ActiveHealth {
    pub fn new(endpoints: usize) -> ActiveHealth {
        ActiveHealth {
            down: (0..endpoints).map(|_| Cell::new(false)).collect(),
            count: Cell::new(0),
            panics: Cell::new(0),
        }
    }

    /// Installs the checker's verdicts (`healthy[i]` for endpoint `i`); a list of another length
    /// (a config generation this balancer is not) is ignored.
    pub fn apply(&self, healthy: &[bool]) -> bool {
        if healthy.len() != self.down.len() {
            return false;
        }
        for (d, h) in self.down.iter().zip(healthy) {
            d.set(!h);
        }
        self.count
            .set(healthy.iter().filter(|h| !**h).count() as u32);
        true
    }

    #[inline]
    pub fn is_down(&self, i: usize) -> bool {
        self.down[i].get()
    }

    /// Endpoints failing active checks now (gauge).
    #[inline]
    pub fn down_count(&self) -> u32 {
        self.count.get()
    }
}

/// One cluster's active-health figures as a shard reports them (summed over shards).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthStats {
    pub cluster: String,
    /// Endpoints failing active health checks (gauge; each shard reports its view).
    pub unhealthy: u64,
    /// Picks made in panic mode (counter).
    pub lb_healthy_panic: u64,
}

pub fn merge_stats(into: &mut Vec<HealthStats>, more: &[HealthStats]) {
    for m in more {
        match into.iter_mut().find(|h| h.cluster == m.cluster) {
            Some(h) => {
                h.unhealthy += m.unhealthy;
                h.lb_healthy_panic += m.lb_healthy_panic;
            }
            None => into.push(m.clone()),
        }
    }
}
