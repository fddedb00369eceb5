//! The per-connection context, built once at accept and handed to every layer the connection
//! passes through: who connected, where to, on which listener, with which config snapshot, and
//! (once a TLS layer ran) what the handshake established.
//!
//! The snapshot is the one current *at accept*: a reload never changes a live connection's
//! listener settings. Routes and clusters are taken per request from the shard's current
//! snapshot (see `http1::server`).

use std::rc::Rc;

use super::addr::{LocalAddr, OrigDst, PeerAddr};
use super::snapshot::Snapshot;
use crate::config::Listener;

/// What a TLS handshake established (SNI, ALPN, the peer's verified [`crate::tls::SpiffeId`], serial);
/// `None` in [`ConnCtx::tls`] for plaintext connections. One type for the whole proxy: the
/// handshake in [`crate::tls::handshake`] produces it.
pub use crate::tls::TlsFacts;

/// A verified peer identity: the SPIFFE ID mTLS validated.
pub type PeerIdentity = crate::tls::SpiffeId;

#[derive(Debug)]
pub struct ConnCtx {
    pub peer: PeerAddr,
    pub local: LocalAddr,
    /// Set for `original_dst` / `transparent` listeners.
    pub orig_dst: Option<OrigDst>,
    /// Index of the listener in `snapshot.config.listeners`.
    pub listener: usize,
    pub snapshot: Rc<Snapshot>,
    pub tls: Option<Box<TlsFacts>>,
}

impl ConnCtx {
    /// The listener this connection was accepted on, as configured when it was accepted.
    pub fn listener(&self) -> &Listener {
        &self.snapshot.config.listeners[self.listener]
    }

    /// The peer's verified SPIFFE ID, when the connection came in over mTLS.
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.tls.as_ref().and_then(|t| t.peer.as_ref())
    }
}

impl ConnCtx {
    /// The snapshot a new request on this connection uses, and this connection's listener's
    /// index in it: the shard's `current` one while it still has the listener (matched by
    /// name: a reload may add or remove listeners around it), else the accept-time one (the
    /// listener was removed and its connections finish on the config they started with).
    pub fn request_snapshot(&self, current: Rc<Snapshot>) -> (Rc<Snapshot>, usize) {
        if Rc::ptr_eq(&current, &self.snapshot) {
            return (current, self.listener);
        }
        let name = &self.listener().name;
        let same_slot = current
            .config
            .listeners
            .get(self.listener)
            .is_some_and(|l| l.name == *name);
        if same_slot {
            return (current, self.listener);
        }
        match current.listener_index(name) {
            Some(i) => (current, i),
            None => (self.snapshot.clone(), self.listener),
        }
    }
}
