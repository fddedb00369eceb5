//! Istio's standard metrics with Istio's label names, so its dashboards (and Kiali) read
//! Shardcar unchanged. Labels this proxy cannot know are `unknown`.
//!
//! - `reporter`: `source` on outbound listeners, `destination` on inbound ones (see
//!   `config::MetricsSettings`).
//! - `source_workload` / `destination_workload`: this proxy's configured workload on its side,
//!   `unknown` on the other (Istio learns the peer's from metadata exchange, which Shardcar does
//!   not speak).
//! - `source_principal`: the peer's SPIFFE ID on inbound mTLS connections.
//! - `destination_service`: the configured service (inbound) or the cluster's name.
//! - `connection_security_policy`: `mutual_tls` / `none` when reporting as destination,
//!   `unknown` as source.
//! - `request_protocol`: `http`, `grpc` or `tcp`; `grpc_response_status`: the gRPC status for
//!   gRPC requests (`unknown` if none was sent), empty otherwise.

use std::collections::HashMap;

use super::histogram::{Buckets, Histogram};
use super::snapshot::{Kind, MetricsSnapshot, Value};
use super::table::Table;
use crate::ctx::Snapshot;
use crate::telemetry::record::Record;

pub const HTTP_LABELS: &[&str] = &[
    "reporter",
    "source_workload",
    "source_principal",
    "destination_workload",
    "destination_service",
    "destination_principal",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

pub const TCP_LABELS: &[&str] = &[
    "reporter",
    "source_workload",
    "source_principal",
    "destination_workload",
    "destination_service",
    "destination_principal",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
];

#[derive(Debug)]
pub struct HttpSeries {
    requests: u64,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl HttpSeries {
    fn new() -> HttpSeries {
        HttpSeries {
            requests: 0,
            duration: Histogram::new(Buckets::DurationMs),
            request_bytes: Histogram::new(Buckets::Bytes),
            response_bytes: Histogram::new(Buckets::Bytes),
        }
    }
}

#[derive(Debug, Default)]
pub struct TcpSeries {
    opened: u64,
    closed: u64,
    sent: u64,
    received: u64,
}

#[derive(Debug, Default)]
pub struct IstioTables {
    http: Table<HttpSeries>,
    tcp: Table<TcpSeries>,
    /// Peer identities seen on this shard → small ids for the keys (1-based; 0 = none).
    principals: HashMap<Box<str>, u16>,
}

/// The labels every Istio metric shares, for one (listener, cluster, peer) on one snapshot.
fn base(rec: &Record, principal: Option<&str>, snap: &Snapshot) -> [String; 7] {
    let settings = &snap.config.metrics;
    let outbound = settings.is_outbound(rec.listener as usize);
    let cluster = rec
        .cluster
        .and_then(|c| snap.config.clusters.get(c as usize))
        .map(|c| c.name.as_str());
    let unknown = || "unknown".to_string();
    let service = match (outbound, &settings.service) {
        (false, Some(s)) => s.clone(),
        _ => cluster.map_or_else(unknown, str::to_string),
    };
    let (src_wl, dst_wl) = if outbound {
        (settings.workload.clone(), unknown())
    } else {
        (unknown(), settings.workload.clone())
    };
    let src_principal = match (outbound, principal) {
        (false, Some(p)) => p.to_string(),
        _ => unknown(),
    };
    let policy = match (outbound, principal) {
        (true, _) => "unknown",
        (false, Some(_)) => "mutual_tls",
        (false, None) => "none",
    };
    [
        if outbound { "source" } else { "destination" }.to_string(),
        src_wl,
        src_principal,
        dst_wl,
        service,
        unknown(),
        policy.to_string(),
    ]
}

impl IstioTables {
    fn principal_id(&mut self, p: Option<&str>) -> u16 {
        let Some(p) = p else { return 0 };
        if let Some(&id) = self.principals.get(p) {
            return id;
        }
        let id = (self.principals.len() + 1).min(u16::MAX as usize) as u16;
        self.principals.insert(p.into(), id);
        id
    }

    fn key(&mut self, rec: &Record, principal: Option<&str>, snap: &Snapshot) -> u128 {
        let pid = self.principal_id(principal);
        u128::from(snap.generation as u16)
            | u128::from(rec.listener) << 16
            | u128::from(rec.cluster.map_or(0, |c| c + 1)) << 32
            | u128::from(rec.grpc) << 48
            | u128::from(rec.status) << 56
            | u128::from(rec.grpc_status.map_or(0, |g| u16::from(g) + 1)) << 72
            | u128::from(rec.flags.0) << 88
            | u128::from(pid) << 120
    }

    pub fn http(&mut self, rec: &Record, principal: Option<&str>, snap: &Snapshot) {
        let key = self.key(rec, principal, snap);
        let s = self.http.get(
            key,
            || {
                let [reporter, sw, sp, dw, ds, dp, policy] = base(rec, principal, snap);
                let grpc = match (rec.grpc, rec.grpc_status) {
                    (false, _) => String::new(),
                    (true, Some(g)) => g.to_string(),
                    (true, None) => "unknown".into(),
                };
                vec![
                    reporter,
                    sw,
                    sp,
                    dw,
                    ds,
                    dp,
                    if rec.grpc { "grpc" } else { "http" }.into(),
                    rec.status.to_string(),
                    grpc,
                    rec.flags.to_string(),
                    policy,
                ]
            },
            HttpSeries::new,
        );
        s.requests += 1;
        s.duration.record(rec.duration.as_micros() as u64);
        s.request_bytes.record(rec.bytes_received);
        s.response_bytes.record(rec.bytes_sent);
    }

    fn tcp_series(
        &mut self,
        rec: &Record,
        principal: Option<&str>,
        snap: &Snapshot,
    ) -> &mut TcpSeries {
        let key = self.key(rec, principal, snap);
        self.tcp.get(
            key,
            || {
                let [reporter, sw, sp, dw, ds, dp, policy] = base(rec, principal, snap);
                vec![
                    reporter,
                    sw,
                    sp,
                    dw,
                    ds,
                    dp,
                    "tcp".into(),
                    rec.flags.to_string(),
                    policy,
                ]
            },
            TcpSeries::default,
        )
    }

    pub fn tcp_open(&mut self, rec: &Record, principal: Option<&str>, snap: &Snapshot) {
        self.tcp_series(rec, principal, snap).opened += 1;
    }

    pub fn tcp_close(&mut self, rec: &Record, principal: Option<&str>, snap: &Snapshot) {
        let s = self.tcp_series(rec, principal, snap);
        s.closed += 1;
        s.sent += rec.bytes_sent;
        s.received += rec.bytes_received;
    }

    pub fn snapshot(&self, out: &mut MetricsSnapshot) {
        let mut http = |name, help, kind, f: &dyn Fn(&HttpSeries) -> Value| {
            let fam = out.family(name, help, kind, HTTP_LABELS);
            for (l, s) in self.http.iter() {
                fam.add(l.to_vec(), f(s));
            }
        };
        http(
            "istio_requests",
            "Requests, by Istio's standard labels.",
            Kind::Counter,
            &|s| Value::Int(s.requests),
        );
        http(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds.",
            Kind::Histogram,
            &|s| Value::Hist(s.duration.snapshot()),
        );
        http(
            "istio_request_bytes",
            "Request sizes (heads and bodies) in bytes.",
            Kind::Histogram,
            &|s| Value::Hist(s.request_bytes.snapshot()),
        );
        http(
            "istio_response_bytes",
            "Response sizes (heads and bodies) in bytes.",
            Kind::Histogram,
            &|s| Value::Hist(s.response_bytes.snapshot()),
        );
        let mut tcp = |name, help, f: &dyn Fn(&TcpSeries) -> u64| {
            let fam = out.family(name, help, Kind::Counter, TCP_LABELS);
            for (l, s) in self.tcp.iter() {
                fam.int(l.to_vec(), f(s));
            }
        };
        tcp(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream on TCP connections.",
            &|s| s.sent,
        );
        tcp(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream on TCP connections.",
            &|s| s.received,
        );
        tcp(
            "istio_tcp_connections_opened",
            "TCP connections opened.",
            &|s| s.opened,
        );
        tcp(
            "istio_tcp_connections_closed",
            "TCP connections closed.",
            &|s| s.closed,
        );
    }
}
