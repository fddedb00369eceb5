//! The Prometheus text exposition format (version 0.0.4) of a merged [`MetricsSnapshot`]:
//! `# HELP` / `# TYPE` per family, counters with `_total`, histograms as cumulative
//! `_bucket{le=…}` series ending in `le="+Inf"` plus `_sum` and `_count`, and label values
//! escaped (`\\`, `\"`, `\n`). `promtool check metrics` accepts the output (tested end to end).

use std::fmt::Write;

use super::snapshot::{Family, Kind, MetricsSnapshot, Value};

/// Appends every family of `m` to `out`.
pub fn write(out: &mut String, m: &MetricsSnapshot) {
    for f in &m.families {
        if !f.series.is_empty() {
            family(out, f);
        }
    }
}

fn family(out: &mut String, f: &Family) {
    let (kind, name) = match f.kind {
        Kind::Counter => ("counter", format!("{}_total", f.name)),
        Kind::Gauge => ("gauge", f.name.to_string()),
        Kind::Histogram => ("histogram", f.name.to_string()),
    };
    let _ = writeln!(out, "# HELP {name} {}", escape_help(f.help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (values, v) in &f.series {
        match v {
            Value::Int(n) => {
                out.push_str(&name);
                labels(out, f.labels, values, None);
                let _ = writeln!(out, " {n}");
            }
            Value::Hist(h) => {
                let scale = h.buckets.scale();
                let mut cumulative = 0u64;
                let bounds = h.buckets.bounds();
                for (i, c) in h.counts.iter().enumerate() {
                    cumulative += c;
                    let le = match bounds.get(i) {
                        Some(b) => format_float(*b as f64 / scale),
                        None => "+Inf".to_string(),
                    };
                    let _ = write!(out, "{name}_bucket");
                    labels(out, f.labels, values, Some(&le));
                    let _ = writeln!(out, " {cumulative}");
                }
                let _ = write!(out, "{name}_sum");
                labels(out, f.labels, values, None);
                let _ = writeln!(out, " {}", format_float(h.sum as f64 / scale));
                let _ = write!(out, "{name}_count");
                labels(out, f.labels, values, None);
                let _ = writeln!(out, " {cumulative}");
            }
        }
    }
}

fn labels(out: &mut String, names: &[&str], values: &[String], le: Option<&str>) {
    if names.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (n, v) in names.iter().zip(values) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{n}=\"");
        escape_value(out, v);
        out.push('"');
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        let _ = write!(out, "le=\"{le}\"");
    }
    out.push('}');
}

/// Label value escaping: backslash, double quote and line feed.
pub fn escape_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP escaping: backslash and line feed.
fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus reads it (`0.5`, `1`, `2500`).
fn format_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::histogram::{Buckets, Histogram};
    use super::*;

    #[test]
    fn counters_histograms_and_escaping() {
        let mut m = MetricsSnapshot::default();
        m.family("req", "requests", Kind::Counter, &["code", "path"])
            .int(vec!["200".into(), "a\"b\\c\nd".into()], 3);
        let h = Histogram::new(Buckets::DurationMs);
        h.record(700);
        h.record(2_000_000);
        m.family("lat", "latency", Kind::Histogram, &["code"])
            .add(vec!["200".into()], Value::Hist(h.snapshot()));
        let mut out = String::new();
        write(&mut out, &m);
        assert!(out.contains("# TYPE req_total counter\n"), "{out}");
        assert!(
            out.contains("req_total{code=\"200\",path=\"a\\\"b\\\\c\\nd\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_bucket{code=\"200\",le=\"0.5\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_bucket{code=\"200\",le=\"1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_bucket{code=\"200\",le=\"2500\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_bucket{code=\"200\",le=\"+Inf\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("lat_sum{code=\"200\"} 2000.7\n"), "{out}");
        assert!(out.contains("lat_count{code=\"200\"} 2\n"), "{out}");
    }
}
