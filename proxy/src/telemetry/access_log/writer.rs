//! Writing access logs off the shards: one writer thread per distinct path, fed by a bounded
//! queue of batches ([`LogSender`]) that every shard's sinks share. A shard never waits: when
//! the queue is full (a slow disk, a pipe nobody reads) the batch is dropped and its lines are
//! counted on the shard (`access_log_dropped`). The file is opened by the writer thread (a FIFO
//! without a reader blocks only that thread), in append mode, and reopened after
//! [`reopen_all`] (SIGUSR1, for logrotate) before the next batch is written.
//!
//! [`LogWriters`] is the control side's registry, owned by the `Server`: activating a config
//! gives each of its sinks the queue of its path's writer, starting writers for new paths; a
//! writer whose path no config references any more ends once its last queue handle is gone.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::config::Config;

/// Batches queued per path before shards start dropping (each up to a shard's flush size).
pub const QUEUE_BATCHES: usize = 64;

/// What a writer thread receives.
#[derive(Debug)]
pub enum Msg {
    /// Whole lines, appended to the file as they are.
    Lines(Vec<u8>),
    /// Write what is queued before this and stop.
    Stop,
}

pub type LogSender = SyncSender<Msg>;

/// Bumped by [`reopen_all`]; each writer reopens its file when it sees a new value.
static REOPEN: AtomicU64 = AtomicU64::new(0);

/// Makes every writer reopen its file before it writes again (SIGUSR1).
pub fn reopen_all() {
    REOPEN.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct Writer {
    tx: LogSender,
    done: Receiver<()>,
}

/// The running writers, by path (control side).
#[derive(Debug, Default)]
pub struct LogWriters {
    by_path: HashMap<PathBuf, Writer>,
}

impl LogWriters {
    /// Gives every sink of `config` its path's queue, starting writers for new paths; drops the
    /// registry's hold on writers of paths `config` no longer has.
    pub fn activate(&mut self, config: &Config) -> std::io::Result<()> {
        let mut keep = Vec::new();
        for sink in config.listeners.iter().flat_map(|l| &l.access_log) {
            if !self.by_path.contains_key(&sink.path) {
                let w = spawn(&sink.path)?;
                self.by_path.insert(sink.path.clone(), w);
            }
            let w = &self.by_path[&sink.path];
            let _ = sink.live.set(w.tx.clone());
            keep.push(sink.path.clone());
        }
        self.by_path.retain(|p, _| keep.contains(p));
        Ok(())
    }

    /// Asks every writer to write what is queued and stop; waits up to `limit` in total (a
    /// writer stuck on a blocked sink is left behind).
    pub fn shutdown(self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for (_, w) in self.by_path {
            let mut msg = Msg::Stop;
            loop {
                match w.tx.try_send(msg) {
                    Ok(()) => break,
                    Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                        msg = m;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = w.done.recv_timeout(left);
        }
    }
}

fn spawn(path: &Path) -> std::io::Result<Writer> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
    let (done_tx, done) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            run(&p, &rx);
            let _ = done_tx.send(());
        })?;
    Ok(Writer { tx, done })
}

fn open(path: &Path) -> Option<std::fs::File> {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            crate::warn_limited!("access log open", file = %path.display(), error = %e, "cannot open access log; its lines are lost until it opens");
            None
        }
    }
}

fn run(path: &Path, rx: &Receiver<Msg>) {
    let mut file = None;
    let mut seen = REOPEN.load(Ordering::Relaxed);
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(200));
        let now = REOPEN.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            file = None;
            tracing::info!(file = %path.display(), "reopening access log");
        }
        match msg {
            Ok(Msg::Lines(b)) => {
                if file.is_none() {
                    file = open(path);
                }
                if let Some(f) = file.as_mut() {
                    if let Err(e) = f.write_all(&b) {
                        crate::warn_limited!("access log write", file = %path.display(), error = %e, "access log write failed; reopening");
                        file = None;
                    }
                }
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
