//! Report rendering from canned results (`tests/golden/results.json`): `summary.md` must match
//! `tests/golden/summary.md` byte for byte (regenerate with `UPDATE_GOLDEN=1` after an intended
//! change and review the diff), and every chart must be written as SVG.

use std::path::Path;

use shardbench::report;
use shardbench::results::Results;

fn canned() -> Results {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn summary_matches_golden() {
    let r = canned();
    let out = std::env::temp_dir().join(format!("shardbench-golden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    report::write(&r, &out).unwrap();
    let got = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/summary.md");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        got, want,
        "summary.md differs from the golden file (UPDATE_GOLDEN=1 to accept)"
    );
    // Every chart the summary links exists and is an SVG with the target names in it.
    let mut n = 0;
    for line in got.lines().filter(|l| l.starts_with("![")) {
        let path = line.split("](").nth(1).unwrap().trim_end_matches(')');
        let svg = std::fs::read_to_string(out.join(path)).unwrap();
        assert!(svg.starts_with("<svg"), "{path}");
        assert!(svg.contains("shardcar-http"), "{path}");
        n += 1;
    }
    assert_eq!(
        n, 5,
        "throughput + spectrum for two load variants, bars for memory"
    );
    // Rendering is a pure function of results.json: results.json round-trips.
    let again: Results =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(again, r);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn summary_has_ratios_and_added_latency() {
    let r = canned();
    let t = report::table(&r, "h1-throughput", "closed");
    let row = t
        .lines()
        .find(|l| l.starts_with("| shardcar-http |"))
        .unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // target, rps, × direct, × best peer, ...
    let direct = r
        .cell("h1-throughput", "closed", "direct", "rps")
        .unwrap()
        .spread
        .median;
    let sc = r
        .cell("h1-throughput", "closed", "shardcar-http", "rps")
        .unwrap()
        .spread
        .median;
    assert_eq!(cells[3], format!("{:.2}", sc / direct));
    assert_eq!(cells[4], format!("{:.2}", 1.0 / 0.9)); // haproxy was canned at 0.9 × shardcar
    assert!(cells[7].starts_with('+'), "added p99: {row}");
}
