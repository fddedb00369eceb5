//! Bringing a loaded config's `tls:` blocks to life on the control thread: [`activate`] loads
//! every listener's and cluster's certificate files, builds their rustls configs, installs them
//! in the blocks' [`super::live::Live`] cells and starts one [`super::config::Watcher`] per block (a file [`super::Reloader`] or a
//! [`super::workload::WorkloadWatch`] stream), whose
//! rebuilds go into the same cell (new handshakes use them; live connections keep theirs).
//! The returned [`TlsRuntime`] owns the watchers: dropping it stops rotation.

use std::sync::Arc;

use super::config::Watcher;
use super::watch::ReloadStats;
use crate::config::Config;

/// The watchers of one config's `tls:` blocks, with their reload counters.
#[derive(Debug, Default)]
pub struct TlsRuntime {
    reloaders: Vec<(String, Watcher)>,
}

impl TlsRuntime {
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
pub fn activate(config: &Config) -> Result<TlsRuntime, String> {
    let mut rt = TlsRuntime::default();
    for l in &config.listeners {
        let Some(t) = &l.tls else { continue };
        let name = format!("listener/{}", l.name);
        let live = t.live.clone();
        let (r, first) = t
            .settings
            .watch(&name, move |c| live.set(c))
            .map_err(|e| format!("{name}: tls: {e}"))?;
        t.live.set(first);
        rt.reloaders.push((name, r));
    }
    for c in &config.clusters {
        let Some(t) = &c.tls else { continue };
        let name = format!("cluster/{}", c.name);
        let live = t.live.clone();
        let (r, first) = t
            .settings
            .watch(&name, move |c| live.set(c))
            .map_err(|e| format!("{name}: tls: {e}"))?;
        t.live.set(first);
        rt.reloaders.push((name, r));
    }
    Ok(rt)
}
