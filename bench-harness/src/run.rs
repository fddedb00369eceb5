//! Runs a scenario set: per scenario, starts the origin and every target once, then measures
//! repetitions interleaved (A B C A B C) per variant, printing progress, and collects samples
//! (raw loadgen JSON kept under `raw/`). Every process is stopped by its handle at the end of
//! its scenario.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::proc::{raise_nofile, rss_kb, wait_line, Pinning, Proc};
use crate::results::{Results, Sample, ScenarioInfo, SCHEMA};
use crate::scenario::{Kind, LoopKind, Rate, Scenario};
use crate::stats::{interleave, median};
use crate::target::{self, Program, Programs, Running, TargetId};

/// The state of one invocation.
#[derive(Debug)]
pub struct Runner {
    pub programs: Programs,
    pub pin: Pinning,
    /// The report folder (raw JSON and proxy configs/logs go below it).
    pub out: PathBuf,
    pub results: Results,
    started: Instant,
    step: usize,
    steps: usize,
}

impl Runner {
    pub fn new(
        programs: Programs,
        pin: Pinning,
        out: PathBuf,
        set: &str,
        env: serde_json::Value,
    ) -> Runner {
        raise_nofile();
        Runner {
            programs,
            pin,
            out,
            results: Results {
                schema: SCHEMA.into(),
                set: set.into(),
                env,
                scenarios: vec![],
                samples: vec![],
                notes: vec![],
            },
            started: Instant::now(),
            step: 0,
            steps: 0,
        }
    }

    /// Puts the ring mode a Shardcar target logged into `env.json`: `ring_logged` per target,
    /// and `ring` the distinct modes seen (what actually ran, not what was asked for).
    fn record_ring(&mut self, r: &Running) {
        let Some(mode) = &r.ring else { return };
        let env = &mut self.results.env;
        env["ring_logged"][r.id.id.as_str()] = serde_json::Value::from(mode.as_str());
        let mut modes: Vec<&str> = env["ring_logged"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        modes.sort_unstable();
        modes.dedup();
        env["ring"] = serde_json::Value::from(modes.join(", "));
    }

    fn note(&mut self, msg: String) {
        eprintln!("shardbench: NOTE: {msg}");
        self.results.notes.push(msg);
    }

    fn progress(&mut self, what: &str) {
        self.step += 1;
        let el = self.started.elapsed().as_secs();
        eprintln!(
            "[{:>3}/{}] {:>2}:{:02} {what}",
            self.step,
            self.steps,
            el / 60,
            el % 60
        );
    }

    /// Runs all scenarios; a target that cannot start is skipped with a note, never silently.
    pub fn run_all(
        &mut self,
        scenarios: &[Scenario],
        available: &dyn Fn(&TargetId) -> Option<String>,
    ) -> anyhow::Result<()> {
        self.steps = scenarios
            .iter()
            .map(|s| {
                let variants = if s.kind == Kind::Load && s.loop_kind == LoopKind::Open {
                    s.rates.len()
                } else {
                    1
                };
                variants * s.targets.len() * s.repetitions as usize
            })
            .sum();
        for s in scenarios {
            let mut s = s.clone();
            let mut kept = vec![];
            for t in &s.targets {
                let id = TargetId::parse(t).map_err(anyhow::Error::msg)?;
                match available(&id) {
                    None => kept.push(t.clone()),
                    Some(why) => {
                        self.steps -= s.repetitions as usize * s.rates.len().max(1);
                        self.note(format!("{}: skipped target {t}: {why}", s.name));
                    }
                }
            }
            s.targets = kept;
            match s.kind {
                Kind::Load => self.run_load(&s)?,
                Kind::Bulk => self.run_bulk(&s)?,
                Kind::Memory => self.run_memory(&s)?,
            }
        }
        Ok(())
    }

    fn start_origin(&self, body: usize) -> anyhow::Result<(Proc, SocketAddr)> {
        let mut c = self.pin.load(&self.programs.shardorigin);
        c.args(["--listen", "127.0.0.1:0", "--body-size"])
            .arg(body.to_string());
        c.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let (p, out) = Proc::spawn("shardorigin", c)?;
        let addr = wait_line(
            out.context("origin stdout")?,
            Duration::from_secs(10),
            |l| {
                l.strip_prefix("shardorigin listening on ")
                    .and_then(|a| a.parse().ok())
            },
        )?;
        Ok((p, addr))
    }

    /// Starts every target; failures become notes.
    fn start_targets(&mut self, s: &Scenario, origin: SocketAddr) -> Vec<Running> {
        let mut running = vec![];
        for t in &s.targets {
            let id = TargetId::parse(t).expect("validated");
            let dir = self.out.join("targets").join(&s.name).join(t);
            match target::start(&id, origin, &self.programs, &self.pin, &dir) {
                Ok(r) => {
                    self.record_ring(&r);
                    running.push(r)
                }
                Err(e) => self.note(format!("{}: target {t} did not start: {e:#}", s.name)),
            }
        }
        running
    }

    fn info(&mut self, s: &Scenario, targets: &[Running], variants: Vec<String>, load: String) {
        self.results.scenarios.push(ScenarioInfo {
            name: s.name.clone(),
            description: s.description.clone(),
            kind: format!("{:?}", s.kind).to_lowercase(),
            targets: targets.iter().map(|t| t.id.id.clone()).collect(),
            variants,
            load,
        });
    }

    /// The knee for `s`: the lowest median closed-loop throughput over its targets already
    /// measured in this invocation, else a 2-second closed-loop probe of each target.
    fn knee(&mut self, s: &Scenario, targets: &[Running]) -> anyhow::Result<f64> {
        let mut per_target = vec![];
        for t in targets {
            let v: Vec<f64> = self
                .results
                .samples
                .iter()
                .filter(|x| {
                    x.target == t.id.id && x.variant == "closed" && x.metrics.contains_key("rps")
                })
                .filter(|x| {
                    self.results
                        .scenarios
                        .iter()
                        .any(|i| i.name == x.scenario && i.kind == "load")
                })
                .map(|x| x.metrics["rps"])
                .collect();
            match median(&v) {
                Some(m) => per_target.push(m),
                None => {
                    let mut probe = s.clone();
                    probe.loop_kind = LoopKind::Closed;
                    probe.duration = Duration::from_secs(2);
                    probe.warmup = Duration::from_millis(500);
                    let json = self
                        .out
                        .join("raw")
                        .join(&s.name)
                        .join(format!("knee-probe-{}.json", t.id.id));
                    let r = crate::load::run(
                        &self.programs.shardload,
                        &self.pin,
                        &probe,
                        t,
                        None,
                        &json,
                    )?;
                    per_target.push(r.report.summary.achieved_rps);
                }
            }
        }
        let knee = per_target.into_iter().fold(f64::INFINITY, f64::min);
        anyhow::ensure!(
            knee.is_finite() && knee > 0.0,
            "{}: no knee measured",
            s.name
        );
        Ok(knee)
    }

    fn run_load(&mut self, s: &Scenario) -> anyhow::Result<()> {
        let (mut origin, origin_addr) = self.start_origin(s.response_bytes)?;
        let targets = self.start_targets(s, origin_addr);
        let variants: Vec<(String, Option<f64>)> = match s.loop_kind {
            LoopKind::Closed => vec![("closed".into(), None)],
            LoopKind::Open => {
                let mut v = vec![];
                for r in &s.rates {
                    let rate = match r {
                        Rate::Fixed(x) => *x,
                        Rate::KneeFraction(f) => {
                            let knee = self.knee(s, &targets)?;
                            self.note(format!(
                                "{}: knee {knee:.0} req/s (lowest closed-loop median over targets); {} = {:.0} req/s",
                                s.name,
                                r.label(),
                                knee * f
                            ));
                            knee * f
                        }
                    };
                    v.push((r.label(), Some(rate)));
                }
                v
            }
        };
        let load = match s.loop_kind {
            LoopKind::Closed if s.streams > 1 => format!(
                "closed loop, {} connections × {} streams",
                s.connections, s.streams
            ),
            LoopKind::Closed => format!("closed loop, {} connections", s.connections),
            LoopKind::Open => format!(
                "open loop at {} over {} connections",
                variants
                    .iter()
                    .map(|(l, r)| format!("{l} ({:.0} req/s)", r.unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.connections
            ),
        };
        let load = format!(
            "{load}, {}{} {} B requests / {} B responses, {:?} + {:?} warm-up, {} repetitions",
            match s.protocol {
                crate::scenario::Protocol::Http1 => "HTTP/1.1",
                crate::scenario::Protocol::H2 => "h2",
            },
            if s.tls { " over TLS" } else { "" },
            s.request_bytes,
            s.response_bytes,
            s.duration,
            s.warmup,
            s.repetitions
        );
        self.info(
            s,
            &targets,
            variants.iter().map(|v| v.0.clone()).collect(),
            load,
        );
        for (label, rate) in &variants {
            for (rep, ti) in interleave(targets.len(), s.repetitions) {
                let t = &targets[ti];
                let rel = format!("raw/{}/{}-{}-rep{rep}.json", s.name, t.id.id, label);
                let json = self.out.join(&rel);
                std::fs::create_dir_all(json.parent().expect("has parent"))?;
                let r = crate::load::run(&self.programs.shardload, &self.pin, s, t, *rate, &json);
                let r = match r {
                    Ok(r) => r,
                    Err(e) => {
                        self.progress(&format!("{}/{label} {} rep {rep}: FAILED", s.name, t.id.id));
                        self.note(format!(
                            "{}/{label}: {} rep {rep} failed: {e:#}",
                            s.name, t.id.id
                        ));
                        continue;
                    }
                };
                let l = &r.report.latency_us;
                let mut m: BTreeMap<String, f64> = [
                    ("rps", r.report.summary.achieved_rps),
                    ("p50_us", l.p50),
                    ("p75_us", l.p75),
                    ("p90_us", l.p90),
                    ("p99_us", l.p99),
                    ("p999_us", l.p999),
                    ("p9999_us", l.p9999),
                    ("errors", r.report.summary.errors as f64),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                if let Some(c) = r.cpu_us_per_req {
                    m.insert("cpu_us_per_req".into(), c);
                }
                self.progress(&format!(
                    "{}/{label} {} rep {rep}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs{}",
                    s.name,
                    t.id.id,
                    m["rps"],
                    m["p50_us"],
                    m["p99_us"],
                    r.cpu_us_per_req
                        .map_or(String::new(), |c| format!(", proxy {c:.2} µs CPU/req"))
                ));
                if r.report.generator.bottleneck {
                    let w = r.report.generator.warning.clone().unwrap_or_default();
                    self.note(format!(
                        "{}/{label}: {} rep {rep}: load generator was the bottleneck: {w}",
                        s.name, t.id.id
                    ));
                }
                if r.report.summary.errors > 0 {
                    self.note(format!(
                        "{}/{label}: {} rep {rep}: {} errors",
                        s.name, t.id.id, r.report.summary.errors
                    ));
                }
                self.results.samples.push(Sample {
                    scenario: s.name.clone(),
                    variant: label.clone(),
                    target: t.id.id.clone(),
                    rep,
                    metrics: m,
                    raw: Some(rel),
                });
            }
        }
        drop(targets);
        origin.stop();
        Ok(())
    }

    fn run_bulk(&mut self, s: &Scenario) -> anyhow::Result<()> {
        let sink = crate::bulk::Sink::start(s.bulk_bytes)?;
        let targets = self.start_targets(s, sink.addr());
        let label = format!("{}MiB-x{}", s.bulk_bytes >> 20, s.connections);
        let load = format!(
            "{} connection(s), {} MiB each way at once, {} repetitions",
            s.connections,
            s.bulk_bytes >> 20,
            s.repetitions
        );
        self.info(s, &targets, vec![label.clone()], load);
        for (rep, ti) in interleave(targets.len(), s.repetitions) {
            let t = &targets[ti];
            let c0 = t.cpu_seconds();
            let r = crate::bulk::run(t.addr, s.connections, s.bulk_bytes);
            let c1 = t.cpu_seconds();
            let elapsed = match r {
                Ok(e) => e,
                Err(e) => {
                    self.progress(&format!("{}/{label} {} rep {rep}: FAILED", s.name, t.id.id));
                    self.note(format!("{}: {} rep {rep} failed: {e:#}", s.name, t.id.id));
                    continue;
                }
            };
            let moved = 2.0 * (s.bulk_bytes * s.connections) as f64;
            let mut m = BTreeMap::new();
            m.insert("mb_s".to_string(), moved / 1e6 / elapsed.as_secs_f64());
            if let (Some(a), Some(b)) = (c0, c1) {
                m.insert("cpu_s_per_gb".to_string(), (b - a) / (moved / 1e9));
            }
            self.progress(&format!(
                "{}/{label} {} rep {rep}: {:.0} MB/s{}",
                s.name,
                t.id.id,
                m["mb_s"],
                m.get("cpu_s_per_gb")
                    .map_or(String::new(), |c| format!(", proxy {c:.2} s CPU/GB"))
            ));
            self.results.samples.push(Sample {
                scenario: s.name.clone(),
                variant: label.clone(),
                target: t.id.id.clone(),
                rep,
                metrics: m,
                raw: None,
            });
        }
        drop(targets);
        drop(sink);
        Ok(())
    }

    fn run_memory(&mut self, s: &Scenario) -> anyhow::Result<()> {
        let (mut origin, origin_addr) = self.start_origin(s.response_bytes)?;
        let label = format!("{}-idle", s.idle_connections);
        let mut names = vec![];
        for (rep, ti) in interleave(s.targets.len(), s.repetitions) {
            // One target at a time: a fresh process per repetition, so RSS starts from idle.
            let id = TargetId::parse(&s.targets[ti]).expect("validated");
            if id.program == Program::Direct {
                continue;
            }
            let dir = self.out.join("targets").join(&s.name).join(&id.id);
            let t = match target::start(&id, origin_addr, &self.programs, &self.pin, &dir) {
                Ok(t) => {
                    self.record_ring(&t);
                    t
                }
                Err(e) => {
                    self.note(format!("{}: target {} did not start: {e:#}", s.name, id.id));
                    continue;
                }
            };
            let pid = t.pid().expect("proxy has a pid");
            let idle = rss_kb(pid)? as f64;
            let conns = crate::memory::open_idle(t.addr, s.idle_connections);
            let conns = match conns {
                Ok(c) => c,
                Err(e) => {
                    self.progress(&format!("{}/{label} {} rep {rep}: FAILED", s.name, id.id));
                    self.note(format!("{}: {} rep {rep} failed: {e:#}", s.name, id.id));
                    continue;
                }
            };
            // A measurement settle time, not synchronisation: RSS is read after the idle period.
            std::thread::sleep(s.settle);
            let loaded = rss_kb(pid)? as f64;
            drop(conns);
            drop(t);
            let per = (loaded - idle) / s.idle_connections as f64;
            self.progress(&format!(
                "{}/{label} {} rep {rep}: RSS idle {idle:.0} KiB, loaded {loaded:.0} KiB, {per:.2} KiB/conn",
                s.name, id.id
            ));
            if !names.contains(&id.id) {
                names.push(id.id.clone());
            }
            self.results.samples.push(Sample {
                scenario: s.name.clone(),
                variant: label.clone(),
                target: id.id.clone(),
                rep,
                metrics: [
                    ("rss_idle_kb", idle),
                    ("rss_loaded_kb", loaded),
                    ("kb_per_conn", per),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                raw: None,
            });
        }
        let load = format!(
            "RSS after start, then with {} idle keepalive connections (one GET each) after {:?} idle, {} repetitions",
            s.idle_connections, s.settle, s.repetitions
        );
        self.results.scenarios.push(ScenarioInfo {
            name: s.name.clone(),
            description: s.description.clone(),
            kind: "memory".into(),
            targets: names,
            variants: vec![label],
            load,
        });
        origin.stop();
        Ok(())
    }
}

/// Writes `results.json` into `dir`.
pub fn save(results: &Results, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    Ok(())
}
