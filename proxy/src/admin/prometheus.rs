//! `GET /stats/prometheus` (admin port and the Istio agent's health port): the shards'
//! merged counters (`shardcar_…`), the labelled per-shard metrics (Istio's standard metrics,
//! listener and cluster stats; see `telemetry::metrics`), control-side counters the shards
//! relay (JWKS refreshes), TLS handshake counts and process figures (resident memory), in the Prometheus text
//! format.

use std::fmt::Write as _;
use std::io;
use std::net::TcpStream;

use super::routes::counters_of;
use super::{respond, AdminCtx, Request};
use crate::authz::refresh::JwksCount;
use crate::telemetry::metrics::prometheus::{escape_value, write};

pub fn prometheus(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    let mut total = ctx.server.total_stats();
    ctx.baseline.apply_metrics(&mut total.metrics);
    let mut body = String::with_capacity(64 * 1024);
    for (name, help, v, gauge) in counters_of(ctx, &total) {
        let (kind, suffix) = if gauge {
            ("gauge", "")
        } else {
            ("counter", "_total")
        };
        let base = name.strip_suffix("_total").unwrap_or(name);
        let _ = writeln!(body, "# HELP shardcar_{base}{suffix} {help}");
        let _ = writeln!(body, "# TYPE shardcar_{base}{suffix} {kind}");
        let _ = writeln!(body, "shardcar_{base}{suffix} {v}");
    }
    if let Some(rss) = rss_bytes() {
        body.push_str(
            "# HELP shardcar_server_memory_rss_bytes Resident set size of the process.\n",
        );
        body.push_str("# TYPE shardcar_server_memory_rss_bytes gauge\n");
        let _ = writeln!(body, "shardcar_server_memory_rss_bytes {rss}");
    }
    tls(&mut body, &total.tls);
    tls_reloads(&mut body, &total.tls_reloads);
    jwks(&mut body, &total.jwks);
    write(&mut body, &total.metrics);
    respond(out, 200, "text/plain; version=0.0.4", body.as_bytes())
}

/// TLS handshakes done and failed (by reason) per side — `downstream` on listeners,
/// `upstream` to clusters — and PERMISSIVE connections served in plaintext.
fn tls(body: &mut String, t: &crate::tls::stats::TlsCounts) {
    body.push_str(
        "# HELP shardcar_tls_handshakes_total TLS handshakes completed (downstream: on a \
         listener; upstream: to a cluster).\n\
         # TYPE shardcar_tls_handshakes_total counter\n",
    );
    let _ = writeln!(
        body,
        "shardcar_tls_handshakes_total{{side=\"downstream\"}} {}\n\
         shardcar_tls_handshakes_total{{side=\"upstream\"}} {}",
        t.handshakes, t.upstream_handshakes
    );
    let mut failures: Vec<(&str, &str, u64)> = t
        .failures
        .iter()
        .map(|(r, n)| ("downstream", *r, *n))
        .chain(
            t.upstream_failures
                .iter()
                .map(|(r, n)| ("upstream", *r, *n)),
        )
        .collect();
    failures.sort_unstable();
    if !failures.is_empty() {
        body.push_str(
            "# HELP shardcar_tls_handshake_failures_total TLS handshakes that failed or were \
             refused, by reason.\n\
             # TYPE shardcar_tls_handshake_failures_total counter\n",
        );
        for (side, reason, n) in failures {
            body.push_str("shardcar_tls_handshake_failures_total{side=\"");
            body.push_str(side);
            body.push_str("\",reason=\"");
            escape_value(body, reason);
            let _ = writeln!(body, "\"}} {n}");
        }
    }
    let _ = writeln!(
        body,
        "# HELP shardcar_tls_permissive_plaintext_total Connections a PERMISSIVE listener \
         served in plaintext.\n\
         # TYPE shardcar_tls_permissive_plaintext_total counter\n\
         shardcar_tls_permissive_plaintext_total {}",
        t.plaintext
    );
}

/// `shardcar_tls_reloads_total{block,result}`: certificate rotations per `tls:` block
/// (`applied`: new handshakes use the new material; `rejected`: a bad file or Workload API
/// update, the old material stayed).
fn tls_reloads(body: &mut String, counts: &[crate::tls::runtime::ReloadCount]) {
    if counts.is_empty() {
        return;
    }
    body.push_str(
        "# HELP shardcar_tls_reloads_total Certificate rotations of a tls: block by result \
         (rejected: the material in force stayed).\n\
         # TYPE shardcar_tls_reloads_total counter\n",
    );
    for c in counts {
        for (result, v) in [("applied", c.applied), ("rejected", c.rejected)] {
            body.push_str("shardcar_tls_reloads_total{block=\"");
            escape_value(body, &c.block);
            let _ = writeln!(body, "\",result=\"{result}\"}} {v}");
        }
    }
}

/// `shardcar_jwks_refresh_total{provider,issuer,result}`: each fetched JWKS's refreshes
/// (`provider`: its `request_authentication` block). Absent without a `jwksUri` rule.
fn jwks(body: &mut String, counts: &[JwksCount]) {
    if counts.is_empty() {
        return;
    }
    body.push_str(
        "# HELP shardcar_jwks_refresh_total JWKS refreshes through a cluster by result \
         (failure: the keys in force stayed).\n\
         # TYPE shardcar_jwks_refresh_total counter\n",
    );
    for c in counts {
        for (result, v) in [("success", c.success), ("failure", c.failure)] {
            body.push_str("shardcar_jwks_refresh_total{provider=\"");
            escape_value(body, &c.provider);
            body.push_str("\",issuer=\"");
            escape_value(body, &c.issuer);
            let _ = writeln!(body, "\",result=\"{result}\"}} {v}");
        }
    }
}

/// `VmRSS` from `/proc/self/status`, in bytes.
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
