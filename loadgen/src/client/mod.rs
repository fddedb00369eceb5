//! Client connections: how a worker reaches the target (TCP, optionally TLS) and speaks
//! HTTP/1.1 or HTTP/2 over it.

pub mod h1;
pub mod h2;

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use crate::stats::ErrorKind;

/// A failed request: its kind, for the error table, and a message for the first-error log.
#[derive(Debug)]
pub struct ReqError {
    pub kind: ErrorKind,
    pub msg: String,
}

impl ReqError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> ReqError {
        ReqError {
            kind,
            msg: msg.into(),
        }
    }
    pub fn io(e: std::io::Error) -> ReqError {
        ReqError::new(ErrorKind::from_io(&e), e.to_string())
    }
}

/// A completed exchange.
#[derive(Clone, Copy, Debug)]
pub struct Response {
    pub status: u16,
    pub bytes_in: u64,
}

/// Something a worker can open a byte stream to.
pub trait Connect {
    type Io: AsyncReadRent + AsyncWriteRent + Unpin + 'static;
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl std::future::Future<Output = Result<Self::Io, ReqError>>;

    /// Opens an h2 connection. The default runs h2 over `connect`'s stream.
    fn connect_h2(
        &self,
        addr: SocketAddr,
    ) -> impl std::future::Future<Output = Result<::h2::client::SendRequest<bytes::Bytes>, ReqError>>
    {
        async move { h2::handshake(self.connect(addr).await?).await }
    }
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, ReqError> {
    let s = TcpStream::connect_addr(addr)
        .await
        .map_err(|e| ReqError::new(ErrorKind::Connect, e.to_string()))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Plain TCP.
#[derive(Clone)]
pub struct PlainConnect;

impl Connect for PlainConnect {
    type Io = TcpStream;
    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, ReqError> {
        tcp(addr).await
    }
}

/// TCP then a rustls client handshake.
#[derive(Clone)]
pub struct TlsConnect {
    pub connector: monoio_rustls::TlsConnector,
    /// h2 over TLS uses tokio-rustls on the compat adapter: monoio-rustls panics when h2
    /// reads and writes the same stream concurrently ("buffer mut expected").
    pub tokio_connector: tokio_rustls::TlsConnector,
    pub server_name: Rc<rustls_pki_types::ServerName<'static>>,
}

impl Connect for TlsConnect {
    type Io = monoio_rustls::ClientTlsStream<TcpStream>;
    async fn connect(&self, addr: SocketAddr) -> Result<Self::Io, ReqError> {
        let s = tcp(addr).await?;
        self.connector
            .connect((*self.server_name).clone(), s)
            .await
            .map_err(|e| ReqError::new(ErrorKind::Tls, e.to_string()))
    }

    async fn connect_h2(
        &self,
        addr: SocketAddr,
    ) -> Result<::h2::client::SendRequest<bytes::Bytes>, ReqError> {
        let s = tcp(addr).await?;
        let t = self
            .tokio_connector
            .connect(
                (*self.server_name).clone(),
                monoio_compat::StreamWrapper::new(s),
            )
            .await
            .map_err(|e| ReqError::new(ErrorKind::Tls, e.to_string()))?;
        h2::handshake_tokio(t).await
    }
}
