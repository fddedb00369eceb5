//! The only `unsafe` in Shardcar: raw syscalls the standard library, socket2 and monoio do not
//! wrap — `splice(2)`, pipe creation and sizing, `SO_LINGER`/`shutdown` on a borrowed fd, and
//! `SO_ORIGINAL_DST`, `SO_ERROR` and `setns` (for the namespace tests). Every block states the invariant it relies on.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A non-blocking, close-on-exec pipe: `(read end, write end)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid, writable array of two c_ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets a pipe's capacity (`F_SETPIPE_SZ`); returns the size the kernel chose.
pub fn set_pipe_size(fd: &OwnedFd, bytes: usize) -> io::Result<usize> {
    // SAFETY: fcntl on an fd we own with an integer argument; no memory is passed.
    let r = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes as libc::c_int) })?;
    Ok(r as usize)
}

/// One non-blocking `splice(2)` of up to `len` bytes from `from` to `to` (one must be a pipe).
/// `Ok(0)` means end of file on `from`; `WouldBlock` means try again after readiness.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets are allowed for pipes and sockets; the fds are borrowed from objects
    // the caller keeps alive for the duration of the call.
    let r = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `shutdown(fd, SHUT_WR)`: send FIN, keep reading.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on a borrowed fd, no memory involved.
    cvt(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(drop)
}

/// Arms `SO_LINGER {on, 0}` so that the final close sends RST instead of FIN.
pub fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a valid `linger` that outlives the call; the length matches its type.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            size_of::<libc::linger>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Sets `O_NONBLOCK` on a borrowed fd (splice needs it on the sockets, not just the pipe).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a borrowed fd; no memory involved.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}

/// Reads and clears a socket's pending error (`SO_ERROR`): how a non-blocking `connect` ended.
pub fn take_socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` is a writable c_int and `len` is its size; the kernel writes at most `len`
    // bytes. The fd is borrowed from a socket the caller keeps open.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// Moves the calling thread into the network namespace `ns` refers to (e.g. an open
/// `/run/netns/NAME`). Only this thread moves; sockets it creates afterwards live in `ns`.
/// Used by the namespace tests; needs `CAP_SYS_ADMIN`.
pub fn enter_netns(ns: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: setns takes an fd and a flag; `ns` is borrowed and open for the call. Changing the
    // network namespace of the calling thread does not invalidate any memory.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

const SO_ORIGINAL_DST: libc::c_int = 80; // linux/netfilter_ipv4.h
const IP6T_SO_ORIGINAL_DST: libc::c_int = 80; // linux/netfilter_ipv6/ip6_tables.h

/// The destination a connection had before iptables REDIRECT/DNAT rewrote it.
pub fn original_dst(fd: RawFd, ipv6: bool) -> io::Result<SocketAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let (level, opt) = if ipv6 {
        (libc::SOL_IPV6, IP6T_SO_ORIGINAL_DST)
    } else {
        (libc::SOL_IP, SO_ORIGINAL_DST)
    };
    // SAFETY: `storage` is large enough for any socket address and `len` says so; the kernel
    // writes at most `len` bytes.
    cvt(unsafe { libc::getsockopt(fd, level, opt, storage.as_mut_ptr().cast(), &mut len) })?;
    // SAFETY: getsockopt succeeded and zero-initialised the rest, so the storage is initialised.
    let storage = unsafe { storage.assume_init() };
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it.
            let a: libc::sockaddr_in = unsafe { std::ptr::read(&storage as *const _ as *const _) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it.
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read(&storage as *const _ as *const _) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        f => Err(io::Error::other(format!(
            "SO_ORIGINAL_DST returned address family {f}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn splice_moves_bytes_socket_to_pipe_to_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let (r, w) = pipe().unwrap();
        assert!(set_pipe_size(&w, 1 << 16).unwrap() >= 1 << 16);
        set_nonblocking(b.as_raw_fd()).unwrap();
        assert_eq!(
            splice(b.as_raw_fd(), w.as_raw_fd(), 100)
                .unwrap_err()
                .kind(),
            io::ErrorKind::WouldBlock
        );
        a.write_all(b"hello").unwrap();
        let mut n = 0;
        while n == 0 {
            n = splice(b.as_raw_fd(), w.as_raw_fd(), 100).unwrap_or(0);
        }
        assert_eq!(n, 5);
        assert_eq!(splice(r.as_raw_fd(), b.as_raw_fd(), n).unwrap(), 5);
        let mut buf = [0u8; 5];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[test]
    fn original_dst_without_nat_is_an_error_or_local_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        // Without a conntrack entry the kernel answers ENOENT; with one (nf_conntrack loaded)
        // the original destination equals the local address.
        match original_dst(b.as_raw_fd(), false) {
            Ok(addr) => assert_eq!(addr, l.local_addr().unwrap()),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
        }
    }
}
