//! What every protocol layer of a shard shares, below all of them (no layer imports another
//! through here): address newtypes ([`addr`]), the per-connection [`ConnCtx`] built at accept,
//! the shard's config [`snapshot`] (an immutable `Arc<Config>` plus this shard's own copies of
//! route tables and load-balancer state), the connection [`watch`] sweeper, and the small
//! per-shard [`Services`] the layers borrow (randomness, drain flag, own addresses, counters).
//!
//! Data flows one way: `shard` builds these and hands them down to `l4` and `http1`; nothing
//! here knows about a protocol.

pub mod addr;
pub mod conn;
pub mod own;
pub mod rng;
pub mod snapshot;
pub mod watch;

use std::cell::Cell;
use std::rc::Rc;

pub use addr::{LocalAddr, OrigDst, PeerAddr, UpstreamAddr};
pub use conn::{ConnCtx, PeerIdentity, TlsFacts};
pub use own::OwnAddrs;
pub use rng::Rng;
pub use snapshot::{Snapshot, SnapshotCell};
pub use watch::{ConnWatch, Sweeper};

/// The per-shard services every protocol layer may use. `!Send`: one per shard thread.
#[derive(Debug)]
pub struct Services {
    pub id: usize,
    /// The config snapshot new connections and new requests use.
    pub snapshots: SnapshotCell,
    /// Idle timeouts, header deadlines and buffer parking for every connection of the shard.
    pub sweeper: Rc<Sweeper>,
    pub rng: Rng,
    /// Set once the shard drains: HTTP connections close after their current request.
    pub draining: Cell<bool>,
    /// The proxy's own listening addresses (loop detection).
    pub own: OwnAddrs,
    /// Fault-injection counters (route `fault:` filters).
    pub faults: crate::http::fault::FaultStats,
    /// Traffic-mirroring counters (shared with the mirror tasks, hence the `Rc`).
    pub mirrors: Rc<crate::http1::mirror::MirrorStats>,
    /// The overload manager's caps, actions and counters on this shard.
    pub overload: crate::overload::OverloadState,
    /// Authorization decisions on this shard.
    pub authz: crate::authz::AuthzStats,
    /// Metrics (and the other per-request consumers), fed one `Record` per request.
    pub telemetry: crate::telemetry::ShardTelemetry,
}
