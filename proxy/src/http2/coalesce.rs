//! Write coalescing under the `h2` codec: every `poll_write` between two flushes lands in one
//! buffer, and the flush hands it to the socket adapter as one write — one ring SEND.
//!
//! `monoio_compat::StreamWrapper` submits a send for every `poll_write` and lets the next one
//! wait for it to complete. `h2` writes a frame head and a DATA payload as separate chunks, and
//! the frames of several streams one after the other, so a response cost two sends and
//! multiplexed streams were answered one send each. Measured (2026-12-04, h2c → h1,
//! 10 connections × 10 streams, `bench-harness/kernel-ops.sh`): Shardcar did 1.46 ring SENDs and
//! 1.45 RECVs per request against HAProxy's 1.11 / 1.10 — see the report
//! `perf-reports/2026-12-04-h2-profile/` for the figures with this layer.
//!
//! A write that finds the buffer empty and is at least a quarter of its capacity (a large DATA
//! payload) goes straight to the adapter: no extra copy for bodies.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner` with its writes gathered until a flush (or until `cap` bytes are waiting).
pub struct Coalesce<T> {
    inner: T,
    buf: Vec<u8>,
    /// Bytes of `buf` the adapter has taken.
    sent: usize,
    cap: usize,
}

impl<T> Coalesce<T> {
    pub fn new(inner: T, cap: usize) -> Coalesce<T> {
        Coalesce {
            inner,
            buf: Vec::new(),
            sent: 0,
            cap,
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Hands every gathered byte to `inner`.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.is_empty() && data.len() >= this.cap / 4 {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        if this.buf.len() >= this.cap {
            ready!(this.drain(cx))?;
        }
        let n = data.len().min(this.cap - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Records every write it is given; accepts at most `take` bytes per call.
    struct Recorder {
        writes: Vec<Vec<u8>>,
        take: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = data.len().min(self.take);
            self.get_mut().writes.push(data[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write(c: &mut Coalesce<Recorder>, data: &[u8]) -> usize {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(c).poll_write(&mut cx, data) {
            Poll::Ready(Ok(n)) => n,
            other => panic!("{other:?}"),
        }
    }

    fn flush(c: &mut Coalesce<Recorder>) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            Pin::new(c).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
    }

    #[test]
    fn small_writes_between_flushes_reach_the_socket_as_one_write_in_order() {
        let mut c = Coalesce::new(
            Recorder {
                writes: vec![],
                take: usize::MAX,
            },
            1024,
        );
        assert_eq!(write(&mut c, b"HEADERS"), 7);
        assert_eq!(write(&mut c, b"DATAHEAD"), 8);
        assert_eq!(write(&mut c, b"payload"), 7);
        assert!(
            c.inner.writes.is_empty(),
            "nothing is sent before the flush"
        );
        flush(&mut c);
        assert_eq!(c.inner.writes, vec![b"HEADERSDATAHEADpayload".to_vec()]);
        flush(&mut c);
        assert_eq!(c.inner.writes.len(), 1, "an empty flush sends nothing");
    }

    #[test]
    fn a_full_buffer_is_handed_on_before_more_is_taken_and_partial_writes_resume() {
        let mut c = Coalesce::new(
            Recorder {
                writes: vec![],
                take: 5,
            },
            32,
        );
        let data: Vec<u8> = (0..40u8).collect();
        assert_eq!(write(&mut c, &data[..4]), 4);
        assert_eq!(write(&mut c, &data[4..]), 28, "fills up to the cap");
        assert!(c.inner.writes.is_empty());
        assert_eq!(
            write(&mut c, &data[32..]),
            8,
            "the full buffer went out first"
        );
        assert_eq!(c.inner.writes.concat(), &data[..32]);
        assert!(c.inner.writes.iter().all(|w| w.len() <= 5));
        flush(&mut c);
        assert_eq!(c.inner.writes.concat(), data);
    }

    #[test]
    fn a_large_write_into_an_empty_buffer_is_not_copied() {
        let mut c = Coalesce::new(
            Recorder {
                writes: vec![],
                take: usize::MAX,
            },
            16,
        );
        assert_eq!(write(&mut c, b"big-payload!"), 12);
        assert_eq!(c.inner.writes, vec![b"big-payload!".to_vec()]);
        assert!(c.buf.is_empty());
    }
}
