//! Per-shard upstream connection pools for HTTP: idle keepalive connections per endpoint, LIFO
//! (the most recently used connection is the one most likely still open and warm).
//!
//! A pooled connection that the upstream closed while idle is only discovered when it is used;
//! the HTTP layer then retries once on a fresh connection if nothing of the response arrived.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use monoio::net::TcpStream;

use crate::config::PoolSettings;

/// An upstream connection with its use count.
#[derive(Debug)]
pub struct PooledConn {
    pub stream: TcpStream,
    pub requests: u32,
    pub endpoint: usize,
    /// Came from the pool (not freshly connected) for the current request.
    pub reused: bool,
    idle_since: Instant,
}

impl PooledConn {
    pub fn fresh(stream: TcpStream, endpoint: usize) -> PooledConn {
        PooledConn {
            stream,
            requests: 0,
            endpoint,
            reused: false,
            idle_since: Instant::now(),
        }
    }
}

/// One cluster's pools on one shard.
#[derive(Debug)]
pub struct Pools {
    settings: PoolSettings,
    idle: Box<[RefCell<Vec<PooledConn>>]>,
    /// Requests that went out on a reused connection / on a new one.
    pub reused: Cell<u64>,
    pub connected: Cell<u64>,
}

impl Pools {
    pub fn new(settings: PoolSettings, endpoints: usize) -> Pools {
        Pools {
            settings,
            idle: (0..endpoints).map(|_| RefCell::new(Vec::new())).collect(),
            reused: Cell::new(0),
            connected: Cell::new(0),
        }
    }

    /// An idle connection to `endpoint` that has not outlived the idle timeout.
    pub fn take(&self, endpoint: usize) -> Option<PooledConn> {
        let mut idle = self.idle.get(endpoint)?.borrow_mut();
        while let Some(mut c) = idle.pop() {
            if c.idle_since.elapsed() < self.settings.idle_timeout {
                c.reused = true;
                self.reused.set(self.reused.get() + 1);
                return Some(c);
            }
        }
        None
    }

    pub fn note_connected(&self) {
        self.connected.set(self.connected.get() + 1);
    }

    /// Returns a connection whose last exchange completed cleanly.
    pub fn put(&self, mut c: PooledConn) {
        c.requests += 1;
        if self
            .settings
            .max_requests_per_connection
            .is_some_and(|max| c.requests >= max)
        {
            return;
        }
        let Some(slot) = self.idle.get(c.endpoint) else {
            return;
        };
        let mut idle = slot.borrow_mut();
        if idle.len() >= self.settings.max_idle_per_endpoint {
            return;
        }
        c.idle_since = Instant::now();
        idle.push(c);
    }

    pub fn idle_count(&self, endpoint: usize) -> usize {
        self.idle.get(endpoint).map_or(0, |v| v.borrow().len())
    }
}
