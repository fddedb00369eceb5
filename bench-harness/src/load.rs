//! One `shardload` run against a target: builds the command line from the scenario, pins it to
//! the load CPU, reads back the `shardload/v1` JSON (`loadgen/SCHEMA.md`) and measures the proxy's
//! CPU time across the run.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::proc::Pinning;
use crate::scenario::{LoopKind, Protocol, Scenario};
use crate::target::Running;

/// The subset of `shardload/v1` the harness reads (unknown keys ignored, as the schema asks).
#[derive(Debug, Clone, Deserialize)]
pub struct LoadReport {
    pub schema: String,
    pub summary: LoadSummary,
    pub latency_us: Latency,
    pub generator: Generator,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoadSummary {
    pub requests: u64,
    pub errors: u64,
    pub achieved_rps: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Generator {
    pub bottleneck: bool,
    pub warning: Option<String>,
}

impl LoadReport {
    pub fn parse(text: &str) -> anyhow::Result<LoadReport> {
        let r: LoadReport = serde_json::from_str(text).context("shardload JSON")?;
        if r.schema != "shardload/v1" {
            bail!("unsupported shardload schema `{}`", r.schema);
        }
        Ok(r)
    }
}

/// The figures of one run, ready to become a sample.
#[derive(Debug, Clone)]
pub struct LoadRun {
    pub report: LoadReport,
    pub cpu_us_per_req: Option<f64>,
}

/// Runs `shardload` once against `target`; `rate` is `None` for closed loop.
pub fn run(
    shardload: &Path,
    pin: &Pinning,
    s: &Scenario,
    target: &Running,
    rate: Option<f64>,
    json_out: &Path,
) -> anyhow::Result<LoadRun> {
    let mut c = pin.load(shardload);
    c.arg(url(target.addr, s.tls));
    match (s.loop_kind, rate) {
        (LoopKind::Open, Some(r)) => c.arg("--rps").arg(format!("{r:.0}")),
        _ => c
            .arg("--concurrency")
            .arg((s.connections * s.streams).to_string()),
    };
    c.arg("--connections").arg(s.connections.to_string());
    if s.streams > 1 {
        c.arg("--streams").arg(s.streams.to_string());
    }
    c.arg("--duration").arg(secs(s.duration));
    c.arg("--warmup").arg(secs(s.warmup));
    c.arg("--json").arg(json_out).arg("--quiet");
    if s.protocol == Protocol::H2 {
        c.arg("--h2");
    }
    if s.tls {
        c.args(["--tls", "--insecure"]);
    }
    if s.request_bytes > 0 {
        c.args(["--method", "POST", "--body-size"])
            .arg(s.request_bytes.to_string());
    }
    let base = target.id.id.strip_suffix(crate::target::BEFORE);
    let id = base.unwrap_or(&target.id.id);
    for h in s.target_headers.get(id).into_iter().flatten() {
        c.arg("--header").arg(h);
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let cpu0 = target.cpu_seconds();
    let out = c
        .output()
        .with_context(|| format!("running {}", shardload.display()))?;
    let cpu1 = target.cpu_seconds();
    if !out.status.success() {
        bail!(
            "shardload against {} failed ({}): {}",
            target.id.id,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let report = LoadReport::parse(&std::fs::read_to_string(json_out)?)?;
    // CPU is measured over the whole run (warm-up included), so divide by every request sent
    // in it: measured requests scaled by (duration + warm-up) / duration.
    let whole = (s.duration + s.warmup).as_secs_f64() / s.duration.as_secs_f64();
    let cpu_us_per_req = match (cpu0, cpu1) {
        (Some(a), Some(b)) if report.summary.requests > 0 => {
            Some((b - a) * 1e6 / (report.summary.requests as f64 * whole))
        }
        _ => None,
    };
    Ok(LoadRun {
        report,
        cpu_us_per_req,
    })
}

fn url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}/", if tls { "https" } else { "http" })
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_schema_subset() {
        let j = r#"{"schema":"shardload/v1","extra":1,
          "summary":{"requests":10,"errors":0,"achieved_rps":5.0,"measured_s":2.0},
          "latency_us":{"p50":1,"p75":2,"p90":3,"p99":4,"p999":5,"p9999":6,"max":7},
          "generator":{"bottleneck":false,"warning":null}}"#;
        let r = LoadReport::parse(j).unwrap();
        assert_eq!(r.summary.requests, 10);
        assert_eq!(r.latency_us.p999, 5.0);
        assert!(LoadReport::parse(&j.replace("v1", "v2")).is_err());
    }
}
