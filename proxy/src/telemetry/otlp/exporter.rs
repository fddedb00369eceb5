//! The exporter thread and its registry (control side). The thread collects spans from
//! every shard's batches, and POSTs an `ExportTraceServiceRequest` (protobuf,
//! `content-type: application/x-protobuf`) to the collector when `batch_size` spans are
//! pending or `flush_interval` after the first one — one connection per request
//! (`connection: close`), connect/read/write bounded by [`IO_TIMEOUT`]. A failed request
//! drops its spans and is counted ([`ExportCounters`]); it is never retried, so a dead
//! collector costs one refused connect per batch and nothing on the shards.
//!
//! [`Exporters`] is owned by the `Server`: activating a config gives its `tracing:` block the
//! queue of a running exporter with the same settings, or starts one; the replaced exporter
//! ends once the last shard snapshot holding its queue is gone (after sending what it has).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;

use super::{encode, ExportCounters, Link, Msg};
use crate::config::{Config, TracingConf};

/// Batches queued per exporter before shards start dropping.
pub const QUEUE_BATCHES: usize = 256;
/// Connect, write and read limit of one export request.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Running {
    conf: Arc<TracingConf>,
    link: Link,
    done: Receiver<()>,
}

/// The running exporter (control side), and counters that outlive exporter restarts.
#[derive(Debug, Default)]
pub struct Exporters {
    running: Option<Running>,
    counters: Arc<ExportCounters>,
}

impl Exporters {
    /// Links `config`'s `tracing:` block to an exporter with its settings, starting one when
    /// the settings changed; without the block, lets the running exporter go.
    pub fn activate(&mut self, config: &Config) -> std::io::Result<()> {
        let Some(t) = &config.tracing else {
            self.running = None;
            return Ok(());
        };
        let same = self
            .running
            .as_ref()
            .is_some_and(|r| r.conf.same_exporter(t));
        if !same {
            self.running = Some(spawn(t.clone(), self.counters.clone())?);
        }
        if let Some(r) = &self.running {
            let _ = t.live.set(r.link.clone());
        }
        Ok(())
    }

    pub fn counters(&self) -> &Arc<ExportCounters> {
        &self.counters
    }

    /// Asks the exporter to send what is pending and stop; waits up to `limit`.
    pub fn shutdown(self, limit: Duration) {
        let Some(r) = self.running else { return };
        let deadline = Instant::now() + limit;
        let mut msg = Msg::Stop;
        loop {
            match r.link.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        let _ = r
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

fn spawn(conf: Arc<TracingConf>, counters: Arc<ExportCounters>) -> std::io::Result<Running> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
    let (done_tx, done) = mpsc::channel();
    let c = conf.clone();
    let k = counters.clone();
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || {
            run(&c, &rx, &k);
            let _ = done_tx.send(());
        })?;
    Ok(Running {
        conf,
        link: Link { tx, counters },
        done,
    })
}

fn run(conf: &TracingConf, rx: &Receiver<Msg>, counters: &ExportCounters) {
    let mut pending = Vec::with_capacity(conf.batch_size);
    let mut names = encode::Names::default();
    let mut due: Option<Instant> = None;
    loop {
        let wait = due.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Msg::Spans(config, spans)) => {
                for r in &spans {
                    pending.push(encode::span(&config, r, &mut names));
                    if pending.len() >= conf.batch_size {
                        export(conf, &mut pending, counters);
                    }
                }
                due = match (pending.is_empty(), due) {
                    (true, _) => None,
                    (false, None) => Some(Instant::now() + conf.flush_interval),
                    (false, d) => d,
                };
            }
            Err(RecvTimeoutError::Timeout) => {
                export(conf, &mut pending, counters);
                due = None;
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                export(conf, &mut pending, counters);
                return;
            }
        }
    }
}

/// Sends `pending` (emptied either way) and counts the outcome.
fn export(
    conf: &TracingConf,
    pending: &mut Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    counters: &ExportCounters,
) {
    if pending.is_empty() {
        return;
    }
    let n = pending.len() as u64;
    let body = encode::request(&conf.service_name, std::mem::take(pending)).encode_to_vec();
    match post(&conf.address, &conf.path, &body) {
        Ok(()) => {
            counters.exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            counters.failed_spans.fetch_add(n, Ordering::Relaxed);
            crate::warn_limited!("otlp export", collector = %conf.address, error = %e, "span export failed; its spans are dropped");
        }
    }
}

/// One blocking OTLP/HTTP request; `Ok` on a 2xx answer.
pub fn post(address: &str, path: &str, body: &[u8]) -> Result<(), String> {
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("resolving {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to nothing"))?;
    let io = |e: std::io::Error| format!("{addr}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(io)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let _ = s.set_nodelay(true);
    let mut req = Vec::with_capacity(256 + body.len());
    let _ = write!(
        req,
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\nuser-agent: shardcar/{}\r\n\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    req.extend_from_slice(body);
    s.write_all(&req).map_err(io)?;
    // The status line is all we need; read until it is complete (or the peer closes).
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let n = s.read(&mut chunk).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.split(' ').nth(1).unwrap_or("");
    if status.len() == 3 && status.starts_with('2') {
        Ok(())
    } else {
        Err(format!(
            "{addr}{path}: status {:?}",
            line.lines().next().unwrap_or("")
        ))
    }
}
