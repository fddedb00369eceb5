//! The only `unsafe` in Shardcar: raw syscalls the standard library, socket2 and monoio do not
//! wrap — `splice(2)`, pipe creation and sizing, `SO_LINGER`/`shutdown` on a borrowed fd, and
//! `SO_ORIGINAL_DST`, `SO_ERROR`, `statfs` (bpffs/cgroup2 checks), two `bpf(2)` commands (eBPF interception), `setns` (for the namespace tests), `kill` (SIGTERM to the process a binary upgrade replaces) and mimalloc's `mi_collect` (returning pages idle connections freed). Every block states the invariant it relies on.
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

// Links mimalloc's static library into every binary of the crate, tests too.
use mimalloc as _;

extern "C" {
    /// mimalloc's collect (in the `libmimalloc-sys` static library the allocator links).
    fn mi_collect(force: bool);
}

/// Returns this thread's free allocator pages to the kernel now (mimalloc `mi_collect(true)`):
/// freed pages are otherwise purged only when the thread allocates again after the purge
/// delay, which an idle shard does not. Used by the sweeper after it parks connections.
pub fn release_free_pages() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time; it
    // only touches the calling thread's heap and the allocator's own arenas.
    unsafe { mi_collect(true) }
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

/// What a non-blocking peek at an idle pooled connection saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Nothing to read: the connection is open and quiet, fit for a new request.
    Quiet,
    /// The peer sent FIN or the socket has an error.
    Closed,
    /// Bytes arrived while nothing was asked: the connection is out of step.
    StrayData,
}

/// Peeks one byte without blocking or consuming it (`recv(MSG_PEEK | MSG_DONTWAIT)`).
pub fn peek_idle(fd: RawFd) -> Peek {
    let mut byte = 0u8;
    // SAFETY: `byte` is a writable one-byte buffer and the length passed is 1; MSG_PEEK leaves
    // the socket's data in place; the fd is borrowed from a socket the caller keeps open.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Peek::Closed,
        n if n > 0 => Peek::StrayData,
        _ => match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => Peek::Quiet,
            _ => Peek::Closed,
        },
    }
}

/// Copies up to `buf.len()` waiting bytes without consuming them and without blocking
/// (`recv(MSG_PEEK | MSG_DONTWAIT)`): `Ok(0)` is end of file, `WouldBlock` means nothing yet.
/// PERMISSIVE TLS listeners sniff the ClientHello this way, so a plaintext connection keeps
/// its untouched socket (splice, upgrades).
pub fn peek(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes for the duration of the
    // call; MSG_PEEK leaves the data in the socket; the caller keeps the fd open.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Moves the calling thread into the network namespace `ns` refers to (e.g. an open
/// `/run/netns/NAME`). Only this thread moves; sockets it creates afterwards live in `ns`.
/// Used by the namespace tests; needs `CAP_SYS_ADMIN`.
pub fn enter_netns(ns: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: setns takes an fd and a flag; `ns` is borrowed and open for the call. Changing the
    // network namespace of the calling thread does not invalidate any memory.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

/// Sends `SIGTERM` to process `pid` (a binary upgrade retiring the old shardcar).
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))?;
    // SAFETY: kill takes a positive pid (one process, checked above, never a group) and a
    // signal number; no memory is involved.
    cvt(unsafe { libc::kill(pid, libc::SIGTERM) }).map(drop)
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

/// The filesystem type (`f_type`, e.g. `BPF_FS_MAGIC`, `CGROUP2_SUPER_MAGIC`) of the filesystem
/// holding `path` (statfs(2)); eBPF interception checks bpffs and cgroup v2 with it.
pub fn fs_magic(path: &std::path::Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let mut st = MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs for the call's duration.
    cvt(unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statfs succeeded, so it filled the structure (which was zeroed besides).
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // `f_type` is i64 on x86_64 but narrower elsewhere
    Ok(st.f_type as i64)
}

/// `bpf(2)` with a zeroed 128-byte `union bpf_attr` whose leading words are `words`.
fn bpf_cmd(cmd: libc::c_int, words: &[u32]) -> io::Result<libc::c_long> {
    let mut attr = [0u32; 32];
    attr[..words.len()].copy_from_slice(words);
    // SAFETY: `attr` is a valid, initialised 128-byte buffer for the call's duration, which is
    // large enough for every command used here; the kernel reads at most `size` bytes and
    // requires the bytes it does not know to be zero, which they are.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            size_of::<[u32; 32]>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `BPF_LINK_CREATE`: attaches program `prog` to `target` (a cgroup directory fd) for
/// `attach_type`, returning the link. (aya 0.14 cannot hand out a cgroup/getsockopt link as a
/// pinnable fd link, so eBPF interception creates that one here.)
pub fn bpf_link_create(
    prog: std::os::fd::BorrowedFd<'_>,
    target: std::os::fd::BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    const BPF_LINK_CREATE: libc::c_int = 28;
    let fd = bpf_cmd(
        BPF_LINK_CREATE,
        &[
            prog.as_raw_fd() as u32,
            target.as_raw_fd() as u32,
            attach_type,
            0,
        ],
    )?;
    // SAFETY: BPF_LINK_CREATE returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `BPF_OBJ_PIN`: pins the BPF object behind `fd` at `path` on a bpffs.
pub fn bpf_obj_pin(fd: std::os::fd::BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    const BPF_OBJ_PIN: libc::c_int = 6;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let ptr = c.as_ptr() as u64;
    // `pathname` is a u64 at offset 0, `bpf_fd` a u32 at offset 8; `c` outlives the call.
    bpf_cmd(
        BPF_OBJ_PIN,
        &[ptr as u32, (ptr >> 32) as u32, fd.as_raw_fd() as u32],
    )
    .map(drop)
}

/// The soft limit on open file descriptors (`RLIMIT_NOFILE`).
pub fn fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok(lim.rlim_cur)
}

/// A shard's I/O buffers: fixed-size, page-aligned slots carved from one anonymous mapping.
///
/// Why not `Vec<u8>`: a heap buffer always leaves its first page resident (the allocator's chunk
/// header lives there and neighbouring allocations keep it in use), so an idle connection that
/// had freed its buffers still cost 8.8 KB of RSS. Slots here share no page with anything:
/// a released slot beyond the small hot set is `MADV_DONTNEED`ed and costs nothing until reused.
/// The mapping is `MAP_NORESERVE`, so unused slots are address space only.
#[derive(Debug)]
pub struct BufArena {
    base: std::ptr::NonNull<u8>,
    slot_size: usize,
    slots: u32,
    fresh: std::cell::Cell<u32>,
    hot: std::cell::RefCell<Vec<u32>>,
    cold: std::cell::RefCell<Vec<u32>>,
    hot_max: usize,
}

impl BufArena {
    /// Maps `slots` slots of `slot_size` bytes (rounded up to whole pages); at most `hot_max`
    /// released slots stay resident for fast reuse.
    pub fn new(slot_size: usize, slots: u32, hot_max: usize) -> io::Result<std::rc::Rc<BufArena>> {
        let slot_size = slot_size.next_multiple_of(4096);
        let len = slot_size * slots as usize;
        // SAFETY: an anonymous private mapping at a kernel-chosen address; no existing memory is
        // affected. The result is checked for MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = std::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(std::rc::Rc::new(BufArena {
            base,
            slot_size,
            slots,
            fresh: std::cell::Cell::new(0),
            hot: Default::default(),
            cold: Default::default(),
            hot_max,
        }))
    }

    /// A free slot, or `None` when every slot is in use.
    pub fn take(self: &std::rc::Rc<Self>) -> Option<ArenaBuf> {
        let slot = self
            .hot
            .borrow_mut()
            .pop()
            .or_else(|| self.cold.borrow_mut().pop())
            .or_else(|| {
                let f = self.fresh.get();
                (f < self.slots).then(|| {
                    self.fresh.set(f + 1);
                    f
                })
            })?;
        Some(ArenaBuf {
            arena: self.clone(),
            slot,
            init: 0,
        })
    }

    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        // SAFETY: slot < self.slots, so the offset stays inside the mapping.
        unsafe { self.base.as_ptr().add(slot as usize * self.slot_size) }
    }

    fn release(&self, slot: u32) {
        let mut hot = self.hot.borrow_mut();
        if hot.len() < self.hot_max {
            hot.push(slot);
            return;
        }
        // SAFETY: the range is exactly one slot inside our mapping and no ArenaBuf refers to it
        // any more (this is called from the only owner's Drop). MADV_DONTNEED on private
        // anonymous memory just drops the pages; later accesses see zeroes.
        unsafe {
            libc::madvise(
                self.slot_ptr(slot).cast(),
                self.slot_size,
                libc::MADV_DONTNEED,
            );
        }
        self.cold.borrow_mut().push(slot);
    }

    /// Slots handed out and not yet returned.
    pub fn in_use(&self) -> usize {
        self.fresh.get() as usize - self.hot.borrow().len() - self.cold.borrow().len()
    }
}

impl Drop for BufArena {
    fn drop(&mut self) {
        // SAFETY: every ArenaBuf holds an Rc to the arena, so none is alive now; the range is the
        // mapping created in `new`.
        unsafe {
            libc::munmap(
                self.base.as_ptr().cast(),
                self.slot_size * self.slots as usize,
            );
        }
    }
}

/// One slot of a [`BufArena`], usable as a monoio owned buffer. Returns itself on drop.
#[derive(Debug)]
pub struct ArenaBuf {
    arena: std::rc::Rc<BufArena>,
    slot: u32,
    init: usize,
}

impl ArenaBuf {
    pub fn clear(&mut self) {
        self.init = 0;
    }
    pub fn capacity(&self) -> usize {
        self.arena.slot_size
    }
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the slot is owned by this buffer alone and its first `init` bytes were written
        // (by the kernel through IoBufMut, which reports exactly what it wrote).
        unsafe { std::slice::from_raw_parts(self.arena.slot_ptr(self.slot), self.init) }
    }
}

impl Drop for ArenaBuf {
    fn drop(&mut self) {
        self.arena.release(self.slot);
    }
}

// SAFETY: the pointer is stable for the buffer's lifetime (the mapping outlives it through the
// Rc) and `init` never exceeds the slot size.
unsafe impl monoio::buf::IoBuf for ArenaBuf {
    fn read_ptr(&self) -> *const u8 {
        self.arena.slot_ptr(self.slot)
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
}

// SAFETY: as above; `set_init` is only called by monoio with the byte count the kernel wrote,
// which is bounded by `bytes_total`.
unsafe impl monoio::buf::IoBufMut for ArenaBuf {
    fn write_ptr(&mut self) -> *mut u8 {
        self.arena.slot_ptr(self.slot)
    }
    fn bytes_total(&mut self) -> usize {
        self.arena.slot_size
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = pos.min(self.arena.slot_size);
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

#[cfg(test)]
mod arena_tests {
    use super::*;
    use monoio::buf::{IoBuf, IoBufMut};

    #[test]
    fn slots_are_reused_and_bounded() {
        let a = BufArena::new(10_000, 3, 1).unwrap();
        let mut b1 = a.take().unwrap();
        assert_eq!(b1.capacity(), 12288);
        assert_eq!(b1.read_ptr() as usize % 4096, 0);
        // SAFETY (test): write within the slot, then record it.
        unsafe {
            std::ptr::write_bytes(b1.write_ptr(), 7, 5);
            b1.set_init(5);
        }
        assert_eq!(b1.as_slice(), &[7; 5]);
        let b2 = a.take().unwrap();
        let b3 = a.take().unwrap();
        assert!(a.take().is_none(), "only three slots");
        assert_eq!(a.in_use(), 3);
        drop((b1, b2, b3));
        assert_eq!(a.in_use(), 0);
        assert!(a.take().is_some());
    }
}

// SAFETY: `Split` promises that reads and writes may run concurrently on split halves.
// `CancelIo` forwards reads and writes to the inner socket, which is `Split` itself; the only
// other state is the cancel slot, which only the read side touches and never across an await.
unsafe impl<S: monoio::io::Split> monoio::io::Split for crate::tls_io::CancelIo<S> {}

// SAFETY: as above: `TlsIo` forwards to a monoio-rustls stream that is `Split` (monoio-rustls
// asserts it for streams over a `Split` socket); the cancel slot is used by reads only.
unsafe impl<T: monoio::io::Split> monoio::io::Split for crate::tls_io::TlsIo<T> {}
