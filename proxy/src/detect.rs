//! Protocol detection on `protocol: http` listeners: a client that opens with the HTTP/2
//! connection preface (h2c with prior knowledge, RFC 9113 §3.4) is served by [`crate::http2`],
//! anything else by [`crate::http1`]. The sniffed bytes are never lost: HTTP/2 gets them
//! replayed through [`crate::io::prefixed`], HTTP/1 starts its read buffer with them (so it
//! keeps the plain TCP stream: Upgrade/CONNECT tunnels and splice still get the socket).
//! The sniff is bounded by the listener's `first_byte_timeout`; a client that sends nothing is
//! closed then, as HTTP/1 would close it.
//!
//! `protocol: auto` listeners ([`auto`]) also tell opaque TCP apart: a TLS ClientHello, any
//! bytes that are no HTTP request line, and silence for `sniff_timeout` (server-first
//! protocols such as MySQL or SMTP, whose clients wait for the server's greeting) all go to
//! the listener's `cluster` through [`crate::l4`], the sniffed bytes sent first. Connections
//! to an `opaque_ports` destination skip the sniff.

use crate::ctx::{ConnCtx, Services};
use crate::http1::conn::INITIAL_READ_BUFFER;
use crate::http1::H1State;
use crate::http2::detect::{classify, sniff, Kind, Sniff};
use crate::http2::H2State;
use crate::io::{prefixed, Stream};
use crate::l4::L4State;

/// Serves a connection of a `protocol: http` listener as HTTP/1.1 or HTTP/2.
pub async fn http<S: Stream + Unpin>(
    ctx: ConnCtx,
    mut stream: S,
    svc: &Services,
    h1: &H1State,
    h2: &H2State,
    l4: &L4State,
) {
    let Some(timeout) = ctx.listener().http.as_ref().map(|h| h.first_byte_timeout) else {
        return;
    };
    let mut buf = Vec::with_capacity(INITIAL_READ_BUFFER);
    let sniffed = monoio::time::timeout(timeout, async {
        loop {
            match sniff(&buf) {
                Sniff::NeedMore => {}
                s => return Some(s),
            }
            match crate::http1::conn::read_onto(&mut stream, &mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await;
    match sniffed {
        Ok(Some(Sniff::Http2)) => {
            Box::pin(crate::http2::serve(ctx, prefixed(stream, buf), svc, h1, h2)).await
        }
        Ok(Some(_)) => crate::http1::serve(ctx, stream, buf, svc, h1, l4).await,
        Ok(None) => {} // closed before a byte
        // Nothing within the first-byte timeout: closed without a response (nothing was
        // asked), counted with the sweeper's deadline timeouts.
        Err(_) => {
            let c = &svc.sweeper.deadline_aborts;
            c.set(c.get() + 1);
            tracing::debug!(listener = %ctx.listener().name, peer = %ctx.peer, "no request within first_byte_timeout; closed");
        }
    }
}

/// Whether an opaque connection that starts with `buf` should be read up to the end of its
/// ClientHello: it looks like TLS and the listener's egress policy matches host names.
fn wants_hello(ctx: &ConnCtx, buf: &[u8]) -> bool {
    buf.first() == Some(&0x16)
        && ctx
            .listener()
            .egress
            .as_ref()
            .is_some_and(|e| e.wants_sni())
}

/// Reads onto `buf` until it holds a whole ClientHello (or is no ClientHello, or the client
/// stops sending).
async fn read_hello(stream: &mut monoio::net::TcpStream, buf: &mut Vec<u8>) {
    use crate::egress::sni::{parse, Hello};
    while parse(buf) == Hello::Incomplete {
        match crate::http1::conn::read_onto(stream, buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Serves a connection of a `protocol: auto` listener as HTTP/1.1, HTTP/2 or opaque TCP.
pub async fn auto(
    ctx: ConnCtx,
    mut stream: monoio::net::TcpStream,
    svc: &Services,
    h1: &H1State,
    h2: &H2State,
    l4: &L4State,
) {
    let Some(auto) = ctx.listener().auto.as_ref() else {
        return;
    };
    let port = ctx.orig_dst.map_or(ctx.local.0.port(), |d| d.0.port());
    let mut buf = Vec::new();
    let kind = if auto.opaque_ports.contains(&port) {
        Kind::Opaque
    } else {
        buf.reserve_exact(INITIAL_READ_BUFFER);
        let timeout = auto.sniff_timeout;
        let sniffed = monoio::time::timeout(timeout, async {
            loop {
                match classify(&buf) {
                    Kind::NeedMore => {}
                    k => return Some(k),
                }
                match crate::http1::conn::read_onto(&mut stream, &mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await;
        match sniffed {
            Ok(Some(Kind::Opaque)) if wants_hello(&ctx, &buf) => {
                // The egress policy matches SNI: the whole ClientHello, within the same bound.
                let _ = monoio::time::timeout(timeout, read_hello(&mut stream, &mut buf)).await;
                Kind::Opaque
            }
            Ok(Some(k)) => k,
            Ok(None) => return,     // closed before it said what it is
            Err(_) => Kind::Opaque, // silent (server-first) or too slow to tell
        }
    };
    match kind {
        Kind::Http2 => Box::pin(crate::http2::serve(ctx, prefixed(stream, buf), svc, h1, h2)).await,
        Kind::Http1 => crate::http1::serve(ctx, stream, buf, svc, h1, l4).await,
        Kind::Opaque | Kind::NeedMore => {
            tracing::debug!(listener = %ctx.listener().name, peer = %ctx.peer, sniffed = buf.len(), "opaque TCP");
            let prefix = (!buf.is_empty()).then(|| Box::new(buf));
            crate::l4::serve(Box::new(ctx), stream, prefix, svc, l4).await
        }
    }
}
