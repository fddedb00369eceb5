//! TLS streams under the protocol layers: [`TlsIo`] wraps a monoio-rustls stream (server or
//! client side) so it is an [`io::Stream`](crate::io::Stream) like plain TCP — including
//! *cancelable* reads, which the shard sweeper uses to park idle connections' buffers and to
//! abort timed-out ones. monoio-rustls has no cancelable read, so the socket under rustls is a
//! [`CancelIo`] that shares a cancel slot with the wrapper: a cancelable read on the wrapper
//! puts its handle in the slot, and the socket read rustls issues for it is cancelable.
//!
//! Only TLS connections pay for this (one `Rc` per connection); plain TCP never sees it.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::io::Stream;

/// The cancel handle a [`TlsIo`] read lends to the [`CancelIo`] under it, and whether the
/// socket read it guarded was cancelled.
pub type Slot = Rc<SlotInner>;

#[derive(Default)]
pub struct SlotInner {
    handle: RefCell<Option<CancelHandle>>,
    cancelled: Cell<bool>,
}

fn is_cancel(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
}

/// A socket whose reads are cancelable through a shared slot.
pub struct CancelIo<S> {
    inner: S,
    cancel: Slot,
}

impl<S> CancelIo<S> {
    pub fn new(inner: S) -> CancelIo<S> {
        CancelIo {
            inner,
            cancel: Slot::default(),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The slot to hand to [`TlsIo::new`] once the handshake over this socket is done.
    pub fn slot(&self) -> Slot {
        self.cancel.clone()
    }
}

impl<S> std::fmt::Debug for CancelIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CancelIo")
    }
}

impl<T> std::fmt::Debug for TlsIo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIo").field("fd", &self.fd).finish()
    }
}

impl<S: CancelableAsyncReadRent> AsyncReadRent for CancelIo<S> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let h = self.cancel.handle.borrow().clone();
        let Some(h) = h else {
            return self.inner.read(buf).await;
        };
        let (r, buf) = self.inner.cancelable_read(buf, h).await;
        if r.as_ref().is_err_and(is_cancel) {
            self.cancel.cancelled.set(true);
        }
        (r, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let h = self.cancel.handle.borrow().clone();
        let Some(h) = h else {
            return self.inner.readv(buf).await;
        };
        let (r, buf) = self.inner.cancelable_readv(buf, h).await;
        if r.as_ref().is_err_and(is_cancel) {
            self.cancel.cancelled.set(true);
        }
        (r, buf)
    }
}

impl<S: AsyncWriteRent> AsyncWriteRent for CancelIo<S> {
    fn write<T: IoBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.inner.write(buf)
    }

    fn writev<T: IoVecBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.inner.writev(buf)
    }

    fn flush(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> {
        self.inner.flush()
    }

    fn shutdown(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> {
        self.inner.shutdown()
    }
}

/// A TLS stream (`T`: a monoio-rustls server or client stream over [`CancelIo`]).
pub struct TlsIo<T> {
    stream: T,
    cancel: Slot,
    /// The socket under the session (pool liveness peeks, linger on reset).
    fd: RawFd,
}

/// The server-side TLS stream over a plain socket.
pub type ServerTls = TlsIo<crate::tls::handshake::ServerStream<CancelIo<TcpStream>>>;
/// The client-side TLS stream over a plain socket.
pub type ClientTls = TlsIo<crate::tls::handshake::ClientStream<CancelIo<TcpStream>>>;

impl<T> TlsIo<T> {
    /// Wraps `stream`, whose socket is the [`CancelIo`] that `cancel` came from (`fd`).
    pub fn new(stream: T, cancel: Slot, fd: RawFd) -> TlsIo<T> {
        TlsIo { stream, cancel, fd }
    }
}

impl<S> TlsIo<crate::tls::handshake::ClientStream<S>> {
    /// The ALPN protocol the handshake chose.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.alpn_protocol()
    }
}

impl<T> AsRawFd for TlsIo<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl<T: AsyncReadRent> AsyncReadRent for TlsIo<T> {
    fn read<B: IoBufMut>(
        &mut self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<usize, B>> {
        self.stream.read(buf)
    }

    fn readv<B: IoVecBufMut>(
        &mut self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<usize, B>> {
        self.stream.readv(buf)
    }
}

/// Clears the slot when the read ends or is dropped.
struct Armed<'a>(&'a Slot);

impl<'a> Armed<'a> {
    fn new(slot: &'a Slot, c: CancelHandle) -> Armed<'a> {
        *slot.handle.borrow_mut() = Some(c);
        slot.cancelled.set(false);
        Armed(slot)
    }

    /// monoio-rustls reports a socket error by its kind only (the OS code is lost; it keeps
    /// the original for the next read): give a cancelled read its `ECANCELED` back, which is
    /// how every caller recognises a park. The stored original comes back as `ECANCELED` on
    /// the next read too, which callers treat as one more park and read again.
    fn result<B>(&self, (r, b): BufResult<usize, B>) -> BufResult<usize, B> {
        match r {
            Err(e) if !is_cancel(&e) && self.0.cancelled.get() => {
                (Err(std::io::Error::from_raw_os_error(libc::ECANCELED)), b)
            }
            r => (r, b),
        }
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.handle.borrow_mut().take();
        self.0.cancelled.set(false);
    }
}

impl<T: AsyncReadRent> CancelableAsyncReadRent for TlsIo<T> {
    async fn cancelable_read<B: IoBufMut>(
        &mut self,
        buf: B,
        c: CancelHandle,
    ) -> BufResult<usize, B> {
        let armed = Armed::new(&self.cancel, c);
        armed.result(self.stream.read(buf).await)
    }

    async fn cancelable_readv<B: IoVecBufMut>(
        &mut self,
        buf: B,
        c: CancelHandle,
    ) -> BufResult<usize, B> {
        let armed = Armed::new(&self.cancel, c);
        armed.result(self.stream.readv(buf).await)
    }
}

impl<T: AsyncWriteRent> AsyncWriteRent for TlsIo<T> {
    fn write<B: IoBuf>(
        &mut self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<usize, B>> {
        self.stream.write(buf)
    }

    fn writev<B: IoVecBuf>(
        &mut self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<usize, B>> {
        self.stream.writev(buf)
    }

    fn flush(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> {
        self.stream.flush()
    }

    fn shutdown(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> {
        self.stream.shutdown()
    }
}

impl<T: AsyncReadRent + AsyncWriteRent + 'static> Stream for TlsIo<T> {
    fn into_tcp(self) -> Result<TcpStream, Self> {
        Err(self)
    }
}
