//! JWKS refresh on a timer: a rule whose keys are fetched through a cluster (`jwksUri` +
//! `jwksCluster`) keeps them in a [`RemoteJwks`], fetched once at config load (a failure there
//! is a config error) and then again every `jwksRefreshInterval` (default 5 min, Envoy's
//! `cache_duration`) by one control-side thread per rule ([`activate`], owned by the running
//! `Server` like the certificate watchers). A new key set goes into the rule's
//! [`Live`] cell, so the next token is verified with it; a fetch or parse that fails keeps the
//! keys in force, logs the URI and the reason, and counts in [`RemoteJwks::failed`]. Shards
//! never fetch: they only read the cell. The counters reach the admin through the shards'
//! stats ([`counts`] of the config a shard serves; every shard reads the same atomics), as
//! `shardcar_jwks_refresh_total{provider,issuer,result}` on `/stats/prometheus`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::jwt::{parse_keys, Key};
use crate::config::Config;
use crate::tls::live::Live;

/// Envoy's default `cache_duration`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// A fetched JWKS and how to fetch it again.
#[derive(Debug)]
pub struct RemoteJwks {
    /// The `request_authentication` block the rule belongs to (the metrics' `provider`).
    pub provider: Box<str>,
    pub uri: String,
    pub endpoint: std::net::SocketAddr,
    pub timeout: Duration,
    pub interval: Duration,
    issuer: String,
    audiences: Vec<String>,
    clock_skew_secs: u64,
    live: Live<Vec<Key>>,
    /// Refreshes that installed a new key set / that failed (the old keys stayed).
    pub refreshed: AtomicU64,
    pub failed: AtomicU64,
}

impl RemoteJwks {
    /// Fetches and parses the JWKS once; the error names what failed.
    pub fn fetch_first(
        uri: &str,
        endpoint: std::net::SocketAddr,
        timeout: Duration,
        interval: Duration,
        issuer: &str,
        audiences: &[String],
        clock_skew_secs: u64,
    ) -> Result<RemoteJwks, String> {
        let r = RemoteJwks {
            provider: Box::default(),
            uri: uri.into(),
            endpoint,
            timeout,
            interval,
            issuer: issuer.into(),
            audiences: audiences.to_vec(),
            clock_skew_secs,
            live: Live::default(),
            refreshed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        };
        r.live.set(Arc::new(r.load()?));
        Ok(r)
    }

    /// Names the `request_authentication` block the rule belongs to.
    pub fn with_provider(mut self, provider: &str) -> RemoteJwks {
        self.provider = provider.into();
        self
    }

    fn load(&self) -> Result<Vec<Key>, String> {
        let text = super::fetch::fetch(self.endpoint, &self.uri, self.timeout)?;
        parse_keys(&self.issuer, &self.audiences, &text, self.clock_skew_secs)
    }

    /// The keys in force.
    pub fn keys(&self) -> Arc<Vec<Key>> {
        self.live.get().unwrap_or_default()
    }

    /// One refresh: new keys in force, or the old ones kept and the failure logged.
    pub fn refresh(&self) {
        match self.load() {
            Ok(keys) => {
                self.live.set(Arc::new(keys));
                self.refreshed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(uri = %self.uri, "jwks refreshed");
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(uri = %self.uri, error = %e, "jwks refresh failed; the keys in force stay");
            }
        }
    }
}

/// The refresh threads of one config; dropping it stops them (each wakes and exits).
#[derive(Debug, Default)]
pub struct JwksRuntime {
    stops: Vec<mpsc::Sender<()>>,
    remotes: Vec<Arc<RemoteJwks>>,
}

impl JwksRuntime {
    /// Every fetched JWKS of the config, once each.
    pub fn remotes(&self) -> &[Arc<RemoteJwks>] {
        &self.remotes
    }
}

/// Every fetched JWKS of `config`, once each (a rule selected by several listeners is one).
fn remotes_of(config: &Config) -> Vec<Arc<RemoteJwks>> {
    let mut out: Vec<Arc<RemoteJwks>> = Vec::new();
    let rules = config
        .listeners
        .iter()
        .filter_map(|l| l.authz.as_ref()?.jwt.as_ref())
        .flat_map(|a| a.rules.iter());
    for remote in rules.filter_map(|r| r.remote.as_ref()) {
        if !out.iter().any(|r| Arc::ptr_eq(r, remote)) {
            out.push(remote.clone());
        }
    }
    out
}

/// One fetched JWKS's refresh counters, as a shard reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwksCount {
    pub provider: Box<str>,
    pub issuer: Box<str>,
    /// Refreshes that installed a key set / that failed (the keys in force stayed).
    pub success: u64,
    pub failure: u64,
}

/// The refresh counters of every fetched JWKS of `config`, one entry per (provider, issuer)
/// (two rules alike in both are summed), sorted.
pub fn counts(config: &Config) -> Vec<JwksCount> {
    let mut out: Vec<JwksCount> = Vec::new();
    for r in remotes_of(config) {
        let (success, failure) = (
            r.refreshed.load(Ordering::Relaxed),
            r.failed.load(Ordering::Relaxed),
        );
        match out
            .iter_mut()
            .find(|c| *c.provider == *r.provider && *c.issuer == *r.issuer)
        {
            Some(c) => {
                c.success += success;
                c.failure += failure;
            }
            None => out.push(JwksCount {
                provider: r.provider.clone(),
                issuer: r.issuer.as_str().into(),
                success,
                failure,
            }),
        }
    }
    out.sort_by(|a, b| (&a.provider, &a.issuer).cmp(&(&b.provider, &b.issuer)));
    out
}

/// Merges one shard's [`counts`] into `into`. Every shard reads the same counters, so an
/// entry takes the highest value seen, not the sum.
pub fn merge_counts(into: &mut Vec<JwksCount>, other: &[JwksCount]) {
    for o in other {
        match into
            .iter_mut()
            .find(|c| c.provider == o.provider && c.issuer == o.issuer)
        {
            Some(c) => {
                c.success = c.success.max(o.success);
                c.failure = c.failure.max(o.failure);
            }
            None => into.push(o.clone()),
        }
    }
    into.sort_by(|a, b| (&a.provider, &a.issuer).cmp(&(&b.provider, &b.issuer)));
}

/// Starts one refresh thread per fetched JWKS of `config` (a rule selected by several
/// listeners is refreshed once).
pub fn activate(config: &Config) -> std::io::Result<JwksRuntime> {
    let mut rt = JwksRuntime::default();
    for remote in remotes_of(config) {
        let (tx, rx) = mpsc::channel::<()>();
        let r = remote.clone();
        std::thread::Builder::new()
            .name("jwks-refresh".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(r.interval) {
                    r.refresh();
                }
            })?;
        rt.stops.push(tx);
        rt.remotes.push(remote);
    }
    Ok(rt)
}
