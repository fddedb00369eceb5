//! `--find-max --slo-p99 D`: the highest open-loop rate whose p99 stays within the SLO and whose
//! achieved rate is within 2% of target. Exponential growth from the start rate until a step
//! fails, then binary search between the last pass and the first fail, to 5% resolution or
//! `max_steps` runs.

use crate::plan::{Mode, Plan};
use crate::report::{FindMax, FindStep};
use crate::run::{run, Outcome};

pub struct Search {
    pub slo_p99_us: f64,
    pub start_rps: f64,
    pub max_steps: usize,
}

fn passes(o: &Outcome, slo: f64) -> bool {
    let r = &o.report;
    r.latency_us.p99 <= slo
        && r.summary.rate_ratio.unwrap_or(0.0) >= 0.98
        && r.summary.errors == 0
        && !r.generator.bottleneck
}

/// Runs the search; returns the last passing run's outcome (or the last run) with `find_max` set.
pub fn find_max(
    base: &Plan,
    s: &Search,
    mut on_step: impl FnMut(&FindStep),
) -> anyhow::Result<Outcome> {
    let mut steps = Vec::new();
    let mut best: Option<(f64, Outcome)> = None;
    let mut last: Option<Outcome> = None;
    let mut lo = 0.0f64;
    let mut hi: Option<f64> = None;
    let mut rate = s.start_rps;
    for _ in 0..s.max_steps {
        let mut p = base.clone();
        p.mode = Mode::Open { rps: rate };
        let o = run(&p)?;
        let ok = passes(&o, s.slo_p99_us);
        let step = FindStep {
            target_rps: rate,
            achieved_rps: o.report.summary.achieved_rps,
            p99_us: o.report.latency_us.p99,
            errors: o.report.summary.errors,
            generator_bottleneck: o.report.generator.bottleneck,
            ok,
        };
        on_step(&step);
        steps.push(step);
        if ok {
            lo = rate;
            best = Some((rate, o));
        } else {
            hi = Some(rate);
            last = Some(o);
        }
        rate = match hi {
            None => rate * 2.0,
            Some(h) => {
                if h - lo <= 0.05 * h {
                    break;
                }
                (lo + h) / 2.0
            }
        };
    }
    let max_rps = best.as_ref().map(|(r, _)| *r);
    let mut out = match best {
        Some((_, o)) => o,
        None => last.expect("at least one step ran"),
    };
    out.report.find_max = Some(FindMax {
        slo_p99_us: s.slo_p99_us,
        max_rps,
        steps,
    });
    Ok(out)
}
