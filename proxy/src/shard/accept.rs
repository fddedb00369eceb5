//! A shard's accept loop for one listener: accept, build the connection's [`ConnCtx`], spawn
//! the protocol layer; pause at the listener's `max_connections` share; back off on accept
//! errors (EMFILE, ENFILE, ENOBUFS) instead of spinning, with one rate-limited log line.
//!
//! A loop knows its listener by name, not by index: a reload may add or remove listeners
//! around it, and each accepted connection is built from the shard's current snapshot (or,
//! while a removed listener's loop is stopping, the last snapshot that still had it).

use std::cell::Cell;
use std::future::poll_fn;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Shard;
use crate::config::Protocol;
use crate::ctx::{ConnCtx, LocalAddr, PeerAddr, Snapshot};
use crate::listener;

const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One listener's open-connection count on this shard and its share of `max_connections`.
#[derive(Default)]
pub struct ListenerSlot {
    active: Cell<u32>,
    limit: Cell<Option<u32>>,
    waiter: Cell<Option<Waker>>,
    pub paused: Cell<u64>,
    pub errors: Cell<u64>,
}

impl std::fmt::Debug for ListenerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSlot")
            .field("active", &self.active.get())
            .field("limit", &self.limit.get())
            .finish()
    }
}

impl ListenerSlot {
    /// `max` is the process-wide limit; this shard's share is `ceil(max / shards)`.
    pub fn new(max: Option<u32>, shards: usize) -> ListenerSlot {
        let slot = ListenerSlot::default();
        slot.set_limit(max, shards);
        slot
    }

    /// A reload changed the listener's `max_connections`.
    pub fn set_limit(&self, max: Option<u32>, shards: usize) {
        self.limit
            .set(max.map(|m| m.div_ceil(shards.max(1) as u32)));
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    fn full(&self) -> bool {
        self.limit.get().is_some_and(|l| self.active.get() >= l)
    }

    /// Waits until the slot has room.
    async fn room(&self) {
        poll_fn(|cx| {
            if self.full() {
                self.waiter.set(Some(cx.waker().clone()));
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

/// Counts a connection against its shard and listener until dropped.
struct ConnGuard {
    shard: Rc<Shard>,
    slot: Rc<ListenerSlot>,
    listener: usize,
}

impl ConnGuard {
    /// `listener`: the index in the snapshot the connection was accepted with.
    fn new(shard: Rc<Shard>, slot: Rc<ListenerSlot>, listener: usize) -> ConnGuard {
        shard.active.set(shard.active.get() + 1);
        slot.active.set(slot.active.get() + 1);
        shard.svc.telemetry.accepted(listener);
        ConnGuard {
            shard,
            slot,
            listener,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let s = &self.shard;
        s.active.set(s.active.get() - 1);
        let slot = &self.slot;
        slot.active.set(slot.active.get() - 1);
        s.svc.telemetry.closed(self.listener);
        if let Some(w) = slot.waiter.take() {
            w.wake();
        }
    }
}

/// Accepts on the listener called `name` until `drain` turns true (the shard drains, or a
/// reload removed or rebound the listener).
pub async fn accept_loop(
    listener: TcpListener,
    name: Rc<str>,
    slot: Rc<ListenerSlot>,
    shard: Rc<Shard>,
    mut drain: watch::Receiver<bool>,
) {
    let mut known = Known::find(&shard, &name);
    let mut backoff = BACKOFF_MIN;
    let mut last_warn: Option<Instant> = None;
    let mut suppressed = 0u64;
    while !*drain.borrow() {
        if shard.svc.overload.stop_accepting() {
            // Above the RSS watermark (`crate::overload`): new connections wait in the backlog.
            monoio::select! {
                _ = shard.svc.overload.accepting() => continue,
                _ = drain.changed() => break,
            }
        }
        if slot.full() {
            slot.paused.set(slot.paused.get() + 1);
            tracing::debug!(shard = shard.svc.id, listener = %name, "max_connections reached; accepting paused");
            monoio::select! {
                _ = slot.room() => continue,
                _ = drain.changed() => break,
            }
        }
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = BACKOFF_MIN;
                    shard.accepted.set(shard.accepted.get() + 1);
                    if shard.svc.overload.refuse_connection(shard.active.get()) {
                        // Over max_downstream_connections: closed at once (counted).
                        drop(stream);
                        continue;
                    }
                    known.refresh(&shard, &name);
                    if let Some((snapshot, idx)) = known.0.clone() {
                        spawn_connection(&shard, &slot, snapshot, idx, stream, peer);
                    }
                }
                Err(e) => {
                    slot.errors.set(slot.errors.get() + 1);
                    if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(shard = shard.svc.id, listener = %name, error = %e, suppressed, backoff = ?backoff, "accept failed; backing off");
                        last_warn = Some(Instant::now());
                        suppressed = 0;
                    } else {
                        suppressed += 1;
                    }
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            },
            _ = shard.svc.overload.stopping() => continue,
            _ = drain.changed() => break,
        }
    }
    tracing::debug!(shard = shard.svc.id, listener = %name, "stopped accepting");
}

/// The latest snapshot that has this loop's listener, and the listener's index in it.
struct Known(Option<(Rc<Snapshot>, usize)>);

impl Known {
    fn find(shard: &Shard, name: &str) -> Known {
        let snap = shard.svc.snapshots.current();
        Known(snap.listener_index(name).map(|i| (snap, i)))
    }

    /// Moves to the shard's current snapshot when it changed and still has the listener.
    fn refresh(&mut self, shard: &Shard, name: &str) {
        let current = shard.svc.snapshots.current();
        if self
            .0
            .as_ref()
            .is_some_and(|(s, _)| Rc::ptr_eq(s, &current))
        {
            return;
        }
        if let Some(i) = current.listener_index(name) {
            self.0 = Some((current, i));
        }
    }
}

fn spawn_connection(
    shard: &Rc<Shard>,
    slot: &Rc<ListenerSlot>,
    snapshot: Rc<Snapshot>,
    idx: usize,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) {
    let local = match stream.local_addr() {
        Ok(a) => LocalAddr(a),
        Err(_) => return, // already reset by the peer
    };
    let lcfg = &snapshot.config.listeners[idx];
    let orig_dst = match listener::original_destination(
        stream.as_raw_fd(),
        local,
        lcfg,
        &shard.svc.own,
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(listener = %lcfg.name, %peer, error = %e, "cannot read the original destination; closing");
            return;
        }
    };
    let protocol = lcfg.protocol;
    let tls = lcfg.tls.is_some();
    // Boxed so the task holds a pointer, not the context: L4 frees it once connected.
    let conn = Box::new(ConnCtx {
        peer: PeerAddr(peer),
        local,
        orig_dst,
        listener: idx,
        snapshot,
        tls: None,
    });
    let guard = ConnGuard::new(shard.clone(), slot.clone(), idx);
    monoio::spawn(async move {
        let s = &guard.shard;
        match protocol {
            // Boxed: a plaintext connection's task holds only a pointer's worth for it.
            _ if tls => {
                Box::pin(crate::secure::serve(
                    conn, stream, &s.svc, &s.h1, &s.h2, &s.l4,
                ))
                .await
            }
            Protocol::Tcp => crate::l4::serve(conn, stream, None, &s.svc, &s.l4).await,
            Protocol::Http => crate::detect::http(*conn, stream, &s.svc, &s.h1, &s.h2, &s.l4).await,
            Protocol::Auto => {
                Box::pin(crate::detect::auto(
                    *conn, stream, &s.svc, &s.h1, &s.h2, &s.l4,
                ))
                .await
            }
            Protocol::Http2 => {
                Box::pin(crate::http2::serve(*conn, stream, &s.svc, &s.h1, &s.h2)).await
            }
        }
        drop(guard);
    });
}
