//! The rustls config currently in force for one listener or cluster, swapped by the control
//! thread's [`super::Reloader`] and read by every shard for each new handshake.
//!
//! [`Live`] is a `tokio::sync::watch` sender (the shard command channel's family, no runtime
//! needed) holding the current `Arc<T>`; [`LocalLive`] is one shard's receiver plus its cached
//! copy. A handshake costs one atomic version load (`has_changed`: no lock, no write to a
//! shared line) and the `Arc` clone rustls needs anyway; only the first handshake after a swap
//! reads the new value. Live connections keep the `Arc` they started with.

use std::cell::RefCell;
use std::sync::Arc;

use tokio::sync::watch;

/// The current config, shared by every shard.
#[derive(Debug)]
pub struct Live<T> {
    tx: watch::Sender<Option<Arc<T>>>,
}

impl<T> Default for Live<T> {
    fn default() -> Live<T> {
        Live {
            tx: watch::Sender::new(None),
        }
    }
}

impl<T> Live<T> {
    /// Installs `config` for new handshakes.
    pub fn set(&self, config: Arc<T>) {
        self.tx.send_replace(Some(config));
    }

    /// The config in force (control side).
    pub fn get(&self) -> Option<Arc<T>> {
        self.tx.borrow().clone()
    }
}

/// One shard's view of a [`Live`] config. `!Sync`.
#[derive(Debug)]
pub struct LocalLive<T> {
    rx: RefCell<watch::Receiver<Option<Arc<T>>>>,
    cached: RefCell<Option<Arc<T>>>,
}

impl<T> LocalLive<T> {
    pub fn new(shared: &Live<T>) -> LocalLive<T> {
        let mut rx = shared.tx.subscribe();
        let first = rx.borrow_and_update().clone();
        LocalLive {
            rx: RefCell::new(rx),
            cached: RefCell::new(first),
        }
    }

    /// The config for a new handshake; `None` until the control side installed one.
    pub fn get(&self) -> Option<Arc<T>> {
        let mut rx = self.rx.borrow_mut();
        if rx.has_changed().unwrap_or(false) {
            *self.cached.borrow_mut() = rx.borrow_and_update().clone();
        }
        self.cached.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_see_a_swap_on_their_next_get() {
        let live = Live::default();
        let local = LocalLive::new(&live);
        assert!(local.get().is_none());
        live.set(Arc::new(1));
        assert_eq!(*local.get().unwrap(), 1);
        let held = local.get().unwrap();
        live.set(Arc::new(2));
        assert_eq!(*local.get().unwrap(), 2);
        assert_eq!(*held, 1, "a live connection keeps its config");
    }
}
