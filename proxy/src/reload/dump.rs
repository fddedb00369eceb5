//! `/config_dump`: the config version in force, where it came from, the reload counters and
//! the last attempt's outcome, and a summary of the live listeners and clusters (names,
//! addresses, protocols — nothing secret: TLS material is never printed).

use std::fmt::Write as _;
use std::path::Path;

use super::LastReload;
use crate::config::{ClusterKind, Config};

/// What the control thread knows beside the config itself.
#[derive(Debug)]
pub struct Facts<'a> {
    pub version: u64,
    pub applied: u64,
    pub rejected: u64,
    pub source: Option<&'a Path>,
    pub fingerprint: u64,
    pub last: Option<&'a LastReload>,
    /// Each listener's bound address (the resolved port where the config says 0).
    pub bound: &'a [(String, std::net::SocketAddr)],
    /// The xDS client's state (a JSON object), when the proxy runs from a bootstrap.
    pub xds: Option<&'a str>,
}

/// One JSON object, newline-terminated.
pub fn render(config: &Config, f: &Facts<'_>) -> String {
    let mut o = String::with_capacity(512);
    let source = f.source.map_or_else(
        || "(embedded default)".to_string(),
        |p| p.display().to_string(),
    );
    let _ = write!(
        o,
        "{{\"version\":{},\"source\":{},\"fingerprint\":\"{:016x}\",\"reloads_applied\":{},\"reloads_rejected\":{}",
        f.version,
        json(&source),
        f.fingerprint,
        f.applied,
        f.rejected
    );
    if let Some(l) = f.last {
        let _ = write!(
            o,
            ",\"last_reload\":{{\"trigger\":{},\"ok\":{}",
            json(l.trigger.as_str()),
            l.error.is_none()
        );
        if let Some(e) = &l.error {
            let _ = write!(o, ",\"error\":{}", json(e));
        }
        o.push('}');
    }
    if let Some(x) = f.xds {
        let _ = write!(o, ",\"xds\":{x}");
    }
    o.push_str(",\"listeners\":[");
    for (i, l) in config.listeners.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let bound = f
            .bound
            .iter()
            .find(|(n, _)| *n == l.name)
            .map_or(l.address, |(_, a)| *a);
        let _ = write!(
            o,
            "{{\"name\":{},\"address\":\"{}\",\"bound\":\"{bound}\",\"protocol\":\"{:?}\"}}",
            json(&l.name),
            l.address,
            l.protocol
        );
    }
    o.push_str("],\"clusters\":[");
    for (i, c) in config.clusters.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let endpoints: Vec<String> = match &c.kind {
            ClusterKind::Static(eps) => eps.iter().map(|e| json(&e.written)).collect(),
            ClusterKind::OriginalDst { .. } => Vec::new(),
        };
        let _ = write!(
            o,
            "{{\"name\":{},\"endpoints\":[{}]}}",
            json(&c.name),
            endpoints.join(",")
        );
    }
    o.push_str("]}\n");
    o
}

fn json(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    crate::telemetry::access_log::render::json_str(s.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
