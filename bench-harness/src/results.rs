//! The result model (`results.json`, schema `shardbench/v1`): one [`Sample`] per measured run
//! (a target × variant × repetition), and the derived [`Table`]s: medians with min–max, ratios
//! to `direct` and to the best peer, added latency (target − direct). Reports and the CI gate
//! are both rendered from this file, so they can be re-rendered from canned JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stats::{ratio, spread, Spread};

pub const SCHEMA: &str = "shardbench/v1";

/// Whether a larger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// Metric name → (heading, unit, better).
pub fn metric_info(name: &str) -> (&'static str, &'static str, Better) {
    match name {
        "rps" => ("throughput", "req/s", Better::Higher),
        "p50_us" => ("p50", "µs", Better::Lower),
        "p75_us" => ("p75", "µs", Better::Lower),
        "p90_us" => ("p90", "µs", Better::Lower),
        "p99_us" => ("p99", "µs", Better::Lower),
        "p999_us" => ("p99.9", "µs", Better::Lower),
        "p9999_us" => ("p99.99", "µs", Better::Lower),
        "cpu_us_per_req" => ("proxy CPU", "µs/req", Better::Lower),
        "errors" => ("errors", "", Better::Lower),
        "mb_s" => ("throughput", "MB/s", Better::Higher),
        "cpu_s_per_gb" => ("proxy CPU", "s/GB", Better::Lower),
        "rss_idle_kb" => ("RSS idle", "KiB", Better::Lower),
        "rss_loaded_kb" => ("RSS loaded", "KiB", Better::Lower),
        "kb_per_conn" => ("per connection", "KiB", Better::Lower),
        _ => ("?", "", Better::Lower),
    }
}

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub scenario: String,
    /// `closed`, `5000rps`, `50pct-knee`, `1GiB`, `5000-idle`, ...
    pub variant: String,
    pub target: String,
    pub rep: u32,
    pub metrics: BTreeMap<String, f64>,
    /// Raw loadgen JSON, relative to the report folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// What one scenario was, as run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioInfo {
    pub name: String,
    pub description: String,
    pub kind: String,
    pub targets: Vec<String>,
    pub variants: Vec<String>,
    /// Human description of the load ("closed loop, 50 connections, 64 B responses, 5s × 3").
    pub load: String,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    pub schema: String,
    pub set: String,
    pub env: serde_json::Value,
    pub scenarios: Vec<ScenarioInfo>,
    pub samples: Vec<Sample>,
    /// Skipped peers, generator warnings, knee values: printed in the report, never dropped.
    pub notes: Vec<String>,
}

/// A cell of a summary row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub spread: Spread,
    pub vs_direct: Option<f64>,
    pub vs_best_peer: Option<f64>,
    /// target − direct (medians), for latency metrics.
    pub added: Option<f64>,
}

impl Results {
    pub fn samples_of<'a>(
        &'a self,
        scenario: &'a str,
        variant: &'a str,
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.scenario == scenario && s.variant == variant)
    }

    /// Median/min/max of `metric` for one target in one scenario variant.
    pub fn spread(
        &self,
        scenario: &str,
        variant: &str,
        target: &str,
        metric: &str,
    ) -> Option<Spread> {
        let v: Vec<f64> = self
            .samples_of(scenario, variant)
            .filter(|s| s.target == target)
            .filter_map(|s| s.metrics.get(metric).copied())
            .collect();
        spread(&v)
    }

    /// The cell for `target`, with ratios against `direct` and the best peer.
    pub fn cell(&self, scenario: &str, variant: &str, target: &str, metric: &str) -> Option<Cell> {
        let s = self.spread(scenario, variant, target, metric)?;
        let info = self.scenarios.iter().find(|i| i.name == scenario)?;
        let direct = self.spread(scenario, variant, "direct", metric);
        let (_, _, better) = metric_info(metric);
        let best_peer = info
            .targets
            .iter()
            .filter(|t| crate::target::TargetId::parse(t).is_ok_and(|id| id.is_peer()))
            .filter_map(|t| self.spread(scenario, variant, t, metric))
            .map(|p| p.median)
            .reduce(|a, b| match better {
                Better::Higher => a.max(b),
                Better::Lower => a.min(b),
            });
        Some(Cell {
            spread: s,
            vs_direct: direct.and_then(|d| ratio(s.median, d.median)),
            vs_best_peer: best_peer.and_then(|p| ratio(s.median, p)),
            added: direct
                .filter(|_| metric.ends_with("_us") && target != "direct")
                .map(|d| s.median - d.median),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(target: &str, rep: u32, rps: f64, p99: f64) -> Sample {
        Sample {
            scenario: "s".into(),
            variant: "closed".into(),
            target: target.into(),
            rep,
            metrics: [("rps".to_string(), rps), ("p99_us".to_string(), p99)].into(),
            raw: None,
        }
    }

    #[test]
    fn cells_have_ratios_and_added_latency() {
        let r = Results {
            schema: SCHEMA.into(),
            set: "t".into(),
            env: serde_json::Value::Null,
            scenarios: vec![ScenarioInfo {
                name: "s".into(),
                description: String::new(),
                kind: "load".into(),
                targets: vec![
                    "direct".into(),
                    "shardcar-http".into(),
                    "haproxy-http".into(),
                    "nginx-http".into(),
                ],
                variants: vec!["closed".into()],
                load: String::new(),
            }],
            samples: vec![
                sample("direct", 1, 100.0, 10.0),
                sample("direct", 2, 120.0, 12.0),
                sample("direct", 3, 110.0, 11.0),
                sample("shardcar-http", 1, 55.0, 20.0),
                sample("haproxy-http", 1, 50.0, 30.0),
                sample("nginx-http", 1, 40.0, 25.0),
            ],
            notes: vec![],
        };
        let c = r.cell("s", "closed", "shardcar-http", "rps").unwrap();
        assert_eq!(c.vs_direct, Some(0.5));
        assert_eq!(c.vs_best_peer, Some(1.1)); // best peer by throughput: haproxy (50)
        assert_eq!(c.added, None);
        let l = r.cell("s", "closed", "shardcar-http", "p99_us").unwrap();
        assert_eq!(l.added, Some(9.0));
        assert_eq!(l.vs_best_peer, Some(0.8)); // best peer by latency: nginx (25)
        let d = r.cell("s", "closed", "direct", "rps").unwrap();
        assert_eq!(
            (d.spread.median, d.spread.min, d.spread.max),
            (110.0, 100.0, 120.0)
        );
        assert_eq!(d.added, None);
        assert!(r.cell("s", "closed", "nope", "rps").is_none());
    }
}
