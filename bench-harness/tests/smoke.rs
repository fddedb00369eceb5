//! End to end: `shardbench run --set smoke` (about 2 s of direct vs Shardcar through real
//! `shardcar`, `shardload` and `shardorigin` processes) writes a report whose files exist and
//! parse. The binaries come from the same target directory as this test (`cargo test
//! --workspace` builds them), or from `SHARDBENCH_BIN_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

use shardbench::load::LoadReport;
use shardbench::results::Results;

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SHARDBENCH_BIN_DIR") {
        return d.into();
    }
    // target/<profile>/deps/smoke-<hash> → target/<profile>
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

#[test]
fn smoke_direct_vs_shardcar_writes_a_parsable_report() {
    let bins = bin_dir();
    for b in ["shardcar", "shardload", "shardorigin"] {
        assert!(
            bins.join(b).is_file(),
            "{} missing: run `cargo build --workspace --bins` (or `cargo test --workspace`) first, or set SHARDBENCH_BIN_DIR",
            bins.join(b).display()
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::env::temp_dir().join(format!("shardbench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let st = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_shardbench"))
        .arg("--root")
        .arg(root)
        .arg("--bin-dir")
        .arg(&bins)
        .args(["run", "--set", "smoke", "--no-install", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "shardbench failed: {st}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = &dirs[0];
    assert!(dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("-smoke"));

    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("env.json")).unwrap()).unwrap();
    for k in ["kernel", "cpu_model", "nproc", "pinning", "commit", "peers"] {
        assert!(!env[k].is_null(), "env.json lacks {k}");
    }
    // The ring mode is the one the proxy logged, and nproc is the machine's (not the harness's
    // pinned mask).
    let logged = env["ring_logged"]["shardcar-http"]
        .as_str()
        .unwrap_or_default();
    assert!(
        logged.starts_with("io_uring") || logged == "epoll",
        "ring_logged: {}",
        env["ring_logged"]
    );
    assert_eq!(env["ring"].as_str(), Some(logged));
    assert_eq!(
        env["nproc"].as_u64(),
        shardbench::env::online_cpus().map(|n| n as u64)
    );
    let r: Results =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert!(
        r.notes
            .iter()
            .all(|n| !n.contains("failed") && !n.contains("did not start")),
        "{:?}",
        r.notes
    );
    for (scenario, variant) in [("h1-throughput", "closed"), ("h1-latency", "1000rps")] {
        for t in ["direct", "shardcar-http"] {
            let s: Vec<_> = r
                .samples
                .iter()
                .filter(|s| s.scenario == scenario && s.variant == variant && s.target == t)
                .collect();
            assert_eq!(s.len(), 1, "{scenario}/{variant}/{t}");
            assert!(s[0].metrics["rps"] > 0.0);
            assert_eq!(s[0].metrics["errors"], 0.0, "{scenario}/{t}");
            let raw = std::fs::read_to_string(dir.join(s[0].raw.as_ref().unwrap())).unwrap();
            LoadReport::parse(&raw).unwrap();
        }
        let sc = r
            .cell(scenario, variant, "shardcar-http", "p99_us")
            .unwrap();
        assert!(sc.vs_direct.is_some() && sc.added.is_some());
        // The proxy's CPU was measured (direct has no proxy).
        assert!(r
            .cell(scenario, variant, "shardcar-http", "cpu_us_per_req")
            .is_some());
        assert!(r
            .cell(scenario, variant, "direct", "cpu_us_per_req")
            .is_none());
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("| shardcar-http |") && summary.contains("| direct |"));
    for line in summary.lines().filter(|l| l.starts_with("![")) {
        let path = line.split("](").nth(1).unwrap().trim_end_matches(')');
        assert!(std::fs::read_to_string(dir.join(path))
            .unwrap()
            .starts_with("<svg"));
    }
    assert_eq!(summary.lines().filter(|l| l.starts_with("![")).count(), 4);
    std::fs::remove_dir_all(&out).unwrap();
}
