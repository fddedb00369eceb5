//! `accept` and `connect`: a TLS handshake over any monoio stream (`AsyncReadRent +
//! AsyncWriteRent`: a `TcpStream`, a prefixed replay wrapper, …), returning a monoio-rustls
//! stream and the [`TlsFacts`] of the handshake, or a [`HandshakeError`] naming the reason.
//!
//! The handshake is driven here rather than inside monoio-rustls so the connection can be read
//! afterwards (SNI, ALPN, peer certificate) before it is wrapped: monoio-rustls does not expose
//! its session. Every received byte is fed to rustls before wrapping, so application data that
//! arrived with the last handshake flight stays in the session's plaintext buffer and is the
//! first thing the stream reads. The handshake uses one 8 KiB read buffer and one write buffer,
//! both freed when it ends. No timeout here: the caller wraps the future in its own.
//!
//! TLS 1.3 note: a client's handshake completes before the server has checked the client
//! certificate, so a client refused by the server sees the server's alert on its first read,
//! not from `connect`.

use std::io;
use std::ops::DerefMut;
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConfig, ClientConnection, ConnectionCommon};
use rustls::{ProtocolVersion, ServerConfig, ServerConnection, SideData};

use super::spiffe_id::SpiffeId;
use super::svid::{check_leaf, serial_of, CertRefusal};

pub type ServerStream<IO> = monoio_rustls::ServerTlsStream<IO>;
pub type ClientStream<IO> = monoio_rustls::ClientTlsStream<IO>;

/// What a completed handshake established, for ConnCtx, policy and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFacts {
    /// The server name the client sent (server side), or the one we sent (client side).
    pub sni: Option<Box<str>>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Box<[u8]>>,
    /// The peer's verified SPIFFE ID; `None` when the peer sent no certificate.
    pub peer: Option<SpiffeId>,
    /// The peer leaf's serial number (Envoy's `%DOWNSTREAM_PEER_SERIAL%`).
    pub peer_serial: Option<Box<[u8]>>,
    pub version: Option<ProtocolVersion>,
    /// The handshake resumed an earlier session (ticket).
    pub resumed: bool,
}

impl TlsFacts {
    pub fn alpn_str(&self) -> Option<&str> {
        self.alpn
            .as_deref()
            .and_then(|a| std::str::from_utf8(a).ok())
    }

    /// The peer serial as lowercase hex, as `openssl x509 -serial` prints it (upper there).
    pub fn peer_serial_hex(&self) -> Option<String> {
        self.peer_serial
            .as_ref()
            .map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// We refused the peer's certificate (or its absence).
    #[error("peer certificate refused: {0}")]
    Refused(CertRefusal),
    /// The peer refused us or the handshake: it sent this alert.
    #[error("peer sent alert {0:?}")]
    PeerAlert(AlertDescription),
    #[error("tls: {0}")]
    Tls(rustls::Error),
    #[error("connection closed during the handshake")]
    Eof,
    #[error("i/o during the handshake: {0}")]
    Io(io::Error),
}

impl HandshakeError {
    /// A short stable label, for counters by reason.
    pub fn label(&self) -> &'static str {
        match self {
            HandshakeError::Refused(r) => r.label(),
            HandshakeError::PeerAlert(_) => "peer_alert",
            HandshakeError::Tls(_) => "protocol",
            HandshakeError::Eof => "eof",
            HandshakeError::Io(_) => "io",
        }
    }

    pub fn refusal(&self) -> Option<&CertRefusal> {
        match self {
            HandshakeError::Refused(r) => Some(r),
            _ => None,
        }
    }

    fn from_rustls(e: rustls::Error) -> HandshakeError {
        if let Some(r) = CertRefusal::from_rustls(&e) {
            return HandshakeError::Refused(r);
        }
        match e {
            rustls::Error::AlertReceived(a) => HandshakeError::PeerAlert(a),
            e => HandshakeError::Tls(e),
        }
    }
}

/// Server side: handshake on `io` with `config`.
pub async fn accept<IO>(
    config: Arc<ServerConfig>,
    mut io: IO,
) -> Result<(ServerStream<IO>, TlsFacts), HandshakeError>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut conn = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
    drive(&mut io, &mut conn).await?;
    let mut facts = peer_facts(&conn);
    facts.sni = conn.server_name().map(Into::into);
    Ok((ServerStream::new(io, conn), facts))
}

/// Client side: handshake on `io` with `config`, sending `server_name` as SNI (an IP address
/// name sends none).
pub async fn connect<IO>(
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    mut io: IO,
) -> Result<(ClientStream<IO>, TlsFacts), HandshakeError>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let sni = match &server_name {
        ServerName::DnsName(d) => Some(d.as_ref().into()),
        _ => None,
    };
    let mut conn = ClientConnection::new(config, server_name).map_err(HandshakeError::Tls)?;
    drive(&mut io, &mut conn).await?;
    let mut facts = peer_facts(&conn);
    facts.sni = sni;
    Ok((ClientStream::new(io, conn), facts))
}

fn peer_facts<SD: SideData>(conn: &ConnectionCommon<SD>) -> TlsFacts {
    let leaf = conn.peer_certificates().and_then(|c| c.first());
    TlsFacts {
        sni: None,
        alpn: conn.alpn_protocol().map(Into::into),
        // The verifier accepted this leaf, so it parses (again: verifiers keep no per-connection state).
        peer: leaf.and_then(|c| check_leaf(c).ok()),
        peer_serial: leaf.and_then(|c| serial_of(c)),
        version: conn.protocol_version(),
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    }
}

const READ_BUF: usize = 8 * 1024;

async fn drive<IO, C, SD>(io: &mut IO, conn: &mut C) -> Result<(), HandshakeError>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    let mut rbuf = Vec::with_capacity(READ_BUF);
    let mut wbuf = Vec::new();
    loop {
        wbuf = flush(io, conn, wbuf).await?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        let (res, b) = io.read(rbuf).await;
        rbuf = b;
        let n = res.map_err(HandshakeError::Io)?;
        if n == 0 {
            return Err(HandshakeError::Eof);
        }
        let mut input = &rbuf[..n];
        while !input.is_empty() {
            conn.read_tls(&mut input).map_err(HandshakeError::Io)?;
            if let Err(e) = conn.process_new_packets() {
                // Send our alert (unknown_ca, certificate_required …) before giving up.
                let _ = flush(io, conn, wbuf).await;
                return Err(HandshakeError::from_rustls(e));
            }
        }
    }
}

async fn flush<IO, C, SD>(
    io: &mut IO,
    conn: &mut C,
    mut wbuf: Vec<u8>,
) -> Result<Vec<u8>, HandshakeError>
where
    IO: AsyncWriteRent,
    C: DerefMut<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    while conn.wants_write() {
        wbuf.clear();
        conn.write_tls(&mut wbuf).map_err(HandshakeError::Io)?;
        let (res, b) = io.write_all(wbuf).await;
        wbuf = b;
        res.map_err(HandshakeError::Io)?;
    }
    Ok(wbuf)
}
