//! The client side of an HTTP/1.1 connection: read a head (strictly, within the header
//! timeout), hand the request to [`super::exchange`], repeat while keepalive holds. Requests
//! are handled one at a time, so pipelined requests are answered in order.

use std::net::SocketAddr;
use std::time::Instant;

use monoio::net::TcpStream;

use super::conn::Conn;
use super::encode;
use super::exchange;
use super::head::{self, Limits, Reject};
use crate::config::{HttpSettings, Listener};
use crate::l4::watch::ConnWatch;
use crate::shard::ShardCtx;

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

/// Reads until `conn.rbuf` starts with a complete, valid request head.
async fn read_head(conn: &mut Conn, settings: &HttpSettings, watch: &ConnWatch) -> HeadRead {
    let limits = limits(settings);
    let mut first_byte_at: Option<Instant> = None;
    loop {
        if !conn.rbuf.is_empty() {
            first_byte_at.get_or_insert_with(Instant::now);
            match head::parse_request(&conn.rbuf, &limits, &mut conn.head) {
                Ok(true) => return HeadRead::Ready,
                Ok(false) => {}
                Err(r) => return HeadRead::Rejected(r),
            }
        }
        let n = match first_byte_at {
            // Idle keepalive connection: no timer; the shard sweeper owns idle timeouts and
            // closes it at once if the shard drains.
            None => {
                watch.set_between_requests(true);
                let n = conn.read_first(watch).await;
                watch.set_between_requests(false);
                n
            }
            Some(t0) => {
                let left = settings
                    .request_headers_timeout
                    .saturating_sub(t0.elapsed());
                match Box::pin(monoio::time::timeout(left, conn.read_more())).await {
                    Ok(r) => r,
                    Err(_) => return HeadRead::Rejected(Reject::Timeout),
                }
            }
        };
        match n {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {}
        }
    }
}

/// Serves one client connection until it closes or must be closed.
pub async fn serve(client: TcpStream, peer: SocketAddr, listener_idx: usize, ctx: &ShardCtx) {
    let listener = &ctx.config.listeners[listener_idx];
    let Some(settings) = listener.http.as_deref() else {
        return;
    };
    let _ = client.set_nodelay(true);
    let watch = ctx.sweeper.register(listener.idle_timeout);
    let mut conn = Conn::new(client, peer);
    let work = async {
        loop {
            if ctx.draining.get() {
                return None;
            }
            match read_head(&mut conn, settings, &watch).await {
                HeadRead::Ready => {}
                HeadRead::Closed => return None,
                HeadRead::Rejected(r) => {
                    reject(&mut conn, listener, r).await;
                    return None;
                }
            }
            watch.touch();
            let next = Box::pin(exchange::handle(
                &mut conn,
                listener_idx,
                listener,
                settings,
                ctx,
            ))
            .await;
            watch.touch();
            match next {
                exchange::Next::KeepAlive => conn.finish_request(),
                exchange::Next::Close => return None,
                exchange::Next::Tunnel(up) => return Some(up),
            }
        }
    };
    let upgraded = match futures_util::future::select(std::pin::pin!(work), watch.aborted()).await {
        futures_util::future::Either::Left((up, _)) => up,
        futures_util::future::Either::Right(_) => None,
    };
    drop(watch);
    if let Some(up) = upgraded {
        crate::l4::tunnel(conn.stream, up, listener, ctx).await;
    }
}

/// Answers a refused head with its status and closes (the stream position is unknown).
async fn reject(conn: &mut Conn, listener: &Listener, r: Reject) {
    crate::warn_limited!(
        "request rejected",
        listener = %listener.name,
        peer = %conn.peer,
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
    #[test]
    fn connection_future_size() {
        let mut rt = wire::build_runtime(None).unwrap().0;
        rt.block_on(async {
            let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            let c = monoio::net::TcpStream::connect_addr(a).await.unwrap();
            let ctx = crate::shard::test_ctx();
            let f = super::serve(c, a, 0, &ctx);
            let n = std::mem::size_of_val(&f);
            eprintln!("http connection future: {n} bytes");
        });
    }
}
