//! A client connection's state: the stream, its [`ConnCtx`], its read buffer (heads and body
//! bytes, including pipelined requests read ahead), the parsed head and the connection's watch.
//! Every read and write touches the watch, so the idle timeout means "no bytes either way".
//! Scratch buffers for the upstream side come from the shard's [`Scratch`] pool for the length
//! of one exchange only, so an idle keepalive connection holds just its read buffer (and not
//! even that once parked).

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::head::RequestHead;
use crate::ctx::{ConnCtx, ConnWatch};
use crate::io::Stream;
use crate::telemetry::{Protocol, Record};

/// First read buffer of a connection; it grows (up to the head limit) only for larger heads.
pub const INITIAL_READ_BUFFER: usize = 4096;
/// Read buffer of a parked (idle keepalive) connection.
pub const PARKED_READ: usize = 64;
/// Read window for bodies and the size of scratch buffers.
pub const IO_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
pub struct Conn<S> {
    pub stream: S,
    pub ctx: ConnCtx,
    /// Bytes read from the client and not yet consumed: `[..head.len]` is the current head.
    pub rbuf: Vec<u8>,
    pub head: RequestHead,
    /// Bytes of `rbuf` that belong to the current request (head + body consumed so far).
    pub consumed: usize,
    /// The peer's IP as text, for x-forwarded-for (formatted once per connection).
    pub peer_ip: Box<str>,
    pub watch: Rc<ConnWatch>,
    /// The current request's telemetry record (boxed: the connection future stays small).
    /// Reads and writes count its bytes; the exchange hands it over when the request ends.
    pub rec: Box<Record>,
}

impl<S: Stream> Conn<S> {
    pub fn new(stream: S, ctx: ConnCtx, watch: Rc<ConnWatch>) -> Conn<S> {
        let ctx_listener = ctx.listener;
        Conn {
            stream,
            peer_ip: ctx.peer.ip().to_string().into_boxed_str(),
            ctx,
            rbuf: Vec::new(),
            head: RequestHead::default(),
            consumed: 0,
            rec: Box::new(Record::new(ctx_listener, Protocol::Http11)),
            watch,
        }
    }

    /// Reads more client bytes onto the end of `rbuf`. `Ok(0)` is end of stream.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        reserve(&mut self.rbuf);
        self.watch.hold(self.rbuf.capacity());
        let len = self.rbuf.len();
        let (res, slice) = self
            .stream
            .read(std::mem::take(&mut self.rbuf).slice_mut(len..))
            .await;
        self.rbuf = slice.into_inner();
        self.watch.touch();
        if let Ok(n) = res {
            self.rec.bytes_received += n as u64;
        }
        res
    }

    /// Waits for the first bytes of the next request. The read can be cancelled by the shard
    /// sweeper once the connection has been quiet for a while ("parking"): the read buffer is
    /// then freed and the wait continues with a [`PARKED_READ`]-byte one, so an idle keepalive
    /// connection holds almost no memory. Only used when `rbuf` is empty.
    pub async fn read_first(&mut self) -> io::Result<usize> {
        loop {
            if self.watch.parked() {
                self.rbuf = Vec::with_capacity(PARKED_READ);
            } else {
                reserve(&mut self.rbuf);
            }
            self.watch.hold(self.rbuf.capacity());
            let buf = std::mem::take(&mut self.rbuf);
            // A parked read is not cancelable: parking happens once, and a canceller kept for
            // it would be most of the parked connection's memory after the socket.
            let (res, buf) = if self.watch.parked() {
                self.stream.read(buf).await
            } else {
                let cancel = self.watch.cancel_handle();
                self.stream.cancelable_read(buf, cancel).await
            };
            self.rbuf = buf;
            match res {
                Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
                    // Parked: give the read buffer and the head's span vectors back.
                    self.rbuf = Vec::new();
                    self.head = RequestHead::default();
                }
                Ok(n) => {
                    self.watch.unpark();
                    self.watch.touch();
                    self.rec.bytes_received += n as u64;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the finished request's bytes, keeping any pipelined bytes read ahead.
    pub fn finish_request(&mut self) {
        let used = self.consumed.min(self.rbuf.len());
        self.rbuf.drain(..used);
        self.consumed = 0;
    }

    /// Writes `buf` fully to the client.
    pub async fn write_all<T: IoBuf>(&mut self, buf: T) -> (io::Result<()>, T) {
        let (res, buf) = self.stream.write_all(buf).await;
        self.watch.touch();
        if let Ok(n) = res {
            self.rec.bytes_sent += n as u64;
        }
        (res.map(drop), buf)
    }

    /// Writes `buf[range]` fully to the client, keeping `buf`.
    pub async fn write_range(
        &mut self,
        buf: &mut Vec<u8>,
        range: std::ops::Range<usize>,
    ) -> io::Result<()> {
        let n = range.len() as u64;
        let r = write_range(&mut self.stream, buf, range).await;
        self.watch.touch();
        if r.is_ok() {
            self.rec.bytes_sent += n;
        }
        r
    }
}

/// Makes sure a read can append at least a few KiB.
pub fn reserve(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        buf.reserve_exact(INITIAL_READ_BUFFER);
    } else if buf.capacity() - buf.len() < 1024 {
        buf.reserve(IO_CHUNK);
    }
}

/// Scratch buffers kept per shard: two per concurrent exchange.
const MAX_SCRATCH: usize = 256;

/// A shard's spare byte buffers for upstream exchanges (LIFO, bounded).
#[derive(Debug, Default)]
pub struct Scratch {
    free: RefCell<Vec<Vec<u8>>>,
}

impl Scratch {
    pub fn take(&self) -> Vec<u8> {
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(IO_CHUNK))
    }
    pub fn give(&self, mut b: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if free.len() < MAX_SCRATCH && b.capacity() <= 4 * IO_CHUNK {
            b.clear();
            free.push(b);
        }
    }
}

/// Reads more bytes onto the end of `buf` from any monoio reader.
pub async fn read_onto<R: AsyncReadRent>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    reserve(buf);
    let len = buf.len();
    let (res, slice) = r.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    res
}

/// Writes `buf[range]` fully, keeping `buf`.
pub async fn write_range<W: monoio::io::AsyncWriteRent>(
    w: &mut W,
    buf: &mut Vec<u8>,
    range: std::ops::Range<usize>,
) -> io::Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let (res, slice) = w.write_all(std::mem::take(buf).slice(range)).await;
    *buf = slice.into_inner();
    res.map(drop)
}
