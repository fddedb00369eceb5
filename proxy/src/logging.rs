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
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

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

/// The running filter, swappable at runtime (`/logging` on the admin API).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber (filter from `SHARDCAR_LOG`, default `info`, changeable
/// later with [`set_level`]): non-blocking and lossy to stderr, ANSI colours only when stderr
/// is a terminal. Keep the guard in `main`.
pub fn init() -> LogGuard {
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("shardcar-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let filter = EnvFilter::try_from_env("SHARDCAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry().with(filter).with(fmt).init();
    let _ = FILTER.set(handle);
    LogGuard {
        _worker: worker,
        dropped,
    }
}

/// The modules a level can be set for (`/logging?<module>=<level>`, also as `shardcar::<module>`).
pub const MODULES: &[&str] = &[
    "admin",
    "authz",
    "cluster",
    "config",
    "ctx",
    "detect",
    "health",
    "http",
    "http1",
    "http2",
    "intercept",
    "io",
    "l4",
    "listener",
    "logging",
    "reload",
    "route",
    "server",
    "shard",
    "telemetry",
    "tls",
    "upstream",
];

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Why a level change was refused.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    #[error("unknown level {0:?} (trace, debug, info, warn, error, off)")]
    Level(String),
    #[error("unknown module {0:?}; modules: {modules}", modules = MODULES.join(", "))]
    Module(String),
    #[error("no reloadable log filter is installed")]
    NoFilter,
    #[error("{0}")]
    Filter(String),
}

/// The filter's directives now, in `EnvFilter` syntax (`info,shardcar::http1=debug`).
pub fn directives() -> Option<String> {
    FILTER.get()?.with_current(|f| f.to_string()).ok()
}

/// Sets the level of every module (`module: None`: the default, dropping per-module
/// directives, as Envoy's `?level=` does) or of one module (`http1` or `shardcar::http1`).
/// Returns the directives now in force.
pub fn set_level(module: Option<&str>, level: &str) -> Result<String, LevelError> {
    let level = level.to_ascii_lowercase();
    if !LEVELS.contains(&level.as_str()) {
        return Err(LevelError::Level(level));
    }
    let handle = FILTER.get().ok_or(LevelError::NoFilter)?;
    let current = directives().unwrap_or_default();
    let next = match module {
        None => level,
        Some(m) => {
            let short = m.strip_prefix("shardcar::").unwrap_or(m);
            let top = short.split("::").next().unwrap_or_default();
            if !MODULES.contains(&top) {
                return Err(LevelError::Module(m.to_string()));
            }
            let target = format!("shardcar::{short}");
            with_directive(&current, &target, &level)
        }
    };
    let filter = EnvFilter::try_new(&next).map_err(|e| LevelError::Filter(e.to_string()))?;
    handle
        .reload(filter)
        .map_err(|e| LevelError::Filter(e.to_string()))?;
    tracing::info!(filter = %next, "log levels changed");
    Ok(next)
}

/// `directives` with `target`'s directive replaced by (or added as) `target=level`.
fn with_directive(directives: &str, target: &str, level: &str) -> String {
    let mut out: Vec<String> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.split_once('=').map(|(t, _)| t) != Some(target))
        .map(String::from)
        .collect();
    out.push(format!("{target}={level}"));
    out.join(",")
}

/// The level in effect for `target` under simple directives (`level`, `target=level`): the
/// longest matching target's, else the default (`info` when none is given).
pub fn effective_level(directives: &str, target: &str) -> String {
    let mut best: Option<(usize, &str)> = None;
    let mut default = "info";
    for d in directives.split(',').map(str::trim) {
        match d.split_once('=') {
            None if LEVELS.contains(&d) => default = d,
            None => {}
            Some((t, l)) => {
                let covers = target == t || target.starts_with(&format!("{t}::"));
                if covers && best.is_none_or(|(n, _)| t.len() > n) {
                    best = Some((t.len(), l));
                }
            }
        }
    }
    best.map_or(default, |(_, l)| l).to_string()
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
    fn directives_are_replaced_per_target_and_resolved_by_longest_match() {
        let d = with_directive("info,shardcar::http1=warn", "shardcar::http1", "debug");
        assert_eq!(d, "info,shardcar::http1=debug");
        let d = with_directive(&d, "shardcar::http1::relay", "trace");
        assert_eq!(effective_level(&d, "shardcar::http1::relay"), "trace");
        assert_eq!(effective_level(&d, "shardcar::http1"), "debug");
        assert_eq!(effective_level(&d, "shardcar::http2"), "info");
        assert_eq!(effective_level("warn", "shardcar::l4"), "warn");
    }

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
