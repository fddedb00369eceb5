//! Rotation without restart: a [`Reloader`] watches a [`CertSource`]'s files (inotify through
//! the `notify` crate, on the directories, so atomic renames and Kubernetes-style `..data`
//! symlink swaps are seen) from its own control thread, rebuilds the config when the bytes
//! change, and hands the new `Arc` to a callback (the shard command channel carries it on;
//! shards swap it for new handshakes, live connections keep theirs).
//!
//! Events are debounced (100 ms of quiet, at most 500 ms), so a cert and key written one after
//! the other are read together; new material is in force well within 2 s. A version that does
//! not load or build is rejected: the old config stays, one warning names the file and the
//! reason, and `stats().rejected` counts it once per distinct bad version. Writers should
//! still rename files into place: a half-written file is simply a rejected version.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::source::{CertSource, LoadError, Material};

const QUIET: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(500);

/// Reload outcomes. Atomics because the control thread writes and the admin side reads;
/// nothing on a shard touches them.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
}

impl ReloadStats {
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot build the TLS config: {0}")]
    Build(String),
    #[error("cannot watch {0}: {1}")]
    Watch(PathBuf, notify::Error),
}

enum Msg {
    Changed,
    Stop,
}

/// The watcher thread; stops when dropped.
pub struct Reloader {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<ReloadStats>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("stats", &self.stats)
            .finish()
    }
}

impl Reloader {
    /// Loads and builds once (an error here is a startup error), then watches. Returns the
    /// first config; later ones go to `apply`.
    pub fn start<T, B, A>(
        name: &str,
        source: CertSource,
        build: B,
        apply: A,
    ) -> Result<(Reloader, Arc<T>), ReloadError>
    where
        T: Send + Sync + 'static,
        B: Fn(&Material) -> Result<Arc<T>, String> + Send + 'static,
        A: Fn(Arc<T>) + Send + 'static,
    {
        let raw = source.read()?;
        let material = source.parse(&raw)?;
        let first = build(&material).map_err(ReloadError::Build)?;
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // Our own reads raise open/access events: only changes count.
            if ev.is_ok_and(|e| !matches!(e.kind, EventKind::Access(_))) {
                let _ = events.send(Msg::Changed);
            }
        })
        .map_err(|e| ReloadError::Watch(PathBuf::new(), e))?;
        let mut dirs: Vec<PathBuf> = source
            .paths()
            .iter()
            .map(|p| match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            watcher
                .watch(d, RecursiveMode::NonRecursive)
                .map_err(|e| ReloadError::Watch(d.clone(), e))?;
        }
        let stats = Arc::new(ReloadStats::default());
        let st = stats.clone();
        let name = name.to_string();
        let current = material.fingerprint;
        let thread = std::thread::Builder::new()
            .name(format!("certs-{name}"))
            .spawn(move || {
                let _watcher = watcher;
                let mut state = State {
                    current,
                    last_bad: None,
                };
                while wait_for_change(&rx) {
                    state.reload(&name, &source, &build, &apply, &st);
                }
            })
            .map_err(|e| ReloadError::Watch(PathBuf::new(), notify::Error::io(e)))?;
        Ok((
            Reloader {
                tx,
                thread: Some(thread),
                stats,
            },
            first,
        ))
    }

    pub fn stats(&self) -> &Arc<ReloadStats> {
        &self.stats
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Blocks until a change has settled; false when asked to stop.
fn wait_for_change(rx: &mpsc::Receiver<Msg>) -> bool {
    match rx.recv() {
        Ok(Msg::Changed) => {}
        Ok(Msg::Stop) | Err(_) => return false,
    }
    let deadline = Instant::now() + MAX_DELAY;
    loop {
        match rx.recv_timeout(QUIET) {
            Ok(Msg::Changed) if Instant::now() < deadline => continue,
            Ok(Msg::Changed) | Err(RecvTimeoutError::Timeout) => return true,
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

struct State {
    current: u64,
    last_bad: Option<u64>,
}

impl State {
    fn reload<T, B, A>(
        &mut self,
        name: &str,
        source: &CertSource,
        build: &B,
        apply: &A,
        stats: &ReloadStats,
    ) where
        B: Fn(&Material) -> Result<Arc<T>, String>,
        A: Fn(Arc<T>),
    {
        let raw = match source.read() {
            Ok(r) => r,
            Err(e) => {
                // A file missing mid-rename: the rename that completes it raises another event.
                tracing::debug!(tls = name, error = %e, "certificate files not readable yet");
                return;
            }
        };
        let fp = raw.fingerprint();
        if fp == self.current || Some(fp) == self.last_bad {
            return;
        }
        let result = source
            .parse(&raw)
            .map_err(|e| (e.file.display().to_string(), e.reason.to_string()))
            .and_then(|m| {
                build(&m)
                    .map(|c| (m, c))
                    .map_err(|r| ("(config)".to_string(), r))
            });
        match result {
            Ok((m, config)) => {
                self.current = fp;
                self.last_bad = None;
                stats.applied.fetch_add(1, Ordering::Relaxed);
                let serial = m
                    .identities
                    .first()
                    .map(|i| hex(&i.serial))
                    .unwrap_or_default();
                tracing::info!(tls = name, serial, "certificate material reloaded");
                apply(config);
            }
            Err((file, reason)) => {
                self.last_bad = Some(fp);
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    tls = name,
                    file,
                    reason,
                    "certificate reload rejected; keeping the current material"
                );
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
