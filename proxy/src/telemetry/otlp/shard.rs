//! A shard's side of span export: a buffer of [`SpanRecord`]s (up to [`HAND_OFF`] of them,
//! ~22 KiB), handed to the exporter as one batch when full or at the shard's flush tick; the
//! exporter gathers `batch_size` spans per request from all shards' hand-offs. It lives in
//! the shard's config [`Snapshot`](crate::ctx::Snapshot), so a reload's new settings apply to
//! requests that start after it; a snapshot dropped hands over what it still holds.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ExportCounters, Inline, Link, Msg, SpanRecord};
use crate::config::Config;
use crate::telemetry::propagate::{self, Fresh};
use crate::telemetry::record::Record;
use crate::telemetry::view::RequestView;

/// Spans a shard hands over at once, at most (smaller `batch_size`s hand over at theirs).
pub const HAND_OFF: usize = 64;

/// Per shard, across reloads.
#[derive(Debug, Default)]
pub struct SpanCounters {
    /// Spans handed to the exporter.
    pub queued: Cell<u64>,
    /// Spans dropped because the exporter's queue was full (or it is gone).
    pub dropped: Cell<u64>,
}

#[derive(Debug)]
pub struct ShardSpans {
    config: Arc<Config>,
    batch_size: usize,
    link: Option<Link>,
    buf: RefCell<Vec<SpanRecord>>,
    counters: Rc<SpanCounters>,
}

/// This shard's span buffer for `config`, when it has a `tracing:` block.
pub fn build(config: &Arc<Config>, counters: &Rc<SpanCounters>) -> Option<ShardSpans> {
    let t = config.tracing.as_ref()?;
    Some(ShardSpans {
        config: config.clone(),
        batch_size: t.batch_size.min(HAND_OFF),
        link: t.live.get().cloned(),
        buf: RefCell::new(Vec::new()),
        counters: counters.clone(),
    })
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl ShardSpans {
    /// The exporter's counters (exported, failures, failed spans), zero before activation.
    pub fn export_counters(&self) -> [u64; 3] {
        self.link
            .as_ref()
            .map_or([0; 3], |l| ExportCounters::read(&l.counters))
    }

    /// A finished request: keeps its span when its trace is sampled. A forwarded request's
    /// ids are the ones sent upstream; one the proxy answered itself (404 `NR`, a direct
    /// response, 403 RBAC, a fault abort…) gets its trace from its own headers and an id from
    /// `fresh`. `rec.duration` is fixed already.
    pub fn offer(&self, rec: &Record, req: &dyn RequestView, fresh: impl FnOnce() -> Fresh) {
        let t = match rec.trace {
            Some(t) => t,
            None if !req.method().is_empty() => propagate::answered_locally(req, fresh()),
            None => return,
        };
        if t.ctx.sampled != Some(true) {
            return;
        }
        let end = unix_nanos(SystemTime::now());
        let span = SpanRecord {
            trace_id: t.ctx.trace_id,
            span_id: t.span.to_be_bytes(),
            parent_span_id: t.ctx.parent_span,
            start_unix_nanos: end.saturating_sub(rec.duration.as_nanos() as u64),
            end_unix_nanos: end,
            listener: rec.listener,
            cluster: rec.cluster,
            status: rec.status,
            grpc_status: rec.grpc_status,
            flags: rec.flags,
            protocol: rec.protocol,
            upstream_host: rec.upstream_host,
            method: Inline::new(req.method()),
            authority: Inline::new(req.authority()),
            path: Inline::new(req.path()),
        };
        let mut b = self.buf.borrow_mut();
        if b.capacity() == 0 {
            b.reserve_exact(self.batch_size);
        }
        b.push(span);
        let full = b.len() >= self.batch_size;
        drop(b);
        if full {
            self.flush();
        }
    }

    /// Hands the buffered spans to the exporter (never waits).
    pub fn flush(&self) {
        let n = self.buf.borrow().len() as u64;
        if n == 0 {
            return;
        }
        let batch = std::mem::take(&mut *self.buf.borrow_mut());
        let sent = self.link.as_ref().is_some_and(|l| {
            match l.tx.try_send(Msg::Spans(self.config.clone(), batch)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            }
        });
        let c = if sent {
            &self.counters.queued
        } else {
            &self.counters.dropped
        };
        c.set(c.get() + n);
    }
}

impl Drop for ShardSpans {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_off_stays_small() {
        let one = std::mem::size_of::<SpanRecord>();
        assert!(one <= 360, "{one} bytes");
        assert!(one * HAND_OFF <= 23 * 1024);
    }
}
