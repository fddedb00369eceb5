//! Runs a plan: splits it over shards (`wire::spawn_shards`, one pinned monoio runtime each),
//! waits for them, merges their statistics and builds the report.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use crate::engine::{run_shard, ShardJob};
use crate::plan::{Mode, Plan, Stop};
use crate::report::Report;
use crate::stats::ShardStats;

/// Time between spawning shards and the first scheduled send, for connection setup.
const START_DELAY: Duration = Duration::from_millis(50);

/// The result of a run: the report plus the raw merged histogram (for `--hdr`).
pub struct Outcome {
    pub report: Report,
    pub stats: ShardStats,
}

/// Runs `plan` to completion on `plan.shards` threads.
pub fn run(plan: &Plan) -> anyhow::Result<Outcome> {
    plan.validate()?;
    let tls = match &plan.tls {
        Some(o) => Some(Arc::new(crate::tls::client_config(o, plan.protocol)?)),
        None => None,
    };
    let shards = plan.shards;
    let plan_arc = Arc::new(plan.clone());
    let t0 = Instant::now() + START_DELAY;
    let started = SystemTime::now() + START_DELAY;
    let (tx, rx) = mpsc::channel::<ShardStats>();
    let counters: Vec<Arc<AtomicU64>> = (0..shards).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut jobs = Vec::with_capacity(shards);
    for (i, counter) in counters.iter().enumerate() {
        let conns = plan.connections / shards as u64
            + u64::from((i as u64) < plan.connections % shards as u64);
        let share = conns as f64 / plan.connections as f64;
        let rps = match plan.mode {
            Mode::Open { rps } => rps * share,
            Mode::Closed { .. } => 0.0,
        };
        let requests = match plan.stop {
            Stop::Requests(n) => {
                Some(n / shards as u64 + u64::from((i as u64) < n % shards as u64))
            }
            Stop::Duration(_) => None,
        };
        jobs.push((
            ShardJob {
                plan: plan_arc.clone(),
                index: i,
                connections: conns,
                rps,
                phase: i as f64 / shards as f64,
                requests,
                t0,
                tls: tls.clone(),
                progress: counter.clone(),
            },
            tx.clone(),
        ));
    }
    drop(tx);
    let handles = wire::spawn_shards(jobs, "shardload", |_, (job, tx), mode| async move {
        let stats = run_shard(job, mode.as_str()).await;
        let _ = tx.send(stats);
    })?;

    let show = plan.progress && std::io::stderr().is_terminal();
    let expected = match plan.stop {
        Stop::Duration(d) => Some(plan.warmup + d),
        Stop::Requests(_) => None,
    };
    let mut merged: Option<ShardStats> = None;
    let mut got = 0;
    while got < shards {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(s) => {
                got += 1;
                match merged.as_mut() {
                    Some(m) => m.merge(s),
                    None => merged = Some(s),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if show {
                    let done: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
                    let el = t0.elapsed();
                    let bar = expected.map(|e| {
                        let f = (el.as_secs_f64() / e.as_secs_f64()).min(1.0);
                        let n = (f * 30.0) as usize;
                        format!("[{}{}] ", "#".repeat(n), ".".repeat(30 - n))
                    });
                    eprint!(
                        "\r{}{:>6.1}s  {} responses   ",
                        bar.unwrap_or_default(),
                        el.as_secs_f64(),
                        done
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if show {
        eprintln!();
    }
    for h in handles {
        let _ = h.join();
    }
    anyhow::ensure!(
        got == shards,
        "only {got} of {shards} shards reported (see logs)"
    );
    let stats = merged.expect("at least one shard");
    let report = crate::summary::build(plan, &stats, started);
    Ok(Outcome { report, stats })
}

/// Writes the merged latency histogram as an HdrHistogram interval log (values in µs).
pub fn write_hdr(stats: &ShardStats, path: &std::path::Path) -> anyhow::Result<()> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let secs = stats
        .last_done
        .map(|d| d.saturating_duration_since(stats.window_start))
        .unwrap_or_default();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("shardload latency histogram, values in microseconds")
            .begin_log_with(&mut out, &mut ser)?;
        w.write_histogram(&stats.latency, Duration::ZERO, secs, Tag::new("latency"))?;
    }
    std::fs::write(path, out)?;
    Ok(())
}
