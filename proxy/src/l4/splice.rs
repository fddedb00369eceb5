//! Splice mode: zero-copy socket → pipe → socket.
//!
//! `IORING_OP_SPLICE` on an idle socket parks an io-wq kernel thread per direction (measured: two
//! `iou-wrk` threads per idle connection, DESIGN.md §3b). Instead we wait for readiness with
//! `IORING_OP_POLL_ADD` (monoio's `readable`/`writable`) and then call `splice(2)` with
//! `SPLICE_F_NONBLOCK | SPLICE_F_MOVE`, which never blocks and creates no kernel threads. The
//! integration test `splice_idle_connections_create_no_kernel_threads` keeps it that way.

use std::io;
use std::os::fd::AsRawFd;

use monoio::net::TcpStream;

use super::pipe_pool::{Pipe, PIPE_CAPACITY};
use crate::ctx::ConnWatch;
use crate::sys;

/// Moves bytes `from` → `to` through `pipe` until end of file, then half-closes `to`.
/// On success the pipe is empty and may be pooled again.
pub async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    watch: &ConnWatch,
) -> io::Result<u64> {
    let (from_fd, to_fd) = (from.as_raw_fd(), to.as_raw_fd());
    let mut total = 0u64;
    loop {
        let n = match sys::splice(from_fd, pipe.write_fd(), PIPE_CAPACITY) {
            Ok(0) => {
                sys::shutdown_write(to_fd)?;
                return Ok(total);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                from.readable(false).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        watch.touch();
        let mut left = n;
        while left > 0 {
            match sys::splice(pipe.read_fd(), to_fd, left) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => to.writable(false).await?,
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
    }
}
