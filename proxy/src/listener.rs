//! Listening sockets: one `SO_REUSEPORT` socket per shard per configured listener, so the kernel
//! spreads connections over shards with no shared accept queue.
//!
//! All sockets of a group are bound on the control thread before shards start. A configured port
//! of 0 is resolved once (the first bind picks the port, the rest reuse it), so every shard
//! listens on the same ephemeral port and tests can read the address back.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Listener;
use crate::ctx::{LocalAddr, OrigDst, OwnAddrs};
use crate::sys;

/// The destination an accepted connection meant before interception, for listeners that ask:
/// the accepted socket's local address when TPROXY delivered it (a `transparent` listener whose
/// local address is not one of our listeners), else `SO_ORIGINAL_DST` (REDIRECT). So one
/// listener with both flags works under either capture mode. `None` for other listeners.
pub fn original_destination(
    fd: RawFd,
    local: LocalAddr,
    listener: &Listener,
    own: &OwnAddrs,
) -> io::Result<Option<OrigDst>> {
    if listener.transparent && !own.is_own_listener(local.0) {
        return Ok(Some(OrigDst(local.0)));
    }
    if listener.original_dst {
        return sys::original_dst(fd, local.0.is_ipv6()).map(|a| Some(OrigDst(a)));
    }
    Ok(None)
}

/// Binds one listening socket with `SO_REUSEPORT` (and `IP_TRANSPARENT` when `transparent`).
pub fn bind_reuseport(
    addr: SocketAddr,
    backlog: u32,
    transparent: bool,
) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    if transparent {
        socket.set_ip_transparent(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

/// Binds `shards` sockets for one listener, all on the same (possibly ephemeral) port.
pub fn bind_group(
    addr: SocketAddr,
    backlog: u32,
    transparent: bool,
    shards: usize,
) -> io::Result<Vec<TcpListener>> {
    let first = bind_reuseport(addr, backlog, transparent)?;
    let bound = first.local_addr()?;
    let mut group = Vec::with_capacity(shards);
    group.push(first);
    for _ in 1..shards {
        group.push(bind_reuseport(bound, backlog, transparent)?);
    }
    Ok(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_port_is_shared_by_the_group() {
        let g = bind_group("127.0.0.1:0".parse().unwrap(), 16, false, 3).unwrap();
        let port = g[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(g.iter().all(|l| l.local_addr().unwrap().port() == port));
    }
}
