//! Logging that cannot stall a shard: the subscriber writes through a lossy non-blocking
//! writer (a full queue drops lines and counts them instead of blocking the shard), and
//! warnings a client can trigger at will go through [`warn_limited!`], a per-thread limiter
//! keyed by a static reason: at most [`LINES_PER_WINDOW`] lines per reason per [`WINDOW`].
//! The first line after a window in which lines were suppressed is preceded by one
//! "suppressed K similar warnings" line naming the reason (rollover is noticed on that next
//! line: there is no timer). Shards are threads, so the limiter state is a `thread_local` of
//! `Cell`s: no lock, no shared cache line.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines per reason per window that pass the limiter.
pub const LINES_PER_WINDOW: u32 = 10;
/// The limiter's window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Distinct reasons tracked per thread; a new reason beyond this takes the stalest slot.
const SLOTS: usize = 8;
/// Lines queued for the writer thread before new ones are dropped. The queue is a fixed
/// array allocated and touched up front: 64 Ki lines cost 2.1 MB of idle RSS (measured
/// 2026-12-01), 4 Ki lines about 130 KB — still a second of warnings at the rate limit across
/// hundreds of reasons.
const QUEUE_LINES: usize = 4 * 1024;

/// Keeps the writer thread alive (flushing queued lines on drop) and reports dropped lines.
pub struct LogGuard {
    _worker: WorkerGuard,
    dropped: ErrorCounter,
}

impl LogGuard {
    /// Lines dropped so far because the queue was full.
    pub fn dropped_lines(&self) -> usize {
        self.dropped.dropped_lines()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let n = self.dropped_lines();
        if n > 0 {
            eprintln!("shardcar: {n} log lines dropped (stderr could not keep up)");
        }
    }
}

/// Installs the global subscriber (filter from `SHARDCAR_LOG`, default `info`): non-blocking
/// and lossy to stderr, ANSI colours only when stderr is a terminal. Keep the guard in `main`.
pub fn init() -> LogGuard {
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("shardcar-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARDCAR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    LogGuard {
        _worker: worker,
        dropped,
    }
}

/// What the limiter decided for one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; first report `suppressed` lines dropped in the previous window (if above 0).
    Log { suppressed: u32 },
    /// Over the limit for this window: drop it (counted).
    Suppress,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    reason: &'static str,
    window: Option<Instant>,
    passed: u32,
    suppressed: u32,
}

const EMPTY: Slot = Slot {
    reason: "",
    window: None,
    passed: 0,
    suppressed: 0,
};

/// The limiter's state for one thread; the clock is the caller's, so tests inject instants.
#[derive(Debug)]
pub struct Limiter {
    slots: [Cell<Slot>; SLOTS],
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            slots: [const { Cell::new(EMPTY) }; SLOTS],
        }
    }
}

impl Limiter {
    /// Decides for one line with `reason` at `now`.
    pub fn admit(&self, reason: &'static str, now: Instant) -> Verdict {
        let cell = self
            .slots
            .iter()
            .find(|c| c.get().reason == reason)
            .or_else(|| self.slots.iter().find(|c| c.get().window.is_none()))
            .unwrap_or_else(|| {
                let stalest = self.slots.iter().min_by_key(|c| c.get().window);
                stalest.expect("SLOTS > 0")
            });
        let mut s = cell.get();
        if s.reason != reason {
            s = Slot { reason, ..EMPTY };
        }
        let mut carried = 0;
        match s.window {
            Some(start) if now.saturating_duration_since(start) < WINDOW => {}
            _ => {
                carried = s.suppressed;
                s.window = Some(now);
                s.passed = 0;
                s.suppressed = 0;
            }
        }
        let verdict = if s.passed < LINES_PER_WINDOW {
            s.passed += 1;
            Verdict::Log {
                suppressed: carried,
            }
        } else {
            s.suppressed += 1;
            Verdict::Suppress
        };
        cell.set(s);
        verdict
    }
}

thread_local! {
    static LIMITER: Limiter = Limiter::default();
}

/// The calling thread's limiter decision for `reason` now.
pub fn admit(reason: &'static str) -> Verdict {
    LIMITER.with(|l| l.admit(reason, Instant::now()))
}

/// `tracing::warn!` through the per-thread limiter keyed by `$reason` (a `&'static str`).
#[macro_export]
macro_rules! warn_limited {
    ($reason:expr, $($arg:tt)+) => {
        if let $crate::logging::Verdict::Log { suppressed } = $crate::logging::admit($reason) {
            if suppressed > 0 {
                tracing::warn!(reason = $reason, suppressed, "suppressed {suppressed} similar warnings");
            }
            tracing::warn!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_lines_pass_then_the_rest_are_suppressed_and_reported() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..LINES_PER_WINDOW {
            let at = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(l.admit("r", at), Verdict::Log { suppressed: 0 }, "line {i}");
        }
        for _ in 0..7 {
            assert_eq!(
                l.admit("r", t0 + Duration::from_millis(500)),
                Verdict::Suppress
            );
        }
        // Another reason has its own budget.
        assert_eq!(l.admit("other", t0), Verdict::Log { suppressed: 0 });
        // The window rolls over: the next line carries the count of the suppressed ones.
        assert_eq!(l.admit("r", t0 + WINDOW), Verdict::Log { suppressed: 7 });
        assert_eq!(
            l.admit("r", t0 + WINDOW + Duration::from_millis(1)),
            Verdict::Log { suppressed: 0 }
        );
    }

    #[test]
    fn more_reasons_than_slots_reuse_the_stalest() {
        let l = Limiter::default();
        let t0 = Instant::now();
        const R: [&str; 9] = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for (i, r) in R.into_iter().enumerate() {
            let at = t0 + Duration::from_millis(i as u64);
            assert_eq!(l.admit(r, at), Verdict::Log { suppressed: 0 });
        }
        for _ in 1..LINES_PER_WINDOW {
            l.admit("i", t0 + Duration::from_millis(20));
        }
        assert_eq!(
            l.admit("i", t0 + Duration::from_millis(21)),
            Verdict::Suppress
        );
    }
}
