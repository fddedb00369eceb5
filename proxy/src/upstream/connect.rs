//! The one function every upstream connect goes through, L4 and HTTP alike: it applies the
//! cluster's connect timeout and the config's `SO_MARK`, and sets `TCP_NODELAY`; for a cluster
//! with a `tls:` block, [`connect_stream`] then runs the TLS client handshake (SNI, client
//! certificate, expected SPIFFE identities checked by the verifier) within the same timeout. Without a mark this is monoio's io_uring connect. With `upstream_mark` set, the socket
//! is made with socket2 so `SO_MARK` is on it before the SYN leaves (the interception rules skip
//! marked packets, so the proxy's own connections are never captured again), then connected
//! non-blocking and awaited through a readiness poll.
//!
//! Cost: the marked path adds a `setsockopt` and a `getsockopt(SO_ERROR)` per connection and
//! replaces the io_uring connect op by `connect(2)` + a poll op; it is only taken when a mark
//! is configured.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

use super::UpStream;
use crate::cluster::Balancer;
use crate::ctx::UpstreamAddr;
use crate::sys;
use crate::tls_io::{CancelIo, ClientTls, TlsIo};

/// How to connect upstream: from the cluster (timeout) and the config (mark).
#[derive(Debug, Clone, Copy)]
pub struct ConnectOpts {
    pub timeout: Duration,
    pub mark: Option<u32>,
}

/// Why an upstream connect failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("tls: {0}")]
    Tls(crate::tls::HandshakeError),
}

/// Connects to `addr` as `opts` say. Every upstream connection of the proxy is made here.
pub async fn connect(addr: UpstreamAddr, opts: ConnectOpts) -> Result<TcpStream, ConnectError> {
    match monoio::time::timeout(opts.timeout, connect_marked(addr.0, opts.mark)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(ConnectError::Io(e)),
        Err(_) => Err(ConnectError::Timeout(opts.timeout)),
    }
}

/// Connects to endpoint `addr` of `balancer`'s cluster: TCP as [`connect`] does, then TLS
/// when the cluster has a `tls:` block. HTTP pools (h1 and h2) connect here.
pub async fn connect_stream(
    balancer: &Balancer,
    addr: UpstreamAddr,
    mark: Option<u32>,
) -> Result<UpStream, ConnectError> {
    let cluster = balancer.cluster();
    let opts = ConnectOpts {
        timeout: cluster.connect_timeout,
        mark,
    };
    let tcp = connect(addr, opts).await?;
    if cluster.tls.is_none() {
        return Ok(UpStream::Tcp(tcp));
    }
    tls_client(balancer, addr, tcp)
        .await
        .map(|s| UpStream::Tls(Box::new(s)))
}

/// The TLS client handshake on a connected socket to endpoint `addr` of `balancer`'s cluster
/// (which has a `tls:` block), within the cluster's connect timeout; logged and counted.
pub async fn tls_client(
    balancer: &Balancer,
    addr: UpstreamAddr,
    tcp: TcpStream,
) -> Result<ClientTls, ConnectError> {
    let cluster = balancer.cluster();
    let timeout = cluster.connect_timeout;
    let (Some(tls), Some(live)) = (&cluster.tls, &balancer.tls) else {
        return Err(ConnectError::Io(io::Error::other(
            "the cluster has no tls: block",
        )));
    };
    let Some(config) = live.get() else {
        return Err(ConnectError::Io(io::Error::other(
            "no TLS client config loaded for the cluster",
        )));
    };
    let fd = tcp.as_raw_fd();
    let io = CancelIo::new(tcp);
    let slot = io.slot();
    let name = tls.settings.server_name(addr.0.ip());
    let handshake = crate::tls::connect(config, name, io);
    match monoio::time::timeout(timeout, handshake).await {
        Ok(Ok((s, facts))) => {
            crate::tls::stats::upstream_ok();
            tracing::debug!(
                cluster = %cluster.name,
                endpoint = %addr,
                alpn = facts.alpn_str().unwrap_or("-"),
                peer_id = %facts.peer.as_ref().map_or("-".to_string(), |p| p.to_string()),
                "upstream tls handshake done"
            );
            Ok(TlsIo::new(s, slot, fd))
        }
        Ok(Err(e)) => {
            crate::tls::stats::upstream_failed(e.label());
            crate::warn_limited!(
                "upstream tls handshake failed",
                cluster = %cluster.name,
                endpoint = %addr,
                reason = e.label(),
                error = %e,
                "upstream tls handshake failed"
            );
            Err(ConnectError::Tls(e))
        }
        Err(_) => {
            crate::tls::stats::upstream_failed("timeout");
            Err(ConnectError::Timeout(timeout))
        }
    }
}

/// Connects to `addr`, with `SO_MARK = mark` when given (needs `CAP_NET_ADMIN`).
async fn connect_marked(addr: SocketAddr, mark: Option<u32>) -> io::Result<TcpStream> {
    let Some(mark) = mark else {
        return TcpStream::connect_addr(addr).await;
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket
        .set_mark(mark)
        .map_err(|e| io::Error::new(e.kind(), format!("SO_MARK {mark:#x}: {e}")))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let std: std::net::TcpStream = socket.into();
    let stream = TcpStream::from_std(std)?;
    stream.writable(false).await?;
    match sys::take_socket_error(stream.as_raw_fd())? {
        Some(e) => Err(e),
        None => Ok(stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncWriteRentExt;
    use std::io::Read;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Setting SO_MARK needs CAP_NET_ADMIN; the namespace tests prove the mark's effect (the
    /// proxy's marked upstream connections are not captured again).
    fn can_mark() -> bool {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_mark(1).is_ok()
    }

    #[test]
    fn marked_connect_carries_bytes() {
        if !can_mark() {
            eprintln!("SKIPPED marked_connect_carries_bytes: SO_MARK needs CAP_NET_ADMIN");
            return;
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        block_on(async move {
            let mut s = connect_marked(addr, Some(0x539)).await.unwrap();
            let (r, _) = s.write_all(b"ping").await;
            r.unwrap();
        });
        let mut buf = [0u8; 4];
        l.accept().unwrap().0.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn connect_to_a_closed_port_is_refused_with_and_without_mark() {
        // Bound but not listening, held for the whole test: refused, and no one else's port.
        let dead = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        dead.bind(&any.into()).unwrap();
        let addr = dead.local_addr().unwrap().as_socket().unwrap();
        let marks: &[Option<u32>] = if can_mark() {
            &[None, Some(0x539)]
        } else {
            &[None]
        };
        for &mark in marks {
            let e = block_on(connect_marked(addr, mark)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "mark {mark:?}");
        }
    }
}
