//! Fixed-bucket histograms, single writer (`Cell`s, one shard), merged on scrape.
//!
//! Bucket bounds are fixed at compile time and log-linear (1-2.5-5 steps per decade, Envoy's
//! and Istio's default latency buckets), so the shards' histograms merge by adding bucket
//! counts and the exposition's `le` labels are the same on every scrape. Values are integers in
//! a base unit (microseconds for durations, bytes for sizes), so sums are exact and merging
//! is integer addition. Recording is a `partition_point` over ≤ 20 bounds plus two cell
//! stores.

use std::cell::Cell;

/// Latency bucket bounds in microseconds: Envoy's default buckets (0.5 ms … 1 h), which
/// Istio's dashboards assume. Exposed in milliseconds.
pub const DURATION_US: &[u64] = &[
    500,
    1_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    600_000_000,
    1_800_000_000,
    3_600_000_000,
];

/// Size bucket bounds in bytes (Istio's: powers of ten from 1 to 10⁹).
pub const BYTES: &[u64] = &[
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Which bound set a histogram uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// Recorded in microseconds, exposed in milliseconds.
    DurationMs,
    Bytes,
}

impl Buckets {
    pub fn bounds(self) -> &'static [u64] {
        match self {
            Buckets::DurationMs => DURATION_US,
            Buckets::Bytes => BYTES,
        }
    }

    /// Base units per exposed unit (1,000 µs per ms; 1 for bytes).
    pub fn scale(self) -> f64 {
        match self {
            Buckets::DurationMs => 1000.0,
            Buckets::Bytes => 1.0,
        }
    }
}

/// One shard's histogram: a count per bucket (the last is +Inf) and the sum.
#[derive(Debug)]
pub struct Histogram {
    buckets: Buckets,
    counts: Box<[Cell<u64>]>,
    sum: Cell<u64>,
}

impl Histogram {
    pub fn new(buckets: Buckets) -> Histogram {
        Histogram {
            buckets,
            counts: (0..=buckets.bounds().len()).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0),
        }
    }

    /// Records one observation in base units (the first bucket whose bound is ≥ `v`).
    pub fn record(&self, v: u64) {
        let i = self.buckets.bounds().partition_point(|b| *b < v);
        let c = &self.counts[i];
        c.set(c.get() + 1);
        self.sum.set(self.sum.get().wrapping_add(v));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets,
            counts: self.counts.iter().map(Cell::get).collect(),
            sum: self.sum.get(),
        }
    }
}

/// A histogram's values, sendable to the control side; shards' snapshots merge by addition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub buckets: Buckets,
    /// Per bucket, not cumulative; the last one is +Inf.
    pub counts: Vec<u64>,
    /// In base units.
    pub sum: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn merge(&mut self, o: &HistogramSnapshot) {
        debug_assert_eq!(self.buckets, o.buckets);
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.sum = self.sum.wrapping_add(o.sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_le_buckets() {
        let h = Histogram::new(Buckets::DurationMs);
        h.record(500); // le=0.5 ms (bounds are inclusive)
        h.record(700); // le=1 ms
        h.record(7_000_000_000); // +Inf
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[DURATION_US.len()], 1);
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum, 7_000_001_200);
    }

    #[test]
    fn merge_adds_buckets_and_sums() {
        let (a, b) = (
            Histogram::new(Buckets::Bytes),
            Histogram::new(Buckets::Bytes),
        );
        a.record(5);
        b.record(5);
        b.record(5000);
        let mut m = a.snapshot();
        m.merge(&b.snapshot());
        assert_eq!(m.counts[1], 2);
        assert_eq!(m.counts[4], 1);
        assert_eq!(m.sum, 5010);
    }
}
