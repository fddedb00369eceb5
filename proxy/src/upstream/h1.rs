//! HTTP/1 upstream connections: exclusive, one request at a time. [`checkout`] takes a live
//! idle connection from the cluster's per-shard pool or makes a new one through
//! [`super::connect`]; [`checkin`] returns it, which needs a [`CleanEnd`] proof.

use crate::cluster::{Balancer, CleanEnd, PooledConn};
use crate::ctx::UpstreamAddr;

use super::{connect_stream, ConnectError};

/// A pooled connection to endpoint `ep_idx` of `balancer`'s cluster, or a new one. A failed
/// connect counts against the endpoint's passive health; a successful one clears it.
pub async fn checkout(
    balancer: &Balancer,
    ep_idx: usize,
    addr: UpstreamAddr,
    mark: Option<u32>,
) -> Result<PooledConn, ConnectError> {
    if let Some(c) = balancer.pools.take(ep_idx) {
        return Ok(c);
    }
    match connect_stream(balancer, addr, mark).await {
        Ok(s) => {
            balancer.connect_succeeded(ep_idx);
            balancer.pools.note_connected();
            Ok(PooledConn::fresh(s, ep_idx))
        }
        Err(e) => {
            balancer.connect_failed(ep_idx);
            Err(e)
        }
    }
}

/// Returns a connection after a clean exchange.
pub fn checkin(balancer: &Balancer, conn: PooledConn, clean: CleanEnd) {
    balancer.pools.put(conn, clean);
}
