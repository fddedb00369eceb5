//! Taps attached to one shard (`ShardCommand::Tap` / `Untap`): each finished HTTP request is
//! offered to them when at least one is attached — with none, the data path pays one branch
//! ([`ShardTaps::on`]). A matching request under the tap's rate cap (its share on this shard:
//! `ceil(per_second / shards)`) becomes one JSON line sent to the admin thread that streams
//! it, over a bounded queue that never blocks the shard: a full queue drops the line (counted),
//! and a closed one (the admin client went away) detaches the tap.

use std::cell::{Cell, RefCell};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Instant;

use super::record::Record;
use super::tap::{RateCap, TapEvent, TapFilter};
use super::view::{FlagStr, RequestView};
use crate::ctx::ConnCtx;

/// Headers a tap line carries when the request has them.
const TAP_HEADERS: [&str; 3] = ["user-agent", "x-request-id", "content-type"];

/// A tap as the control side hands it to every shard.
#[derive(Debug, Clone)]
pub struct TapAttach {
    pub id: u64,
    pub filter: TapFilter,
    /// Process-wide events a second.
    pub per_second: u32,
    pub tx: SyncSender<Vec<u8>>,
}

#[derive(Debug)]
struct LiveTap {
    id: u64,
    filter: TapFilter,
    cap: RateCap,
    tx: SyncSender<Vec<u8>>,
}

/// One shard's taps. `!Send`.
#[derive(Debug, Default)]
pub struct ShardTaps {
    on: Cell<bool>,
    taps: RefCell<Vec<LiveTap>>,
    /// Lines sent to tap clients.
    pub events: Cell<u64>,
    /// Matching requests not sent: over the rate cap, or the client's queue was full.
    pub dropped: Cell<u64>,
}

impl ShardTaps {
    /// Whether any tap is attached (the one branch on the data path).
    #[inline]
    pub fn on(&self) -> bool {
        self.on.get()
    }

    pub fn attach(&self, a: TapAttach, shards: usize) {
        let share = a.per_second.div_ceil(shards.max(1) as u32).max(1);
        let mut taps = self.taps.borrow_mut();
        taps.retain(|t| t.id != a.id);
        taps.push(LiveTap {
            id: a.id,
            filter: a.filter,
            cap: RateCap::new(share, Instant::now()),
            tx: a.tx,
        });
        self.on.set(true);
    }

    pub fn detach(&self, id: u64) {
        let mut taps = self.taps.borrow_mut();
        taps.retain(|t| t.id != id);
        self.on.set(!taps.is_empty());
    }

    /// Offers a finished request to every attached tap.
    pub fn offer(&self, rec: &Record, conn: &ConnCtx, req: &dyn RequestView) {
        let mut headers: [(&str, &[u8]); TAP_HEADERS.len()] = [("", b""); TAP_HEADERS.len()];
        let mut n = 0;
        for h in TAP_HEADERS {
            let v = req.header(h).or_else(|| {
                (h == "x-request-id")
                    .then_some(rec.request_id.as_ref())
                    .flatten()
                    .map(|g| &g[..])
            });
            if let Some(v) = v {
                headers[n] = (h, v);
                n += 1;
            }
        }
        let flags = FlagStr::of(rec.flags);
        let ev = TapEvent {
            method: req.method(),
            authority: req.authority(),
            path: req.path(),
            status: rec.status,
            flags: flags.as_str(),
            duration: rec.duration,
            upstream: rec.upstream_host,
            peer_identity: conn.peer_identity().map(|p| p.as_str()),
            local_identity: None,
            headers: &headers[..n],
        };
        let now = Instant::now();
        let mut taps = self.taps.borrow_mut();
        let mut gone = false;
        for t in taps.iter_mut() {
            if !t.filter.matches(&ev) {
                continue;
            }
            if !t.cap.admit(now) {
                self.dropped.set(self.dropped.get() + 1);
                continue;
            }
            let mut line = Vec::with_capacity(384);
            ev.write_json(&mut line);
            match t.tx.try_send(line) {
                Ok(()) => self.events.set(self.events.get() + 1),
                Err(TrySendError::Full(_)) => self.dropped.set(self.dropped.get() + 1),
                Err(TrySendError::Disconnected(_)) => {
                    t.id = u64::MAX;
                    gone = true;
                }
            }
        }
        if gone {
            taps.retain(|t| t.id != u64::MAX);
            self.on.set(!taps.is_empty());
        }
    }
}
