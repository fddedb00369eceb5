//! The shard's running accept loops, one per configured listener, and how a reload changes
//! them: a listener the new config adds starts accepting on the socket the control side bound
//! for it ([`ShardCommand::Bind`](super::ShardCommand::Bind), sent just before the `Swap`); a
//! removed one stops accepting (its socket closes when its loop returns) while its open
//! connections finish on the snapshot they were accepted with; a rebound one (new address)
//! starts on its new socket and stops the old loop. Listeners the reload leaves alone keep
//! their loop and socket; only their `max_connections` share is updated.
//!
//! Each loop is a spawned task with its own stop signal; the shard awaits every loop before it
//! drains, so no listening socket outlives the decision to stop accepting.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use monoio::net::TcpListener;
use monoio::task::JoinHandle;
use tokio::sync::watch;

use super::accept::{accept_loop, ListenerSlot};
use super::Shard;
use crate::config::Config;

/// One running accept loop.
struct Running {
    name: Rc<str>,
    /// The bound address (the resolved port when the config said 0).
    bound: SocketAddr,
    slot: Rc<ListenerSlot>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Accept loops by listener name, plus the counters of loops already stopped.
#[derive(Default)]
pub struct AcceptSet {
    running: RefCell<Vec<Running>>,
    /// Sockets bound by the control side for the next swap, by listener name.
    pending: RefCell<Vec<(String, std::net::TcpListener)>>,
    /// Stopped loops, awaited before the shard drains.
    stopping: RefCell<Vec<JoinHandle<()>>>,
    retired_paused: std::cell::Cell<u64>,
    retired_errors: std::cell::Cell<u64>,
    /// Set by `POST /drain_listeners`: no loop runs or starts again (a reload starts none).
    closed: std::cell::Cell<bool>,
}

impl std::fmt::Debug for AcceptSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self
            .running
            .borrow()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        f.debug_struct("AcceptSet")
            .field("running", &names)
            .finish()
    }
}

impl AcceptSet {
    /// Starts a loop for listener `name` on `socket`.
    pub fn start(
        &self,
        shard: &Rc<Shard>,
        name: &str,
        max: Option<u32>,
        socket: std::net::TcpListener,
    ) -> std::io::Result<()> {
        let bound = socket.local_addr()?;
        let listener = TcpListener::from_std(socket)?;
        let name: Rc<str> = name.into();
        let slot = Rc::new(ListenerSlot::new(max, shard.svc.snapshots.current().shards));
        let (stop, stop_rx) = watch::channel(false);
        let task = monoio::spawn(accept_loop(
            listener,
            name.clone(),
            slot.clone(),
            shard.clone(),
            stop_rx,
        ));
        self.running.borrow_mut().push(Running {
            name,
            bound,
            slot,
            stop,
            task,
        });
        Ok(())
    }

    /// Holds sockets the control side bound for the coming swap.
    pub fn stage(&self, sockets: Vec<(String, std::net::TcpListener)>) {
        self.pending.borrow_mut().extend(sockets);
    }

    /// Brings the loops in line with `config` (see the module doc).
    pub fn reconcile(&self, shard: &Rc<Shard>, config: &Config) {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if self.closed.get() {
            return;
        }
        let shards = shard.svc.snapshots.current().shards;
        // Stop loops whose listener is gone or rebound.
        let mut keep = Vec::new();
        for r in std::mem::take(&mut *self.running.borrow_mut()) {
            let wanted = config.listeners.iter().find(|l| *l.name == *r.name);
            let rebound = pending.iter().any(|(n, _)| **n == *r.name);
            match wanted {
                Some(l) if !rebound => {
                    r.slot.set_limit(l.max_connections, shards);
                    keep.push(r);
                }
                _ => {
                    tracing::info!(shard = shard.svc.id, listener = %r.name, address = %r.bound,
                        "listener stopped accepting (reload); its connections finish");
                    self.retire(r);
                }
            }
        }
        *self.running.borrow_mut() = keep;
        for (name, socket) in pending {
            let max = config
                .listeners
                .iter()
                .find(|l| l.name == name)
                .and_then(|l| l.max_connections);
            let addr = socket.local_addr().ok();
            match self.start(shard, &name, max, socket) {
                Ok(()) => tracing::info!(shard = shard.svc.id, listener = %name, address = ?addr,
                    "listener accepting (reload)"),
                Err(e) => tracing::error!(shard = shard.svc.id, listener = %name, error = %e,
                    "cannot register the reloaded listener's socket"),
            }
        }
        shard.svc.own.set(self.addrs());
    }

    fn retire(&self, r: Running) {
        let _ = r.stop.send(true);
        self.retired_paused
            .set(self.retired_paused.get() + r.slot.paused.get());
        self.retired_errors
            .set(self.retired_errors.get() + r.slot.errors.get());
        self.stopping.borrow_mut().push(r.task);
    }

    /// Stops every loop for good without waiting (`POST /drain_listeners`); the shard keeps
    /// serving its open connections.
    pub fn close_all(&self) {
        self.closed.set(true);
        for r in std::mem::take(&mut *self.running.borrow_mut()) {
            tracing::debug!(listener = %r.name, address = %r.bound, "listener stopped accepting (drain_listeners)");
            self.retire(r);
        }
        self.pending.borrow_mut().clear();
    }

    /// The running loops: listener name and bound address.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.running
            .borrow()
            .iter()
            .map(|r| (r.name.to_string(), r.bound))
            .collect()
    }

    /// Stops every loop (the shard drains) and waits until all have returned.
    pub async fn stop_all(&self) {
        for r in std::mem::take(&mut *self.running.borrow_mut()) {
            self.retire(r);
        }
        self.pending.borrow_mut().clear();
        let tasks = std::mem::take(&mut *self.stopping.borrow_mut());
        futures_util::future::join_all(tasks).await;
    }

    /// The addresses this shard is listening on.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.running.borrow().iter().map(|r| r.bound).collect()
    }

    /// Times accepting paused at `max_connections`, and accept errors, over all loops so far.
    pub fn counts(&self) -> (u64, u64) {
        let running = self.running.borrow();
        let paused = running.iter().map(|r| r.slot.paused.get()).sum::<u64>();
        let errors = running.iter().map(|r| r.slot.errors.get()).sum::<u64>();
        (
            paused + self.retired_paused.get(),
            errors + self.retired_errors.get(),
        )
    }
}
