//! Per-shard connection watch: idle timeouts and buffer parking without a timer per connection.
//!
//! A monoio `Sleep` is 640 bytes and a timer-wheel entry; a timer per connection doubled the
//! memory of an idle proxied connection. Instead every connection registers a small
//! [`ConnWatch`] with its shard's [`Sweeper`], which ticks a few times a second and compares each
//! connection's activity counter with what it saw last tick. The hot path only increments a
//! `Cell<u64>`. After [`PARK_AFTER`] without traffic the sweeper *parks* the connection: it
//! cancels the outstanding reads so copy mode can hand its 16 KiB buffers back to the shard pool
//! and wait with a tiny one. After the listener's `idle_timeout` it aborts the connection.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use monoio::io::{CancelHandle, Canceller};

/// Quiet time after which a connection gives its read buffers back.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// One connection's activity and control state, shared by its task and the sweeper.
#[derive(Default)]
pub struct ConnWatch {
    /// Bumped by every successful read; the sweeper compares snapshots.
    moved: Cell<u64>,
    seen: Cell<u64>,
    quiet_ticks: Cell<u32>,
    parked: Cell<bool>,
    canceller: RefCell<Canceller>,
    aborted: Cell<bool>,
    waker: Cell<Option<Waker>>,
    idle_timeout: Option<Duration>,
    /// Between requests (HTTP keepalive): safe to close at once when the shard drains.
    between_requests: Cell<bool>,
}

impl std::fmt::Debug for ConnWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnWatch")
            .field("moved", &self.moved.get())
            .field("parked", &self.parked.get())
            .field("aborted", &self.aborted.get())
            .finish()
    }
}

impl ConnWatch {
    /// Records traffic (hot path: one cell increment, no clock read).
    #[inline]
    pub fn touch(&self) {
        self.moved.set(self.moved.get().wrapping_add(1));
    }

    /// Whether reads should use a small buffer because the connection is parked.
    #[inline]
    pub fn parked(&self) -> bool {
        self.parked.get()
    }

    #[inline]
    pub fn unpark(&self) {
        self.parked.set(false);
    }

    /// A handle for reads that the sweeper may cancel to park the connection.
    #[inline]
    pub fn cancel_handle(&self) -> CancelHandle {
        self.canceller.borrow().handle()
    }

    /// Marks an HTTP connection as waiting for its next request (or not).
    #[inline]
    pub fn set_between_requests(&self, v: bool) {
        self.between_requests.set(v);
    }

    /// Resolves when the sweeper aborts the connection for being idle too long.
    pub fn aborted(&self) -> Aborted<'_> {
        Aborted(self)
    }

    fn park(&self) {
        self.parked.set(true);
        let old = self.canceller.take();
        *self.canceller.borrow_mut() = old.cancel();
    }

    fn abort(&self) {
        self.aborted.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// One sweeper tick of length `tick`; returns whether the connection was parked now.
    fn on_tick(&self, tick: Duration) -> bool {
        let m = self.moved.get();
        if m != self.seen.get() {
            self.seen.set(m);
            self.quiet_ticks.set(0);
            return false;
        }
        let q = self.quiet_ticks.get().saturating_add(1);
        self.quiet_ticks.set(q);
        // The first quiet tick may be partial, so count only the full ones after it.
        let quiet_for = tick * (q - 1);
        if let Some(limit) = self.idle_timeout {
            if quiet_for >= limit {
                self.abort();
                return false;
            }
        }
        if quiet_for >= PARK_AFTER && !self.parked.get() {
            self.park();
            return true;
        }
        false
    }
}

/// Future returned by [`ConnWatch::aborted`].
pub struct Aborted<'a>(&'a ConnWatch);

impl Future for Aborted<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.aborted.get() {
            return Poll::Ready(());
        }
        self.0.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// A shard's registry of live connections, swept every `tick`.
#[derive(Debug)]
pub struct Sweeper {
    conns: RefCell<Vec<Weak<ConnWatch>>>,
    tick: Duration,
}

impl Sweeper {
    /// `shortest_idle` is the smallest idle timeout of any listener; ticks are a quarter of it
    /// (between 25 ms and 250 ms) so timeouts fire within a quarter of their length.
    pub fn new(shortest_idle: Option<Duration>) -> Sweeper {
        let tick = shortest_idle
            .map(|d| d / 4)
            .unwrap_or(Duration::from_millis(250))
            .clamp(Duration::from_millis(25), Duration::from_millis(250));
        Sweeper {
            conns: RefCell::new(Vec::new()),
            tick,
        }
    }

    pub fn register(&self, idle_timeout: Option<Duration>) -> Rc<ConnWatch> {
        let w = Rc::new(ConnWatch {
            idle_timeout,
            ..ConnWatch::default()
        });
        self.conns.borrow_mut().push(Rc::downgrade(&w));
        w
    }

    /// Runs forever on the shard: one pass over live connections per tick.
    pub async fn run(self: Rc<Self>) {
        loop {
            monoio::time::sleep(self.tick).await;
            let parked = self.sweep_once();
            if parked > 0 {
                tracing::debug!(parked, "parked idle connections");
            }
        }
    }

    /// Returns how many connections were parked in this pass.
    fn sweep_once(&self) -> usize {
        let mut parked = 0;
        // Waking an aborted task only schedules it, so the registry is never re-entered here.
        let mut conns = self.conns.borrow_mut();
        conns.retain(|w| match w.upgrade() {
            Some(c) => {
                parked += usize::from(c.on_tick(self.tick));
                true
            }
            None => false,
        });
        parked
    }

    /// Closes every connection that is waiting between requests (graceful drain).
    pub fn abort_between_requests(&self) {
        for w in self.conns.borrow().iter() {
            if let Some(c) = w.upgrade() {
                if c.between_requests.get() {
                    c.abort();
                }
            }
        }
    }

    pub fn live(&self) -> usize {
        self.conns
            .borrow()
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_connections_park_then_abort() {
        let s = Sweeper::new(Some(Duration::from_secs(2)));
        assert_eq!(s.tick, Duration::from_millis(250));
        let c = s.register(Some(Duration::from_secs(2)));
        let busy = s.register(None);
        for _ in 0..6 {
            busy.touch();
            s.sweep_once();
        }
        assert!(c.parked(), "1.25 s quiet parks");
        assert!(!busy.parked());
        assert!(!c.aborted.get());
        for _ in 0..3 {
            s.sweep_once();
        }
        assert!(c.aborted.get(), "2 s quiet aborts");
        drop(c);
        s.sweep_once();
        assert_eq!(s.live(), 1);
    }

    #[test]
    fn traffic_unparks_and_resets_the_clock() {
        let s = Sweeper::new(None);
        let c = s.register(Some(Duration::from_secs(1)));
        for _ in 0..4 {
            s.sweep_once();
        }
        c.touch();
        s.sweep_once();
        assert!(!c.aborted.get());
        assert_eq!(c.quiet_ticks.get(), 0);
    }
}
