//! Report rendering from [`Results`]: `summary.md` (tables of medians with min–max, ratios to
//! `direct` and to the best peer, added latency), the SVG charts, and the `perf-reports/README.md`
//! index. Pure functions of `results.json`, so a report can be re-rendered and golden-tested.

use std::fmt::Write as _;
use std::path::Path;

use crate::results::{metric_info, Results};

/// One column of a table.
#[derive(Debug, Clone, Copy)]
enum Col {
    /// median (min–max)
    Value(&'static str),
    /// median / direct median
    VsDirect(&'static str),
    /// median / best peer median
    VsPeer(&'static str),
    /// median − direct median
    Added(&'static str),
}

fn columns(kind: &str, variant: &str) -> Vec<Col> {
    use Col::*;
    match (kind, variant) {
        ("load", "closed") => vec![
            Value("rps"),
            VsDirect("rps"),
            VsPeer("rps"),
            Value("p50_us"),
            Value("p99_us"),
            Added("p99_us"),
            Value("cpu_us_per_req"),
            VsPeer("cpu_us_per_req"),
        ],
        ("load", _) => vec![
            Value("rps"),
            Value("p50_us"),
            Added("p50_us"),
            Value("p90_us"),
            Value("p99_us"),
            Added("p99_us"),
            Value("p999_us"),
            Added("p999_us"),
            Value("cpu_us_per_req"),
            VsPeer("cpu_us_per_req"),
        ],
        ("bulk", _) => vec![
            Value("mb_s"),
            VsDirect("mb_s"),
            VsPeer("mb_s"),
            Value("cpu_s_per_gb"),
            VsPeer("cpu_s_per_gb"),
        ],
        _ => vec![
            Value("rss_idle_kb"),
            Value("rss_loaded_kb"),
            Value("kb_per_conn"),
            VsPeer("kb_per_conn"),
        ],
    }
}

/// Three significant-ish digits without noise: 31234 → "31234", 12.34 → "12.3", 1.234 → "1.23".
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn heading(c: Col) -> String {
    let (h, unit, _) = match c {
        Col::Value(m) | Col::VsDirect(m) | Col::VsPeer(m) | Col::Added(m) => metric_info(m),
    };
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    match c {
        Col::Value(_) => format!("{h}{unit}"),
        Col::VsDirect(_) => format!("{h} × direct"),
        Col::VsPeer(_) => format!("{h} × best peer"),
        Col::Added(_) => format!("+{h} vs direct{unit}"),
    }
}

/// The markdown table of one scenario variant.
pub fn table(r: &Results, scenario: &str, variant: &str) -> String {
    let Some(info) = r.scenarios.iter().find(|i| i.name == scenario) else {
        return String::new();
    };
    let cols = columns(&info.kind, variant);
    let mut out = String::from("| target |");
    for c in &cols {
        let _ = write!(out, " {} |", heading(*c));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(cols.len()));
    out.push('\n');
    for t in &info.targets {
        let _ = write!(out, "| {t} |");
        for c in &cols {
            let cell = match *c {
                Col::Value(m) => r.cell(scenario, variant, t, m).map(|c| {
                    let s = c.spread;
                    if s.n > 1 {
                        format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
                    } else {
                        num(s.median)
                    }
                }),
                Col::VsDirect(m) => r
                    .cell(scenario, variant, t, m)
                    .and_then(|c| c.vs_direct)
                    .map(|v| format!("{v:.2}")),
                Col::VsPeer(m) => r
                    .cell(scenario, variant, t, m)
                    .and_then(|c| c.vs_best_peer)
                    .map(|v| format!("{v:.2}")),
                Col::Added(m) => r
                    .cell(scenario, variant, t, m)
                    .and_then(|c| c.added)
                    .map(|v| format!("{v:+.0}")),
            };
            let _ = write!(out, " {} |", cell.unwrap_or_else(|| "–".into()));
        }
        out.push('\n');
    }
    out
}

fn env_str(r: &Results, key: &str) -> String {
    match &r.env[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "?".into(),
        v => v.to_string(),
    }
}

fn chart_names(scenario: &str, variant: &str) -> (String, String) {
    (
        format!("charts/{scenario}-{variant}-bars.svg"),
        format!("charts/{scenario}-{variant}-spectrum.svg"),
    )
}

/// The headline table: Shardcar and peers on the first throughput scenario present.
pub fn headline(r: &Results) -> Option<String> {
    let info = r
        .scenarios
        .iter()
        .find(|i| i.kind == "load" && i.variants.iter().any(|v| v == "closed"))?;
    Some(format!(
        "**{}** ({}):\n\n{}",
        info.name,
        info.description,
        table(r, &info.name, "closed")
    ))
}

/// `summary.md`. `charts` lists the chart files that exist (relative to the report folder).
pub fn summary_md(r: &Results, charts: &[String]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# shardbench `{}` — {} `{}`\n",
        r.set,
        env_str(r, "date"),
        env_str(r, "commit")
    );
    let pin = &r.env["pinning"];
    let _ = writeln!(
        o,
        "Host: Linux {}, {} × {}. Pinning: proxy on CPU {}, loadgen + origin on CPU {}{}; Shardcar `--shards 1`, ring {}. \
         Peers: HAProxy {}, nginx {} (configs in `bench-harness/peers/`: one thread/worker, logging off, keepalive to the upstream).\n",
        env_str(r, "kernel"),
        env_str(r, "nproc"),
        env_str(r, "cpu_model"),
        pin["proxy_cpus"].as_str().unwrap_or("?"),
        pin["load_cpus"].as_str().unwrap_or("?"),
        if pin["applied"].as_bool() == Some(true) { "" } else { " (NOT applied: one CPU or no taskset)" },
        env_str(r, "ring"),
        r.env["peers"]["haproxy"].as_str().map_or("absent", |v| v.split_whitespace().nth(2).unwrap_or(v)),
        r.env["peers"]["nginx"].as_str().map_or("absent", |v| v.rsplit('/').next().unwrap_or(v)),
    );
    o.push_str(
        "Method: every target runs during its scenario; repetitions are interleaved (A B C A B C); cells are \
         medians with (min–max) over repetitions; `× direct` and `× best peer` divide medians (best peer = best \
         HAProxy/nginx figure in the same run); `+pNN vs direct` is target − direct at the same percentile; \
         proxy CPU is utime+stime from `/proc/<pid>/stat` across the run divided by the requests sent. \
         Raw `shardload/v1` JSON per run is under `raw/`.\n\n",
    );
    if !r.notes.is_empty() {
        o.push_str("## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(o, "- {n}");
        }
        o.push('\n');
    }
    for s in &r.scenarios {
        let _ = writeln!(o, "## {}\n\n{}. {}.\n", s.name, s.description, s.load);
        for v in &s.variants {
            let _ = writeln!(o, "### {v}\n\n{}", table(r, &s.name, v));
            let (tp, lat) = chart_names(&s.name, v);
            for c in [tp, lat] {
                if charts.contains(&c) {
                    let _ = writeln!(o, "![{c}]({c})\n");
                }
            }
        }
    }
    o
}

/// Writes `results.json`, charts and `summary.md` into `dir`.
pub fn write(r: &Results, dir: &Path) -> anyhow::Result<()> {
    crate::run::save(r, dir)?;
    std::fs::create_dir_all(dir.join("charts"))?;
    let mut charts = vec![];
    for s in &r.scenarios {
        for v in &s.variants {
            let (tp, lat) = chart_names(&s.name, v);
            let metric = match s.kind.as_str() {
                "load" => Some("rps"),
                "bulk" => Some("mb_s"),
                "memory" => Some("kb_per_conn"),
                _ => None,
            };
            if let Some(m) = metric {
                if crate::chart::bars(r, &s.name, v, m, &dir.join(&tp))? {
                    charts.push(tp);
                }
            }
            if s.kind == "load" && crate::chart::spectrum(r, &s.name, v, &dir.join(&lat))? {
                charts.push(lat);
            }
        }
    }
    std::fs::write(dir.join("summary.md"), summary_md(r, &charts))?;
    Ok(())
}

/// Rewrites `perf-reports/README.md`: one line per report folder, newest first.
pub fn index(perf_reports: &Path) -> anyhow::Result<()> {
    let mut dirs: Vec<String> = std::fs::read_dir(perf_reports)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("summary.md").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    dirs.sort();
    dirs.reverse();
    let mut o = String::from(
        "# perf-reports\n\nOne folder per benchmark run: `<YYYY-MM-DD>-<shortsha>-<set>/` with `env.json`, \
         `results.json`, raw loadgen JSON under `raw/`, `summary.md` and SVG charts under `charts/`. \
         Produced by `make bench` (set `full`) and `make bench-baseline` (set `ci`, which also rewrites \
         `baseline.json`, the reference of the CI gate `make bench-ci`). This index is regenerated by \
         `shardbench`.\n\n| report | set | commit | headline |\n|---|---|---|---|\n",
    );
    for d in dirs {
        let res = std::fs::read_to_string(perf_reports.join(&d).join("results.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Results>(&t).ok());
        let (set, commit, head) = match &res {
            Some(r) => (r.set.clone(), env_str(r, "commit"), headline_cell(r)),
            None => ("(hand-run)".into(), "".into(), "see summary".into()),
        };
        let _ = writeln!(o, "| [{d}]({d}/summary.md) | {set} | {commit} | {head} |");
    }
    std::fs::write(perf_reports.join("README.md"), o)?;
    Ok(())
}

/// One-line headline: Shardcar's throughput ratio to direct on the first closed-loop scenario.
fn headline_cell(r: &Results) -> String {
    let Some(info) = r
        .scenarios
        .iter()
        .find(|i| i.kind == "load" && i.variants.iter().any(|v| v == "closed"))
    else {
        return String::new();
    };
    info.targets
        .iter()
        .filter(|t| t.starts_with("shardcar"))
        .filter_map(|t| {
            let c = r.cell(&info.name, "closed", t, "rps")?;
            Some(format!(
                "{}: {t} {} req/s ({} × direct)",
                info.name,
                num(c.spread.median),
                c.vs_direct.map_or("–".into(), |v| format!("{v:.2}"))
            ))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
