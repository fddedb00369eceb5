//! Protocol detection on `protocol: http` listeners: a client that opens with the HTTP/2
//! connection preface (h2c with prior knowledge, RFC 9113 §3.4) is served by [`crate::http2`],
//! anything else by [`crate::http1`]. The sniffed bytes are never lost: HTTP/2 gets them
//! replayed through [`crate::io::prefixed`], HTTP/1 starts its read buffer with them (so it
//! keeps the plain TCP stream: Upgrade/CONNECT tunnels and splice still get the socket).
//! The sniff is bounded by the listener's `first_byte_timeout`; a client that sends nothing is
//! closed then, as HTTP/1 would close it.

use crate::ctx::{ConnCtx, Services};
use crate::http1::conn::INITIAL_READ_BUFFER;
use crate::http1::H1State;
use crate::http2::detect::{sniff, Sniff};
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
