//! The CI regression gate: reduces a `ci` run to Shardcar's throughput ratio to `direct` and its
//! added p99 per open-loop rate, and compares them with `perf-reports/baseline.json` under the
//! tolerances of `bench-harness/gate.toml`.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::results::Results;

/// `bench-harness/gate.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    pub target: String,
    pub throughput_scenario: String,
    pub latency_scenario: String,
    pub throughput_ratio_drop: f64,
    pub added_p99_growth_us: f64,
    pub added_p99_growth_factor: f64,
    /// Fail when the proxy's best CPU µs/request grows by more than this fraction.
    pub cpu_per_req_growth: f64,
}

impl GateConfig {
    pub fn parse(file: &str, text: &str) -> anyhow::Result<GateConfig> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{file}: field `{}`: {}", e.path(), e.inner().message()))
    }
}

/// The figures the gate compares.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    /// Best target rps / best direct rps on the throughput scenario.
    pub throughput_ratio: f64,
    /// Rate label → lowest target p99 − lowest direct p99 (µs).
    pub added_p99_us: BTreeMap<String, f64>,
    /// Lowest proxy CPU µs/request on the throughput scenario (the steadiest figure on a
    /// shared host: other tenants change it far less than throughput or tail latency).
    #[serde(default)]
    pub cpu_us_per_req: Option<f64>,
}

/// `perf-reports/baseline.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    pub schema: String,
    pub commit: String,
    pub date: String,
    /// The report folder the figures come from.
    pub report: String,
    pub target: String,
    pub figures: Figures,
}

pub const BASELINE_SCHEMA: &str = "shardbench-baseline/v1";

/// Best-of-N figures: the highest throughput and the lowest p99 of each target over its
/// repetitions. Interference from other tenants only ever lowers throughput and raises latency,
/// so the best repetition is the most stable estimate of what the code can do on a shared host
/// (the reports still show medians with min–max).
pub fn figures(r: &Results, cfg: &GateConfig) -> anyhow::Result<Figures> {
    let t = &cfg.target;
    let best = |scenario: &str, variant: &str, target: &str, metric: &str, max: bool| {
        r.spread(scenario, variant, target, metric)
            .map(|s| if max { s.max } else { s.min })
            .with_context(|| format!("no {target} {metric} in {scenario}/{variant}"))
    };
    let sc = &cfg.throughput_scenario;
    let tp = best(sc, "closed", t, "rps", true)? / best(sc, "closed", "direct", "rps", true)?;
    let info = r
        .scenarios
        .iter()
        .find(|s| s.name == cfg.latency_scenario)
        .with_context(|| format!("scenario {} was not run", cfg.latency_scenario))?;
    let mut added = BTreeMap::new();
    for v in &info.variants {
        let l = &cfg.latency_scenario;
        let a = best(l, v, t, "p99_us", false)? - best(l, v, "direct", "p99_us", false)?;
        added.insert(v.clone(), a);
    }
    let cpu = best(sc, "closed", t, "cpu_us_per_req", false).ok();
    Ok(Figures {
        throughput_ratio: tp,
        added_p99_us: added,
        cpu_us_per_req: cpu,
    })
}

/// Every violated tolerance as a human sentence; empty means pass.
pub fn check(base: &Figures, now: &Figures, cfg: &GateConfig) -> Vec<String> {
    let mut fails = vec![];
    let floor = base.throughput_ratio * (1.0 - cfg.throughput_ratio_drop);
    if now.throughput_ratio < floor {
        fails.push(format!(
            "{} throughput on {} is {:.3} × direct, below the allowed {:.3} (baseline {:.3} minus {:.0}%)",
            cfg.target,
            cfg.throughput_scenario,
            now.throughput_ratio,
            floor,
            base.throughput_ratio,
            cfg.throughput_ratio_drop * 100.0
        ));
    }
    if let (Some(b), Some(n)) = (base.cpu_us_per_req, now.cpu_us_per_req) {
        let ceiling = b * (1.0 + cfg.cpu_per_req_growth);
        if n > ceiling {
            fails.push(format!(
                "{} uses {n:.2} µs CPU per request on {}, above the allowed {ceiling:.2} (baseline {b:.2} plus {:.0}%)",
                cfg.target,
                cfg.throughput_scenario,
                cfg.cpu_per_req_growth * 100.0
            ));
        }
    }
    for (rate, b) in &base.added_p99_us {
        let Some(n) = now.added_p99_us.get(rate) else {
            fails.push(format!(
                "{}: rate {rate} from the baseline was not measured",
                cfg.latency_scenario
            ));
            continue;
        };
        let ceiling = b + cfg
            .added_p99_growth_us
            .max(cfg.added_p99_growth_factor * b.abs());
        if *n > ceiling {
            fails.push(format!(
                "{} adds {n:.0} µs to p99 on {}/{rate}, above the allowed {ceiling:.0} µs (baseline {b:.0} µs)",
                cfg.target, cfg.latency_scenario
            ));
        }
    }
    fails
}

/// The gate's verdict lines for the log, pass or fail.
pub fn describe(base: &Figures, now: &Figures) -> String {
    let mut s = format!(
        "throughput ratio to direct (best of N): now {:.3}, baseline {:.3}\n",
        now.throughput_ratio, base.throughput_ratio
    );
    let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    s.push_str(&format!(
        "proxy CPU µs/request (best of N): now {}, baseline {}\n",
        f(now.cpu_us_per_req),
        f(base.cpu_us_per_req)
    ));
    for (rate, b) in &base.added_p99_us {
        let n = now
            .added_p99_us
            .get(rate)
            .map_or("–".into(), |v| format!("{v:.0}"));
        s.push_str(&format!(
            "added p99 at {rate}: now {n} µs, baseline {b:.0} µs\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GateConfig {
        GateConfig::parse("gate.toml", include_str!("../gate.toml")).unwrap()
    }

    fn figs(ratio: f64, added: f64) -> Figures {
        Figures {
            throughput_ratio: ratio,
            added_p99_us: [("5000rps".to_string(), added)].into(),
            cpu_us_per_req: Some(10.0),
        }
    }

    #[test]
    fn cpu_per_request_gate() {
        let c = cfg();
        let base = figs(0.6, 100.0);
        let mut now = figs(0.6, 100.0);
        now.cpu_us_per_req = Some(10.0 * (1.0 + c.cpu_per_req_growth) - 0.01);
        assert!(check(&base, &now, &c).is_empty());
        now.cpu_us_per_req = Some(10.0 * (1.0 + c.cpu_per_req_growth) + 0.01);
        let f = check(&base, &now, &c);
        assert!(f.len() == 1 && f[0].contains("CPU"), "{f:?}");
        now.cpu_us_per_req = None; // not measured (e.g. no /proc): not gated
        assert!(check(&base, &now, &c).is_empty());
    }

    #[test]
    fn passes_within_tolerance_and_fails_beyond() {
        let c = cfg();
        let base = figs(0.60, 100.0);
        assert!(check(
            &base,
            &figs(0.60 * (1.0 - c.throughput_ratio_drop) + 1e-9, 100.0),
            &c
        )
        .is_empty());
        let f = check(
            &base,
            &figs(0.60 * (1.0 - c.throughput_ratio_drop) - 0.01, 100.0),
            &c,
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].contains("throughput"), "{f:?}");
        let allowed = 100.0 + c.added_p99_growth_us.max(c.added_p99_growth_factor * 100.0);
        assert!(check(&base, &figs(0.6, allowed - 1.0), &c).is_empty());
        let f = check(&base, &figs(0.6, allowed + 1.0), &c);
        assert!(f.len() == 1 && f[0].contains("p99"), "{f:?}");
        let missing = Figures {
            throughput_ratio: 0.6,
            added_p99_us: BTreeMap::new(),
            cpu_us_per_req: Some(10.0),
        };
        assert_eq!(check(&base, &missing, &c).len(), 1);
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = GateConfig::parse(
            "g.toml",
            &include_str!("../gate.toml").replace(
                "throughput_ratio_drop = 0.6",
                "throughput_ratio_drop = \"x\"",
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`throughput_ratio_drop`"), "{e}");
    }
}
