//! Bringing a loaded config's `tls:` blocks to life on the control thread: [`activate`] loads
//! every listener's and cluster's certificate files, builds their rustls configs, installs them
//! in the blocks' [`super::live::Live`] cells and starts one [`super::config::Watcher`] per block (a file [`super::Reloader`] or a
//! [`super::workload::WorkloadWatch`] stream), whose
//! rebuilds go into the same cell (new handshakes use them; live connections keep theirs).
//! The returned [`TlsRuntime`] owns the watchers: dropping it stops rotation (of the blocks
//! the next config did not take over unchanged).

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
            rt.reloaders.push((name, watcher));
            continue;
        }
        let live = t.live.clone();
        let (r, first) = t
            .settings
            .watch(&name, move |c| live.set(c))
            .map_err(|e| format!("{name}: tls: {e}"))?;
        t.live.set(first);
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
            rt.reloaders.push((name, watcher));
            continue;
        }
        let live = t.live.clone();
        let (r, first) = t
            .settings
            .watch(&name, move |c| live.set(c))
            .map_err(|e| format!("{name}: tls: {e}"))?;
        t.live.set(first);
        rt.reloaders.push((name, Arc::new(r)));
    }
    Ok(rt)
}
