//! Bringing a loaded config's `tls:` blocks to life on the control thread: [`activate`] loads
//! every listener's and cluster's certificate files, builds their rustls configs, installs them
//! in the blocks' [`super::live::Live`] cells and starts one [`super::config::Watcher`] per block (a file [`super::Reloader`] or a
//! [`super::workload::WorkloadWatch`] stream), whose
//! rebuilds go into the same cell (new handshakes use them; live connections keep theirs).
//! The returned [`TlsRuntime`] owns the watchers: dropping it stops rotation (of the blocks
//! the next config did not take over unchanged). Each block also keeps its watcher's counters
//! ([`super::config::ListenerTlsConf::reloads`]), so a shard can report them from the config
//! it serves ([`reload_counts`]) and the admin can show them.

use std::sync::Arc;

use super::config::Watcher;
use super::watch::ReloadStats;
use crate::config::Config;

/// The watchers of one config's `tls:` blocks, with their reload counters.
#[derive(Debug, Default)]
pub struct TlsRuntime {
    /// Shared with the next config's runtime for the blocks a reload leaves unchanged.
    reloaders: Vec<(String, Arc<Watcher>)>,
}

impl TlsRuntime {
    fn watcher(&self, name: &str) -> Option<Arc<Watcher>> {
        self.reloaders
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| w.clone())
    }

    /// Per block (`listener/NAME`, `cluster/NAME`): reloads applied and rejected.
    pub fn stats(&self) -> Vec<(String, Arc<ReloadStats>)> {
        self.reloaders
            .iter()
            .map(|(n, r)| (n.clone(), r.stats().clone()))
            .collect()
    }

    /// Reloads rejected (bad files) over every block.
    pub fn rejected(&self) -> u64 {
        self.reloaders
            .iter()
            .map(|(_, r)| r.stats().rejected())
            .sum()
    }

    /// Reloads applied over every block.
    pub fn applied(&self) -> u64 {
        self.reloaders
            .iter()
            .map(|(_, r)| r.stats().applied())
            .sum()
    }
}

/// Loads, builds and watches every `tls:` block of `config`. An error (a file that does not
/// load, a key that does not match) names the block and is a startup / reload error.
///
/// On a reload, `prev` is the config in force and its runtime: a block whose name and settings
/// are unchanged keeps its live cell and watcher instead of loading its files again. That keeps
/// a TLS cluster's balancer (its pooled connections, outlier and breaker state) across every
/// reload and xDS update that does not touch it, since a balancer survives only when its
/// cluster compares equal, live cell included ([`super::config::ClusterTlsConf`]).
pub fn activate(
    config: &mut Config,
    prev: Option<(&Config, &TlsRuntime)>,
) -> Result<TlsRuntime, String> {
    let mut rt = TlsRuntime::default();
    for l in &mut config.listeners {
        let Some(t) = &mut l.tls else { continue };
        let name = format!("listener/{}", l.name);
        let old = prev.and_then(|(c, r)| {
            let o = c
                .listeners
                .iter()
                .find(|o| o.name == l.name)?
                .tls
                .as_ref()?;
            (o.settings == t.settings).then_some((&o.live, r.watcher(&name)?))
        });
        if let Some((live, watcher)) = old {
            t.live = live.clone();
            t.reloads = Some(watcher.stats().clone());
            rt.reloaders.push((name, watcher));
            continue;
        }
        let live = t.live.clone();
        let (r, first) = t
            .settings
            .watch(&name, move |c| live.set(c))
            .map_err(|e| format!("{name}: tls: {e}"))?;
        t.live.set(first);
        t.reloads = Some(r.stats().clone());
        rt.reloaders.push((name, Arc::new(r)));
    }
    for c in &mut config.clusters {
        if c.tls.is_none() {
            continue;
        }
        let c = Arc::make_mut(c);
        let Some(t) = &mut c.tls else { continue };
        let name = format!("cluster/{}", c.name);
        let old = prev.and_then(|(p, r)| {
            let o = p.clusters.iter().find(|o| o.name == c.name)?.tls.as_ref()?;
            (o.settings == t.settings).then_some((&o.live, r.watcher(&name)?))
        });
        if let Some((live, watcher)) = old {
            t.live = live.clone();
            t.reloads = Some(watcher.stats().clone());
            rt.reloaders.push((name, watcher));
            continue;
        }
        let live = t.live.clone();
        let (r, first) = t
            .settings
            .watch(&name, move |c| live.set(c))
            .map_err(|e| format!("{name}: tls: {e}"))?;
        t.live.set(first);
        t.reloads = Some(r.stats().clone());
        rt.reloaders.push((name, Arc::new(r)));
    }
    Ok(rt)
}

/// One `tls:` block's rotations, as a shard reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadCount {
    /// `listener/NAME` or `cluster/NAME`.
    pub block: Box<str>,
    pub applied: u64,
    pub rejected: u64,
}

/// The reload counters of every activated `tls:` block of `config`, sorted by block.
pub fn reload_counts(config: &Config) -> Vec<ReloadCount> {
    let listeners = config.listeners.iter().filter_map(|l| {
        let r = l.tls.as_ref()?.reloads.as_ref()?;
        Some((format!("listener/{}", l.name), r))
    });
    let clusters = config.clusters.iter().filter_map(|c| {
        let r = c.tls.as_ref()?.reloads.as_ref()?;
        Some((format!("cluster/{}", c.name), r))
    });
    let mut out: Vec<ReloadCount> = listeners
        .chain(clusters)
        .map(|(block, r)| ReloadCount {
            block: block.into(),
            applied: r.applied(),
            rejected: r.rejected(),
        })
        .collect();
    out.sort_by(|a, b| a.block.cmp(&b.block));
    out
}

/// Merges one shard's [`reload_counts`] into `into`: every shard reads the same counters, so
/// a block takes the highest value seen, not the sum.
pub fn merge_reload_counts(into: &mut Vec<ReloadCount>, other: &[ReloadCount]) {
    for o in other {
        match into.iter_mut().find(|c| c.block == o.block) {
            Some(c) => {
                c.applied = c.applied.max(o.applied);
                c.rejected = c.rejected.max(o.rejected);
            }
            None => into.push(o.clone()),
        }
    }
    into.sort_by(|a, b| a.block.cmp(&b.block));
}
