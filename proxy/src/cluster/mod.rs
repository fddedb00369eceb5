//! Upstream clusters as seen by one shard: endpoint choice with per-shard load-balancer state.
//!
//! Round robin keeps a per-shard cursor; least-request uses the power of two choices over
//! per-shard in-flight counts. State is `Cell`-based and `!Send`: each shard balances its own
//! traffic, so no counter is shared across cores (global balance follows from the kernel's
//! even REUSEPORT spread).

pub mod breaker;
pub mod budget;
pub mod conn_gate;
pub mod h2pool;
pub mod health;
mod lb;
pub mod outlier;
pub mod pool;

pub use breaker::{Admitted, Breaker};
pub use conn_gate::{ConnGate, ConnSlot, Pending};
pub use h2pool::{H2Conn, H2Pool, StreamSlot};
pub use lb::{Balancer, InFlight};
pub use pool::{CleanEnd, PooledConn, Pools};
