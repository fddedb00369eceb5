//! HTTP/2 frame handling as the proxy's server side does it: the client preface and then
//! arbitrary bytes, read through the flood guard's frame walker (`http2::guard::Metered`) into
//! an `h2` server that answers every request. Nothing may panic or loop: the input is finite,
//! EOF ends it, and the poll loop is bounded.
#![no_main]

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use shardcar::http2::detect::PREFACE;
use shardcar::http2::guard::{Guard, Limits, Metered};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads the input in `chunk`-byte pieces, then EOF; swallows writes.
struct MemIo {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl AsyncRead for MemIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.input.len() - self.pos).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.input[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemIo {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn serve(io: Metered<MemIo>) -> Result<(), h2::Error> {
    let mut conn = h2::server::Builder::new()
        .max_header_list_size(16 << 10)
        .max_concurrent_streams(100)
        .handshake::<_, bytes::Bytes>(io)
        .await?;
    while let Some(r) = conn.accept().await {
        let (_req, mut respond) = r?;
        let _ = respond.send_response(http::Response::new(()), true);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, frames)) = data.split_first() else {
        return;
    };
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(frames);
    let io = MemIo {
        input,
        pos: 0,
        chunk: 1 + chunk as usize % 64,
    };
    let guard = Guard::new(Limits {
        control_frames: 200,
        resets: 100,
    });
    let mut fut = pin!(serve(Metered::new(io, guard)));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if fut.as_mut().poll(&mut cx).is_ready() {
            return;
        }
    }
});
