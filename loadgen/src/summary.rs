//! Turns merged shard statistics into the result document (`report::Report`), including the
//! generator-health verdict.

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::plan::{Mode, Plan, Stop};
use crate::report::*;
use crate::stats::ShardStats;

fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let q = |p: f64| h.value_at_quantile(p) as f64;
    Latency {
        count: h.len(),
        min: h.min() as f64,
        mean: h.mean(),
        stdev: h.stdev(),
        p50: q(0.50),
        p75: q(0.75),
        p90: q(0.90),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        max: h.max() as f64,
    }
}

fn spread(h: &Histogram<u64>) -> Spread {
    if h.is_empty() {
        return Spread::default();
    }
    Spread {
        mean: h.mean(),
        p50: h.value_at_quantile(0.5) as f64,
        p99: h.value_at_quantile(0.99) as f64,
        max: h.max() as f64,
    }
}

/// Echo of the plan, as the schema's `config`.
pub fn config_echo(plan: &Plan, ring: &str) -> ConfigEcho {
    ConfigEcho {
        urls: plan.targets.iter().map(|t| t.url.clone()).collect(),
        method: plan.method.clone(),
        protocol: plan.protocol.as_str().into(),
        tls: plan.tls.is_some(),
        mode: match plan.mode {
            Mode::Open { .. } => "open".into(),
            Mode::Closed { .. } => "closed".into(),
        },
        target_rps: match plan.mode {
            Mode::Open { rps } => Some(rps),
            Mode::Closed { .. } => None,
        },
        concurrency: match plan.mode {
            Mode::Closed { concurrency } => Some(concurrency),
            Mode::Open { .. } => None,
        },
        connections: plan.connections,
        streams: plan.streams,
        shards: plan.shards as u64,
        duration_s: match plan.stop {
            Stop::Duration(d) => Some(d.as_secs_f64()),
            Stop::Requests(_) => None,
        },
        requests: match plan.stop {
            Stop::Requests(n) => Some(n),
            Stop::Duration(_) => None,
        },
        warmup_s: plan.warmup.as_secs_f64(),
        timeout_s: plan.timeout.as_secs_f64(),
        body_size: plan.body.len() as u64,
        ring: ring.into(),
    }
}

/// Builds the report. `started` is the wall-clock start of the run.
pub fn build(plan: &Plan, st: &ShardStats, started: SystemTime) -> Report {
    let target = match plan.mode {
        Mode::Open { rps } => Some(rps),
        Mode::Closed { .. } => None,
    };
    // The window runs from the end of warm-up to the planned end (open loop) or the last
    // completion, whichever is later: late sends stretch it and so lower the achieved rate.
    let end = match (st.planned_end, st.last_send, st.last_done) {
        (Some(p), Some(s), _) if target.is_some() => p.max(s),
        (Some(p), _, _) if target.is_some() => p,
        (_, _, Some(d)) => d,
        _ => st.window_start,
    };
    let measured_s = end
        .saturating_duration_since(st.window_start)
        .as_secs_f64()
        .max(1e-9);
    let requests = st.latency.len();
    let achieved = requests as f64 / measured_s;
    let errors = st.errors.total();

    let late_fraction = if st.sends > 0 {
        st.late_sends as f64 / st.sends as f64
    } else {
        0.0
    };
    let lag = spread(&st.lag);
    let rate_short = target.is_some_and(|t| achieved < 0.98 * t);
    // The generator is the bottleneck when its own send lag is common or large: then latency
    // and rate describe the generator, not the target.
    let bottleneck = late_fraction > 0.01
        || lag.p99 > 5_000.0
        || (rate_short && st.queued_sends == 0 && errors == 0);
    let warning =
        bottleneck.then(|| {
            format!(
            "GENERATOR FELL BEHIND SCHEDULE: {:.1}% of sends left > 1 ms late (p99 lag {:.0} µs, \
             max {:.0} µs){}. These results measure shardload, not the target: add --shards, \
             lower --rps, or give the generator its own CPU.",
            late_fraction * 100.0,
            lag.p99,
            lag.max,
            if rate_short {
                format!(", achieved {achieved:.0} of {:.0} rps", target.unwrap_or(0.0))
            } else {
                String::new()
            }
        )
        });

    let timeseries = st
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| Second {
            t_s: i as u64,
            requests: s.requests,
            errors: s.errors,
            // The last second may be partial: scale to the part inside the window.
            rps: s.requests as f64 / (measured_s - i as f64).clamp(0.05, 1.0),
            p50_us: if s.hist.is_empty() {
                0.0
            } else {
                s.hist.value_at_quantile(0.5) as f64
            },
            p99_us: if s.hist.is_empty() {
                0.0
            } else {
                s.hist.value_at_quantile(0.99) as f64
            },
        })
        .collect();

    Report {
        schema: SCHEMA.into(),
        tool: Tool {
            name: "shardload".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        config: config_echo(plan, st.ring),
        summary: Summary {
            measured_s,
            requests,
            errors,
            achieved_rps: achieved,
            rate_ratio: target.map(|t| achieved / t),
            bytes_in: st.bytes_in,
            bytes_out: st.bytes_out,
        },
        latency_us: latency(&st.latency),
        status: st.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        errors: st.errors.clone(),
        generator: Generator {
            sends: st.sends,
            late_sends: st.late_sends,
            late_fraction,
            lag_us: lag,
            queued_sends: st.queued_sends,
            queue_wait_us: spread(&st.queue_wait),
            bottleneck,
            warning,
        },
        timeseries,
        find_max: None,
    }
}

/// Formats microseconds for humans.
pub fn fmt_us(us: f64) -> String {
    let d = Duration::from_nanos((us * 1000.0) as u64);
    if us >= 1_000_000.0 {
        format!("{:.2}s", d.as_secs_f64())
    } else if us >= 1000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}
