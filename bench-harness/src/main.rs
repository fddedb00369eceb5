//! `shardbench`: `run` a scenario set into a perf-report, `ci` (the regression gate),
//! `baseline` (rewrite perf-reports/baseline.json), `render` (re-render a report from its
//! results.json), `gate` (compare an existing results.json with the baseline).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shardbench::gate::{self, Baseline, GateConfig, BASELINE_SCHEMA};
use shardbench::proc::{which, Pinning};
use shardbench::results::Results;
use shardbench::run::Runner;
use shardbench::scenario::ScenarioSet;
use shardbench::target::{Program, Programs, TargetId};
use shardbench::{env, report};

#[derive(Parser)]
#[command(about = "Shardcar's benchmark harness")]
struct Cli {
    /// Repository root (holds bench-harness/ and perf-reports/).
    #[arg(long, default_value = ".", global = true)]
    root: PathBuf,
    /// Where shardcar, shardload and shardorigin are (default: next to this binary).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    /// The shardcar binary `shardcar-<mode>@before` targets run (a build of the code before a
    /// change), for before/after figures from one run.
    #[arg(long, global = true)]
    before_shardcar: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario set and write perf-reports/<date>-<sha>-<set>/.
    Run {
        #[arg(long, default_value = "full")]
        set: String,
        /// Parent folder of the report (default: <root>/perf-reports).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not install missing peers with apt (they are skipped with a note).
        #[arg(long)]
        no_install: bool,
    },
    /// Run the `ci` set into target/shardbench/ and compare with the baseline; exit 1 on regression.
    Ci {
        #[arg(long, default_value = "ci")]
        set: String,
        /// Measure again (up to this many times in all) when the figures miss the gate: other
        /// tenants only ever make a run worse, so a real regression misses every attempt while
        /// a contended machine rarely misses them all.
        #[arg(long, default_value_t = 3)]
        attempts: u32,
    },
    /// Run the `ci` set into perf-reports/ and rewrite perf-reports/baseline.json from it.
    Baseline {
        #[arg(long, default_value = "ci")]
        set: String,
    },
    /// Re-render summary.md and charts of a report folder from its results.json.
    Render { dir: PathBuf },
    /// Compare a results.json with the baseline (no measuring).
    Gate { results: PathBuf },
}

fn programs(cli: &Cli) -> anyhow::Result<Programs> {
    let bin = match &cli.bin_dir {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .to_path_buf(),
    };
    Ok(Programs {
        shardcar: bin.join("shardcar"),
        shardcar_before: cli.before_shardcar.clone(),
        shardload: bin.join("shardload"),
        shardorigin: bin.join("shardorigin"),
        peers_dir: cli.root.join("bench-harness/peers"),
    })
}

/// Installs haproxy/nginx with apt when root and missing (once); returns why a target cannot run.
fn availability(programs: &Programs, install: bool) -> impl Fn(&TargetId) -> Option<String> + '_ {
    let missing: Vec<&str> = ["haproxy", "nginx"]
        .into_iter()
        .filter(|p| !which(p))
        .collect();
    if install && !missing.is_empty() && rustix::process::geteuid().is_root() && which("apt-get") {
        eprintln!("shardbench: installing {missing:?} with apt-get");
        let mut pkgs: Vec<&str> = missing.clone();
        if missing.contains(&"nginx") {
            pkgs.push("libnginx-mod-stream");
        }
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {}",
                pkgs.join(" ")
            ))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("shardbench: apt-get install failed; those peers will be skipped");
        }
    }
    let root = rustix::process::geteuid().is_root();
    move |id: &TargetId| {
        let (prog, path) = match id.program {
            Program::Direct => return None,
            Program::Shardcar => ("shardcar", Some(&programs.shardcar)),
            Program::Haproxy => ("haproxy", None),
            Program::Nginx => ("nginx", None),
        };
        match path {
            Some(p) if !p.is_file() => {
                Some(format!("{} not built (cargo build --release)", p.display()))
            }
            Some(_) => None,
            None if which(prog) => None,
            None if root => Some(format!(
                "{prog} is not installed and apt-get could not install it"
            )),
            None => Some(format!(
                "{prog} is not installed (run `make bench` as root to install it with apt)"
            )),
        }
    }
}

fn pin_self(pin: &Pinning) {
    if !pin.applied {
        return;
    }
    let mut set = rustix::thread::CpuSet::new();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    for cpu in 1..n {
        set.set(cpu);
    }
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// Runs `set` and writes its report into `parent/<date>-<sha>-<set>/`.
fn measure(
    cli: &Cli,
    set: &str,
    parent: &Path,
    install: bool,
) -> anyhow::Result<(Results, PathBuf)> {
    let (_, scenarios) = ScenarioSet::resolve(&cli.root.join("bench-harness"), set)?;
    let progs = programs(cli)?;
    for p in [&progs.shardload, &progs.shardorigin] {
        anyhow::ensure!(
            p.is_file(),
            "{} not found (build with `cargo build --release`)",
            p.display()
        );
    }
    let pin = Pinning::for_host();
    pin_self(&pin);
    let envj = env::collect(&cli.root, &pin, set);
    let dir = parent.join(format!(
        "{}-{}-{set}",
        envj["date"].as_str().unwrap_or("date"),
        envj["commit"].as_str().unwrap_or("commit")
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("env.json"),
        serde_json::to_string_pretty(&envj)? + "\n",
    )?;
    eprintln!("shardbench: set `{set}` → {}", dir.display());
    let avail = availability(&progs, install);
    let mut runner = Runner::new(progs.clone(), pin, dir.clone(), set, envj);
    let res = runner.run_all(&scenarios, &avail);
    // Proxy configs and logs are per-run scratch; keep the report small.
    let _ = std::fs::remove_dir_all(dir.join("targets"));
    res?;
    // The runner filled in what the proxies logged (ring mode): env.json gets the final form.
    std::fs::write(
        dir.join("env.json"),
        serde_json::to_string_pretty(&runner.results.env)? + "\n",
    )?;
    report::write(&runner.results, &dir)?;
    Ok((runner.results, dir))
}

/// The 1-minute load average, to say how contended the machine was when a gate attempt missed.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn load_gate(root: &Path) -> anyhow::Result<GateConfig> {
    let p = root.join("bench-harness/gate.toml");
    GateConfig::parse(&p.display().to_string(), &std::fs::read_to_string(&p)?)
}

fn load_baseline(root: &Path) -> anyhow::Result<Baseline> {
    let p = root.join("perf-reports/baseline.json");
    let b: Baseline = serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| p.display().to_string())?,
    )
    .with_context(|| p.display().to_string())?;
    anyhow::ensure!(
        b.schema == BASELINE_SCHEMA,
        "{}: schema {}",
        p.display(),
        b.schema
    );
    Ok(b)
}

fn verdict(root: &Path, r: &Results) -> anyhow::Result<bool> {
    let cfg = load_gate(root)?;
    let base = load_baseline(root)?;
    let now = gate::figures(r, &cfg)?;
    eprint!("{}", gate::describe(&base.figures, &now));
    let fails = gate::check(&base.figures, &now, &cfg);
    if fails.is_empty() {
        eprintln!(
            "bench-ci: PASS ({} vs baseline {} from {})",
            cfg.target, base.commit, base.date
        );
        return Ok(true);
    }
    for f in &fails {
        eprintln!("bench-ci: FAIL: {f}");
    }
    eprintln!(
        "bench-ci: Shardcar regressed against perf-reports/baseline.json (commit {}); if the change is intended, run `make bench-baseline` and commit it",
        base.commit
    );
    Ok(false)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("shardbench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: &Cli) -> anyhow::Result<bool> {
    let perf = cli.root.join("perf-reports");
    match &cli.cmd {
        Cmd::Run {
            set,
            out,
            no_install,
        } => {
            let parent = out.clone().unwrap_or_else(|| perf.clone());
            let (r, dir) = measure(cli, set, &parent, !no_install)?;
            if parent == perf {
                report::index(&perf)?;
            }
            if let Some(h) = report::headline(&r) {
                println!("{h}");
            }
            println!("report: {}", dir.join("summary.md").display());
            Ok(true)
        }
        Cmd::Ci { set, attempts } => {
            let attempts = (*attempts).max(1);
            for attempt in 1..=attempts {
                let (r, dir) = measure(cli, set, &cli.root.join("target/shardbench"), false)?;
                println!("report: {}", dir.join("summary.md").display());
                if verdict(&cli.root, &r)? {
                    return Ok(true);
                }
                if attempt < attempts {
                    eprintln!(
                        "bench-ci: attempt {attempt} of {attempts} missed the gate (load average {}); measuring again",
                        load_average()
                    );
                }
            }
            Ok(false)
        }
        Cmd::Baseline { set } => {
            let (r, dir) = measure(cli, set, &perf, false)?;
            let cfg = load_gate(&cli.root)?;
            let figures = gate::figures(&r, &cfg)?;
            let b = Baseline {
                schema: BASELINE_SCHEMA.into(),
                commit: r.env["commit"].as_str().unwrap_or("?").into(),
                date: r.env["date"].as_str().unwrap_or("?").into(),
                report: format!(
                    "perf-reports/{}",
                    dir.file_name().and_then(|n| n.to_str()).unwrap_or("?")
                ),
                target: cfg.target.clone(),
                figures,
            };
            std::fs::write(
                perf.join("baseline.json"),
                serde_json::to_string_pretty(&b)? + "\n",
            )?;
            report::index(&perf)?;
            eprint!("{}", gate::describe(&b.figures, &b.figures));
            println!("wrote {}", perf.join("baseline.json").display());
            Ok(true)
        }
        Cmd::Render { dir } => {
            let r: Results =
                serde_json::from_str(&std::fs::read_to_string(dir.join("results.json"))?)?;
            report::write(&r, dir)?;
            Ok(true)
        }
        Cmd::Gate { results } => {
            let r: Results = serde_json::from_str(&std::fs::read_to_string(results)?)?;
            verdict(&cli.root, &r)
        }
    }
}
