//! Cluster `protocol: auto` (TLS clusters): ALPN offers `h2` and `http/1.1` and the upstream
//! chooses. Each shard learns the choice once per cluster, on its first request: one probe
//! connection is made through [`connect_stream`], its ALPN read, and it is closed: the pools
//! make their own (an HTTP/1 pool could not take it anyway: the server's TLS 1.3 session
//! tickets, unread, would make the pool's liveness peek see stray bytes). That costs one extra
//! TLS handshake per shard per cluster. Later requests go straight to the learned pool; a reload starts a new balancer and
//! learns again. A failed probe learns nothing and the request takes the HTTP/1 path, which
//! reports the failure as usual.

use super::connect_stream;
use crate::cluster::Balancer;
use crate::config::UpstreamProtocol;
use crate::ctx::UpstreamAddr;

/// The protocol to speak to `balancer`'s cluster, probing once per shard for `auto`.
pub async fn auto_protocol(balancer: &Balancer, mark: Option<u32>) -> UpstreamProtocol {
    if let Some(p) = balancer.learned.get() {
        return p;
    }
    let Some((idx, ep, _in_flight)) = balancer.pick_healthy() else {
        return UpstreamProtocol::Http1;
    };
    let addr = UpstreamAddr(ep.addr);
    let Ok(stream) = connect_stream(balancer, addr, mark).await else {
        return UpstreamProtocol::Http1;
    };
    let p = if stream.alpn_h2() {
        UpstreamProtocol::Http2
    } else {
        UpstreamProtocol::Http1
    };
    balancer.learned.set(Some(p));
    tracing::info!(cluster = %balancer.cluster().name, endpoint = %addr, protocol = ?p, "ALPN chose the upstream protocol");
    balancer.connect_succeeded(idx);
    drop(stream);
    p
}
