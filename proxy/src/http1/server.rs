//! The client side of an HTTP/1.1 connection: read a head (strictly, within the head timeout),
//! hand the request to [`super::exchange`], repeat while keepalive holds. Requests are handled
//! one at a time, so pipelined requests are answered in order.
//!
//! Memory: an idle keepalive connection's future holds only the connection state and its
//! parked read ([`wait_request`]); everything a request needs (the head scan, the exchange,
//! the upstream side) lives in one box per request, freed when the request ends. Measured
//! with 5,000 idle keepalive connections (shardbench `mem` set, median of 3 fresh processes,
//! 2026-12-03): 9.70 KiB of RSS per connection before, 3.82 with this, the per-protocol task
//! split in `shard::accept` and mimalloc (perf-reports/2026-12-03-idle-memory.md); 2.86 on
//! 2026-12-06 once a parked connection kept no read canceller and the sweeper returned the
//! pages parking freed (perf-reports/2026-12-06-idle-memory/).
//!
//! Timeouts cost no timer: the connection's watch (swept by the shard) carries the idle timeout
//! (no bytes either way), the first-byte timeout of a new connection (closed silently: nothing
//! was asked) and the request-head timeout from a head's first byte (answered 408).

use std::cell::Cell;
use std::pin::pin;

use futures_util::future::{select, Either};

use super::conn::Conn;
use super::encode;
use super::exchange;
use super::head::{self, Limits, Reject};
use super::outcome::Next;
use super::scan::HeadScan;
use super::{Env, H1State};
use crate::config::HttpSettings;
use crate::ctx::watch::AbortReason;
use crate::ctx::{ConnCtx, Services, Sweeper};
use crate::io::Stream;
use crate::l4::L4State;

enum HeadRead {
    Ready,
    Closed,
    Rejected(Reject),
}

fn limits(s: &HttpSettings) -> Limits {
    Limits {
        max_head_bytes: s.max_request_headers_bytes,
        max_headers: s.max_request_headers,
        max_request_line: s.max_request_line_bytes,
    }
}

/// Reads until `conn.rbuf` starts with a complete, valid request head; `conn.rbuf` holds the
/// head's first bytes on entry. `in_head` is true while a head has started but not finished
/// (the head deadline is armed then).
async fn read_head<S: Stream>(
    conn: &mut Conn<S>,
    settings: &HttpSettings,
    sweeper: &Sweeper,
    in_head: &Cell<bool>,
) -> HeadRead {
    let limits = limits(settings);
    let mut scan = HeadScan::default();
    loop {
        if !conn.rbuf.is_empty() {
            if !in_head.get() {
                in_head.set(true);
                conn.watch
                    .arm_deadline(settings.request_headers_timeout, sweeper);
            }
            match scan.advance(&conn.rbuf, &limits) {
                Ok(true) => match head::parse_request(&conn.rbuf, &limits, &mut conn.head) {
                    Ok(true) => {
                        in_head.set(false);
                        conn.watch.disarm_deadline();
                        return HeadRead::Ready;
                    }
                    Ok(false) => {}
                    Err(r) => return HeadRead::Rejected(r),
                },
                Ok(false) => {}
                Err(r) => return HeadRead::Rejected(r),
            }
        }
        match conn.read_more().await {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {}
        }
    }
}

/// Waits for the first bytes of the next request (`conn.rbuf` is empty): parkable, and closed
/// at once if the shard drains. Returns false when the client closed.
async fn wait_request<S: Stream>(conn: &mut Conn<S>) -> bool {
    conn.watch.set_between_requests(true);
    let n = conn.read_first().await;
    conn.watch.set_between_requests(false);
    matches!(n, Ok(n) if n > 0)
}

/// One request, from the first bytes of its head in `conn.rbuf` to the end of its exchange:
/// `None` when the connection must close. Boxed per request by [`serve`] (one allocation, as
/// the exchange alone was before), so none of its state sits in an idle connection's future.
async fn request<S: Stream>(
    conn: &mut Conn<S>,
    settings: &HttpSettings,
    env: Env<'_>,
    in_head: &Cell<bool>,
) -> Option<Next> {
    match read_head(conn, settings, &env.svc.sweeper, in_head).await {
        HeadRead::Ready => {}
        HeadRead::Closed => return None,
        HeadRead::Rejected(r) => {
            reject(conn, r).await;
            return None;
        }
    }
    Some(exchange::handle(conn, settings, env).await)
}

/// Serves one client connection until it closes or must be closed. `initial`: bytes already
/// read from the connection (by protocol detection), parsed before reading more.
pub async fn serve<S: Stream>(
    ctx: ConnCtx,
    stream: S,
    initial: Vec<u8>,
    svc: &Services,
    h1: &H1State,
    l4: &L4State,
) {
    let listener = ctx.listener();
    let Some(settings) = listener.http.clone() else {
        return;
    };
    let watch = svc.sweeper.register(listener.idle_timeout);
    watch.arm_deadline(settings.first_byte_timeout, &svc.sweeper);
    let env = Env { svc, h1, l4 };
    let mut conn = Conn::new(stream, ctx, watch.clone());
    conn.rbuf = initial;
    // Bytes protocol detection already read belong to the first request.
    conn.rec.bytes_received = conn.rbuf.len() as u64;
    let in_head = Cell::new(false);
    let outcome = {
        let work = pin!(async {
            loop {
                // Draining does not close here: the response just sent may have promised
                // keepalive, and a request already on its way would be lost. The next request
                // is answered with `connection: close`; an idle connection is closed by the
                // drain's grace (`abort_between_requests`).
                // The idle wait is all an idle keepalive connection's future holds; the
                // request's state (head scan, exchange, upstream) lives in a per-request box.
                if conn.rbuf.is_empty() && !wait_request(&mut conn).await {
                    return None;
                }
                match Box::pin(request(&mut conn, &settings, env, &in_head)).await {
                    Some(Next::KeepAlive) => conn.finish_request(),
                    Some(Next::Close) | None => return None,
                    Some(Next::Tunnel(up)) => return Some(up),
                }
            }
        });
        match select(work, watch.aborted()).await {
            Either::Left((up, _)) => up,
            Either::Right(_) => None,
        }
    };
    match watch.abort_reason() {
        Some(AbortReason::Deadline) if in_head.get() => {
            Box::pin(reject(&mut conn, Reject::Timeout)).await
        }
        Some(AbortReason::Deadline) => {
            tracing::debug!(listener = %conn.ctx.listener().name, peer = %conn.ctx.peer, "no request within first_byte_timeout; closed");
        }
        _ => {}
    }
    if let Some(up) = outcome {
        match conn.stream.into_tcp() {
            Ok(client) => Box::pin(crate::l4::tunnel(client, up, &watch, l4)).await,
            Err(_) => tracing::warn!("upgrade over a layered stream is not supported; closed"),
        }
    }
}

/// Answers a refused head with its status and closes (the stream position is unknown).
async fn reject<S: Stream>(conn: &mut Conn<S>, r: Reject) {
    crate::warn_limited!(
        "request rejected",
        listener = %conn.ctx.listener().name,
        peer = %conn.ctx.peer,
        status = r.status(),
        reason = r.reason(),
        "request rejected"
    );
    let mut out = Vec::with_capacity(256);
    let body = format!("{}\n", r.reason());
    encode::local_response(&mut out, r.status(), body.as_bytes(), None, true);
    let _ = conn.write_all(out).await;
}

#[cfg(test)]
mod size_probe {
    /// The connection future is most of an idle keepalive connection's memory (the README's
    /// per-connection figure); a layer that grows it shows up here first. Debug-build sizes
    /// (rustc 1.95): 1,376 bytes before the connection core, 1,304 after it, 1,240 once the
    /// request's state (head scan + exchange) moved into the per-request box (2026-12-03).
    #[test]
    fn connection_future_stays_small() {
        let mut rt = wire::build_runtime(None).unwrap().0;
        rt.block_on(async {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            let c = monoio::net::TcpStream::connect_addr(a).await.unwrap();
            let shard = crate::shard::test_shard();
            let ctx = shard.conn_ctx(0, a);
            let f = super::serve(ctx, c, Vec::new(), &shard.svc, &shard.h1, &shard.l4);
            let n = std::mem::size_of_val(&f);
            eprintln!("http connection future: {n} bytes");
            assert!(n <= 1240, "http connection future grew to {n} bytes");
        });
    }
}
