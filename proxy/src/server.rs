//! The control side: binds every listener for every shard, starts the shard threads, and stops
//! them. Tests use [`Server`] in-process; `main` wraps it with signal handling.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::config::Config;
use crate::listener;
use crate::shard;

/// A running proxy.
#[derive(Debug)]
pub struct Server {
    addrs: Vec<(String, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds all listeners (an ephemeral port 0 is resolved once per listener) and starts
    /// `shards` shard threads.
    pub fn start(config: Config, shards: usize) -> io::Result<Server> {
        let shards = shards.max(1);
        let config = Arc::new(config);
        let mut per_shard: Vec<Vec<std::net::TcpListener>> =
            (0..shards).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        for l in &config.listeners {
            let group =
                listener::bind_group(l.address, l.backlog, l.transparent, shards).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("listener {:?} on {}: {e}", l.name, l.address),
                    )
                })?;
            addrs.push((l.name.clone(), group[0].local_addr()?));
            for (i, sock) in group.into_iter().enumerate() {
                per_shard[i].push(sock);
            }
        }
        let (tx, rx) = watch::channel(false);
        let threads = wire::spawn_shards(per_shard, "shard", move |id, sockets, _mode| {
            shard::run(id, config.clone(), sockets, rx.clone())
        })?;
        Ok(Server {
            addrs,
            shutdown: tx,
            threads,
        })
    }

    /// The bound address of the listener called `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// Stops accepting, drains open connections (up to `drain_timeout`), and joins the shards.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}
