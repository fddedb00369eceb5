//! The config file watch: inotify (the `notify` crate) on the file's directory, so editors'
//! write-then-rename and Kubernetes ConfigMap `..data` symlink swaps are seen, debounced
//! (100 ms of quiet, at most 500 ms) into one [`Trigger::File`] reload request. The control
//! thread ignores a change whose bytes equal the config in force.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::{ControlHandle, Trigger};

const QUIET: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(500);

enum Msg {
    Changed,
    Stop,
}

/// The running watch; stops when dropped.
pub struct ConfigWatch {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigWatch")
    }
}

/// Watches `file` and asks `control` to reload when it changes.
pub fn start(file: &Path, control: ControlHandle) -> notify::Result<ConfigWatch> {
    let name = file.file_name().map(|n| n.to_os_string());
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, rx) = mpsc::channel();
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        // Our own reads raise open/access events: only changes count, and only to our file
        // (or a `..data`-style symlink swap in its directory).
        let ours = ev.paths.iter().any(|p| {
            let n = p.file_name();
            n == name.as_deref() || n.is_some_and(|n| n.to_string_lossy().starts_with(".."))
        });
        if ours && !matches!(ev.kind, EventKind::Access(_)) {
            let _ = events.send(Msg::Changed);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let thread = std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || {
            let _watcher = watcher;
            while settled(&rx) {
                control.request_reload(Trigger::File);
            }
        })
        .map_err(notify::Error::io)?;
    Ok(ConfigWatch {
        tx,
        thread: Some(thread),
    })
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Blocks until a change has settled; false when asked to stop.
fn settled(rx: &mpsc::Receiver<Msg>) -> bool {
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
