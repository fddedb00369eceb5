//! TLS on listeners: what a connection of a listener with a `tls:` block goes through before
//! its protocol layer. STRICT: the TLS handshake first (within the block's
//! `handshake_timeout`); PERMISSIVE: the first bytes are peeked (`MSG_PEEK`, nothing consumed)
//! and [`looks_like_tls`] decides between the handshake and the listener's plaintext path on
//! the untouched socket. After the handshake, the [`TlsFacts`] (SNI, ALPN, the peer's
//! verified SPIFFE ID) go into the connection's [`ConnCtx`], and the protocol runs over the
//! TLS stream: ALPN `h2` → HTTP/2, `http/1.1` or none → HTTP/1.1 (an HTTP/2 preface without
//! ALPN is still detected), `protocol: tcp` → the L4 copy path (splice needs plain sockets).
//!
//! A failed handshake is one rate-limited warning with the peer and the reason, and a count
//! by reason ([`crate::tls::stats`]); it ends only its own connection. Certificate selection by
//! SNI happens inside rustls (the listener's `sni:` entries, see [`crate::tls::server`]).

use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::config::Protocol;
use crate::ctx::{ConnCtx, Services};
use crate::http1::H1State;
use crate::http2::H2State;
use crate::l4::L4State;
use crate::tls::config::TlsMode;
use crate::tls::sniff::{looks_like_tls, SNIFF_LEN};
use crate::tls::{stats, TlsFacts};
use crate::tls_io::{CancelIo, ServerTls, TlsIo};

/// How often a PERMISSIVE sniff looks again when fewer than [`SNIFF_LEN`] bytes have come.
const SNIFF_RETRY: Duration = Duration::from_millis(2);

/// Serves one connection of a listener that has a `tls:` block.
pub async fn serve(
    conn: Box<ConnCtx>,
    stream: TcpStream,
    svc: &Services,
    h1: &H1State,
    h2: &H2State,
    l4: &L4State,
) {
    let Some(tls) = conn.listener().tls.as_ref() else {
        return;
    };
    let timeout = tls.settings.handshake_timeout;
    if tls.settings.mode == TlsMode::Permissive {
        match monoio::time::timeout(timeout, sniff(&stream)).await {
            Ok(Some(true)) => {}
            Ok(Some(false)) => return plaintext(conn, stream, svc, h1, h2, l4).await,
            Ok(None) => return, // closed before a byte
            // Silent: plaintext (a server-first protocol on a tcp listener; HTTP closes it
            // after its own first-byte timeout).
            Err(_) => return plaintext(conn, stream, svc, h1, h2, l4).await,
        }
    }
    let Some((tls_stream, facts)) = Box::pin(handshake(&conn, stream, timeout)).await else {
        return;
    };
    let mut conn = conn;
    conn.tls = Some(Box::new(facts));
    let h2_alpn = conn.tls.as_ref().and_then(|t| t.alpn.as_deref()) == Some(b"h2");
    match conn.listener().protocol {
        // Connection-level authorization runs there, now that the peer's identity is known.
        Protocol::Tcp => crate::l4::serve_tls(conn, tls_stream, None, svc, l4).await,
        Protocol::Http2 => Box::pin(crate::http2::serve(*conn, tls_stream, svc, h1, h2)).await,
        Protocol::Http | Protocol::Auto if h2_alpn => {
            Box::pin(crate::http2::serve(*conn, tls_stream, svc, h1, h2)).await
        }
        Protocol::Http | Protocol::Auto => {
            Box::pin(crate::detect::http(*conn, tls_stream, svc, h1, h2, l4)).await
        }
    }
}

/// A PERMISSIVE connection that is not TLS: the listener's ordinary path, on the socket
/// nothing was read from.
async fn plaintext(
    conn: Box<ConnCtx>,
    stream: TcpStream,
    svc: &Services,
    h1: &H1State,
    h2: &H2State,
    l4: &L4State,
) {
    stats::plaintext();
    match conn.listener().protocol {
        Protocol::Tcp => crate::l4::serve(conn, stream, None, svc, l4).await,
        Protocol::Http => crate::detect::http(*conn, stream, svc, h1, h2, l4).await,
        Protocol::Auto => Box::pin(crate::detect::auto(*conn, stream, svc, h1, h2, l4)).await,
        Protocol::Http2 => Box::pin(crate::http2::serve(*conn, stream, svc, h1, h2)).await,
    }
}

/// Peeks until the first bytes tell: `Some(true)` a ClientHello, `Some(false)` anything
/// else, `None` closed (or an error) before a byte.
async fn sniff(stream: &TcpStream) -> Option<bool> {
    let mut first = [0u8; SNIFF_LEN];
    loop {
        if stream.readable(false).await.is_err() {
            return None;
        }
        match crate::sys::peek(stream.as_raw_fd(), &mut first) {
            Ok(0) => return None,
            Ok(n) => match looks_like_tls(&first[..n]) {
                Some(tls) => return Some(tls),
                // A few bytes of a record header so far: look again shortly.
                None => monoio::time::sleep(SNIFF_RETRY).await,
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

/// The server handshake within `timeout`; a failure is logged with its reason and counted.
async fn handshake(
    conn: &ConnCtx,
    stream: TcpStream,
    timeout: Duration,
) -> Option<(ServerTls, TlsFacts)> {
    let listener = &conn.listener().name;
    let Some(config) = conn.snapshot.listener_tls[conn.listener]
        .as_ref()
        .and_then(|l| l.get())
    else {
        tracing::warn!(listener = %listener, "no TLS config loaded for the listener; closing");
        return None;
    };
    let fd = stream.as_raw_fd();
    let io = CancelIo::new(stream);
    let slot = io.slot();
    match monoio::time::timeout(timeout, crate::tls::accept(config, io)).await {
        Ok(Ok((s, facts))) => {
            stats::handshake_ok();
            tracing::debug!(
                listener = %listener,
                peer = %conn.peer,
                sni = facts.sni.as_deref().unwrap_or("-"),
                alpn = facts.alpn_str().unwrap_or("-"),
                peer_id = %facts.peer.as_ref().map_or("-".to_string(), |p| p.to_string()),
                "tls handshake done"
            );
            Some((TlsIo::new(s, slot, fd), facts))
        }
        Ok(Err(e)) => {
            stats::handshake_failed(e.label());
            crate::warn_limited!(
                "tls handshake failed",
                listener = %listener,
                peer = %conn.peer,
                reason = e.label(),
                error = %e,
                "tls handshake failed; connection closed"
            );
            None
        }
        Err(_) => {
            stats::handshake_failed("timeout");
            crate::warn_limited!(
                "tls handshake failed",
                listener = %listener,
                peer = %conn.peer,
                reason = "timeout",
                timeout_ms = timeout.as_millis() as u64,
                "tls handshake not finished within handshake_timeout; connection closed"
            );
            None
        }
    }
}
