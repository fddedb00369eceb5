//! Active health checking, off the data path. One thread (`health`) with its own monoio runtime
//! probes every endpoint of every cluster that has a `health_check:` ([`probe`]) every
//! `interval`, counts passes and failures in a row, and when an endpoint's verdict flips
//! (`unhealthy_threshold` failures, `healthy_threshold` passes) sends every shard a
//! [`ShardCommand::Health`] with the cluster's whole verdict list. Shards only apply messages
//! (`cluster::health`); they never probe and never wait for the checker.
//!
//! Endpoints start healthy (traffic is not held back until a first probe passes). Across a config
//! swap, a cluster whose name, endpoints and check are unchanged keeps its verdicts, and the
//! checker re-sends every cluster's list after the swap (the shards' `Swap` comes first on the
//! same channels, so the list lands on the new balancers).

pub mod probe;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::config::{ClusterKind, Config, HealthCheck};
use crate::shard::{CommandSender, ShardCommand};

/// One cluster's verdicts, as sent to shards (`healthy[i]` for endpoint `i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthUpdate {
    pub cluster: String,
    pub healthy: Vec<bool>,
}

enum Cmd {
    Swap(Arc<Config>),
}

/// The running checker; stops when dropped.
#[derive(Debug)]
pub struct Checker {
    tx: Option<mpsc::UnboundedSender<Cmd>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// Whether any cluster of `config` is health-checked.
pub fn wanted(config: &Config) -> bool {
    config.clusters.iter().any(|c| c.health.is_some())
}

impl Checker {
    /// Starts the checker thread for `config`, reporting to `shards`.
    pub fn start(config: Arc<Config>, shards: Vec<CommandSender>) -> std::io::Result<Checker> {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("health".into())
            .spawn(move || match wire::build_runtime(None) {
                Ok((mut rt, _)) => rt.block_on(run(config, shards, rx)),
                Err(e) => tracing::error!(error = %e, "health checker runtime failed to start"),
            })?;
        Ok(Checker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Checks `config`'s clusters from now on.
    pub fn swap(&self, config: Arc<Config>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Cmd::Swap(config));
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A checked cluster: its check, endpoints and current verdicts.
struct Checked {
    name: String,
    check: HealthCheck,
    endpoints: Vec<SocketAddr>,
    healthy: RefCell<Vec<bool>>,
}

impl Checked {
    fn update(&self) -> Arc<HealthUpdate> {
        Arc::new(HealthUpdate {
            cluster: self.name.clone(),
            healthy: self.healthy.borrow().clone(),
        })
    }
}

fn broadcast(shards: &[CommandSender], u: Arc<HealthUpdate>) {
    for s in shards {
        let _ = s.send(ShardCommand::Health(u.clone()));
    }
}

async fn run(
    config: Arc<Config>,
    shards: Vec<CommandSender>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let shards = Rc::new(shards);
    let generation = Rc::new(Cell::new(0u64));
    let mut checked = start(&config, &HashMap::new(), &shards, &generation);
    while let Some(Cmd::Swap(config)) = rx.recv().await {
        generation.set(generation.get() + 1);
        checked = start(&config, &checked, &shards, &generation);
        for c in checked.values() {
            broadcast(&shards, c.update());
        }
    }
    // Stopping: probes still sleeping see the generation move and end with the runtime.
    generation.set(generation.get() + 1);
}

/// Spawns one probe loop per endpoint of every checked cluster of `config`, keeping the verdicts
/// of clusters unchanged since `prev`.
fn start(
    config: &Config,
    prev: &HashMap<String, Rc<Checked>>,
    shards: &Rc<Vec<CommandSender>>,
    generation: &Rc<Cell<u64>>,
) -> HashMap<String, Rc<Checked>> {
    let mut out = HashMap::new();
    for c in &config.clusters {
        let (Some(check), ClusterKind::Static(eps)) = (&c.health, &c.kind) else {
            continue;
        };
        let endpoints: Vec<SocketAddr> = eps.iter().map(|e| e.addr).collect();
        let healthy = prev
            .get(&c.name)
            .filter(|p| p.check == **check && p.endpoints == endpoints)
            .map_or_else(
                || vec![true; endpoints.len()],
                |p| p.healthy.borrow().clone(),
            );
        let checked = Rc::new(Checked {
            name: c.name.clone(),
            check: (**check).clone(),
            endpoints,
            healthy: RefCell::new(healthy),
        });
        for i in 0..checked.endpoints.len() {
            monoio::spawn(probe_loop(
                checked.clone(),
                i,
                config.upstream_mark,
                shards.clone(),
                generation.clone(),
            ));
        }
        out.insert(c.name.clone(), checked);
    }
    out
}

async fn probe_loop(
    c: Rc<Checked>,
    i: usize,
    mark: Option<u32>,
    shards: Rc<Vec<CommandSender>>,
    generation: Rc<Cell<u64>>,
) {
    let mine = generation.get();
    let addr = c.endpoints[i];
    let (mut passes, mut fails) = (0u32, 0u32);
    loop {
        let ok = probe::run(&c.check, addr, mark).await;
        if generation.get() != mine {
            return;
        }
        if ok {
            passes += 1;
            fails = 0;
        } else {
            fails += 1;
            passes = 0;
        }
        let was = c.healthy.borrow()[i];
        let now = match was {
            true => fails < c.check.unhealthy_threshold,
            false => passes >= c.check.healthy_threshold,
        };
        if now != was {
            c.healthy.borrow_mut()[i] = now;
            if now {
                tracing::info!(cluster = %c.name, endpoint = %addr, "health check: endpoint healthy");
            } else {
                tracing::warn!(cluster = %c.name, endpoint = %addr, "health check: endpoint unhealthy");
            }
            broadcast(&shards, c.update());
        }
        monoio::time::sleep(c.check.interval).await;
        if generation.get() != mine {
            return;
        }
    }
}
