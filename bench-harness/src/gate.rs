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
    /// Median target rps / median direct rps on the throughput scenario.
    pub throughput_ratio: f64,
    /// Rate label → median target p99 − median direct p99 (µs).
    pub added_p99_us: BTreeMap<String, f64>,
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

pub fn figures(r: &Results, cfg: &GateConfig) -> anyhow::Result<Figures> {
    let t = &cfg.target;
    let tp = r
        .cell(&cfg.throughput_scenario, "closed", t, "rps")
        .and_then(|c| c.vs_direct)
        .with_context(|| {
            format!(
                "no {t} and direct throughput in {}",
                cfg.throughput_scenario
            )
        })?;
    let info = r
        .scenarios
        .iter()
        .find(|s| s.name == cfg.latency_scenario)
        .with_context(|| format!("scenario {} was not run", cfg.latency_scenario))?;
    let mut added = BTreeMap::new();
    for v in &info.variants {
        let a = r
            .cell(&cfg.latency_scenario, v, t, "p99_us")
            .and_then(|c| c.added)
            .with_context(|| format!("no {t} and direct p99 in {}/{v}", cfg.latency_scenario))?;
        added.insert(v.clone(), a);
    }
    Ok(Figures {
        throughput_ratio: tp,
        added_p99_us: added,
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
        "throughput ratio to direct: now {:.3}, baseline {:.3}\n",
        now.throughput_ratio, base.throughput_ratio
    );
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
        }
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
        };
        assert_eq!(check(&base, &missing, &c).len(), 1);
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = GateConfig::parse(
            "g.toml",
            &include_str!("../gate.toml").replace("0.15", "\"x\""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`throughput_ratio_drop`"), "{e}");
    }
}
