//! The L4 proxy: one accepted TCP connection → one upstream connection, bytes moved both ways by
//! [`copy`] or [`splice`] until both sides have closed.
//!
//! Memory: 5,000 idle proxied copy connections cost 2.21 KiB of RSS each (shardbench `mem-ab`,
//! median of 3, 2026-12-06; 2.71 before [`relay`] freed the transfer while idle, 4.45 before the
//! connection task was split per protocol and the allocator changed). The largest parts now:
//! the serve future (~0.5 KB), the idle transfer future (both sockets inline), two sockets, the
//! watch (perf-reports/2026-12-06-idle-memory/). `copy_buffers_in_use` in the shard stats
//! counts copy slots held; parked connections hold none.
//!
//! Semantics: a FIN in one direction is forwarded as a FIN (half-close) and the other direction
//! keeps flowing; a reset or write error on either side resets both (`SO_LINGER 0`); the
//! connection is closed after `idle_timeout` with no bytes either way; an upstream that refuses
//! or does not answer within `connect_timeout` closes the client promptly and logs the cluster
//! and endpoint.
//!
//! Loops: a connection whose original destination is one of our listeners, or that comes from
//! one of this shard's own original-dst upstream sockets (the capture rules do not exclude the
//! proxy), is refused with a log line. The second check is per shard, so with N shards a
//! self-capture chain ends after N hops on average; excluding the proxy's mark/uid is the fix.

pub mod copy;
pub mod pipe_pool;
pub mod relay;
pub mod splice;

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::Instant;

use futures_util::future::{select, try_join, Either};
use monoio::io::{AsyncWriteRent, CancelableAsyncReadRent, Split, Splitable};
use monoio::net::TcpStream;

use crate::cluster::{Balancer, InFlight};
use crate::config::{ClusterKind, L4Mode};
use crate::ctx::{ConnCtx, ConnWatch, Services, UpstreamAddr};
use crate::sys::{self, BufArena};
use crate::telemetry::{Protocol, Record};
use crate::upstream::{self, ConnectError, ConnectOpts};
use pipe_pool::PipePool;

/// The L4 layer's per-shard state.
#[derive(Debug)]
pub struct L4State {
    /// Copy-mode buffers.
    pub bufs: Rc<BufArena>,
    pub pipes: PipePool,
    /// Local addresses of this shard's open original-dst upstream connections: a connection
    /// accepted *from* one of them is the proxy capturing itself (rules without our mark/uid).
    pub upstream_locals: RefCell<HashSet<SocketAddr>>,
}

impl L4State {
    pub fn new(max_connections: u32) -> io::Result<L4State> {
        Ok(L4State {
            bufs: copy::new_arena(max_connections)?,
            pipes: PipePool::default(),
            upstream_locals: RefCell::default(),
        })
    }
}

/// How a proxied connection ended, for the log line.
#[derive(Debug)]
enum End {
    Closed { up: u64, down: u64 },
    IdleTimeout,
    Reset(io::Error),
}

impl End {
    /// `%CONNECTION_TERMINATION_DETAILS%`: why the proxy ended the connection, if it did.
    fn termination(&self) -> Option<&'static str> {
        match self {
            End::Closed { .. } => None,
            End::IdleTimeout => Some("idle_timeout"),
            End::Reset(_) => Some("reset"),
        }
    }
}

/// Runs `transfer` until it finishes or the sweeper aborts the connection for idleness.
/// Takes the transfer pinned in the caller's frame: passing it by value would store the
/// (large) future twice in this one's state.
async fn until_idle<F>(transfer: Pin<&mut F>, watch: &ConnWatch) -> End
where
    F: Future<Output = io::Result<(u64, u64)>>,
{
    match select(transfer, watch.aborted()).await {
        Either::Left((Ok((up, down)), _)) => End::Closed { up, down },
        Either::Left((Err(e), _)) => End::Reset(e),
        Either::Right(_) => End::IdleTimeout,
    }
}

/// Where this connection should go: a healthy endpoint of the listener's cluster, or its
/// original destination. The [`InFlight`] guard counts the connection against its endpoint
/// for least-request; the index reports the connect's outcome to passive health.
fn destination(
    conn: &ConnCtx,
    balancer: &Balancer,
    svc: &Services,
    l4: &L4State,
) -> io::Result<(UpstreamAddr, Option<(usize, InFlight)>)> {
    if let ClusterKind::Static(_) = balancer.cluster().kind {
        let (idx, ep, guard) = balancer.pick_healthy().ok_or_else(|| {
            io::Error::other("no healthy endpoint (all ejected or failing health checks, healthy_panic_threshold 0)")
        })?;
        return Ok((UpstreamAddr(ep.addr), Some((idx, guard))));
    }
    if l4.upstream_locals.borrow().contains(&conn.peer.0) {
        return Err(io::Error::other(format!(
            "connection from {}, this proxy's own upstream socket: the interception rules do not exclude the proxy (upstream_mark = --mark, or --proxy-uid); refusing to loop",
            conn.peer
        )));
    }
    let dst = conn.orig_dst.map_or(conn.local.0, |d| d.0);
    if svc.own.is_own_listener(dst) {
        return Err(io::Error::other(format!(
            "original destination {dst} is this proxy's own listener; refusing to loop"
        )));
    }
    let target = match balancer.cluster().kind {
        ClusterKind::OriginalDst {
            override_ip: Some(ip),
        } => SocketAddr::new(ip, dst.port()),
        _ => dst,
    };
    if target != dst && svc.own.is_own_listener(target) {
        return Err(io::Error::other(format!(
            "delivery address {target} is this proxy's own listener; refusing to loop"
        )));
    }
    tracing::debug!(listener = %conn.listener().name, original_dst = %dst, upstream = %target, "captured connection");
    Ok((UpstreamAddr(target), None))
}

/// Proxies one accepted connection to completion. The context comes boxed and is freed once
/// the upstream is connected: an established L4 connection needs only its peer, listener and
/// snapshot, and its future is most of what an idle proxied connection costs.
/// `prefix`: bytes already read from the client (by protocol detection), sent upstream before
/// anything else; boxed so that it costs a pointer in every other connection's future.
pub async fn serve(
    conn: Box<ConnCtx>,
    client: TcpStream,
    prefix: Option<Box<Vec<u8>>>,
    svc: &Services,
    l4: &L4State,
) {
    let snapshot = conn.snapshot.clone();
    let listener = &snapshot.config.listeners[conn.listener];
    let balancer = snapshot.balancer(listener.tcp_cluster());
    if balancer.cluster().tls.is_some() {
        // TLS origination: the copy path over a TLS upstream (boxed: a pointer here); it
        // authorizes the connection itself.
        return Box::pin(serve_tls(conn, client, prefix, svc, l4)).await;
    }
    if !authorized(&conn, svc) {
        return; // dropping the client closes it
    }
    // What telemetry needs at the end, boxed: 8 bytes in the connection future.
    let tally = Box::new(Tally::of(&conn, listener.tcp_cluster()));
    svc.telemetry.tcp_open(
        &tally.record(None, None, (0, 0)),
        tally.principal.as_deref(),
        &snapshot,
    );
    // Both phases are boxed: the connect phase (with its 640-byte timer) is freed once the
    // upstream is up, and the task (336 bytes) and the transfer (≤1 KiB) each stay within
    // glibc's small-allocation classes. Measured: an idle copy connection costs 2.5 KB of RSS
    // this way and 3.1 KB with the transfer inlined into one 1,336-byte task (see `size_probe`).
    let sniffed = prefix.as_deref().map(|p| p.as_slice());
    let (mut upstream, dst, _in_flight) =
        match Box::pin(connect_upstream(&conn, balancer, svc, l4, sniffed)).await {
            Ok(up) => up,
            Err(no) => {
                let flag = match no {
                    NoUpstream::Blocked => {
                        let _ = sys::set_linger_zero(client.as_raw_fd());
                        crate::egress::FLAG
                    }
                    NoUpstream::Failed => "UF",
                    NoUpstream::Overflow => "UO",
                };
                let mut r = tally.record(None, Some(flag), (0, 0));
                if matches!(no, NoUpstream::Failed) {
                    r.upstream_failure = Some("connection_failure");
                }
                tally.done(svc, &mut r, &snapshot);
                return;
            }
        };
    let peer = conn.peer;
    drop(conn);
    if let Some(prefix) = prefix {
        // Boxed: its write future would otherwise sit in every L4 connection's future.
        if let Err(e) = Box::pin(send_prefix(&mut upstream, *prefix)).await {
            tracing::debug!(listener = %listener.name, %peer, endpoint = %dst, error = %e, "upstream closed before the sniffed bytes were sent");
            return;
        }
    }
    // Held for the connection's life: a connection looped back from this socket is refused.
    let _own = matches!(balancer.cluster().kind, ClusterKind::OriginalDst { .. })
        .then(|| OwnUpstream::register(l4, &upstream));
    let watch = svc.sweeper.register(listener.idle_timeout);
    let end = match listener.l4_mode {
        L4Mode::Copy => Box::pin(run_copy(client, upstream, &watch, l4)).await,
        L4Mode::Splice => Box::pin(run_splice(client, upstream, &watch, l4)).await,
    };
    let bytes = match end {
        End::Closed { up, down } => (up, down),
        _ => (0, 0),
    };
    let mut r = tally.record(Some(dst), None, bytes);
    r.termination = end.termination();
    tally.done(svc, &mut r, &snapshot);
    let name = &listener.name;
    match end {
        End::Closed { up, down } => {
            tracing::debug!(listener = %name, %peer, endpoint = %dst, up, down, "connection closed")
        }
        End::IdleTimeout => {
            tracing::info!(listener = %name, %peer, endpoint = %dst, "idle timeout; connection closed")
        }
        End::Reset(e) => {
            tracing::debug!(listener = %name, %peer, endpoint = %dst, error = %e, "connection reset; reset propagated")
        }
    }
}

/// The listener's authorization policies on this connection (plaintext at accept, TLS after
/// the handshake, so the peer's SPIFFE ID is known): `false` → close it.
fn authorized(conn: &ConnCtx, svc: &Services) -> bool {
    conn.listener()
        .authz
        .as_ref()
        .is_none_or(|a| a.admit_connection(conn, &svc.authz))
}

/// Proxies a connection that has TLS on either side: a TLS-terminated client (a `protocol:
/// tcp` listener with a `tls:` block) and/or a cluster with a `tls:` block (TLS origination,
/// the mesh's L4 hop), in copy mode: splice needs plain sockets on both ends. Like [`serve`],
/// the context is freed once the upstream is connected.
/// Runs connection-level authorization first.
pub async fn serve_tls<C>(
    conn: Box<ConnCtx>,
    client: C,
    prefix: Option<Box<Vec<u8>>>,
    svc: &Services,
    l4: &L4State,
) where
    C: Split + AsyncWriteRent + CancelableAsyncReadRent + AsRawFd,
{
    let snapshot = conn.snapshot.clone();
    let listener = &snapshot.config.listeners[conn.listener];
    let balancer = snapshot.balancer(listener.tcp_cluster());
    if !authorized(&conn, svc) {
        return;
    }
    let tally = Box::new(Tally::of(&conn, listener.tcp_cluster()));
    svc.telemetry.tcp_open(
        &tally.record(None, None, (0, 0)),
        tally.principal.as_deref(),
        &snapshot,
    );
    let sniffed = prefix.as_deref().map(|p| p.as_slice());
    let (upstream, dst, _in_flight) =
        match Box::pin(connect_upstream(&conn, balancer, svc, l4, sniffed)).await {
            Ok(up) => up,
            Err(no) => {
                let flag = match no {
                    NoUpstream::Blocked => {
                        let _ = sys::set_linger_zero(client.as_raw_fd());
                        crate::egress::FLAG
                    }
                    NoUpstream::Failed => "UF",
                    NoUpstream::Overflow => "UO",
                };
                let mut r = tally.record(None, Some(flag), (0, 0));
                if matches!(no, NoUpstream::Failed) {
                    r.upstream_failure = Some("connection_failure");
                }
                tally.done(svc, &mut r, &snapshot);
                return;
            }
        };
    let peer = conn.peer;
    let peer_id = conn.peer_identity().map(|p| p.to_string());
    drop(conn);
    let watch = svc.sweeper.register(listener.idle_timeout);
    let end = if balancer.cluster().tls.is_some() {
        let up = match upstream::tls_client(balancer, dst, upstream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(listener = %listener.name, %peer, endpoint = %dst, error = %e, "upstream tls failed; closing client");
                let mut r = tally.record(Some(dst), Some("UF"), (0, 0));
                r.upstream_failure = Some("tls_handshake_failure");
                tally.done(svc, &mut r, &snapshot);
                return;
            }
        };
        Box::pin(run_copy_any(client, up, prefix.map(|p| *p), &watch, l4)).await
    } else {
        Box::pin(run_copy_any(
            client,
            upstream,
            prefix.map(|p| *p),
            &watch,
            l4,
        ))
        .await
    };
    let bytes = match end {
        End::Closed { up, down } => (up, down),
        _ => (0, 0),
    };
    let mut r = tally.record(Some(dst), None, bytes);
    r.termination = end.termination();
    tally.done(svc, &mut r, &snapshot);
    let peer_id = peer_id.as_deref().unwrap_or("-");
    tracing::debug!(listener = %listener.name, %peer, peer_id, endpoint = %dst, end = ?end, "tls tunnel closed");
}

async fn run_copy_any<C, U>(
    client: C,
    mut upstream: U,
    prefix: Option<Vec<u8>>,
    watch: &ConnWatch,
    l4: &L4State,
) -> End
where
    C: Split + AsyncWriteRent + CancelableAsyncReadRent + AsRawFd,
    U: Split + AsyncWriteRent + CancelableAsyncReadRent + AsRawFd,
{
    if let Some(p) = prefix {
        use monoio::io::AsyncWriteRentExt;
        if let Err(e) = upstream.write_all(p).await.0 {
            return End::Reset(e);
        }
    }
    let (cfd, ufd) = (client.as_raw_fd(), upstream.as_raw_fd());
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let end = until_idle(
        pin!(try_join(
            copy::one_way(&mut cr, &mut uw, watch, &l4.bufs),
            copy::one_way(&mut ur, &mut cw, watch, &l4.bufs),
        )),
        watch,
    )
    .await;
    if matches!(end, End::Reset(_)) {
        // Before the halves drop (and close the sockets): both peers see a reset.
        let _ = sys::set_linger_zero(cfd);
        let _ = sys::set_linger_zero(ufd);
    }
    end
}

/// What a TCP connection's telemetry record is built from at its end.
struct Tally {
    started: Instant,
    listener: usize,
    cluster: usize,
    /// The peer's identity (only under mTLS).
    principal: Option<Box<str>>,
    peer: SocketAddr,
}

impl Tally {
    fn of(conn: &ConnCtx, cluster: usize) -> Tally {
        Tally {
            started: Instant::now(),
            listener: conn.listener,
            cluster,
            principal: crate::telemetry::metrics::peer_principal(conn).map(Box::from),
            peer: conn.peer.0,
        }
    }

    /// Hands the finished connection's record to telemetry.
    fn done(&self, svc: &Services, r: &mut Record, snapshot: &crate::ctx::Snapshot) {
        svc.telemetry
            .tcp_done(r, Some(self.peer), self.principal.as_deref(), snapshot);
    }

    /// The record; `bytes`: (from the client, to the client).
    fn record(&self, dst: Option<UpstreamAddr>, flag: Option<&str>, bytes: (u64, u64)) -> Record {
        let mut r = Record::new(self.listener, Protocol::Tcp);
        r.start = self.started;
        r.cluster = Some(self.cluster as u16);
        r.upstream_host = dst.map(|d| d.0);
        if let Some(f) = flag {
            r.flags.add(f);
        }
        (r.bytes_received, r.bytes_sent) = bytes;
        r
    }
}

async fn send_prefix(upstream: &mut TcpStream, prefix: Vec<u8>) -> io::Result<()> {
    use monoio::io::AsyncWriteRentExt;
    upstream.write_all(prefix).await.0.map(drop)
}

/// Runs an upgraded HTTP connection (WebSocket, CONNECT) as a byte tunnel until both sides
/// close, under the same watch (idle timeout) the HTTP exchange used.
pub async fn tunnel(client: TcpStream, upstream: TcpStream, watch: &ConnWatch, l4: &L4State) {
    let peer = client.peer_addr().ok();
    let end = Box::pin(run_copy(client, upstream, watch, l4)).await;
    tracing::debug!(?peer, end = ?end, "tunnel closed");
}

/// Why [`connect_upstream`] gave no upstream.
enum NoUpstream {
    /// The listener's egress policy refused the destination: reset the client.
    Blocked,
    /// No destination, or the connect failed: close the client.
    Failed,
    /// The cluster's `max_connections` breaker is full: close the client (flag `UO`).
    Overflow,
}

/// Picks the destination, applies the listener's egress policy (`sniffed`: the bytes
/// protocol detection read, for a ClientHello's SNI), and connects within the cluster's
/// connect timeout. Failures are logged with the cluster and endpoint.
async fn connect_upstream(
    conn: &ConnCtx,
    balancer: &Balancer,
    svc: &Services,
    l4: &L4State,
    sniffed: Option<&[u8]>,
) -> Result<(TcpStream, UpstreamAddr, L4Hold), NoUpstream> {
    let cluster = balancer.cluster();
    let (listener, peer) = (&conn.listener().name, conn.peer);
    // The cluster's max_connections share (`cluster::conn_gate`): over it, refused at once.
    let Some(cx) = balancer.breaker.conns.try_open() else {
        balancer.breaker.conns.note_cx_overflow();
        crate::warn_limited!("l4_cx_overflow", listener = %listener, %peer, cluster = %cluster.name, "circuit breaker max_connections reached (UO); closing client");
        return Err(NoUpstream::Overflow);
    };
    let (dst, pick) = match destination(conn, balancer, svc, l4) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(listener = %listener, %peer, cluster = %cluster.name, error = %e, "no destination; closing client");
            return Err(NoUpstream::Failed);
        }
    };
    if let Some(policy) = conn.listener().egress.as_deref() {
        use crate::egress::sni::{parse, Hello};
        let hello = sniffed.filter(|_| policy.wants_sni()).map(parse);
        let sni = match &hello {
            Some(Hello::Done(Some(name))) => Some(name.as_slice()),
            _ => None,
        };
        if let Err(b) = policy.check_tcp(conn, dst, sni) {
            svc.telemetry
                .egress_blocked(conn.listener, crate::egress::Path::Tcp, b);
            return Err(NoUpstream::Blocked);
        }
    }
    let opts = ConnectOpts {
        timeout: cluster.connect_timeout,
        mark: conn.snapshot.config.upstream_mark,
    };
    let result = upstream::connect(dst, opts).await;
    let (ep_idx, in_flight) = pick.map_or((None, None), |(i, g)| (Some(i), Some(g)));
    match result {
        Ok(upstream) => {
            if let Some(i) = ep_idx {
                balancer.l4_connected(i);
            }
            Ok((
                upstream,
                dst,
                L4Hold {
                    _in_flight: in_flight,
                    _cx: cx,
                },
            ))
        }
        Err(e) => {
            if let Some(i) = ep_idx {
                balancer.connect_failed(i);
            }
            match e {
                ConnectError::Io(e) => {
                    tracing::warn!(listener = %listener, %peer, cluster = %cluster.name, endpoint = %dst, error = %e, "upstream connect failed; closing client")
                }
                ConnectError::Timeout(t) => {
                    tracing::warn!(listener = %listener, %peer, cluster = %cluster.name, endpoint = %dst, timeout = ?t, "upstream connect timed out; closing client")
                }
                ConnectError::Tls(e) => {
                    tracing::warn!(listener = %listener, %peer, cluster = %cluster.name, endpoint = %dst, error = %e, "upstream tls handshake failed; closing client")
                }
            }
            Err(NoUpstream::Failed)
        }
    }
}

/// What a proxied connection holds while it lasts: its endpoint's in-flight mark (static
/// clusters) and its `max_connections` slot.
pub struct L4Hold {
    _in_flight: Option<InFlight>,
    _cx: crate::cluster::ConnSlot,
}

/// Registers an original-dst upstream socket's local address with the shard for the lifetime
/// of the connection, so a connection the kernel loops back to us from it is recognised.
struct OwnUpstream<'a> {
    l4: &'a L4State,
    local: Option<SocketAddr>,
}

impl<'a> OwnUpstream<'a> {
    fn register(l4: &'a L4State, upstream: &TcpStream) -> OwnUpstream<'a> {
        let local = upstream.local_addr().ok();
        if let Some(a) = local {
            l4.upstream_locals.borrow_mut().insert(a);
        }
        OwnUpstream { l4, local }
    }
}

impl Drop for OwnUpstream<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.local {
            self.l4.upstream_locals.borrow_mut().remove(&a);
        }
    }
}

/// Makes the final close of both sockets send RST, so a reset on one side reaches the other.
fn reset_both(a: &TcpStream, b: &TcpStream) {
    let _ = sys::set_linger_zero(a.as_raw_fd());
    let _ = sys::set_linger_zero(b.as_raw_fd());
}

async fn run_copy(client: TcpStream, upstream: TcpStream, watch: &ConnWatch, l4: &L4State) -> End {
    let mut pair = Some(relay::Pair::Whole(client, upstream));
    let end = until_idle(pin!(relay::run(&mut pair, watch, &l4.bufs)), watch).await;
    // Reunite so that dropping does not half-close (OwnedWriteHalf's drop sends FIN), which
    // would let the peer see a clean EOF before the reset.
    let Some(pair) = pair else {
        unreachable!("the relay puts the pair back before every await");
    };
    let (client, upstream) = pair.into_streams();
    if matches!(end, End::Reset(_)) {
        reset_both(&client, &upstream);
    }
    end
}

async fn run_splice(
    client: TcpStream,
    upstream: TcpStream,
    watch: &ConnWatch,
    l4: &L4State,
) -> End {
    if let Err(e) = sys::set_nonblocking(client.as_raw_fd())
        .and_then(|_| sys::set_nonblocking(upstream.as_raw_fd()))
    {
        return End::Reset(e);
    }
    let (p1, p2) = match (l4.pipes.take(), l4.pipes.take()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot create pipe for splice");
            return End::Reset(e);
        }
    };
    let end = until_idle(
        pin!(try_join(
            splice::one_way(&client, &upstream, &p1, watch),
            splice::one_way(&upstream, &client, &p2, watch),
        )),
        watch,
    )
    .await;
    match end {
        End::Closed { .. } => {
            l4.pipes.give_back(p1);
            l4.pipes.give_back(p2);
        }
        End::Reset(_) => reset_both(&client, &upstream),
        End::IdleTimeout => {}
    }
    end
}

#[cfg(test)]
mod size_probe {
    /// The connection future is most of an idle connection's memory; keep it small. The
    /// transfer part is what an idle connection holds (debug build, 2026-12-06): 472 bytes
    /// with the idle phase of `relay`, ~1 KiB before, when the two directions stayed alive.
    #[test]
    fn transfer_futures_stay_small() {
        fn sz<F>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let mut rt = wire::build_runtime(None).unwrap().0;
        rt.block_on(async {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            let c = monoio::net::TcpStream::connect_addr(a).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            let sweeper = crate::ctx::Sweeper::new(None);
            let w = sweeper.register(None);
            let pool = super::copy::new_arena(4).unwrap();
            let mut pair = Some(super::relay::Pair::Whole(c, s));
            let f = async {
                super::until_idle(std::pin::pin!(super::relay::run(&mut pair, &w, &pool)), &w).await
            };
            let n = sz(&f);
            drop(f);
            eprintln!("copy transfer future (held while idle): {n} bytes");
            assert!(n <= 512, "copy transfer future grew to {n} bytes");
            let Some(pair) = pair else { unreachable!() };
            let (client, _s) = pair.into_streams();
            let shard = crate::shard::test_shard();
            let conn = shard.conn_ctx(1, a);
            let serve = super::serve(Box::new(conn), client, None, &shard.svc, &shard.l4);
            let n = sz(&serve);
            eprintln!("whole connection future: {n} bytes");
            assert!(n <= 512, "connection future grew to {n} bytes");
        });
    }
}
