//! Hot reload: the control thread that owns the running [`Server`] after start and applies
//! config changes to it. Three triggers feed one path — SIGHUP, a change to the watched
//! config file ([`watch`]) and `POST /reload` on the admin API — and each goes read → parse →
//! validate → [`Server::swap`] (which binds added listeners, then sends `Swap` to every
//! shard). New connections and new requests use the new config; requests in flight finish on
//! the snapshot they started with.
//!
//! A config that does not load, or whose new listeners cannot bind, is rejected: the running
//! one stays in force, one error line names the field and line, and
//! [`ReloadStats::rejected`] counts it. A file change whose bytes equal the config in force
//! (or the last rejected one) is ignored; SIGHUP and `POST /reload` always reload.
//!
//! Everything here runs on control-side std threads; shards only ever see the `Swap`.

pub mod dump;
pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::config::Config;
use crate::server::Server;

/// How long `POST /reload` waits for the control thread's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Sighup,
    File,
    Admin,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Sighup => "SIGHUP",
            Trigger::File => "file",
            Trigger::Admin => "POST /reload",
        }
    }
}

/// Reload outcomes. Atomics because the control thread writes and the admin side reads;
/// nothing on a shard touches them.
#[derive(Debug)]
pub struct ReloadStats {
    /// The config version in force: 1 for the one the process started with, +1 per applied
    /// reload.
    pub version: AtomicU64,
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
}

impl Default for ReloadStats {
    fn default() -> ReloadStats {
        ReloadStats {
            version: AtomicU64::new(1),
            applied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }
}

impl ReloadStats {
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

enum ControlMsg {
    Reload {
        trigger: Trigger,
        reply: Option<mpsc::Sender<Result<u64, String>>>,
    },
    Dump(mpsc::Sender<String>),
    /// A config assembled by the xDS client: swap it in, wait for every shard, answer.
    Apply {
        config: Box<Config>,
        /// The config as a JSON document (YAML-compatible), for `/config_dump`.
        text: String,
        reply: mpsc::Sender<Result<u64, String>>,
    },
    /// The xDS client's state (versions, nonces, warming) as a JSON object, for `/config_dump`.
    XdsStatus(String),
    Shutdown,
}

/// The `Send` way to the control thread (signal thread, file watcher, admin handlers).
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<ControlMsg>,
    pub stats: Arc<ReloadStats>,
}

impl std::fmt::Debug for ControlMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControlMsg::Reload { .. } => "Reload",
            ControlMsg::Dump(_) => "Dump",
            ControlMsg::Apply { .. } => "Apply",
            ControlMsg::XdsStatus(_) => "XdsStatus",
            ControlMsg::Shutdown => "Shutdown",
        })
    }
}

impl ControlHandle {
    /// Reloads and waits: the new version, or why the running config stays.
    pub fn reload(&self, trigger: Trigger) -> Result<u64, String> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(ControlMsg::Reload {
                trigger,
                reply: Some(tx),
            })
            .map_err(|_| "the proxy is shutting down".to_string())?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| "the control thread did not answer".to_string())?
    }

    /// Asks for a reload without waiting (signal handler, file watcher).
    pub fn request_reload(&self, trigger: Trigger) {
        let _ = self.tx.send(ControlMsg::Reload {
            trigger,
            reply: None,
        });
    }

    /// The `/config_dump` JSON.
    pub fn dump(&self) -> Option<String> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(ControlMsg::Dump(tx)).ok()?;
        rx.recv_timeout(REPLY_TIMEOUT).ok()
    }

    /// Installs a config from the xDS client and waits until every shard uses it: the new
    /// version, or why the running config stays (the client NACKs with that text).
    pub fn apply(&self, config: Config, text: String) -> Result<u64, String> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(ControlMsg::Apply {
                config: Box::new(config),
                text,
                reply: tx,
            })
            .map_err(|_| "the proxy is shutting down".to_string())?;
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| "the control thread did not answer".to_string())?
    }

    /// Replaces the xDS section of `/config_dump`.
    pub fn set_xds_status(&self, json: String) {
        let _ = self.tx.send(ControlMsg::XdsStatus(json));
    }

    /// Makes [`Control::run`] return (it then hands the server back for shutdown).
    pub fn shutdown(&self) {
        let _ = self.tx.send(ControlMsg::Shutdown);
    }
}

/// The last reload attempt, for `/config_dump`.
#[derive(Debug, Clone)]
pub struct LastReload {
    pub trigger: Trigger,
    pub error: Option<String>,
}

/// The control thread's state: the server, where its config came from, what is in force.
pub struct Control {
    server: Server,
    path: Option<PathBuf>,
    stats: Arc<ReloadStats>,
    /// Fingerprint of the file bytes in force, and of the last rejected ones.
    current: u64,
    last_bad: Option<u64>,
    last: Option<LastReload>,
    /// The xDS client's last reported state (`None` without a bootstrap).
    xds: Option<String>,
    /// The YAML text of the config in force (for `/config_dump`).
    text: String,
    rx: mpsc::Receiver<ControlMsg>,
}

impl Control {
    /// Takes over `server`, whose config was read from `path` (`None`: the embedded default,
    /// which cannot be reloaded).
    pub fn new(server: Server, path: Option<PathBuf>) -> (Control, ControlHandle) {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(ReloadStats::default());
        let bytes = path.as_ref().and_then(|p| std::fs::read(p).ok());
        let current = bytes.as_deref().map_or(0, fingerprint);
        let text = match (&path, bytes) {
            (None, _) => crate::config::DEFAULT_CONFIG_YAML.to_string(),
            (Some(_), b) => String::from_utf8_lossy(&b.unwrap_or_default()).into_owned(),
        };
        let handle = ControlHandle {
            tx,
            stats: stats.clone(),
        };
        let control = Control {
            server,
            path,
            stats,
            current,
            last_bad: None,
            last: None,
            xds: None,
            text,
            rx,
        };
        (control, handle)
    }

    /// The config text `/config_dump` shows when it did not come from a file (an xDS
    /// bootstrap's static resources, as JSON).
    pub fn set_text(&mut self, text: String) {
        self.text = text;
    }

    /// Serves reload and dump requests until [`ControlHandle::shutdown`] (or every handle is
    /// gone); returns the server so the caller can shut it down.
    pub fn run(mut self) -> Server {
        while let Ok(msg) = self.rx.recv() {
            match msg {
                ControlMsg::Reload { trigger, reply } => {
                    let result = self.reload(trigger);
                    if let Some(r) = reply {
                        let _ = r.send(result);
                    }
                }
                ControlMsg::Dump(reply) => {
                    let _ = reply.send(dump::render(self.server.config(), &self.dump_facts()));
                }
                ControlMsg::Apply {
                    config,
                    text,
                    reply,
                } => {
                    let r = self.apply(*config);
                    if r.is_ok() {
                        self.text = text;
                    }
                    let _ = reply.send(r);
                }
                ControlMsg::XdsStatus(s) => self.xds = Some(s),
                ControlMsg::Shutdown => break,
            }
        }
        self.server
    }

    /// The server, without serving (startup failed after the shards started).
    pub fn into_server(self) -> Server {
        self.server
    }

    fn dump_facts(&self) -> dump::Facts<'_> {
        dump::Facts {
            version: self.stats.version(),
            applied: self.stats.applied(),
            rejected: self.stats.rejected(),
            source: self.path.as_deref(),
            fingerprint: self.current,
            last: self.last.as_ref(),
            bound: self.server.listeners(),
            xds: self.xds.as_deref(),
            text: &self.text,
        }
    }

    /// Swaps in an xDS config and waits until every shard runs it.
    fn apply(&mut self, config: Config) -> Result<u64, String> {
        if let Err(e) = self.server.swap(config) {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(e.to_string());
        }
        if !self.server.handle().barrier() {
            return Err("a shard is gone".into());
        }
        self.stats.applied.fetch_add(1, Ordering::Relaxed);
        Ok(self.stats.version.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// One reload attempt; `Ok(version)` also when a file event changed nothing.
    fn reload(&mut self, trigger: Trigger) -> Result<u64, String> {
        let Some(path) = self.path.clone() else {
            let e = "no config file to reload: the proxy runs the embedded default".to_string();
            tracing::warn!(trigger = trigger.as_str(), "{e}");
            return Err(e);
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if trigger == Trigger::File => {
                // Mid-rename: the rename that completes the file raises another event.
                tracing::debug!(file = %path.display(), error = %e, "config file not readable yet");
                return Ok(self.stats.version());
            }
            Err(e) => return Err(self.reject(trigger, None, format!("cannot read: {e}"), &path)),
        };
        let fp = fingerprint(&bytes);
        if trigger == Trigger::File && (fp == self.current || Some(fp) == self.last_bad) {
            return Ok(self.stats.version());
        }
        let config = std::str::from_utf8(&bytes)
            .map_err(|e| crate::config::ConfigError::new("", format!("not UTF-8: {e}")))
            .and_then(Config::from_yaml);
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                self.last_bad = Some(fp);
                let line = e.line;
                return Err(self.reject(trigger, line, e.to_string(), &path));
            }
        };
        if config.admin != self.server.config().admin {
            tracing::warn!(file = %path.display(), "the admin: block changed; its listeners move only on restart");
        }
        if let Err(e) = self.server.swap(config) {
            self.last_bad = Some(fp);
            return Err(self.reject(trigger, None, e.to_string(), &path));
        }
        self.current = fp;
        self.last_bad = None;
        self.text = String::from_utf8_lossy(&bytes).into_owned();
        self.stats.applied.fetch_add(1, Ordering::Relaxed);
        let version = self.stats.version.fetch_add(1, Ordering::Relaxed) + 1;
        self.last = Some(LastReload {
            trigger,
            error: None,
        });
        tracing::info!(
            trigger = trigger.as_str(),
            file = %path.display(),
            version,
            listeners = self.server.config().listeners.len(),
            clusters = self.server.config().clusters.len(),
            "config reloaded"
        );
        Ok(version)
    }

    fn reject(
        &mut self,
        trigger: Trigger,
        line: Option<usize>,
        error: String,
        path: &std::path::Path,
    ) -> String {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let version = self.stats.version();
        tracing::error!(
            trigger = trigger.as_str(),
            file = %path.display(),
            line,
            error = %error,
            version,
            "config reload rejected; the running config stays in force"
        );
        let msg = format!("{}: {error}", path.display());
        self.last = Some(LastReload {
            trigger,
            error: Some(msg.clone()),
        });
        msg
    }
}

/// FNV-1a over the file bytes: tells a changed file from a touched one.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
