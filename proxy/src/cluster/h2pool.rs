//! Per-shard HTTP/2 upstream connections of one cluster: per endpoint, a few shared
//! connections, each carrying up to `min(peer's SETTINGS_MAX_CONCURRENT_STREAMS, the
//! cluster's http2.max_concurrent_streams)` streams. A stream holds a [`StreamSlot`] (its
//! count on the connection) while it runs. A connection that closed or received GOAWAY is
//! marked and never chosen again; it finishes its in-flight streams and is dropped by the
//! last of them. Connecting is `crate::upstream::h2`'s job; this only keeps the state.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use h2::client::SendRequest;

/// One upstream HTTP/2 connection as the pool sees it.
#[derive(Debug)]
pub struct H2Conn {
    pub send: SendRequest<Bytes>,
    /// Streams open on it from this shard.
    pub active: Cell<u32>,
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS, updated by the connection's driver task.
    pub peer_max: Cell<u32>,
    /// Closed, failed or going away: take no new streams.
    pub gone: Cell<bool>,
    /// Our own cap (the cluster's `http2.max_concurrent_streams`).
    pub cap: u32,
    /// The connection's `max_connections` slot, released when the last stream drops it.
    pub slot: super::ConnSlot,
}

impl H2Conn {
    fn has_room(&self) -> bool {
        !self.gone.get() && self.active.get() < self.peer_max.get().min(self.cap)
    }
}

/// A stream's claim on a connection; releases its count when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    pub conn: Rc<H2Conn>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let a = &self.conn.active;
        a.set(a.get().saturating_sub(1));
        // Room again: a request waiting at max_connections may take it.
        self.conn.slot.notify();
    }
}

impl StreamSlot {
    fn claim(conn: Rc<H2Conn>) -> StreamSlot {
        conn.active.set(conn.active.get() + 1);
        StreamSlot { conn }
    }
}

/// Connects in progress to one endpoint and the streams waiting for them.
#[derive(Debug, Default)]
struct Connecting {
    /// Handshakes under way.
    count: Cell<u32>,
    /// Streams waiting for one of them (each will claim a slot).
    waiting: Cell<u32>,
    wakers: RefCell<Vec<Waker>>,
}

#[derive(Debug)]
pub struct H2Pool {
    conns: Box<[RefCell<Vec<Rc<H2Conn>>>]>,
    connecting: Box<[Connecting]>,
    /// Per endpoint: the peer's SETTINGS_MAX_CONCURRENT_STREAMS last seen on a connection
    /// (0: none yet), the starting limit of the next connection (so it does not open more
    /// streams than the peer allows before the peer's SETTINGS arrive).
    learned: Box<[Cell<u32>]>,
    /// Connections opened, and streams that found room on an existing one.
    pub connected: Cell<u64>,
    pub multiplexed: Cell<u64>,
}

impl H2Pool {
    pub fn new(endpoints: usize) -> H2Pool {
        H2Pool {
            conns: (0..endpoints).map(|_| RefCell::new(Vec::new())).collect(),
            connecting: (0..endpoints).map(|_| Connecting::default()).collect(),
            learned: (0..endpoints).map(|_| Cell::new(0)).collect(),
            connected: Cell::new(0),
            multiplexed: Cell::new(0),
        }
    }

    /// A slot on a live connection to `endpoint` with room for one more stream.
    pub fn claim(&self, endpoint: usize) -> Option<StreamSlot> {
        let mut conns = self.conns.get(endpoint)?.borrow_mut();
        conns.retain(|c| !c.gone.get());
        if let Some(c) = conns.last() {
            self.learned[endpoint].set(c.peer_max.get());
        }
        let c = conns.iter().find(|c| c.has_room())?.clone();
        self.multiplexed.set(self.multiplexed.get() + 1);
        Some(StreamSlot::claim(c))
    }

    /// Waits for a connect in progress to `endpoint` when it will have room for this stream
    /// too (`cap` streams per new connection); `false` when there is none to wait for (the
    /// caller connects, between [`H2Pool::begin_connect`] and [`H2Pool::end_connect`]).
    pub async fn wait_for_connect(&self, endpoint: usize, cap: u32) -> bool {
        let Some(c) = self.connecting.get(endpoint) else {
            return false;
        };
        if c.count.get() == 0 || c.waiting.get() + c.count.get() >= c.count.get() * cap {
            return false;
        }
        c.waiting.set(c.waiting.get() + 1);
        let mut registered = false;
        poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            c.wakers.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        c.waiting.set(c.waiting.get() - 1);
        true
    }

    pub fn begin_connect(&self, endpoint: usize) {
        if let Some(c) = self.connecting.get(endpoint) {
            c.count.set(c.count.get() + 1);
        }
    }

    /// A connect finished (either way): waiting streams try again.
    pub fn end_connect(&self, endpoint: usize) {
        if let Some(c) = self.connecting.get(endpoint) {
            c.count.set(c.count.get() - 1);
            for w in c.wakers.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }

    /// Adds a new connection and claims its first stream.
    pub fn add(&self, endpoint: usize, conn: Rc<H2Conn>) -> StreamSlot {
        self.connected.set(self.connected.get() + 1);
        if let Some(v) = self.conns.get(endpoint) {
            v.borrow_mut().push(conn.clone());
        }
        StreamSlot::claim(conn)
    }

    /// How many streams a new connection to `endpoint` may open before the peer's SETTINGS.
    pub fn initial_streams(&self, endpoint: usize, cap: u32) -> u32 {
        match self.learned.get(endpoint).map_or(0, Cell::get) {
            0 => cap,
            n => n.min(cap),
        }
    }

    /// Live connections to `endpoint`.
    pub fn len(&self, endpoint: usize) -> usize {
        self.conns
            .get(endpoint)
            .map_or(0, |v| v.borrow().iter().filter(|c| !c.gone.get()).count())
    }
}
