//! Span export over OTLP/HTTP (protobuf), off the shards. Each forwarded request already
//! carries this hop's span ids (the `traceparent` the proxy sent upstream, kept in the
//! request's [`Record`](super::Record)); when the request finishes and its trace is sampled,
//! the shard copies the span's facts into a fixed-size [`SpanRecord`] (no allocation, no
//! lock) in its [`shard::ShardSpans`] buffer, handed to the exporter thread as one batch when
//! it holds `batch_size` spans (at most [`shard::HAND_OFF`]) or at the shard's flush tick. A
//! full queue drops the batch and
//! counts its spans. The [`exporter`] thread (control side) turns records into OTLP `Span`s
//! ([`encode`]), and POSTs an `ExportTraceServiceRequest` every `batch_size` spans or
//! `flush_interval` to the collector with a blocking HTTP/1.1 client of its own.
//!
//! Without a `tracing:` block the cost on the shard is one branch per request (the
//! snapshot's `spans` is `None`) and the sampler check in [`super::propagate::Sampler`].
//!
//! Cost (callgrind, `bench-harness/callgrind.sh` with `CG_CONNECTIONS=1 CG_SERIAL=1
//! SHARDCAR_RING=epoll`, h1 closed loop, one shard, every request sampled, template
//! `peers/shardcar-http-otlp.yaml`, threads split with `--separate-threads=yes`, measured
//! 2026-12-04): the shard thread goes from 15,740 to 16,174 instructions per request (+434,
//! +2.8 %: the span record, one wall-clock read, and keeping the request head for the span's
//! method/URL); the exporter thread adds 9,960 instructions per span (building the prost
//! `Span` with its attribute strings, encoding, the POST), so the process total is 26,134 vs
//! 15,740 (+66 %) at 100 % sampling — on another core, and proportional to the sampling rate.

pub mod encode;
pub mod exporter;
pub mod shard;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use super::propagate::Sampler;
use super::record::{Flags, Protocol};
use crate::config::Config;

pub use exporter::Exporters;

/// What the exporter thread receives.
#[derive(Debug)]
pub enum Msg {
    /// Finished spans, with the config they ran on (for cluster and listener names).
    Spans(Arc<Config>, Vec<SpanRecord>),
    /// Export what is queued and stop.
    Stop,
}

/// Control-side counters of one exporter registry (all its exporter threads).
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// Spans the collector accepted (2xx).
    pub exported: AtomicU64,
    /// Export requests that failed (connect, I/O, non-2xx).
    pub failures: AtomicU64,
    /// Spans lost in failed export requests.
    pub failed_spans: AtomicU64,
}

impl ExportCounters {
    pub fn read(&self) -> [u64; 3] {
        [
            self.exported.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
            self.failed_spans.load(Ordering::Relaxed),
        ]
    }
}

/// A config's way to its exporter: the queue and the counters (set at activation).
#[derive(Debug, Clone)]
pub struct Link {
    pub tx: SyncSender<Msg>,
    pub counters: Arc<ExportCounters>,
}

/// Bytes kept inline, truncated to `N` (no allocation on the shard).
#[derive(Debug, Clone, Copy)]
pub struct Inline<const N: usize> {
    buf: [u8; N],
    len: u8,
}

impl<const N: usize> Inline<N> {
    pub fn new(v: &[u8]) -> Self {
        let n = v.len().min(N).min(255);
        let mut buf = [0; N];
        buf[..n].copy_from_slice(&v[..n]);
        Inline { buf, len: n as u8 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The facts of one finished span, as the shard copies them (plain data, `Send`).
#[derive(Debug, Clone, Copy)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub listener: u16,
    pub cluster: Option<u16>,
    pub status: u16,
    pub grpc_status: Option<u8>,
    pub flags: Flags,
    pub protocol: Protocol,
    pub upstream_host: Option<SocketAddr>,
    pub method: Inline<16>,
    pub authority: Inline<64>,
    pub path: Inline<128>,
}

/// The sampler for traces this proxy starts under `config` ([`Sampler::ALL`] without a
/// `tracing:` block, so propagation alone keeps its sampled-by-default behaviour); `None`
/// when trace propagation is off (`tracing: {propagation: false}`).
pub fn sampler_for(config: &Config) -> Option<Sampler> {
    if !config.trace_propagation {
        return None;
    }
    Some(
        config
            .tracing
            .as_ref()
            .map_or(Sampler::ALL, |t| Sampler::percent(t.sampling)),
    )
}
