//! Per-shard upstream connection pools for HTTP: idle keepalive connections per endpoint, LIFO
//! (the most recently used connection is the one most likely still open and warm).
//!
//! A connection goes back only with a [`CleanEnd`]: the request was sent in full, the response
//! read in full, and no byte was left over — anything else could poison the next request. On
//! checkout a connection is peeked (`MSG_PEEK`): one the upstream closed (FIN) or that holds
//! stray bytes is dropped instead of used. Connections idle past the pool's `idle_timeout` are
//! closed by the shard's periodic [`Pools::evict_expired`], not kept until the next checkout.

use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::config::PoolSettings;
use crate::sys::{self, Peek};

/// Proof that an exchange on a connection ended cleanly; only such a connection is pooled.
#[derive(Debug)]
pub struct CleanEnd(());

impl CleanEnd {
    /// `Some` only when the request went out in full, the response was read to its end, no
    /// unread response bytes are buffered and the upstream did not ask to close.
    pub fn check(
        request_sent: bool,
        response_done: bool,
        leftover: usize,
        close: bool,
    ) -> Option<CleanEnd> {
        (request_sent && response_done && leftover == 0 && !close).then_some(CleanEnd(()))
    }
}

/// An upstream connection with its use count.
#[derive(Debug)]
pub struct PooledConn {
    pub stream: crate::upstream::UpStream,
    pub requests: u32,
    pub endpoint: usize,
    /// Came from the pool (not freshly connected) for the current request.
    pub reused: bool,
    idle_since: Instant,
    /// This connection's `max_connections` slot, released when it is dropped.
    _slot: super::ConnSlot,
}

impl PooledConn {
    pub fn fresh(
        stream: crate::upstream::UpStream,
        endpoint: usize,
        slot: super::ConnSlot,
    ) -> PooledConn {
        PooledConn {
            stream,
            requests: 0,
            endpoint,
            reused: false,
            idle_since: Instant::now(),
            _slot: slot,
        }
    }
}

/// How long a pooled connection may sit idle and still be reused without the liveness check
/// by a caller that resends for free ([`Pools::take`]). Upstreams that send bytes or close on
/// their own idle timeout do so after seconds; a connection that dies sooner costs that
/// caller one free retry, never a failed request.
pub const UNCHECKED_REUSE: Duration = Duration::from_secs(1);

/// One cluster's pools on one shard.
#[derive(Debug)]
pub struct Pools {
    settings: PoolSettings,
    idle: Box<[RefCell<Vec<PooledConn>>]>,
    /// Requests that went out on a reused connection / on a new one.
    pub reused: Cell<u64>,
    pub connected: Cell<u64>,
    /// Idle connections dropped at checkout because the upstream had closed them or sent
    /// unasked bytes, and ones closed for outliving `idle_timeout`.
    pub dropped_dead: Cell<u64>,
    pub expired: Cell<u64>,
}

impl Pools {
    pub fn new(settings: PoolSettings, endpoints: usize) -> Pools {
        Pools {
            settings,
            idle: (0..endpoints).map(|_| RefCell::new(Vec::new())).collect(),
            reused: Cell::new(0),
            connected: Cell::new(0),
            dropped_dead: Cell::new(0),
            expired: Cell::new(0),
        }
    }

    /// An idle connection to `endpoint` that has not outlived the idle timeout and is still
    /// open and quiet.
    ///
    /// Whether it is still open costs a system call (a non-blocking `MSG_PEEK`), one per
    /// request under load. `resendable` says the caller sends the request again for free if
    /// the connection turns out dead (a first try of an idempotent request without a body:
    /// `Stale`/`StaleAfterSend` are free retries, and the retry checks). Such a caller gets a
    /// connection idle for less than [`UNCHECKED_REUSE`] without the check: a busy pool reuses
    /// its connections within microseconds, and a request that might not be resent (a POST)
    /// always checks. Measured (`bench-harness/kernel-ops.sh`, h1 closed loop, 50 connections,
    /// 2026-12-06): 1.16 → 0.11 system calls per request, the peek's `recvfrom` (1.00) gone.
    pub fn take(&self, endpoint: usize, resendable: bool) -> Option<PooledConn> {
        let mut idle = self.idle.get(endpoint)?.borrow_mut();
        while let Some(mut c) = idle.pop() {
            let idle_for = c.idle_since.elapsed();
            if idle_for >= self.settings.idle_timeout {
                self.expired.set(self.expired.get() + 1);
                continue;
            }
            let unchecked = resendable && idle_for < UNCHECKED_REUSE;
            if !unchecked && sys::peek_idle(c.stream.as_raw_fd()) != Peek::Quiet {
                self.dropped_dead.set(self.dropped_dead.get() + 1);
                continue;
            }
            c.reused = true;
            self.reused.set(self.reused.get() + 1);
            return Some(c);
        }
        None
    }

    /// Closes idle connections that outlived the idle timeout; returns how many.
    pub fn evict_expired(&self) -> usize {
        let limit = self.settings.idle_timeout;
        let mut n = 0;
        for slot in self.idle.iter() {
            let mut idle = slot.borrow_mut();
            let before = idle.len();
            idle.retain(|c| c.idle_since.elapsed() < limit);
            n += before - idle.len();
        }
        self.expired.set(self.expired.get() + n as u64);
        n
    }

    /// Closes one idle connection (any endpoint, the longest idle of the first non-empty list),
    /// freeing its `max_connections` slot; `false` when none is idle.
    pub fn close_one_idle(&self) -> bool {
        for slot in self.idle.iter() {
            let mut idle = slot.borrow_mut();
            if !idle.is_empty() {
                idle.remove(0);
                return true;
            }
        }
        false
    }

    pub fn note_connected(&self) {
        self.connected.set(self.connected.get() + 1);
    }

    /// Returns a connection whose last exchange completed cleanly.
    pub fn put(&self, mut c: PooledConn, _clean: CleanEnd) {
        c.requests += 1;
        if self
            .settings
            .max_requests_per_connection
            .is_some_and(|max| c.requests >= max)
        {
            return;
        }
        let Some(slot) = self.idle.get(c.endpoint) else {
            return;
        };
        let mut idle = slot.borrow_mut();
        if idle.len() >= self.settings.max_idle_per_endpoint {
            return;
        }
        c.idle_since = Instant::now();
        idle.push(c);
    }

    pub fn idle_count(&self, endpoint: usize) -> usize {
        self.idle.get(endpoint).map_or(0, |v| v.borrow().len())
    }
}
