//! Copy mode: bytes move read → write → read through monoio in an owned buffer, so the data path
//! never allocates per read and copies nothing in user space beyond the kernel's recv/send.
//! [`one_way`] is one direction over any split stream (TLS tunnels); plain sockets use
//! [`super::relay`], built from the same pieces, which also frees the transfer while idle.
//!
//! Buffers are 16 KiB slots of the shard's [`BufArena`] (DESIGN.md §2: 4–64 KiB measured the
//! same on loopback). A connection keeps its buffer while traffic flows; once it has been quiet
//! for [`crate::ctx::watch::PARK_AFTER`] the shard sweeper cancels its reads, the slot goes back to
//! the arena (and, beyond a small hot set, its pages back to the kernel) and the read waits with
//! a [`PARKED_BUFFER`]-byte heap buffer instead. Measured with 2,000 idle proxied connections
//! that had each carried one request (release build, one shard): 12.7 KB of RSS per connection
//! with per-connection heap buffers and no parking, ~2 KB with parking (the README has the
//! current figure).

use std::io;
use std::rc::Rc;

use monoio::buf::IoBuf;
use monoio::io::{AsyncWriteRent, CancelableAsyncReadRent};

use crate::sys::ArenaBuf;

use crate::ctx::ConnWatch;
use crate::sys::BufArena;

/// Per-direction read window while traffic flows.
pub const COPY_BUFFER: usize = 16 * 1024;
/// Buffer a parked (idle) direction waits with.
pub const PARKED_BUFFER: usize = 32;
/// Released slots kept resident per shard (1 MiB) for fast reuse.
pub const HOT_BUFFERS: usize = 64;

/// A shard's copy buffers: one slot per direction of every active connection.
pub fn new_arena(max_connections: u32) -> io::Result<Rc<BufArena>> {
    BufArena::new(
        COPY_BUFFER,
        max_connections.saturating_mul(2).max(64),
        HOT_BUFFERS,
    )
}

pub(super) fn is_cancel(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
}

/// Writes `buf[..]` fully, returning the buffer for reuse.
pub(super) async fn write_all<T: IoBuf, W: AsyncWriteRent>(
    to: &mut W,
    mut buf: T,
) -> (io::Result<()>, T) {
    let n = buf.bytes_init();
    let mut sent = 0;
    while sent < n {
        let (res, slice) = to.write(buf.slice(sent..n)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(m) => sent += m,
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// The direction's arena buffer: the one it holds, or a fresh slot.
pub(super) fn take_big(big: &mut Option<ArenaBuf>, arena: &Rc<BufArena>) -> io::Result<ArenaBuf> {
    match big.take() {
        Some(b) => Ok(b),
        None => arena
            .take()
            .ok_or_else(|| io::Error::other("copy buffers exhausted")),
    }
}

/// Moves bytes `from` → `to` until end of file, then half-closes `to` (FIN) and returns the
/// byte count. An error (reset, broken pipe) is returned for the caller to propagate.
/// Generic so TLS-terminated tunnels use it too (`from`/`to` are split halves of a plain
/// socket or of a TLS stream); plain TCP is monomorphised as before.
pub async fn one_way<R, W>(
    from: &mut R,
    to: &mut W,
    watch: &ConnWatch,
    arena: &Rc<BufArena>,
) -> io::Result<u64>
where
    R: CancelableAsyncReadRent,
    W: AsyncWriteRent,
{
    let mut big = None;
    let mut total = 0u64;
    loop {
        let n = if watch.parked() {
            big = None; // back to the arena while idle
                        // Not cancelable: a parked connection keeps no canceller (`ConnWatch`).
            let (res, small) = from.read(Vec::with_capacity(PARKED_BUFFER)).await;
            match res {
                Ok(0) => 0,
                Ok(n) => {
                    watch.unpark();
                    write_all(to, small).await.0?;
                    n
                }
                Err(e) if is_cancel(&e) => continue,
                Err(e) => return Err(e),
            }
        } else {
            let buf = take_big(&mut big, arena)?;
            let (res, buf) = from.cancelable_read(buf, watch.cancel_handle()).await;
            match res {
                Ok(0) => 0,
                Ok(n) => {
                    let (res, mut buf) = write_all(to, buf).await;
                    res?;
                    buf.clear();
                    big = Some(buf);
                    n
                }
                Err(e) if is_cancel(&e) => {
                    big = Some(buf);
                    continue; // parked by the sweeper: the next turn gives the slot back
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            to.shutdown().await?;
            return Ok(total);
        }
        watch.touch();
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::{Canceller, Splitable};

    #[test]
    fn cancelled_read_returns_ecanceled_and_the_buffer() {
        let mut rt = wire::build_runtime(None).unwrap().0;
        rt.block_on(async {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let c = monoio::net::TcpStream::connect_addr(l.local_addr().unwrap())
                .await
                .unwrap();
            let (_s, _) = l.accept().await.unwrap();
            let (mut r, _w) = c.into_split();
            let arena = new_arena(4).unwrap();
            let canceller = Canceller::new();
            let read = r.cancelable_read(arena.take().unwrap(), canceller.handle());
            let cancel = async {
                monoio::time::sleep(std::time::Duration::from_millis(20)).await;
                canceller.cancel();
            };
            let ((res, buf), _) = monoio::join!(read, cancel);
            assert!(is_cancel(&res.unwrap_err()));
            assert_eq!(arena.in_use(), 1);
            drop(buf);
            assert_eq!(arena.in_use(), 0);
        });
    }
}
