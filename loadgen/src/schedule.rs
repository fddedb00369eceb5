//! The shard's request schedule. Workers (one per in-flight slot) *pull* the next slot when they
//! are free, so in open loop a slot whose intended time has passed while every worker was busy
//! is sent as soon as one frees up, and its latency still counts from the intended time: a stalled
//! target inflates latency instead of silently lowering the sample count.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// One request to send.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// Sequence number within the shard (selects the URL round-robin).
    pub seq: u64,
    /// Open loop: the intended send time. Closed loop: the claim time.
    pub at: Instant,
    /// Whether it falls after the warm-up.
    pub measured: bool,
}

enum Kind {
    Open { interval: Duration, phase: Duration },
    Closed,
}

pub struct Schedule {
    kind: Kind,
    t0: Instant,
    warmup_end: Instant,
    end: Option<Instant>,
    limit: Option<u64>,
    next: Cell<u64>,
    measured_claims: Cell<u64>,
}

impl Schedule {
    /// An open-loop schedule at `rps` (this shard's share), starting at `t0`. `phase` spreads
    /// shards over one interval. Ends at `t0 + warmup + duration` or after `requests` measured.
    pub fn open(
        rps: f64,
        phase_frac: f64,
        t0: Instant,
        warmup: Duration,
        duration: Option<Duration>,
        requests: Option<u64>,
    ) -> Schedule {
        let interval = Duration::from_secs_f64(1.0 / rps);
        Schedule {
            kind: Kind::Open {
                interval,
                phase: interval.mul_f64(phase_frac),
            },
            t0,
            warmup_end: t0 + warmup,
            end: duration.map(|d| t0 + warmup + d),
            limit: requests,
            next: Cell::new(0),
            measured_claims: Cell::new(0),
        }
    }

    /// A closed-loop schedule: slots are available immediately until the end.
    pub fn closed(
        t0: Instant,
        warmup: Duration,
        duration: Option<Duration>,
        requests: Option<u64>,
    ) -> Schedule {
        Schedule {
            kind: Kind::Closed,
            t0,
            warmup_end: t0 + warmup,
            end: duration.map(|d| t0 + warmup + d),
            limit: requests,
            next: Cell::new(0),
            measured_claims: Cell::new(0),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.kind, Kind::Open { .. })
    }

    pub fn warmup_end(&self) -> Instant {
        self.warmup_end
    }

    pub fn start(&self) -> Instant {
        self.t0
    }

    /// The planned end of the measurement window for open loop (used for the achieved rate).
    pub fn planned_end(&self) -> Option<Instant> {
        match self.kind {
            Kind::Open { interval, .. } => match (self.end, self.limit) {
                (Some(e), _) => Some(e),
                (None, Some(n)) => Some(self.warmup_end + interval * (n as u32)),
                (None, None) => None,
            },
            Kind::Closed => self.end,
        }
    }

    /// Claims the next slot, or `None` when the schedule is exhausted.
    pub fn claim(&self, now: Instant) -> Option<Slot> {
        if self.limit.is_some_and(|n| self.measured_claims.get() >= n) {
            return None;
        }
        let seq = self.next.get();
        let at = match self.kind {
            Kind::Open { interval, phase } => {
                self.t0 + phase + Duration::from_secs_f64(interval.as_secs_f64() * seq as f64)
            }
            Kind::Closed => now.max(self.t0),
        };
        if self.end.is_some_and(|e| at >= e) {
            return None;
        }
        self.next.set(seq + 1);
        let measured = at >= self.warmup_end;
        if measured {
            self.measured_claims.set(self.measured_claims.get() + 1);
        }
        Some(Slot { seq, at, measured })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_schedule_is_fixed_and_bounded() {
        let t0 = Instant::now();
        let s = Schedule::open(
            1000.0,
            0.0,
            t0,
            Duration::from_millis(10),
            Some(Duration::from_millis(100)),
            None,
        );
        let mut n = 0;
        let mut measured = 0;
        // Claims do not depend on "now": the schedule is independent of responses.
        while let Some(slot) = s.claim(t0 + Duration::from_secs(100)) {
            assert_eq!(slot.at, t0 + Duration::from_millis(slot.seq));
            n += 1;
            measured += slot.measured as u32;
        }
        assert_eq!(n, 110);
        assert_eq!(measured, 100);
    }

    #[test]
    fn request_limit_counts_measured_only() {
        let t0 = Instant::now();
        let s = Schedule::closed(t0, Duration::ZERO, None, Some(5));
        let n = std::iter::from_fn(|| s.claim(Instant::now())).count();
        assert_eq!(n, 5);
    }
}
