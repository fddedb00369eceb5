//! `POST /reset_counters` without touching a shard: the admin side remembers every counter's
//! value at the reset and subtracts it from what `/stats` and `/stats/prometheus` show
//! (gauges are left alone). Shards keep counting monotonically, so nothing on the data path
//! changes and a scrape in flight during the reset is never torn.

// The lock is taken only by admin threads (a reset, a scrape); no shard ever sees it.
#![allow(clippy::disallowed_types)]

use std::sync::Mutex;

use crate::telemetry::metrics::MetricsSnapshot;

#[derive(Debug, Default)]
pub struct Baseline(Mutex<Option<Saved>>);

#[derive(Debug)]
struct Saved {
    counters: Vec<(&'static str, u64)>,
    metrics: MetricsSnapshot,
}

type Counters = [(&'static str, &'static str, u64, bool)];

impl Baseline {
    /// Remembers the counters now (`counters` as `(name, help, value, is_gauge)`).
    pub fn save(&self, counters: &Counters, metrics: &MetricsSnapshot) {
        let saved = Saved {
            counters: counters
                .iter()
                .filter(|c| !c.3)
                .map(|c| (c.0, c.2))
                .collect(),
            metrics: metrics.clone(),
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
    }

    /// Subtracts the saved values from the counters (not the gauges).
    pub fn apply_counters(&self, counters: &mut Counters) {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(saved) = g.as_ref() else { return };
        for c in counters.iter_mut().filter(|c| !c.3) {
            if let Some((_, base)) = saved.counters.iter().find(|(n, _)| *n == c.0) {
                c.2 = c.2.saturating_sub(*base);
            }
        }
    }

    /// Subtracts the saved series from counter and histogram families.
    pub fn apply_metrics(&self, metrics: &mut MetricsSnapshot) {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(saved) = g.as_ref() {
            metrics.subtract(&saved.metrics);
        }
    }
}
