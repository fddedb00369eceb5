//! `GET /clusters` and `GET /listeners`: what the shards serve now, asked over their command
//! channels (`ShardCommand::Inspect`) and merged. Text in Envoy's shape by default
//! (`cluster::endpoint::field::value`, `listener::address`), JSON with `?format=json`.
//!
//! Per endpoint: `rq_active` (requests or TCP connections in flight, summed over shards),
//! `health_flags` (`healthy`, or Envoy's `/failed_active_hc` and `/failed_outlier_check`
//! joined; outlier detection is per shard, so an endpoint ejected on any shard is flagged and
//! `outlier_ejected_shards` says on how many), `weight` (1: endpoints are unweighted) and
//! `hostname` (as written in the config).

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpStream};

use serde_json::json;

use super::{respond, AdminCtx, Request};
use crate::shard::ShardView;

/// One endpoint merged over shards.
struct Merged {
    addr: SocketAddr,
    written: String,
    rq_active: u64,
    failed_active_hc: bool,
    ejected_shards: usize,
}

impl Merged {
    fn health_flags(&self) -> String {
        let mut f = String::new();
        if self.failed_active_hc {
            f.push_str("/failed_active_hc");
        }
        if self.ejected_shards > 0 {
            f.push_str("/failed_outlier_check");
        }
        if f.is_empty() {
            f.push_str("healthy");
        }
        f
    }
}

/// Clusters in the first shard's order, endpoints merged by address.
fn merge_clusters(views: &[ShardView]) -> Vec<(String, bool, Vec<Merged>)> {
    let mut out: Vec<(String, bool, Vec<Merged>)> = Vec::new();
    for v in views {
        for c in &v.clusters {
            let i = match out.iter().position(|(n, _, _)| *n == c.name) {
                Some(i) => i,
                None => {
                    out.push((c.name.clone(), c.original_dst, Vec::new()));
                    out.len() - 1
                }
            };
            let eps = &mut out[i].2;
            for e in &c.endpoints {
                let m = match eps.iter_mut().position(|m| m.addr == e.addr) {
                    Some(j) => &mut eps[j],
                    None => {
                        eps.push(Merged {
                            addr: e.addr,
                            written: e.written.clone(),
                            rq_active: 0,
                            failed_active_hc: false,
                            ejected_shards: 0,
                        });
                        eps.last_mut().expect("just pushed")
                    }
                };
                m.rq_active += u64::from(e.active_requests);
                m.failed_active_hc |= e.failed_active_hc;
                m.ejected_shards += usize::from(e.ejected);
            }
        }
    }
    out
}

pub fn clusters(ctx: &AdminCtx, req: &Request, out: &mut TcpStream) -> io::Result<()> {
    let views = ctx.server.inspect();
    let merged = merge_clusters(&views);
    if req.param("format") == Some("json") {
        let statuses: Vec<_> = merged
            .iter()
            .map(|(name, original_dst, eps)| {
                let hosts: Vec<_> = eps
                    .iter()
                    .map(|e| {
                        json!({
                            "address": {"socket_address": {
                                "address": e.addr.ip().to_string(),
                                "port_value": e.addr.port(),
                            }},
                            "hostname": e.written,
                            "stats": [{"name": "rq_active", "value": e.rq_active, "type": "GAUGE"}],
                            "health_status": {
                                "failed_active_health_check": e.failed_active_hc,
                                "failed_outlier_check": e.ejected_shards > 0,
                                "outlier_ejected_shards": e.ejected_shards,
                            },
                            "weight": 1,
                        })
                    })
                    .collect();
                json!({
                    "name": name,
                    "type": if *original_dst { "ORIGINAL_DST" } else { "STATIC" },
                    "host_statuses": hosts,
                })
            })
            .collect();
        let body = json!({"cluster_statuses": statuses, "shards": views.len()});
        return respond(out, 200, "application/json", format!("{body}\n").as_bytes());
    }
    let mut body = String::new();
    for (name, original_dst, eps) in &merged {
        let kind = if *original_dst {
            "original_dst"
        } else {
            "static"
        };
        let _ = writeln!(body, "{name}::type::{kind}");
        for e in eps {
            let a = e.addr;
            let _ = writeln!(body, "{name}::{a}::rq_active::{}", e.rq_active);
            let _ = writeln!(body, "{name}::{a}::health_flags::{}", e.health_flags());
            let _ = writeln!(
                body,
                "{name}::{a}::outlier_ejected_shards::{}",
                e.ejected_shards
            );
            let _ = writeln!(body, "{name}::{a}::weight::1");
            let _ = writeln!(body, "{name}::{a}::hostname::{}", e.written);
        }
    }
    respond(out, 200, "text/plain", body.as_bytes())
}

pub fn listeners(ctx: &AdminCtx, req: &Request, out: &mut TcpStream) -> io::Result<()> {
    let views = ctx.server.inspect();
    // Listeners by name with the number of shards accepting on them.
    let mut merged: Vec<(String, SocketAddr, usize)> = Vec::new();
    for v in &views {
        for (name, addr) in &v.listeners {
            match merged.iter_mut().find(|(n, _, _)| n == name) {
                Some(m) => m.2 += 1,
                None => merged.push((name.clone(), *addr, 1)),
            }
        }
    }
    if req.param("format") == Some("json") {
        let statuses: Vec<_> = merged
            .iter()
            .map(|(name, addr, shards)| {
                json!({
                    "name": name,
                    "local_address": {"socket_address": {
                        "address": addr.ip().to_string(),
                        "port_value": addr.port(),
                    }},
                    "shards_accepting": shards,
                })
            })
            .collect();
        let body = json!({"listener_statuses": statuses, "shards": views.len()});
        return respond(out, 200, "application/json", format!("{body}\n").as_bytes());
    }
    let mut body = String::new();
    for (name, addr, _) in &merged {
        let _ = writeln!(body, "{name}::{addr}");
    }
    respond(out, 200, "text/plain", body.as_bytes())
}
