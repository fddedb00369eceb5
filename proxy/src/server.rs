//! The control side: binds every listener for every shard, starts the shard threads and waits
//! until each reports that it started (a shard that cannot start makes [`Server::start`] fail
//! with its reason), then talks to them only through their command channels: [`Server::swap`]
//! installs a new config (listeners
//! included), [`Server::stats`] collects counters, [`Server::shutdown`] drains.
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
    #[error("listener {name:?} cannot bind {address}: {error}")]
    Bind {
        name: String,
        address: SocketAddr,
        error: io::Error,
    },
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
    /// finish on the old one. Listeners are matched by name: an added one is bound (one
    /// `SO_REUSEPORT` socket per shard) and starts accepting, a removed one stops accepting
    /// (its open connections finish on their old snapshot), and one whose address or
    /// `transparent` flag changed is rebound; other listener settings apply to new
    /// connections. Nothing changes if a socket cannot be bound.
    pub fn swap(&mut self, config: Config) -> Result<(), SwapError> {
        let shards = self.shards.len();
        let mut per_shard: Vec<Vec<(String, std::net::TcpListener)>> =
            (0..shards).map(|_| Vec::new()).collect();
        let mut addrs = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let old = self.config.listeners.iter().find(|o| o.name == l.name);
            let kept = old.filter(|o| o.address == l.address && o.transparent == l.transparent);
            if let Some(bound) = kept.and_then(|_| self.addr(&l.name)) {
                addrs.push((l.name.clone(), bound));
                continue;
            }
            let group = listener::bind_group(l.address, l.backlog, l.transparent, shards).map_err(
                |error| SwapError::Bind {
                    name: l.name.clone(),
                    address: l.address,
                    error,
                },
            )?;
            addrs.push((
                l.name.clone(),
                group[0].local_addr().map_err(|error| SwapError::Bind {
                    name: l.name.clone(),
                    address: l.address,
                    error,
                })?,
            ));
            for (i, sock) in group.into_iter().enumerate() {
                per_shard[i].push((l.name.clone(), sock));
            }
        }
        let tls = crate::tls::runtime::activate(&config).map_err(SwapError::Tls)?;
        let config = Arc::new(config);
        for (i, (s, sockets)) in self.shards.iter().zip(per_shard).enumerate() {
            if !sockets.is_empty() {
                s.send(ShardCommand::Bind(sockets))
                    .map_err(|_| SwapError::ShardGone(i))?;
            }
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
        self.addrs = addrs;
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

    /// Waits until every shard has handled every command sent before (a swap included);
    /// false if a shard is gone.
    pub fn barrier(&self) -> bool {
        let replies: Vec<_> = self
            .shards
            .iter()
            .map(|s| {
                let (tx, rx) = oneshot::channel();
                s.send(ShardCommand::Barrier(tx)).ok().map(|_| rx)
            })
            .collect();
        replies
            .into_iter()
            .all(|rx| rx.is_some_and(|rx| rx.blocking_recv().is_ok()))
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
