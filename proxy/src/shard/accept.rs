//! A shard's accept loop for one listener: accept, build the connection's [`ConnCtx`], spawn
//! the protocol layer; pause at the listener's `max_connections` share; back off on accept
//! errors (EMFILE, ENFILE, ENOBUFS) instead of spinning, with one rate-limited log line.

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
use crate::ctx::{ConnCtx, LocalAddr, PeerAddr};
use crate::listener;

const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One listener's open-connection count on this shard and its share of `max_connections`.
#[derive(Default)]
pub struct ListenerSlot {
    active: Cell<u32>,
    limit: Option<u32>,
    waiter: Cell<Option<Waker>>,
    pub paused: Cell<u64>,
    pub errors: Cell<u64>,
}

impl std::fmt::Debug for ListenerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSlot")
            .field("active", &self.active.get())
            .field("limit", &self.limit)
            .finish()
    }
}

impl ListenerSlot {
    /// `max` is the process-wide limit; this shard's share is `ceil(max / shards)`.
    pub fn new(max: Option<u32>, shards: usize) -> ListenerSlot {
        ListenerSlot {
            limit: max.map(|m| m.div_ceil(shards.max(1) as u32)),
            ..ListenerSlot::default()
        }
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.active.get() >= l)
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
    listener: usize,
}

impl ConnGuard {
    fn new(shard: Rc<Shard>, listener: usize) -> ConnGuard {
        shard.active.set(shard.active.get() + 1);
        let slot = &shard.slots[listener];
        slot.active.set(slot.active.get() + 1);
        shard.svc.telemetry.accepted(listener);
        ConnGuard { shard, listener }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let s = &self.shard;
        s.active.set(s.active.get() - 1);
        let slot = &s.slots[self.listener];
        slot.active.set(slot.active.get() - 1);
        s.svc.telemetry.closed(self.listener);
        if let Some(w) = slot.waiter.take() {
            w.wake();
        }
    }
}

/// Accepts until `drain` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    idx: usize,
    shard: Rc<Shard>,
    mut drain: watch::Receiver<bool>,
) {
    let name = shard.svc.snapshots.current().config.listeners[idx]
        .name
        .clone();
    let slot = &shard.slots[idx];
    let mut backoff = BACKOFF_MIN;
    let mut last_warn: Option<Instant> = None;
    let mut suppressed = 0u64;
    while !*drain.borrow() {
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
                    spawn_connection(&shard, idx, stream, peer);
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
            _ = drain.changed() => break,
        }
    }
    tracing::debug!(shard = shard.svc.id, listener = %name, "stopped accepting");
}

fn spawn_connection(shard: &Rc<Shard>, idx: usize, stream: TcpStream, peer: std::net::SocketAddr) {
    let snapshot = shard.svc.snapshots.current();
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
    let guard = ConnGuard::new(shard.clone(), idx);
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
