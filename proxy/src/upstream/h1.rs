//! HTTP/1 upstream connections: exclusive, one request at a time. [`checkout`] takes a live
//! idle connection from the cluster's per-shard pool or makes a new one through
//! [`super::connect`]; [`checkin`] returns it, which needs a [`CleanEnd`] proof.
//!
//! A request without a connection is pending (`cluster::conn_gate`): over the cluster's
//! `max_pending_requests` share it is refused ([`Failure::Overflow`], 503 `UO`); at the
//! `max_connections` share it closes an idle connection to another endpoint or waits for one
//! to be released or returned.

use crate::cluster::{Balancer, CleanEnd, PooledConn};
use crate::ctx::UpstreamAddr;
use crate::http::Failure;

use super::connect_stream;

/// A pooled connection to endpoint `ep_idx` of `balancer`'s cluster, or a new one. A failed
/// connect (503 `UF`) counts against the endpoint's passive health; a successful one clears it.
pub async fn checkout(
    balancer: &Balancer,
    ep_idx: usize,
    addr: UpstreamAddr,
    mark: Option<u32>,
    resendable: bool,
) -> Result<PooledConn, Failure> {
    if let Some(c) = balancer.pools.take(ep_idx, resendable) {
        return Ok(c);
    }
    let gate = &balancer.breaker.conns;
    let _pending = gate.pending().ok_or(Failure::Overflow)?;
    let mut waited = false;
    let slot = loop {
        if let Some(s) = gate.try_open() {
            break s;
        }
        if !waited {
            waited = true;
            gate.note_cx_overflow();
        }
        // At max_connections: an idle connection elsewhere gives its slot up, else wait.
        if balancer.pools.close_one_idle() {
            continue;
        }
        gate.wait().await;
        if let Some(c) = balancer.pools.take(ep_idx, resendable) {
            return Ok(c);
        }
    };
    // Boxed: a new connection is the rare path, and its future inline would make every
    // checkout's state machine (and the request future around it) larger.
    match Box::pin(connect_stream(balancer, addr, mark)).await {
        Ok(s) => {
            balancer.connect_succeeded(ep_idx);
            balancer.pools.note_connected();
            Ok(PooledConn::fresh(s, ep_idx, slot))
        }
        Err(_) => {
            balancer.connect_failed(ep_idx);
            Err(Failure::Connect)
        }
    }
}

/// Returns a connection after a clean exchange (requests waiting for one are woken).
pub fn checkin(balancer: &Balancer, conn: PooledConn, clean: CleanEnd) {
    balancer.pools.put(conn, clean);
    balancer.breaker.conns.notify();
}
