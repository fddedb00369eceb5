//! Per-shard connection watch: idle timeouts and buffer parking without a timer per connection.
//!
//! A monoio `Sleep` is 640 bytes and a timer-wheel entry; a timer per connection doubled the
//! memory of an idle proxied connection. Instead every connection registers a small
//! [`ConnWatch`] with its shard's [`Sweeper`], which ticks a few times a second and compares each
//! connection's activity counter with what it saw last tick. The hot path only increments a
//! `Cell<u64>`. After [`PARK_AFTER`] without traffic the sweeper *parks* the connection: it
//! cancels the outstanding reads so copy mode can hand its 16 KiB buffers back to the shard pool
//! and wait with a tiny one. After the listener's `idle_timeout` — no bytes in either direction
//! for that long; every read and write of the connection, on both sides, touches the watch — it
//! aborts the connection.
//!
//! A watch can also carry one *deadline* (the HTTP request-head timeout, or the first-byte
//! timeout of a new connection), counted in sweeper ticks: it fires between the configured
//! value and that plus one tick, and costs no timer either. [`ConnWatch::abort_reason`] tells
//! the connection which of the two ended it.
//!
//! The read canceller (monoio's `Canceller`: an `Rc` and a `HashSet` of pending ops, ~160 bytes
//! with its allocations) exists only while the connection is active: it is made by the first
//! [`ConnWatch::cancel_handle`] after a park and dropped when the sweeper parks the connection,
//! whose parked reads are not cancelable. After a pass that parked connections the sweeper asks
//! the allocator to return the pages they freed ([`crate::sys::release_free_pages`]).

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
    /// Cancels the active reads when the sweeper parks the connection; `None` while parked.
    canceller: RefCell<Option<Canceller>>,
    aborted: Cell<bool>,
    waker: Cell<Option<Waker>>,
    idle_timeout: Option<Duration>,
    /// Between requests (HTTP keepalive): safe to close at once when the shard drains.
    between_requests: Cell<bool>,
    /// Ticks left before the armed deadline fires (0: none armed).
    deadline_ticks: Cell<u32>,
    /// Bytes of read buffer the connection's pending client read holds (HTTP/1), for
    /// [`Sweeper::held_read_bytes`].
    held: Cell<u32>,
    reason: Cell<Option<AbortReason>>,
}

/// Why the sweeper aborted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// No bytes either way for the idle timeout.
    Idle,
    /// The armed deadline passed.
    Deadline,
    /// The shard is draining and the connection was between requests.
    Drain,
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

    /// A handle for reads that the sweeper may cancel to park the connection (made on first
    /// use after a park). Reads while parked should not take one: the parked state would then
    /// keep a canceller that nothing cancels.
    #[inline]
    pub fn cancel_handle(&self) -> CancelHandle {
        self.canceller
            .borrow_mut()
            .get_or_insert_with(Canceller::new)
            .handle()
    }

    /// Cancels the reads made with [`Self::cancel_handle`] and drops the canceller.
    pub fn cancel_reads(&self) {
        if let Some(c) = self.canceller.take() {
            drop(c.cancel());
        }
    }

    /// Whether a canceller is allocated (for tests of the parked state).
    #[cfg(test)]
    pub(crate) fn has_canceller(&self) -> bool {
        self.canceller.borrow().is_some()
    }

    /// Records the capacity of the read buffer the connection reads into (hot path: one store).
    #[inline]
    pub fn hold(&self, bytes: usize) {
        self.held.set(bytes.min(u32::MAX as usize) as u32);
    }

    /// Marks an HTTP connection as waiting for its next request (or not).
    #[inline]
    pub fn set_between_requests(&self, v: bool) {
        self.between_requests.set(v);
    }

    /// Resolves when the sweeper aborts the connection (idle, deadline or drain).
    pub fn aborted(&self) -> Aborted<'_> {
        Aborted(self)
    }

    /// Why the connection was aborted, once it was.
    pub fn abort_reason(&self) -> Option<AbortReason> {
        self.reason.get()
    }

    /// Arms the deadline: it fires after `after` (at most one sweeper tick late). Replaces any
    /// armed deadline.
    pub fn arm_deadline(&self, after: Duration, sweeper: &Sweeper) {
        let tick = sweeper.tick().as_nanos().max(1);
        // +1: the first tick after arming may come at once.
        let ticks = after.as_nanos().div_ceil(tick) + 1;
        self.deadline_ticks.set(ticks.min(u32::MAX as u128) as u32);
    }

    pub fn disarm_deadline(&self) {
        self.deadline_ticks.set(0);
    }

    fn park(&self) {
        self.parked.set(true);
        self.cancel_reads();
    }

    fn abort(&self, reason: AbortReason) {
        if self.reason.get().is_none() {
            self.reason.set(Some(reason));
        }
        self.aborted.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// One sweeper tick of length `tick`; returns whether the connection was parked now.
    fn on_tick(&self, tick: Duration) -> bool {
        match self.deadline_ticks.get() {
            0 => {}
            1 => {
                self.deadline_ticks.set(0);
                self.abort(AbortReason::Deadline);
                return false;
            }
            n => self.deadline_ticks.set(n - 1),
        }
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
                self.abort(AbortReason::Idle);
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
    tick: Cell<Duration>,
    /// Connections parked so far (their read buffers given back).
    pub parked_total: Cell<u64>,
    /// Connections aborted by reason: idle timeout, deadline.
    pub idle_aborts: Cell<u64>,
    pub deadline_aborts: Cell<u64>,
}

/// The sweeper tick for a set of timeouts: a quarter of the shortest, between 25 ms and 250 ms,
/// so each fires within a quarter of its length.
pub fn tick_for(shortest: Option<Duration>) -> Duration {
    shortest
        .map(|d| d / 4)
        .unwrap_or(Duration::from_millis(250))
        .clamp(Duration::from_millis(25), Duration::from_millis(250))
}

impl Sweeper {
    /// `shortest_idle` is the smallest idle timeout of any listener; ticks are a quarter of it
    /// (between 25 ms and 250 ms) so timeouts fire within a quarter of their length.
    pub fn new(shortest_timeout: Option<Duration>) -> Sweeper {
        Sweeper {
            conns: RefCell::new(Vec::new()),
            tick: Cell::new(tick_for(shortest_timeout)),
            parked_total: Cell::new(0),
            idle_aborts: Cell::new(0),
            deadline_aborts: Cell::new(0),
        }
    }

    pub fn tick(&self) -> Duration {
        self.tick.get()
    }

    /// Retunes the tick for a new config's timeouts (takes effect from the next tick).
    pub fn set_shortest_timeout(&self, shortest: Option<Duration>) {
        self.tick.set(tick_for(shortest));
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
        let mut parked_last_tick = 0;
        loop {
            monoio::time::sleep(self.tick.get()).await;
            if parked_last_tick > 0 {
                // The connections parked last tick have since freed their read buffers (and
                // cancellers; parking only cancels their reads); without this the allocator
                // purges those pages only once the shard allocates again. At most once a tick,
                // and only after a tick that parked something.
                let t = std::time::Instant::now();
                crate::sys::release_free_pages();
                let us = t.elapsed().as_micros() as u64;
                tracing::debug!(
                    parked = parked_last_tick,
                    release_us = us,
                    "parked idle connections; free pages released"
                );
            }
            parked_last_tick = self.sweep_once();
        }
    }

    /// Returns how many connections were parked in this pass.
    pub(crate) fn sweep_once(&self) -> usize {
        let mut parked = 0;
        // Waking an aborted task only schedules it, so the registry is never re-entered here.
        let tick = self.tick.get();
        let mut conns = self.conns.borrow_mut();
        conns.retain(|w| match w.upgrade() {
            Some(c) => {
                let was_aborted = c.aborted.get();
                parked += usize::from(c.on_tick(tick));
                if !was_aborted {
                    match c.reason.get() {
                        Some(AbortReason::Idle) => self.idle_aborts.set(self.idle_aborts.get() + 1),
                        Some(AbortReason::Deadline) => {
                            self.deadline_aborts.set(self.deadline_aborts.get() + 1)
                        }
                        _ => {}
                    }
                }
                true
            }
            None => false,
        });
        self.parked_total
            .set(self.parked_total.get() + parked as u64);
        parked
    }

    /// Closes every connection that is waiting between requests (graceful drain).
    pub fn abort_between_requests(&self) {
        for w in self.conns.borrow().iter() {
            if let Some(c) = w.upgrade() {
                if c.between_requests.get() {
                    c.abort(AbortReason::Drain);
                }
            }
        }
    }

    /// Read-buffer bytes held by this shard's live connections (see [`ConnWatch::hold`]): an
    /// idle parked HTTP/1 connection holds `PARKED_READ` bytes, an active one its whole buffer.
    pub fn held_read_bytes(&self) -> u64 {
        self.conns
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| u64::from(c.held.get()))
            .sum()
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
        assert_eq!(s.tick(), Duration::from_millis(250));
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
        assert_eq!(c.abort_reason(), Some(AbortReason::Idle));
        assert_eq!(s.idle_aborts.get(), 1);
        assert_eq!(s.parked_total.get(), 1);
        drop(c);
        s.sweep_once();
        assert_eq!(s.live(), 1);
    }

    #[test]
    fn deadline_fires_within_one_tick_of_its_value_despite_traffic() {
        let s = Sweeper::new(Some(Duration::from_secs(1)));
        assert_eq!(s.tick(), Duration::from_millis(250));
        let c = s.register(None);
        c.arm_deadline(Duration::from_millis(500), &s);
        // 500 ms = 2 ticks, +1 for a first tick that may come at once: fires on the 3rd.
        for _ in 0..2 {
            c.touch();
            s.sweep_once();
            assert!(!c.aborted.get());
        }
        s.sweep_once();
        assert_eq!(c.abort_reason(), Some(AbortReason::Deadline));
        assert_eq!(s.deadline_aborts.get(), 1);
        let d = s.register(None);
        d.arm_deadline(Duration::from_millis(500), &s);
        d.disarm_deadline();
        for _ in 0..8 {
            s.sweep_once();
        }
        assert!(!d.aborted.get());
    }

    #[test]
    fn a_parked_connection_keeps_no_canceller() {
        let s = Sweeper::new(None);
        let c = s.register(None);
        let h = c.cancel_handle();
        assert!(c.has_canceller());
        for _ in 0..6 {
            s.sweep_once();
        }
        assert!(c.parked());
        assert!(!c.has_canceller(), "parking drops the canceller");
        drop(h);
        c.unpark();
        let _h = c.cancel_handle();
        assert!(c.has_canceller(), "the next active read makes a new one");
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
