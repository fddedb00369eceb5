//! The test origin: fixed-size responses with a configurable delay (fixed, or a one-off stall
//! at time T after start), HTTP/1.1 and h2c (detected from the client preface), optional TLS
//! (ALPN h2/http1.1), and an optional "reset every Nth request" fault. Thread-per-core like
//! everything else: one pinned monoio runtime and one SO_REUSEPORT listener per shard.
//!
//! In-process use (tests, the bench harness):
//! ```no_run
//! let origin = shardload::origin::Origin::start(shardload::origin::OriginOptions::default()).unwrap();
//! let url = format!("http://{}/", origin.addr());
//! drop(origin); // or origin.shutdown(): stops the shards and joins them
//! ```

mod h1;
mod h2;
mod rewind;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use socket2::{Domain, Protocol, Socket, Type};

use crate::timer::PreciseTimer;

/// How the origin behaves.
#[derive(Clone)]
pub struct OriginOptions {
    /// Where to listen; port 0 picks a free port (shared by all shards via SO_REUSEPORT).
    pub bind: SocketAddr,
    pub shards: usize,
    /// Response body bytes.
    pub body_size: usize,
    /// Added before every response.
    pub delay: Duration,
    /// `(at, length)`: responses due in `[start+at, start+at+length)` are held until its end.
    pub stall: Option<(Duration, Duration)>,
    /// Reset the connection (RST, no response) instead of answering every Nth request per
    /// connection.
    pub reset_every: Option<u64>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            bind: "127.0.0.1:0".parse().expect("literal"),
            shards: 1,
            body_size: 64,
            delay: Duration::ZERO,
            stall: None,
            reset_every: None,
            tls: None,
        }
    }
}

/// What a connection handler needs; one per shard.
pub(crate) struct Behaviour {
    pub timer: PreciseTimer,
    pub delay: Duration,
    pub stall: Option<(Instant, Instant)>,
    pub reset_every: Option<u64>,
    pub body: Bytes,
    pub h1_response: Bytes,
}

impl Behaviour {
    /// Waits as configured before a response.
    pub async fn wait(&self) {
        if !self.delay.is_zero() {
            self.timer.sleep(self.delay).await;
        }
        if let Some((from, to)) = self.stall {
            let now = Instant::now();
            if now >= from && now < to {
                self.timer.sleep_until(to).await;
            }
        }
    }

    /// Whether request number `n` (1-based, per connection) must be answered with a reset.
    pub fn resets(&self, n: u64) -> bool {
        self.reset_every
            .is_some_and(|k| k > 0 && n.is_multiple_of(k))
    }
}

/// A running origin. Dropping it stops it.
pub struct Origin {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

fn listener(addr: SocketAddr, linger0: bool) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nodelay(true)?;
    if linger0 {
        // Accepted sockets inherit SO_LINGER: closing them then sends RST.
        s.set_linger(Some(Duration::ZERO))?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl Origin {
    /// Binds one listener per shard and starts the shards.
    pub fn start(opts: OriginOptions) -> std::io::Result<Origin> {
        let linger0 = opts.reset_every.is_some();
        let first = listener(opts.bind, linger0)?;
        let addr = first.local_addr()?;
        let mut ls = vec![first];
        for _ in 1..opts.shards.max(1) {
            ls.push(listener(addr, linger0)?);
        }
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let start = Instant::now();
        let opts = Arc::new(opts);
        let payloads = ls
            .into_iter()
            .map(|l| (l, stop_rx.clone(), opts.clone()))
            .collect();
        let handles = wire::spawn_shards(
            payloads,
            "shardorigin",
            move |_, (l, rx, o), _| async move { serve_shard(l, rx, o, start).await },
        )?;
        Ok(Origin {
            addr,
            stop,
            handles,
        })
    }

    /// The bound address (all shards share it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops every connection and joins the shard threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Blocks until the shards exit (for the binary).
    pub fn wait(mut self) {
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

async fn serve_shard(
    l: std::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    o: Arc<OriginOptions>,
    start: Instant,
) {
    let listener = match monoio::net::TcpListener::from_std(l) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "origin listener");
            return;
        }
    };
    let timer = match PreciseTimer::start() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "origin timer");
            return;
        }
    };
    let body = Bytes::from(vec![b'x'; o.body_size]);
    let mut head = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\n\r\n",
        o.body_size
    )
    .into_bytes();
    head.extend_from_slice(&body);
    let b = std::rc::Rc::new(Behaviour {
        timer,
        delay: o.delay,
        stall: o.stall.map(|(at, len)| (start + at, start + at + len)),
        reset_every: o.reset_every,
        body,
        h1_response: Bytes::from(head),
    });
    let acceptor = o.tls.clone().map(monoio_rustls::TlsAcceptor::from);
    loop {
        monoio::select! {
            r = listener.accept() => {
                let Ok((s, _)) = r else { continue };
                let _ = s.set_nodelay(true);
                let b = b.clone();
                match &acceptor {
                    None => { monoio::spawn(serve_conn(s, b)); }
                    Some(a) => {
                        let a = a.clone();
                        monoio::spawn(async move {
                            if let Ok(t) = a.accept(s).await {
                                serve_conn(t, b).await;
                            }
                        });
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    // monoio closes fds through the ring: let it submit the close before the runtime goes away,
    // or the port would keep accepting after shutdown.
    drop(listener);
    monoio::time::sleep(Duration::from_millis(2)).await;
}

/// Serves one connection: HTTP/1.1, or h2 when the first bytes are the h2 client preface.
async fn serve_conn<S>(mut s: S, b: std::rc::Rc<Behaviour>)
where
    S: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    let buf = Vec::with_capacity(16 * 1024);
    let (res, buf) = s.read(buf).await;
    match res {
        Ok(n) if n > 0 => {}
        _ => return,
    }
    if h2::is_preface_start(&buf) {
        h2::serve(s, Bytes::from(buf), b).await;
    } else {
        h1::serve(s, buf, b).await;
    }
}
