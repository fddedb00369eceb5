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
use crate::config::Config;
use crate::l4;
use crate::l4::pipe_pool::PipePool;

/// Everything a shard's connections share. `!Send` by design.
#[derive(Debug)]
pub struct ShardCtx {
    pub id: usize,
    pub config: Arc<Config>,
    /// One balancer per cluster, indexed like `config.clusters`.
    pub balancers: Vec<Balancer>,
    pub pipes: PipePool,
    /// Connections open on this shard.
    pub active: Cell<usize>,
    /// Addresses our listeners are bound to (to refuse original-dst loops).
    pub own_addrs: Vec<SocketAddr>,
    /// Local addresses of this shard's open original-dst upstream connections: a connection
    /// accepted *from* one of them is the proxy capturing itself (rules without our mark/uid).
    pub upstream_locals: RefCell<HashSet<SocketAddr>>,
}

impl ShardCtx {
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
    mut shutdown: watch::Receiver<bool>,
) {
    let own_addrs = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
    let balancers = config
        .clusters
        .iter()
        .map(|c| Balancer::new(c.clone(), 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1)))
        .collect();
    let ctx = Rc::new(ShardCtx {
        id,
        config: config.clone(),
        balancers,
        pipes: PipePool::default(),
        active: Cell::new(0),
        own_addrs,
        upstream_locals: RefCell::new(HashSet::new()),
    });
    for (idx, std_listener) in sockets.into_iter().enumerate() {
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(shard = id, listener = %config.listeners[idx].name, error = %e, "cannot register listener");
                continue;
            }
        };
        monoio::spawn(accept_loop(listener, idx, ctx.clone(), shutdown.clone()));
    }
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            break; // the control thread is gone: treat as shutdown
        }
    }
    drain(&ctx, config.drain_timeout).await;
}

async fn accept_loop(
    listener: TcpListener,
    idx: usize,
    ctx: Rc<ShardCtx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = ctx.config.listeners[idx].name.clone();
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    ctx.active.set(ctx.active.get() + 1);
                    let guard = ConnGuard(ctx.clone());
                    monoio::spawn(async move {
                        let ctx = &guard.0;
                        let lcfg = &ctx.config.listeners[idx];
                        l4::serve(stream, peer, lcfg, ctx).await;
                        drop(guard);
                    });
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
