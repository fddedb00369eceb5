//! Retry budget for one cluster on one shard (Linkerd's model): retries may be at most
//! `retry_percent` of the requests of the last `ttl`, plus a reserve of
//! `min_retries_per_second × ttl` so a quiet cluster can still retry. A retry over budget is not
//! made — the try's answer goes to the client — and is counted (`exhausted`).
//!
//! Requests and retries are counted in one-second buckets over the `ttl` window, in `Cell`s: a
//! clock read and two increments per request, nothing shared. The reserve is process-wide and
//! divided among shards (rounded up), like the breakers' thresholds; the percentage needs no
//! division (each shard holds its own requests to it).

use std::cell::{Cell, RefCell};
use std::time::Instant;

use crate::config::RetryBudgetSettings;

/// Longest window (buckets kept).
pub const MAX_TTL_SECS: u32 = 60;

#[derive(Debug)]
pub struct RetryBudget {
    settings: Option<RetryBudgetSettings>,
    /// Reserve of retries over the window, this shard's share.
    reserve: u64,
    epoch: Instant,
    /// Second (since `epoch`) of the newest bucket.
    current: Cell<u64>,
    /// (requests, retries) per second, ring indexed by second % ttl.
    buckets: RefCell<Vec<(u32, u32)>>,
    /// Retries refused for lack of budget (Envoy's `upstream_rq_retry_limit_exceeded`-like).
    pub exhausted: Cell<u64>,
}

impl RetryBudget {
    pub fn new(settings: Option<RetryBudgetSettings>, shards: usize) -> RetryBudget {
        let (reserve, ttl) = settings.map_or((0, 1), |s| {
            let per_shard = u64::from(s.min_retries_per_second).div_ceil(shards.max(1) as u64);
            (per_shard * u64::from(s.ttl_secs), s.ttl_secs as usize)
        });
        RetryBudget {
            settings,
            reserve,
            epoch: Instant::now(),
            current: Cell::new(0),
            buckets: RefCell::new(vec![(0, 0); ttl]),
            exhausted: Cell::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.is_some()
    }

    /// Moves the window to now, clearing buckets that fell out of it.
    fn roll(&self, buckets: &mut [(u32, u32)]) -> usize {
        let now = self.epoch.elapsed().as_secs();
        let cur = self.current.get();
        let n = buckets.len() as u64;
        if now != cur {
            for s in (cur + 1)..=now.min(cur + n) {
                buckets[(s % n) as usize] = (0, 0);
            }
            self.current.set(now);
        }
        (now % n) as usize
    }

    /// Counts a request (its first try).
    pub fn deposit(&self) {
        if self.settings.is_none() {
            return;
        }
        let mut b = self.buckets.borrow_mut();
        let i = self.roll(&mut b);
        b[i].0 = b[i].0.saturating_add(1);
    }

    /// Takes one retry from the budget, or refuses (counted).
    pub fn withdraw(&self) -> bool {
        let Some(s) = self.settings else {
            return true;
        };
        let mut b = self.buckets.borrow_mut();
        let i = self.roll(&mut b);
        let (requests, retries) = b.iter().fold((0u64, 0u64), |(q, r), (a, c)| {
            (q + u64::from(*a), r + u64::from(*c))
        });
        // retries + 1 <= requests × pct / 100 + reserve, in integers.
        if (retries + 1) * 100 > requests * u64::from(s.retry_percent) + self.reserve * 100 {
            self.exhausted.set(self.exhausted.get() + 1);
            return false;
        }
        b[i].1 = b[i].1.saturating_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_percentage_plus_the_reserve() {
        let s = RetryBudgetSettings {
            retry_percent: 20,
            min_retries_per_second: 1,
            ttl_secs: 10,
        };
        let b = RetryBudget::new(Some(s), 1);
        let mut allowed = 0;
        for _ in 0..100 {
            b.deposit();
            if b.withdraw() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 20 + 10, "20% of 100 plus 1/s × 10 s");
        assert_eq!(b.exhausted.get(), 70);
        // Divided among shards: 2 shards → ceil(1/2) = 1 per second each.
        assert_eq!(RetryBudget::new(Some(s), 2).reserve, 10);
        assert!(RetryBudget::new(None, 1).withdraw());
    }
}
