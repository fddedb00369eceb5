//! The human-readable result table (stdout) and the loud generator warning (stderr).

use std::fmt::Write;

use crate::report::Report;
use crate::summary::fmt_us;

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let c = &r.config;
    let _ = writeln!(
        s,
        "shardload {} → {} ({}{}, {} loop, {} conns × {} streams, {} shards, ring {})",
        c.method,
        c.urls.join(", "),
        c.protocol,
        if c.tls { "+tls" } else { "" },
        c.mode,
        c.connections,
        c.streams,
        c.shards,
        c.ring
    );
    let sm = &r.summary;
    let _ = write!(
        s,
        "  requests {}  errors {}  in {:.2}s  →  {:.1} req/s",
        sm.requests, sm.errors, sm.measured_s, sm.achieved_rps
    );
    if let (Some(t), Some(ratio)) = (c.target_rps, sm.rate_ratio) {
        let _ = write!(s, " (target {t:.0}, {:.1}%)", ratio * 100.0);
    }
    let _ = writeln!(s);
    let l = &r.latency_us;
    let _ = writeln!(
        s,
        "  latency{}:",
        if c.mode == "open" {
            " (from intended send time)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "    {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p75", "p90", "p99", "p99.9", "p99.99", "max", "mean", "stdev"
    );
    let _ = writeln!(
        s,
        "    {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        fmt_us(l.p50),
        fmt_us(l.p75),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.p999),
        fmt_us(l.p9999),
        fmt_us(l.max),
        fmt_us(l.mean),
        fmt_us(l.stdev)
    );
    let status: Vec<String> = r.status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(s, "  status   {}", status.join("  "));
    let e = &r.errors;
    let _ = writeln!(
        s,
        "  errors   connect {}  timeout {}  reset {}  protocol {}  tls {}  other {}",
        e.connect, e.timeout, e.reset, e.protocol, e.tls, e.other
    );
    let g = &r.generator;
    let _ = writeln!(
        s,
        "  generator  sends {}  late(>1ms) {} ({:.2}%)  lag p99 {}  max {}  queued for a free conn {} (p99 wait {})",
        g.sends,
        g.late_sends,
        g.late_fraction * 100.0,
        fmt_us(g.lag_us.p99),
        fmt_us(g.lag_us.max),
        g.queued_sends,
        fmt_us(g.queue_wait_us.p99)
    );
    if let Some(f) = &r.find_max {
        let _ = writeln!(s, "  knee search (SLO p99 ≤ {}):", fmt_us(f.slo_p99_us));
        for st in &f.steps {
            let _ = writeln!(
                s,
                "    target {:>9.0}  achieved {:>9.0}  p99 {:>9}  errors {:>5}  {}",
                st.target_rps,
                st.achieved_rps,
                fmt_us(st.p99_us),
                st.errors,
                if st.ok { "ok" } else { "FAIL" }
            );
        }
        match f.max_rps {
            Some(m) => {
                let _ = writeln!(s, "  max rate within SLO: {m:.0} req/s");
            }
            None => {
                let _ = writeln!(s, "  no rate met the SLO");
            }
        }
    }
    s
}

/// The warning, framed so nobody misses it.
pub fn warning_banner(r: &Report) -> Option<String> {
    let w = r.generator.warning.as_ref()?;
    let bar = "!".repeat(78);
    Some(format!("{bar}\n!! {w}\n{bar}"))
}
