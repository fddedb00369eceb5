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
    /// The refresh threads of the current config's fetched JWKS.
    jwks: crate::authz::refresh::JwksRuntime,
    /// The access-log writer threads, by path.
    logs: crate::telemetry::access_log::writer::LogWriters,
    /// The OTLP span exporter thread, while the config has a `tracing:` block.
    spans: crate::telemetry::otlp::Exporters,
    /// The DNS resolver (its own thread), while any cluster is `strict_dns`/`logical_dns`.
    dns: Option<crate::discovery::Resolver>,
    /// The overload manager's RSS monitor (its own thread), while a watermark is set.
    overload: Option<crate::overload::Monitor>,
    /// Test hook: an RSS (bytes) the monitor reads instead of the real one; 0 = real.
    fake_rss: Arc<std::sync::atomic::AtomicU64>,
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
    #[error("access log writer: {0}")]
    AccessLog(io::Error),
    #[error("jwks refresh thread: {0}")]
    Jwks(io::Error),
    #[error("span exporter thread: {0}")]
    SpanExport(io::Error),
}

impl Server {
    /// Binds all listeners (an ephemeral port 0 is resolved once per listener) and starts
    /// `shards` shard threads; returns once every shard runs.
    pub fn start(mut config: Config, shards: usize) -> io::Result<Server> {
        let shards = shards.max(1);
        crate::discovery::resolve_config(&mut config);
        let tls = crate::tls::runtime::activate(&mut config, None).map_err(io::Error::other)?;
        let config = Arc::new(config);
        let jwks = crate::authz::refresh::activate(&config)?;
        let mut logs = crate::telemetry::access_log::writer::LogWriters::default();
        logs.activate(&config)?;
        let mut spans = crate::telemetry::otlp::Exporters::default();
        spans.activate(&config)?;
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
            jwks,
            logs,
            spans,
            dns: None,
            overload: None,
            fake_rss: Default::default(),
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
        server.start_dns()?;
        server.start_overload()?;
        Ok(server)
    }

    /// (Re)starts the RSS monitor when the `overload:` watermarks changed.
    fn start_overload(&mut self) -> io::Result<()> {
        let want = self.config.overload;
        if self.overload.as_ref().map(|m| *m.settings()) == Some(want) {
            return Ok(());
        }
        drop(self.overload.take());
        if want.watches_rss() {
            let m =
                crate::overload::Monitor::start(want, self.shards.clone(), self.fake_rss.clone())?;
            self.overload = Some(m);
        }
        Ok(())
    }

    /// Test hook for the overload manager's RSS watermarks: the monitor reads `bytes` instead of
    /// the process's real RSS from its next sample on (`None`: the real RSS again).
    pub fn set_fake_rss(&self, bytes: Option<u64>) {
        self.fake_rss
            .store(bytes.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts the DNS resolver if the config has DNS clusters and none runs, or hands it the
    /// new config.
    fn start_dns(&mut self) -> io::Result<()> {
        match &self.dns {
            Some(r) => r.swap(self.config.clone()),
            None if crate::discovery::wanted(&self.config) => {
                let r =
                    crate::discovery::Resolver::start(self.config.clone(), self.shards.clone())?;
                self.dns = Some(r);
            }
            None => {}
        }
        Ok(())
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
    pub fn swap(&mut self, mut config: Config) -> Result<(), SwapError> {
        let shards = self.shards.len();
        crate::discovery::resolve_config(&mut config);
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
        let tls = crate::tls::runtime::activate(&mut config, Some((&self.config, &self.tls)))
            .map_err(SwapError::Tls)?;
        let jwks = crate::authz::refresh::activate(&config).map_err(SwapError::Jwks)?;
        self.logs.activate(&config).map_err(SwapError::AccessLog)?;
        self.spans
            .activate(&config)
            .map_err(SwapError::SpanExport)?;
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
        self.jwks = jwks;
        if let Err(e) = self.start_overload() {
            tracing::error!(error = %e, "overload monitor failed to start; RSS watermarks inactive");
        }
        if let Err(e) = self.start_dns() {
            tracing::error!(error = %e, "dns resolver failed to start; DNS clusters keep their endpoints");
        }
        Ok(())
    }

    /// The certificate watchers (reload counters) of the current config's `tls:` blocks.
    pub fn tls(&self) -> &crate::tls::runtime::TlsRuntime {
        &self.tls
    }

    /// The fetched JWKS of the current config (refresh counters).
    pub fn jwks(&self) -> &crate::authz::refresh::JwksRuntime {
        &self.jwks
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
        drop(self.dns);
        drop(self.overload);
        for s in &self.shards {
            let _ = s.send(ShardCommand::Drain);
        }
        drop(self.shards);
        for t in self.threads {
            let _ = t.join();
        }
        self.logs.shutdown(Duration::from_secs(2));
        self.spans.shutdown(Duration::from_secs(3));
    }
}

/// What the admin side holds: the shards' command channels (queries, and stopping the
/// listeners; swaps and the final drain stay with [`Server`]).
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

    /// Attaches a tap on every shard; returns how many took it.
    pub fn tap(&self, t: &crate::telemetry::tap_live::TapAttach) -> usize {
        self.shards
            .iter()
            .filter(|s| s.send(ShardCommand::Tap(t.clone())).is_ok())
            .count()
    }

    /// Detaches tap `id` from every shard.
    pub fn untap(&self, id: u64) {
        for s in &self.shards {
            let _ = s.send(ShardCommand::Untap(id));
        }
    }
    /// What every answering shard serves now (listeners, clusters' endpoints), in shard order.
    pub fn inspect(&self) -> Vec<crate::shard::ShardView> {
        let replies: Vec<_> = self
            .shards
            .iter()
            .filter_map(|s| {
                let (tx, rx) = oneshot::channel();
                s.send(ShardCommand::Inspect(tx)).ok().map(|_| rx)
            })
            .collect();
        replies
            .into_iter()
            .filter_map(|rx| rx.blocking_recv().ok())
            .collect()
    }

    /// Stops every shard's listeners (`graceful`: and drains their connections); returns how
    /// many shards took the command.
    pub fn drain_listeners(&self, graceful: bool) -> usize {
        self.shards
            .iter()
            .filter(|s| s.send(ShardCommand::DrainListeners { graceful }).is_ok())
            .count()
    }
}
