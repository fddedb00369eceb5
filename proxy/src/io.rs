//! The stream abstraction every protocol layer runs on: any monoio owned-buffer stream
//! ([`Stream`]: plain TCP today, TLS next), plus [`Prefixed`], which replays bytes already read
//! while detecting the protocol (ALPN-less h2 preface, TLS ClientHello sniffing) before reading
//! from the socket again. Protocol code is generic over `S: Stream`, so the plain-TCP path is
//! monomorphised with no dispatch cost; zero-copy splice stays a plain-TCP fast path in `l4`.

use std::io::Cursor;

use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelableAsyncReadRent, PrefixedReadIo};
use monoio::net::TcpStream;

/// A connection's byte stream.
pub trait Stream: AsyncReadRent + AsyncWriteRent + CancelableAsyncReadRent + 'static {
    /// The plain TCP socket under this stream, for handing an upgraded connection to the L4
    /// tunnel; `Err(self)` when there is a protocol layer (TLS) in between.
    fn into_tcp(self) -> Result<TcpStream, Self>
    where
        Self: Sized;
}

impl Stream for TcpStream {
    fn into_tcp(self) -> Result<TcpStream, Self> {
        Ok(self)
    }
}

/// A stream whose first bytes were already read (protocol detection) and are replayed.
pub type Prefixed<S> = PrefixedReadIo<S, Cursor<Vec<u8>>>;

/// Wraps `inner` so reads return `already_read` first.
pub fn prefixed<S: Stream>(inner: S, already_read: Vec<u8>) -> Prefixed<S> {
    PrefixedReadIo::new(inner, Cursor::new(already_read))
}

impl<S: Stream> Stream for Prefixed<S> {
    fn into_tcp(self) -> Result<TcpStream, Self> {
        // Only valid once the prefix is consumed; detection layers hand over before tunnels.
        Err(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncWriteRentExt;

    #[test]
    fn prefixed_stream_replays_detected_bytes_then_reads_the_socket() {
        let mut rt = wire::build_runtime(None).unwrap().0;
        rt.block_on(async {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            let mut c = TcpStream::connect_addr(a).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            let (r, _) = c.write_all(b" world").await;
            r.unwrap();
            let mut p = prefixed(s, b"hello".to_vec());
            let mut got = Vec::new();
            while got.len() < 11 {
                let (r, buf) = p.read(Vec::with_capacity(64)).await;
                assert!(r.unwrap() > 0);
                got.extend_from_slice(&buf);
            }
            assert_eq!(got, b"hello world");
        });
    }
}
