//! One shard: a monoio runtime on one pinned thread that owns its listening sockets, its
//! load-balancer state, its pipe pool and every connection it accepts. Nothing here is shared
//! with other shards; the only cross-thread input is the shutdown signal (a `watch` channel).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::Balancer;
use crate::config::{Config, Protocol};
use crate::http1::conn::Scratch;
use crate::l4;
use crate::l4::pipe_pool::PipePool;
use crate::l4::watch::Sweeper;
use crate::route::RouteTable;
use crate::sys::BufArena;

/// Everything a shard's connections share. `!Send` by design.
#[derive(Debug)]
pub struct ShardCtx {
    pub id: usize,
    pub config: Arc<Config>,
    /// One balancer per cluster, indexed like `config.clusters`.
    pub balancers: Vec<Balancer>,
    pub pipes: PipePool,
    /// Copy-mode buffers.
    pub bufs: Rc<BufArena>,
    /// Idle timeouts and buffer parking for every connection of this shard.
    pub sweeper: Rc<Sweeper>,
    /// Spare buffers for HTTP upstream exchanges.
    pub scratch: Scratch,
    rng: Cell<u64>,
    /// Connections open on this shard.
    pub active: Cell<usize>,
    /// Per-listener route tables cloned for this shard (each regex gets its own match cache,
    /// so shards never contend inside the regex crate). `None` for tcp listeners.
    pub routes: Vec<Option<RouteTable>>,
    /// Set once shutdown began: HTTP connections close after their current request.
    pub draining: Cell<bool>,
    /// Addresses our listeners are bound to (to refuse original-dst loops).
    pub own_addrs: Vec<SocketAddr>,
    /// Local addresses of this shard's open original-dst upstream connections: a connection
    /// accepted *from* one of them is the proxy capturing itself (rules without our mark/uid).
    pub upstream_locals: RefCell<HashSet<SocketAddr>>,
}

fn seed_from_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

impl ShardCtx {
    /// xorshift64*: per-shard randomness for weighted routes, jitter and request ids.
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn is_own_listener(&self, addr: SocketAddr) -> bool {
        self.own_addrs
            .iter()
            .any(|a| a.port() == addr.port() && (a.ip().is_unspecified() || a.ip() == addr.ip()))
    }
}

/// Decrements the shard's open-connection count when a connection task ends.
struct ConnGuard(Rc<ShardCtx>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
    }
}

/// Runs a shard until shutdown, then drains: waits for open connections up to the configured
/// `drain_timeout` and returns (closing whatever is left).
pub async fn run(
    id: usize,
    config: Arc<Config>,
    sockets: Vec<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
) {
    let own_addrs = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
    let balancers = config
        .clusters
        .iter()
        .map(|c| Balancer::new(c.clone(), 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1)))
        .collect();
    let bufs = match l4::copy::new_arena(max_connections()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(shard = id, error = %e, "cannot map copy buffers; shard not started");
            return;
        }
    };
    let ctx = Rc::new(ShardCtx {
        id,
        config: config.clone(),
        balancers,
        pipes: PipePool::default(),
        bufs,
        sweeper: Rc::new(Sweeper::new(
            config.listeners.iter().filter_map(|l| l.idle_timeout).min(),
        )),
        scratch: Scratch::default(),
        rng: Cell::new(0x2545_F491_4F6C_DD1D ^ ((id as u64 + 1) << 17) ^ seed_from_time()),
        active: Cell::new(0),
        draining: Cell::new(false),
        routes: config
            .listeners
            .iter()
            .map(|l| l.http.as_ref().map(|h| h.routes.clone()))
            .collect(),
        own_addrs,
        upstream_locals: RefCell::new(HashSet::new()),
    });
    monoio::spawn(ctx.sweeper.clone().run());
    // The accept loops run inside this future (not spawned), so every listening socket is closed
    // before draining starts: a spawned loop could outlive the shard's main future and keep its
    // REUSEPORT socket open, still completing handshakes nobody would serve.
    let mut loops = Vec::with_capacity(sockets.len());
    for (idx, std_listener) in sockets.into_iter().enumerate() {
        match TcpListener::from_std(std_listener) {
            Ok(l) => loops.push(accept_loop(l, idx, ctx.clone(), shutdown.clone())),
            Err(e) => {
                tracing::error!(shard = id, listener = %config.listeners[idx].name, error = %e, "cannot register listener");
            }
        }
    }
    futures_util::future::join_all(loops).await;
    wait_for_shutdown(shutdown).await; // immediate unless no listener could be registered
    drain(&ctx, config.drain_timeout).await;
}

/// Upper bound on connections this process can hold: half the fd limit (two fds each).
fn max_connections() -> u32 {
    (crate::sys::fd_limit().unwrap_or(65_536) / 2).clamp(1024, 1 << 20) as u32
}

async fn wait_for_shutdown(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return; // the control thread is gone: treat as shutdown
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    idx: usize,
    ctx: Rc<ShardCtx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = ctx.config.listeners[idx].name.clone();
    while !*shutdown.borrow() {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    ctx.active.set(ctx.active.get() + 1);
                    let guard = ConnGuard(ctx.clone());
                    let task = async move {
                        let ctx = &guard.0;
                        let lcfg = &ctx.config.listeners[idx];
                        match lcfg.protocol {
                            Protocol::Tcp => l4::serve(stream, peer, lcfg, ctx).await,
                            Protocol::Http => crate::http1::serve(stream, peer, idx, ctx).await,
                        }
                        drop(guard);
                    };
                    monoio::spawn(task);
                }
                Err(e) => {
                    // EMFILE and friends: log and back off briefly instead of spinning.
                    tracing::warn!(shard = ctx.id, listener = %name, error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    tracing::debug!(shard = ctx.id, listener = %name, "stopped accepting");
}

async fn drain(ctx: &ShardCtx, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    ctx.draining.set(true);
    ctx.sweeper.abort_between_requests();
    if ctx.active.get() > 0 {
        tracing::info!(
            shard = ctx.id,
            open = ctx.active.get(),
            ?timeout,
            "draining connections"
        );
    }
    while ctx.active.get() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(
                shard = ctx.id,
                open = ctx.active.get(),
                "drain timeout; closing remaining connections"
            );
            return;
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A shard context with no listeners or clusters, for unit tests of connection code.
#[cfg(test)]
pub fn test_ctx() -> ShardCtx {
    ShardCtx {
        id: 0,
        config: Arc::new(Config::embedded_default()),
        balancers: Vec::new(),
        pipes: PipePool::default(),
        bufs: l4::copy::new_arena(16).unwrap(),
        sweeper: Rc::new(Sweeper::new(None)),
        scratch: Scratch::default(),
        rng: Cell::new(1),
        active: Cell::new(0),
        draining: Cell::new(false),
        routes: Vec::new(),
        own_addrs: Vec::new(),
        upstream_locals: RefCell::new(HashSet::new()),
    }
}
