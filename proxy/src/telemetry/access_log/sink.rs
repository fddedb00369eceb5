//! A shard's side of an access log: per sink, a buffer the shard renders lines into (no
//! allocation per line once it has grown), handed to the path's writer thread as one batch
//! when it passes [`FLUSH_AT`] bytes or at the shard's flush tick ([`FLUSH_EVERY`]). A full
//! queue drops the batch; [`LogCounters`] count lines handed over and lines dropped.
//!
//! Sinks live in the shard's config [`Snapshot`](crate::ctx::Snapshot) (one list per
//! listener), so a reload's new settings apply to requests that start after it; a sink whose
//! snapshot is dropped hands over what it still holds.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::time::Duration;

use super::render::{Entry, HeaderLookup};
use super::writer::{LogSender, Msg};
use super::Format;
use crate::config::{Config, LogFilter};
use crate::ctx::{ConnCtx, Rng, Snapshot};
use crate::telemetry::record::Record;
use crate::telemetry::view::{FlagStr, RequestView};

/// A sink's buffer is handed to its writer when it holds this much.
pub const FLUSH_AT: usize = 32 * 1024;
/// …or at the latest this long after its first line.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Per shard, across reloads.
#[derive(Debug, Default)]
pub struct LogCounters {
    /// Lines handed to a writer.
    pub lines: Cell<u64>,
    /// Lines dropped because the writer's queue was full (or the writer is gone).
    pub dropped: Cell<u64>,
}

#[derive(Debug)]
pub struct ShardSink {
    format: Arc<Format>,
    filter: LogFilter,
    tx: Option<LogSender>,
    buf: RefCell<Vec<u8>>,
    pending: Cell<u64>,
    counters: Rc<LogCounters>,
}

/// Per listener (indexed like `config.listeners`), its sinks on this shard.
pub fn build(config: &Config, counters: &Rc<LogCounters>) -> Vec<Vec<ShardSink>> {
    config
        .listeners
        .iter()
        .map(|l| {
            l.access_log
                .iter()
                .map(|c| ShardSink {
                    format: c.format.clone(),
                    filter: c.filter,
                    tx: c.live.get().cloned(),
                    buf: RefCell::new(Vec::new()),
                    pending: Cell::new(0),
                    counters: counters.clone(),
                })
                .collect()
        })
        .collect()
}

impl ShardSink {
    fn admits(&self, rec: &Record, rng: &Rng) -> bool {
        self.filter.admits(rec.status, rec.duration, || rng.next())
    }

    fn push(&self, e: &Entry<'_>) {
        let mut b = self.buf.borrow_mut();
        if b.capacity() == 0 {
            b.reserve(FLUSH_AT + 4096);
        }
        self.format.render(e, &mut b);
        self.pending.set(self.pending.get() + 1);
        let full = b.len() >= FLUSH_AT;
        drop(b);
        if full {
            self.flush();
        }
    }

    /// Hands the buffered lines to the writer (never waits).
    pub fn flush(&self) {
        let n = self.pending.get();
        if n == 0 {
            return;
        }
        let batch = std::mem::take(&mut *self.buf.borrow_mut());
        self.pending.set(0);
        let sent = match &self.tx {
            Some(tx) => match tx.try_send(Msg::Lines(batch)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        let c = if sent {
            &self.counters.lines
        } else {
            &self.counters.dropped
        };
        c.set(c.get() + n);
    }
}

impl Drop for ShardSink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `x-request-id` falls back to the id the proxy generated for the request.
struct ReqHeaders<'a> {
    view: &'a dyn RequestView,
    generated: Option<&'a [u8; 36]>,
}

impl HeaderLookup for ReqHeaders<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        let v = self.view.header(name);
        if v.is_none() && name == "x-request-id" {
            return self.generated.map(|g| &g[..]);
        }
        v
    }

    fn headers<'s>(&'s self, names: &[Box<str>], out: &mut [Option<&'s [u8]>]) {
        self.view.headers(names, out);
        for (n, o) in names.iter().zip(out) {
            if o.is_none() && &**n == "x-request-id" {
                *o = self.generated.map(|g| &g[..]);
            }
        }
    }
}

/// Logs a finished HTTP request to every sink that admits it.
pub fn log_http(
    sinks: &[ShardSink],
    rec: &Record,
    conn: &ConnCtx,
    snap: &Snapshot,
    req: &dyn RequestView,
    rng: &Rng,
) {
    let mut admitted = sinks.iter().filter(|s| s.admits(rec, rng)).peekable();
    if admitted.peek().is_none() {
        return;
    }
    let flags = FlagStr::of(rec.flags);
    let headers = ReqHeaders {
        view: req,
        generated: rec.request_id.as_ref(),
    };
    let e = Entry {
        start: rec.start_wall(),
        method: Some(req.method()),
        path: Some(req.path()),
        authority: Some(req.authority()).filter(|a| !a.is_empty()),
        scheme: Some(if conn.tls.is_some() {
            b"https"
        } else {
            b"http"
        }),
        req: &headers,
        resp: &(),
        protocol: rec.protocol.envoy_name(),
        status: Some(rec.status),
        flags: flags.as_str(),
        bytes_received: rec.bytes_received,
        bytes_sent: rec.bytes_sent,
        duration: rec.duration,
        request_duration: rec.request_done,
        response_duration: rec.upstream_first_byte,
        upstream_host: rec.upstream_host,
        upstream_cluster: rec
            .cluster
            .and_then(|c| snap.config.clusters.get(c as usize))
            .map(|c| c.name.as_str()),
        downstream_remote: Some(conn.peer.0),
        peer_uri_san: conn.peer_identity().map(|p| p.as_str()),
        upstream_failure: rec.upstream_failure,
        termination: rec.termination,
    };
    for s in admitted {
        s.push(&e);
    }
}

/// Logs a finished TCP connection to every sink that admits it.
pub fn log_tcp(
    sinks: &[ShardSink],
    rec: &Record,
    peer: Option<std::net::SocketAddr>,
    principal: Option<&str>,
    snap: &Snapshot,
    rng: &Rng,
) {
    let mut admitted = sinks.iter().filter(|s| s.admits(rec, rng)).peekable();
    if admitted.peek().is_none() {
        return;
    }
    let flags = FlagStr::of(rec.flags);
    let e = Entry {
        start: rec.start_wall(),
        method: None,
        path: None,
        authority: None,
        scheme: None,
        req: &(),
        resp: &(),
        protocol: None,
        status: None,
        flags: flags.as_str(),
        bytes_received: rec.bytes_received,
        bytes_sent: rec.bytes_sent,
        duration: rec.duration,
        request_duration: None,
        response_duration: None,
        upstream_host: rec.upstream_host,
        upstream_cluster: rec
            .cluster
            .and_then(|c| snap.config.clusters.get(c as usize))
            .map(|c| c.name.as_str()),
        downstream_remote: peer,
        peer_uri_san: principal,
        upstream_failure: rec.upstream_failure,
        termination: rec.termination,
    };
    for s in admitted {
        s.push(&e);
    }
}
