//! DNS service discovery for `type: strict_dns | logical_dns` clusters (Envoy's cluster types of
//! the same names), entirely on the control side: shards never resolve.
//!
//! - [`resolve_config`] resolves every DNS cluster once, synchronously, before a config reaches
//!   the shards (at start and on every swap), so a cluster starts with its endpoints.
//! - The [`Resolver`] thread (`dns`) then re-resolves each cluster every `dns_refresh_rate`
//!   (or after the records' smallest TTL with `respect_dns_ttl`, at least 1 s) and, when the
//!   sorted address set changed, sends every shard a [`ShardCommand::Endpoints`] with the whole
//!   list. The shard installs a new snapshot generation in which only that cluster's balancer is
//!   new: new requests go to the new endpoints at once; requests running on the old balancer
//!   finish there, and its pools (connections to removed endpoints among them) close when the
//!   last of those requests ends.
//! - `strict_dns`: every address of every name is an endpoint. `logical_dns`: the first address
//!   of its one name (Envoy keeps connections to a previous address open; here a changed address
//!   drains them like a strict cluster's).
//! - A failed query (timeout, SERVFAIL) keeps the endpoints and retries at the next refresh;
//!   NXDOMAIN or no `A` records means no endpoints (503 `UH`). IPv4 (`A`) only.

mod wire;

use std::net::SocketAddr;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::dns::DnsDiscovery;
use crate::config::{Cluster, ClusterKind, Config, Endpoint};
use crate::shard::{CommandSender, ShardCommand};

pub use wire::{Answer, DnsError};

/// One query's wait for a nameserver's answer.
const QUERY_TIMEOUT: Duration = Duration::from_millis(1000);

/// A DNS cluster's new endpoint list, as sent to shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointsUpdate {
    pub cluster: String,
    pub endpoints: Vec<Endpoint>,
}

/// Whether any cluster of `config` uses DNS discovery.
pub fn wanted(config: &Config) -> bool {
    config.clusters.iter().any(|c| c.dns.is_some())
}

/// Resolves `d`'s names: the endpoints (sorted, deduplicated) and when to ask again.
pub fn resolve(d: &DnsDiscovery, id: &mut u16) -> Result<(Vec<Endpoint>, Duration), DnsError> {
    let system;
    let servers: &[SocketAddr] = if d.resolvers.is_empty() {
        system = wire::system_resolvers();
        &system
    } else {
        &d.resolvers
    };
    let mut eps = Vec::new();
    let mut ttl: Option<Duration> = None;
    for (host, port) in &d.names {
        let mut last = DnsError::Io(std::io::Error::other("no nameserver configured"));
        let mut answer = None;
        for s in servers {
            *id = id.wrapping_add(1);
            match wire::resolve(
                *s,
                host,
                *id,
                QUERY_TIMEOUT.min(d.refresh.max(QUERY_TIMEOUT / 10)),
            ) {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let a = answer.ok_or(last)?;
        ttl = match (ttl, a.min_ttl) {
            (Some(t), Some(u)) => Some(t.min(u)),
            (t, u) => t.or(u),
        };
        for ip in a.addrs {
            eps.push(Endpoint::new(
                SocketAddr::new(ip.into(), *port),
                &format!("{host}:{port}"),
            ));
        }
        if d.logical {
            eps.truncate(1);
            break;
        }
    }
    if !d.logical {
        eps.sort_by_key(|e| e.addr);
        eps.dedup_by_key(|e| e.addr);
    }
    let next = match ttl {
        Some(t) if d.respect_ttl => t.max(Duration::from_secs(1)),
        _ => d.refresh,
    };
    Ok((eps, next))
}

fn with_endpoints(c: &Cluster, endpoints: Vec<Endpoint>) -> Arc<Cluster> {
    let mut c = c.clone();
    c.kind = ClusterKind::Static(endpoints);
    Arc::new(c)
}

/// Resolves every DNS cluster of `config` now (control side, before the shards see it). A
/// cluster whose names cannot be resolved starts without endpoints (logged; the resolver
/// thread keeps trying).
pub fn resolve_config(config: &mut Config) {
    let mut id = seed();
    for c in config.clusters.iter_mut() {
        let Some(d) = &c.dns else { continue };
        match resolve(d, &mut id) {
            Ok((eps, _)) => {
                tracing::info!(cluster = %c.name, endpoints = ?eps.iter().map(|e| e.addr).collect::<Vec<_>>(), "dns: resolved");
                *c = with_endpoints(c, eps);
            }
            Err(e) => {
                tracing::warn!(cluster = %c.name, error = %e, "dns: cannot resolve; no endpoints until it can")
            }
        }
    }
}

/// Applies an update to `config`: a copy with that DNS cluster's endpoints replaced, or `None`
/// when the config has no such DNS cluster or it already has these endpoints.
pub fn apply(config: &Config, u: &EndpointsUpdate) -> Option<Config> {
    let i = config
        .clusters
        .iter()
        .position(|c| c.name == u.cluster && c.dns.is_some())?;
    if let ClusterKind::Static(eps) = &config.clusters[i].kind {
        if *eps == u.endpoints {
            return None;
        }
    }
    let mut next = config.clone();
    next.clusters[i] = with_endpoints(&config.clusters[i], u.endpoints.clone());
    Some(next)
}

fn seed() -> u16 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() as u16)
}

enum Cmd {
    Swap(Arc<Config>),
}

/// The running resolver thread; stops when dropped.
#[derive(Debug)]
pub struct Resolver {
    tx: Option<Sender<Cmd>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// Per DNS cluster: its settings, the endpoints the shards have, and when to ask again.
struct Tracked {
    name: String,
    dns: DnsDiscovery,
    endpoints: Vec<Endpoint>,
    due: Instant,
}

fn tracked(config: &Config) -> Vec<Tracked> {
    config
        .clusters
        .iter()
        .filter_map(|c| {
            let dns = c.dns.clone()?;
            let endpoints = match &c.kind {
                ClusterKind::Static(e) => e.clone(),
                ClusterKind::OriginalDst { .. } => Vec::new(),
            };
            Some(Tracked {
                name: c.name.clone(),
                due: Instant::now() + dns.refresh,
                dns: *dns,
                endpoints,
            })
        })
        .collect()
}

impl Resolver {
    /// Starts the `dns` thread for `config` (already resolved by [`resolve_config`]).
    pub fn start(config: Arc<Config>, shards: Vec<CommandSender>) -> std::io::Result<Resolver> {
        let (tx, rx) = channel::<Cmd>();
        let thread = std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || {
                let mut id = seed();
                let mut clusters = tracked(&config);
                loop {
                    let now = Instant::now();
                    let next = clusters.iter().map(|c| c.due).min();
                    let wait = next.map_or(Duration::from_secs(3600), |d| {
                        d.saturating_duration_since(now)
                    });
                    match rx.recv_timeout(wait) {
                        Ok(Cmd::Swap(c)) => {
                            clusters = tracked(&c);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    for c in clusters.iter_mut().filter(|c| c.due <= Instant::now()) {
                        refresh(c, &mut id, &shards);
                    }
                }
            })?;
        Ok(Resolver {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// The config in force changed (already resolved): track its DNS clusters instead.
    pub fn swap(&self, config: Arc<Config>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Cmd::Swap(config));
        }
    }
}

fn refresh(c: &mut Tracked, id: &mut u16, shards: &[CommandSender]) {
    match resolve(&c.dns, id) {
        Ok((eps, next)) => {
            c.due = Instant::now() + next;
            if eps == c.endpoints {
                return;
            }
            tracing::info!(cluster = %c.name, endpoints = ?eps.iter().map(|e| e.addr).collect::<Vec<_>>(), "dns: endpoints changed");
            c.endpoints = eps;
            let u = Arc::new(EndpointsUpdate {
                cluster: c.name.clone(),
                endpoints: c.endpoints.clone(),
            });
            for s in shards {
                let _ = s.send(ShardCommand::Endpoints(u.clone()));
            }
        }
        Err(e) => {
            c.due = Instant::now() + c.dns.refresh;
            crate::warn_limited!("dns_failed", cluster = %c.name, error = %e, "dns: refresh failed; endpoints kept");
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
