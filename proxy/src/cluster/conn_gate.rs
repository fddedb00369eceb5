//! Per-shard connection breakers of one cluster: `max_connections` and `max_pending_requests`
//! (Envoy's `circuit_breakers.thresholds.max_connections` / `max_pending_requests`).
//!
//! Like the request breakers, the thresholds are process-wide and each shard enforces
//! `ceil(max / shards)` on its own `Cell`s (no lock, no shared cache line; REUSEPORT keeps the
//! shards' loads even, so the shares add up to the global limit, at most `shards - 1` over).
//!
//! - A [`ConnSlot`] is held by every open upstream connection of the cluster on this shard
//!   (HTTP/1 pooled or busy, HTTP/2 shared, L4), released when the connection is dropped.
//! - A request is *pending* while it has no connection: waiting for a connect it started, or
//!   for a slot when `max_connections` is reached ([`Pending`]). A request that would exceed
//!   `max_pending_requests` is refused (503 `UO`, like Envoy's `upstream_rq_pending_overflow`).
//! - At `max_connections`, an HTTP/1 request first closes an idle connection to another
//!   endpoint (its slot is then free); otherwise it waits, bounded by the route timeouts, until
//!   a connection is released or returned to the pool ([`ConnGate::wait`]; the waker list is
//!   touched only when someone waits). An L4 connection over the cap is refused at once
//!   (Envoy's `upstream_cx_overflow` on tcp_proxy).
//!
//! Without thresholds the slot is still taken (one `Rc` clone per new connection, not per
//! request), so the gauges show open connections either way.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

#[derive(Debug, Default)]
struct GateState {
    open: Cell<u32>,
    pending: Cell<u32>,
    waiters: RefCell<Vec<Waker>>,
}

impl GateState {
    fn wake_all(&self) {
        if let Ok(mut w) = self.waiters.try_borrow_mut() {
            if !w.is_empty() {
                for w in w.drain(..) {
                    w.wake();
                }
            }
        }
    }
}

/// This shard's connection and pending-request shares for one cluster.
#[derive(Debug, Default)]
pub struct ConnGate {
    max_connections: Option<u32>,
    max_pending: Option<u32>,
    state: Rc<GateState>,
    /// Connections not opened because `max_connections` was reached (Envoy's
    /// `upstream_cx_overflow`): an L4 connection refused, or an HTTP request that had to wait.
    pub cx_overflows: Cell<u64>,
    /// Requests refused because `max_pending_requests` was full (503 `UO`).
    pub pending_overflows: Cell<u64>,
}

/// An open upstream connection's claim; released (and waiters woken) when dropped.
#[derive(Debug)]
pub struct ConnSlot(Rc<GateState>);

impl ConnSlot {
    /// Wakes requests waiting for a connection (one was returned to a pool or has room again).
    pub fn notify(&self) {
        self.0.wake_all();
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
        self.0.wake_all();
    }
}

/// A request waiting for a connection; stops counting as pending when dropped.
#[derive(Debug)]
pub struct Pending(Rc<GateState>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.set(self.0.pending.get().saturating_sub(1));
    }
}

impl ConnGate {
    /// Process-wide thresholds; this shard enforces `ceil(max / shards)` of each.
    pub fn new(max_connections: Option<u32>, max_pending: Option<u32>, shards: usize) -> ConnGate {
        let share = |m: u32| m.div_ceil(shards.max(1) as u32);
        ConnGate {
            max_connections: max_connections.map(share),
            max_pending: max_pending.map(share),
            ..ConnGate::default()
        }
    }

    /// A slot for a new connection, or `None` when `max_connections` is reached (not counted:
    /// the caller decides whether that is an overflow or a wait).
    pub fn try_open(&self) -> Option<ConnSlot> {
        let n = self.state.open.get();
        if self.max_connections.is_some_and(|l| n >= l) {
            return None;
        }
        self.state.open.set(n + 1);
        Some(ConnSlot(self.state.clone()))
    }

    /// Counts one `max_connections` overflow.
    pub fn note_cx_overflow(&self) {
        self.cx_overflows.set(self.cx_overflows.get() + 1);
    }

    /// Starts a pending request, or `None` (counted) when the pending share is full.
    pub fn pending(&self) -> Option<Pending> {
        let n = self.state.pending.get();
        if self.max_pending.is_some_and(|l| n >= l) {
            self.pending_overflows.set(self.pending_overflows.get() + 1);
            return None;
        }
        self.state.pending.set(n + 1);
        Some(Pending(self.state.clone()))
    }

    /// Waits until a connection is released or returned to a pool (may wake spuriously).
    pub async fn wait(&self) {
        let mut registered = false;
        poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            self.state.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// Wakes waiters (a connection went back to an idle pool).
    pub fn notify(&self) {
        self.state.wake_all();
    }

    /// Open connections on this shard (gauge).
    pub fn open(&self) -> u32 {
        self.state.open.get()
    }

    /// Requests waiting for a connection on this shard (gauge).
    pub fn pending_now(&self) -> u32 {
        self.state.pending.get()
    }

    /// This shard's shares, if set.
    pub fn limits(&self) -> (Option<u32>, Option<u32>) {
        (self.max_connections, self.max_pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_up_and_slots_come_back() {
        let g = ConnGate::new(Some(3), Some(1), 2);
        assert_eq!(g.limits(), (Some(2), Some(1)));
        let a = g.try_open().unwrap();
        let _b = g.try_open().unwrap();
        assert!(g.try_open().is_none());
        assert_eq!(g.open(), 2);
        drop(a);
        assert!(g.try_open().is_some());
        let p = g.pending().unwrap();
        assert!(g.pending().is_none());
        assert_eq!(g.pending_overflows.get(), 1);
        drop(p);
        assert!(g.pending().is_some());
    }

    #[test]
    fn unlimited_without_thresholds() {
        let g = ConnGate::new(None, None, 4);
        let held: Vec<_> = (0..100).map(|_| g.try_open().unwrap()).collect();
        let pend: Vec<_> = (0..100).map(|_| g.pending().unwrap()).collect();
        assert_eq!((g.open(), g.pending_now()), (100, 100));
        drop((held, pend));
        assert_eq!((g.open(), g.pending_now()), (0, 0));
    }
}
