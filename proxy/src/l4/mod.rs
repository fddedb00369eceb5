//! The L4 proxy: one accepted TCP connection → one upstream connection, bytes moved both ways by
//! [`copy`] or [`splice`] until both sides have closed.
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
pub mod splice;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::future::{select, try_join, Either};
use monoio::io::Splitable;
use monoio::net::TcpStream;

use crate::cluster::InFlight;
use crate::config::{ClusterKind, L4Mode, Listener};
use crate::shard::ShardCtx;
use crate::sys;
use crate::upstream;

/// Last time a byte moved on a connection, for the idle timeout.
#[derive(Debug)]
pub struct Activity(Cell<Instant>);

impl Activity {
    pub fn new() -> Activity {
        Activity(Cell::new(Instant::now()))
    }
    #[inline]
    pub fn touch(&self) {
        self.0.set(Instant::now());
    }
    /// Resolves once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let due = self.0.get() + idle;
            let now = Instant::now();
            if now >= due {
                return;
            }
            monoio::time::sleep(due - now).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// How a proxied connection ended, for the log line.
#[derive(Debug)]
enum End {
    Closed { up: u64, down: u64 },
    IdleTimeout,
    Reset(io::Error),
}

/// Runs `transfer` against the idle timer.
async fn with_idle<F>(transfer: F, activity: &Activity, idle: Option<Duration>) -> End
where
    F: Future<Output = io::Result<(u64, u64)>>,
{
    let transfer = pin!(transfer);
    let Some(idle) = idle else {
        return match transfer.await {
            Ok((up, down)) => End::Closed { up, down },
            Err(e) => End::Reset(e),
        };
    };
    let timer = pin!(activity.idle_for(idle));
    match select(transfer, timer).await {
        Either::Left((Ok((up, down)), _)) => End::Closed { up, down },
        Either::Left((Err(e), _)) => End::Reset(e),
        Either::Right(_) => End::IdleTimeout,
    }
}

/// Where this connection should go: the listener's cluster, or its original destination.
/// The [`InFlight`] guard counts the connection against its endpoint for least-request.
///
/// The original destination is the accepted socket's local address when it was delivered by
/// TPROXY (a `transparent` listener whose local address is not one of our listeners), else
/// `SO_ORIGINAL_DST` (REDIRECT). So one listener with both flags works under either mode.
fn destination(
    client: &TcpStream,
    peer: SocketAddr,
    listener: &Listener,
    ctx: &ShardCtx,
) -> io::Result<(SocketAddr, String, Option<InFlight>)> {
    let balancer = &ctx.balancers[listener.cluster];
    if let Some((ep, guard)) = balancer.pick() {
        return Ok((ep.addr, ep.written.clone(), Some(guard)));
    }
    if ctx.upstream_locals.borrow().contains(&peer) {
        return Err(io::Error::other(format!(
            "connection from {peer}, this proxy's own upstream socket: the interception rules do not exclude the proxy (upstream_mark = --mark, or --proxy-uid); refusing to loop"
        )));
    }
    let local = client.local_addr()?;
    let dst = if listener.transparent && !ctx.is_own_listener(local) {
        local
    } else if listener.original_dst {
        sys::original_dst(client.as_raw_fd(), local.is_ipv6())?
    } else {
        local
    };
    if ctx.is_own_listener(dst) {
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
    if target != dst && ctx.is_own_listener(target) {
        return Err(io::Error::other(format!(
            "delivery address {target} is this proxy's own listener; refusing to loop"
        )));
    }
    tracing::debug!(listener = %listener.name, original_dst = %dst, upstream = %target, "captured connection");
    Ok((target, dst.to_string(), None))
}

/// Proxies one accepted connection to completion.
pub async fn serve(client: TcpStream, peer: SocketAddr, listener: &Listener, ctx: &ShardCtx) {
    let cluster = ctx.balancers[listener.cluster].cluster();
    let (dst, shown, _in_flight) = match destination(&client, peer, listener, ctx) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(listener = %listener.name, %peer, cluster = %cluster.name, error = %e, "no destination; closing client");
            return;
        }
    };
    let upstream = match monoio::time::timeout(
        cluster.connect_timeout,
        upstream::connect(dst, ctx.config.upstream_mark),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(listener = %listener.name, %peer, cluster = %cluster.name, endpoint = %shown, error = %e, "upstream connect failed; closing client");
            return;
        }
        Err(_) => {
            tracing::warn!(listener = %listener.name, %peer, cluster = %cluster.name, endpoint = %shown, timeout = ?cluster.connect_timeout, "upstream connect timed out; closing client");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _own = matches!(cluster.kind, ClusterKind::OriginalDst { .. })
        .then(|| OwnUpstream::register(ctx, &upstream));
    let end = match listener.l4_mode {
        L4Mode::Copy => run_copy(client, upstream, listener.idle_timeout).await,
        L4Mode::Splice => run_splice(client, upstream, listener.idle_timeout, ctx).await,
    };
    match end {
        End::Closed { up, down } => {
            tracing::debug!(listener = %listener.name, %peer, endpoint = %shown, up, down, "connection closed")
        }
        End::IdleTimeout => {
            tracing::info!(listener = %listener.name, %peer, endpoint = %shown, "idle timeout; connection closed")
        }
        End::Reset(e) => {
            tracing::debug!(listener = %listener.name, %peer, endpoint = %shown, error = %e, "connection reset; reset propagated")
        }
    }
}

/// Registers an original-dst upstream socket's local address with the shard for the lifetime
/// of the connection, so a connection the kernel loops back to us from it is recognised.
struct OwnUpstream<'a> {
    ctx: &'a ShardCtx,
    local: Option<SocketAddr>,
}

impl<'a> OwnUpstream<'a> {
    fn register(ctx: &'a ShardCtx, upstream: &TcpStream) -> OwnUpstream<'a> {
        let local = upstream.local_addr().ok();
        if let Some(a) = local {
            ctx.upstream_locals.borrow_mut().insert(a);
        }
        OwnUpstream { ctx, local }
    }
}

impl Drop for OwnUpstream<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.local {
            self.ctx.upstream_locals.borrow_mut().remove(&a);
        }
    }
}

/// Makes the final close of both sockets send RST, so a reset on one side reaches the other.
fn reset_both(a: &TcpStream, b: &TcpStream) {
    let _ = sys::set_linger_zero(a.as_raw_fd());
    let _ = sys::set_linger_zero(b.as_raw_fd());
}

async fn run_copy(client: TcpStream, upstream: TcpStream, idle: Option<Duration>) -> End {
    let activity = Activity::new();
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let end = with_idle(
        try_join(
            copy::one_way(&mut cr, &mut uw, &activity),
            copy::one_way(&mut ur, &mut cw, &activity),
        ),
        &activity,
        idle,
    )
    .await;
    // Reunite so that dropping does not half-close (OwnedWriteHalf's drop sends FIN), which
    // would let the peer see a clean EOF before the reset.
    let (Ok(client), Ok(upstream)) = (cr.reunite(cw), ur.reunite(uw)) else {
        unreachable!("halves come from the same stream");
    };
    if matches!(end, End::Reset(_)) {
        reset_both(&client, &upstream);
    }
    end
}

async fn run_splice(
    client: TcpStream,
    upstream: TcpStream,
    idle: Option<Duration>,
    ctx: &ShardCtx,
) -> End {
    if let Err(e) = sys::set_nonblocking(client.as_raw_fd())
        .and_then(|_| sys::set_nonblocking(upstream.as_raw_fd()))
    {
        return End::Reset(e);
    }
    let (p1, p2) = match (ctx.pipes.take(), ctx.pipes.take()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot create pipe for splice");
            return End::Reset(e);
        }
    };
    let activity = Activity::new();
    let end = with_idle(
        try_join(
            splice::one_way(&client, &upstream, &p1, &activity),
            splice::one_way(&upstream, &client, &p2, &activity),
        ),
        &activity,
        idle,
    )
    .await;
    match end {
        End::Closed { .. } => {
            ctx.pipes.give_back(p1);
            ctx.pipes.give_back(p2);
        }
        End::Reset(_) => reset_both(&client, &upstream),
        End::IdleTimeout => {}
    }
    end
}
