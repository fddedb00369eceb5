//! An upstream HTTP connection's byte stream: a plain socket, or TLS over one (a cluster with a
//! `tls:` block). An enum rather than a generic so one pool type holds both; the TLS stream is
//! boxed, so a plain connection's enum stays one socket plus a tag.

use std::os::fd::{AsRawFd, RawFd};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::tls_io::ClientTls;

#[derive(Debug)]
pub enum UpStream {
    Tcp(TcpStream),
    Tls(Box<ClientTls>),
}

impl UpStream {
    /// The plain socket, for an upgrade tunnel; `Err` for TLS (the tunnel is plain-TCP only).
    pub fn into_tcp(self) -> Result<TcpStream, UpStream> {
        match self {
            UpStream::Tcp(s) => Ok(s),
            s => Err(s),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, UpStream::Tls(_))
    }

    /// The TLS handshake negotiated ALPN `h2`.
    pub fn alpn_h2(&self) -> bool {
        match self {
            UpStream::Tcp(_) => false,
            UpStream::Tls(s) => s.alpn().as_deref() == Some(b"h2".as_slice()),
        }
    }
}

impl AsRawFd for UpStream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            UpStream::Tcp(s) => s.as_raw_fd(),
            UpStream::Tls(s) => s.as_raw_fd(),
        }
    }
}

impl AsyncReadRent for UpStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Tcp(s) => s.read(buf).await,
            UpStream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Tcp(s) => s.readv(buf).await,
            UpStream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Tcp(s) => s.write(buf).await,
            UpStream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Tcp(s) => s.writev(buf).await,
            UpStream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            UpStream::Tcp(s) => s.flush().await,
            UpStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            UpStream::Tcp(s) => s.shutdown().await,
            UpStream::Tls(s) => s.shutdown().await,
        }
    }
}
