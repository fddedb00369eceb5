//! The overload manager (Envoy's `overload_manager`): process-wide caps on downstream
//! connections and active requests, and two RSS watermarks.
//!
//! - `max_downstream_connections` and `max_active_requests` are divided among shards
//!   (`ceil(max / shards)`, like every global limit here) and enforced by each shard on its own
//!   `Cell`s: a connection over the share is closed right after accept (Envoy's
//!   `downstream_cx_overflow` on `global_downstream_max_connections`), a request over it is
//!   answered 503 with flag `OM` and `x-shardcar-overloaded: true` (Envoy's
//!   `stop_accepting_requests` answer).
//! - The RSS is sampled on the control side by the `overload` thread ([`Monitor`]) every
//!   `refresh_interval`; when its level changes it sends every shard a
//!   [`ShardCommand::Overload`]. Above `rss_stop_accepting` the shards' listeners stop
//!   accepting (the kernel's backlog holds new connections); above `rss_reject_requests` new
//!   requests are answered 503 `OM` too; below a watermark again, that action ends. Each
//!   entry into an action and each connection or request it refused is counted.
//! - Test hook: [`crate::Server::set_fake_rss`] makes the monitor read a given RSS instead of
//!   `/proc/self/status` (the watermarks are driven without allocating gigabytes).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::thread::JoinHandle;

use crate::config::overload::Overload;
use crate::shard::{CommandSender, ShardCommand};

/// The response flag of a request the overload manager refused (Envoy's `OM`).
pub const FLAG: &str = "OM";
pub const BODY: &[u8] = b"overloaded\n";

/// What the RSS monitor asks the shards to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions {
    pub stop_accepting: bool,
    pub reject_requests: bool,
}

/// One shard's overload state and counters.
#[derive(Debug, Default)]
pub struct OverloadState {
    max_connections: Cell<Option<u32>>,
    max_requests: Cell<Option<u32>>,
    active_requests: Cell<u32>,
    actions: Cell<Actions>,
    accept_waiters: RefCell<Vec<Waker>>,
    /// Accept loops blocked in `accept` (one waker per loop), woken when accepting must stop.
    stop_waiters: RefCell<Vec<Waker>>,
    watches_rss: Cell<bool>,
    /// Connections closed at accept over `max_downstream_connections`.
    pub cx_overflow: Cell<u64>,
    /// Requests answered 503 `OM` over `max_active_requests`.
    pub rq_overflow: Cell<u64>,
    /// Requests answered 503 `OM` above `rss_reject_requests`.
    pub rq_rejected: Cell<u64>,
    /// Times accepting stopped / request rejection started for the RSS watermarks.
    pub stop_accepting_entered: Cell<u64>,
    pub reject_requests_entered: Cell<u64>,
}

/// An admitted request; leaves the active count when dropped.
#[derive(Debug)]
pub struct ActiveRequest<'a>(&'a Cell<u32>);

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl OverloadState {
    /// Takes this shard's shares of the config's caps.
    pub fn configure(&self, o: &Overload, shards: usize) {
        let share = |m: u32| m.div_ceil(shards.max(1) as u32);
        self.max_connections
            .set(o.max_downstream_connections.map(share));
        self.max_requests.set(o.max_active_requests.map(share));
        self.watches_rss.set(o.watches_rss());
    }

    /// Whether a newly accepted connection must be closed (`open` already on the shard);
    /// counted.
    pub fn refuse_connection(&self, open: usize) -> bool {
        let over = self
            .max_connections
            .get()
            .is_some_and(|m| open >= m as usize);
        if over {
            self.cx_overflow.set(self.cx_overflow.get() + 1);
        }
        over
    }

    /// Admits a request, or `None` (counted) when the RSS reject watermark is active or the
    /// shard's `max_active_requests` share is full (503 `OM`).
    pub fn admit(&self) -> Option<ActiveRequest<'_>> {
        if self.actions.get().reject_requests {
            self.rq_rejected.set(self.rq_rejected.get() + 1);
            return None;
        }
        let n = self.active_requests.get();
        if self.max_requests.get().is_some_and(|m| n >= m) {
            self.rq_overflow.set(self.rq_overflow.get() + 1);
            return None;
        }
        self.active_requests.set(n + 1);
        Some(ActiveRequest(&self.active_requests))
    }

    /// Applies the monitor's verdict; waiting accept loops resume when accepting may go on.
    pub fn apply(&self, a: Actions) {
        let old = self.actions.replace(a);
        if a.stop_accepting && !old.stop_accepting {
            self.stop_accepting_entered
                .set(self.stop_accepting_entered.get() + 1);
        }
        if a.reject_requests && !old.reject_requests {
            self.reject_requests_entered
                .set(self.reject_requests_entered.get() + 1);
        }
        let wake = if a.stop_accepting {
            &self.stop_waiters
        } else {
            &self.accept_waiters
        };
        for w in wake.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn stop_accepting(&self) -> bool {
        self.actions.get().stop_accepting
    }

    pub fn actions(&self) -> Actions {
        self.actions.get()
    }

    pub fn active_requests(&self) -> u32 {
        self.active_requests.get()
    }

    /// Resolves when accepting must stop (never without RSS watermarks): an accept loop
    /// waits on this beside `accept`.
    pub async fn stopping(&self) {
        poll_fn(|cx| {
            if self.stop_accepting() {
                return Poll::Ready(());
            }
            if self.watches_rss.get() {
                let mut w = self.stop_waiters.borrow_mut();
                w.retain(|w| !w.will_wake(cx.waker()));
                w.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Waits until accepting may resume.
    pub async fn accepting(&self) {
        poll_fn(|cx| {
            if self.stop_accepting() {
                self.accept_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

/// The process's resident set size from `/proc/self/status`, in bytes.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The actions for `rss` under `o`'s watermarks.
pub fn level(o: &Overload, rss: u64) -> Actions {
    let reject = o.rss_reject_requests.is_some_and(|w| rss >= w);
    Actions {
        stop_accepting: reject || o.rss_stop_accepting.is_some_and(|w| rss >= w),
        reject_requests: reject,
    }
}

/// The RSS monitor thread (`overload`); stops when dropped, clearing the shards' actions.
#[derive(Debug)]
pub struct Monitor {
    settings: Overload,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts sampling for `settings` (which watch the RSS); `fake` nonzero overrides it.
    pub fn start(
        settings: Overload,
        shards: Vec<CommandSender>,
        fake: Arc<AtomicU64>,
    ) -> std::io::Result<Monitor> {
        let (tx, rx) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("overload".into())
            .spawn(move || {
                let mut current = Actions::default();
                let send = |a: Actions| {
                    for s in &shards {
                        let _ = s.send(ShardCommand::Overload(a));
                    }
                };
                loop {
                    let rss = match fake.load(Ordering::Relaxed) {
                        0 => rss_bytes().unwrap_or(0),
                        n => n,
                    };
                    let next = level(&settings, rss);
                    if next != current {
                        tracing::warn!(
                            rss,
                            stop_accepting = next.stop_accepting,
                            reject_requests = next.reject_requests,
                            "overload: actions changed"
                        );
                        current = next;
                        send(next);
                    }
                    match rx.recv_timeout(settings.refresh_interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                }
                if current != Actions::default() {
                    send(Actions::default());
                }
            })?;
        Ok(Monitor {
            settings,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn settings(&self) -> &Overload {
        &self.settings
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
