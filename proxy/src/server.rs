//! The control side: binds every listener for every shard, starts the shard threads and waits
//! until each reports that it started (a shard that cannot start makes [`Server::start`] fail
//! with its reason), then talks to them only through their command channels: [`Server::swap`]
//! installs a new config, [`Server::stats`] collects counters, [`Server::shutdown`] drains.
//! Tests use [`Server`] in-process; `main` wraps it with signal handling.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::listener;
use crate::shard::{self, CommandSender, ShardCommand, ShardStats};

/// How long a shard may take to report that it started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy.
#[derive(Debug)]
pub struct Server {
    addrs: Vec<(String, SocketAddr)>,
    config: Arc<Config>,
    shards: Vec<CommandSender>,
    threads: Vec<JoinHandle<()>>,
    /// The active health checker (its own thread), while any cluster is health-checked.
    health: Option<crate::health::Checker>,
    /// The certificate watchers of the current config's `tls:` blocks.
    tls: crate::tls::runtime::TlsRuntime,
}

/// Why a new config was not installed (the running one stays in force).
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("listeners cannot change without a restart: {0}")]
    Listeners(String),
    #[error("shard {0} is gone")]
    ShardGone(usize),
    #[error("{0}")]
    Tls(String),
}

impl Server {
    /// Binds all listeners (an ephemeral port 0 is resolved once per listener) and starts
    /// `shards` shard threads; returns once every shard runs.
    pub fn start(config: Config, shards: usize) -> io::Result<Server> {
        let shards = shards.max(1);
        let config = Arc::new(config);
        let tls = crate::tls::runtime::activate(&config).map_err(io::Error::other)?;
        let mut per_shard: Vec<(Vec<std::net::TcpListener>, _, _)> = Vec::new();
        let mut senders = Vec::with_capacity(shards);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for _ in 0..shards {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            per_shard.push((Vec::new(), rx, ready_tx.clone()));
        }
        drop(ready_tx);
        let mut addrs = Vec::new();
        for l in &config.listeners {
            let group =
                listener::bind_group(l.address, l.backlog, l.transparent, shards).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("listener {:?} on {}: {e}", l.name, l.address),
                    )
                })?;
            addrs.push((l.name.clone(), group[0].local_addr()?));
            for (i, sock) in group.into_iter().enumerate() {
                per_shard[i].0.push(sock);
            }
        }
        let cfg = config.clone();
        let threads = wire::spawn_shards(per_shard, "shard", move |id, payload, _mode| {
            let (sockets, commands, ready) = payload;
            shard::run(id, shards, cfg.clone(), sockets, commands, ready)
        })?;
        let mut server = Server {
            addrs,
            config,
            shards: senders,
            threads,
            health: None,
            tls,
        };
        for _ in 0..shards {
            match ready_rx.recv_timeout(START_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    server.shutdown();
                    return Err(io::Error::other(reason));
                }
                Err(_) => {
                    server.shutdown();
                    return Err(io::Error::other(
                        "a shard exited before it started (its runtime could not be built; see the log)",
                    ));
                }
            }
        }
        server.start_health()?;
        Ok(server)
    }

    /// Starts the health checker if the config asks for one and none runs.
    fn start_health(&mut self) -> io::Result<()> {
        if self.health.is_none() && crate::health::wanted(&self.config) {
            let c = crate::health::Checker::start(self.config.clone(), self.shards.clone())?;
            self.health = Some(c);
        }
        Ok(())
    }

    /// The bound address of the listener called `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// The config new connections use.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Installs `config` on every shard: new connections and new requests use it, running ones
    /// finish on the old one. Listeners (names, addresses, protocols, flags) must stay as they
    /// are; anything else — routes, clusters, timeouts — may change.
    pub fn swap(&mut self, config: Config) -> Result<(), SwapError> {
        same_listeners(&self.config, &config).map_err(SwapError::Listeners)?;
        let tls = crate::tls::runtime::activate(&config).map_err(SwapError::Tls)?;
        let config = Arc::new(config);
        for (i, s) in self.shards.iter().enumerate() {
            s.send(ShardCommand::Swap(config.clone()))
                .map_err(|_| SwapError::ShardGone(i))?;
        }
        match &self.health {
            Some(h) => h.swap(config.clone()),
            None => {
                self.config = config.clone();
                if let Err(e) = self.start_health() {
                    tracing::error!(error = %e, "health checker failed to start; endpoints count as healthy");
                }
            }
        }
        self.config = config;
        self.tls = tls;
        Ok(())
    }

    /// The certificate watchers (reload counters) of the current config's `tls:` blocks.
    pub fn tls(&self) -> &crate::tls::runtime::TlsRuntime {
        &self.tls
    }

    /// Every shard's counters, in shard order.
    pub fn stats(&self) -> Vec<ShardStats> {
        self.handle().stats()
    }

    /// All shards' counters summed.
    pub fn total_stats(&self) -> ShardStats {
        self.handle().total_stats()
    }

    /// A cloneable, `Send` way to the shards for the admin threads.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shards: self.shards.clone(),
        }
    }

    /// Stops accepting, drains open connections (up to `drain_timeout`), and joins the shards.
    pub fn shutdown(self) {
        drop(self.health);
        for s in &self.shards {
            let _ = s.send(ShardCommand::Drain);
        }
        drop(self.shards);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// What the admin side holds: the shards' command channels (queries only; swaps and drains
/// stay with [`Server`]).
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shards: Vec<CommandSender>,
}

impl ServerHandle {
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Every answering shard's counters, in shard order (a shard that is gone is left out).
    pub fn stats(&self) -> Vec<ShardStats> {
        let replies: Vec<_> = self
            .shards
            .iter()
            .filter_map(|s| {
                let (tx, rx) = oneshot::channel();
                s.send(ShardCommand::StatsSnapshot(tx)).ok().map(|_| rx)
            })
            .collect();
        replies
            .into_iter()
            .filter_map(|rx| rx.blocking_recv().ok())
            .collect()
    }

    /// All shards' counters summed.
    pub fn total_stats(&self) -> ShardStats {
        let mut total = ShardStats::default();
        for s in self.stats() {
            total.merge(&s);
        }
        total
    }
}

/// A swap may not add, remove or rebind listeners: shards hold their sockets from birth.
fn same_listeners(old: &Config, new: &Config) -> Result<(), String> {
    if old.listeners.len() != new.listeners.len() {
        return Err(format!(
            "{} listeners configured, {} running",
            new.listeners.len(),
            old.listeners.len()
        ));
    }
    for (a, b) in old.listeners.iter().zip(&new.listeners) {
        if a.name != b.name
            || a.address != b.address
            || a.protocol != b.protocol
            || a.transparent != b.transparent
        {
            return Err(format!(
                "listener {:?} ({}) differs from running {:?} ({})",
                b.name, b.address, a.name, a.address
            ));
        }
    }
    Ok(())
}
