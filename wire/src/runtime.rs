//! Shard runtimes: one monoio runtime per OS thread, pinned to one CPU.
//!
//! The io_uring ring is built with `SINGLE_ISSUER | DEFER_TASKRUN`: completions are processed only
//! when the owning thread enters the kernel to wait, so there are no inter-processor interrupts and
//! no task-work spinlock per request. Measured on this machine (DESIGN.md §2) this halves proxy CPU
//! per request against monoio's default ring (14.7 → 7.45 µs/req L4). If the kernel refuses the
//! flags we fall back to `COOP_TASKRUN`, then to monoio's epoll ("legacy") driver, and log which.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

/// The runtime type every shard runs: io_uring with a timer wheel, or epoll with a timer wheel.
pub type ShardRuntime = monoio::FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// Which event loop a shard ended up with, most efficient first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingMode {
    /// io_uring with `SINGLE_ISSUER | DEFER_TASKRUN` (the intended mode).
    DeferTaskrun,
    /// io_uring with `COOP_TASKRUN` (kernels before 6.1).
    CoopTaskrun,
    /// io_uring with the kernel's default flags (only when asked for, to measure the difference).
    Plain,
    /// monoio's epoll driver (no io_uring at all).
    Epoll,
}

impl RingMode {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RingMode::DeferTaskrun => "io_uring+single_issuer+defer_taskrun",
            RingMode::CoopTaskrun => "io_uring+coop_taskrun",
            RingMode::Plain => "io_uring(default flags)",
            RingMode::Epoll => "epoll",
        }
    }

    /// Parses the `SHARDCAR_RING` override: `defer`, `coop`, `plain` or `epoll`.
    pub fn from_env_name(name: &str) -> Option<RingMode> {
        match name {
            "defer" => Some(RingMode::DeferTaskrun),
            "coop" => Some(RingMode::CoopTaskrun),
            "plain" => Some(RingMode::Plain),
            "epoll" => Some(RingMode::Epoll),
            _ => None,
        }
    }
}

const RING_ENTRIES: u32 = 1024;

fn try_build(mode: RingMode) -> io::Result<ShardRuntime> {
    let mut urb = io_uring::IoUring::builder();
    match mode {
        RingMode::DeferTaskrun => {
            urb.setup_single_issuer().setup_defer_taskrun();
        }
        RingMode::CoopTaskrun => {
            urb.setup_coop_taskrun();
        }
        RingMode::Plain => {}
        RingMode::Epoll => {
            let rt = RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()?;
            return Ok(rt.into());
        }
    }
    let rt = RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(RING_ENTRIES)
        .uring_builder(urb)
        .enable_timer()
        .build()?;
    Ok(rt.into())
}

/// Builds this thread's runtime. With `preferred = None` it tries the best mode first and falls
/// back; with `Some(mode)` (the `SHARDCAR_RING` override, for benchmarks) it starts at that mode.
pub fn build_runtime(preferred: Option<RingMode>) -> io::Result<(ShardRuntime, RingMode)> {
    let order = [
        RingMode::DeferTaskrun,
        RingMode::CoopTaskrun,
        RingMode::Plain,
        RingMode::Epoll,
    ];
    let start = preferred
        .and_then(|p| order.iter().position(|m| *m == p))
        .unwrap_or(0);
    let mut last_err = None;
    for mode in &order[start..] {
        if *mode == RingMode::Plain && preferred != Some(RingMode::Plain) {
            continue; // never fall back to the slow default ring silently
        }
        match try_build(*mode) {
            Ok(rt) => return Ok((rt, *mode)),
            Err(e) => {
                tracing::warn!(mode = mode.as_str(), error = %e, "runtime mode unavailable, falling back");
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no runtime could be built")))
}

/// Reads the `SHARDCAR_RING` environment override, if set and valid.
pub fn ring_override_from_env() -> Option<RingMode> {
    std::env::var("SHARDCAR_RING")
        .ok()
        .and_then(|v| RingMode::from_env_name(&v))
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

/// Starts one shard thread per element of `payloads`. Shard `i` is pinned to the `i`-th allowed
/// CPU (wrapping), builds its own runtime and runs `body(i, payloads[i], mode)` to completion.
/// The payload carries what the shard owns from birth (e.g. its listening sockets).
pub fn spawn_shards<T, F, Fut>(
    payloads: Vec<T>,
    name: &str,
    body: F,
) -> io::Result<Vec<JoinHandle<()>>>
where
    T: Send + 'static,
    F: Fn(usize, T, RingMode) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cpus = allowed_cpus();
    let preferred = ring_override_from_env();
    let mut handles = Vec::with_capacity(payloads.len());
    for (i, payload) in payloads.into_iter().enumerate() {
        let body = body.clone();
        let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        let handle = std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                        tracing::warn!(shard = i, cpu, "could not pin shard to its CPU");
                    }
                }
                let (mut rt, mode) = match build_runtime(preferred) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(shard = i, error = %e, "shard runtime failed to start");
                        return;
                    }
                };
                tracing::info!(shard = i, ?cpu, ring = mode.as_str(), "shard started");
                rt.block_on(body(i, payload, mode));
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ring flags halve CPU per request; if this kernel supports them (Linux ≥ 6.1), losing
    /// them must fail a test, not just a benchmark.
    #[test]
    fn default_runtime_uses_defer_taskrun_on_modern_kernels() {
        let (mut rt, mode) = build_runtime(None).expect("runtime");
        assert_eq!(
            mode,
            RingMode::DeferTaskrun,
            "kernel should support DEFER_TASKRUN"
        );
        let v = rt.block_on(async { 40 + 2 });
        assert_eq!(v, 42);
    }

    #[test]
    fn override_starts_at_requested_mode() {
        let (_rt, mode) = build_runtime(Some(RingMode::Epoll)).expect("runtime");
        assert_eq!(mode, RingMode::Epoll);
        let (_rt, mode) = build_runtime(Some(RingMode::CoopTaskrun)).expect("runtime");
        assert_eq!(mode, RingMode::CoopTaskrun);
    }

    #[test]
    fn spawned_shards_run_their_bodies() {
        let (tx, rx) = std::sync::mpsc::channel();
        let handles = spawn_shards(vec![10, 20], "t", move |i, p, _| {
            let tx = tx.clone();
            async move {
                tx.send(i + p).unwrap();
            }
        })
        .unwrap();
        for h in handles {
            h.join().unwrap();
        }
        let mut got: Vec<usize> = rx.try_iter().collect();
        got.sort();
        assert_eq!(got, vec![10, 21]);
    }
}
