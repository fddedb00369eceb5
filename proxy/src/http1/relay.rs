//! Responses back to the client: head rewritten (hop-by-hop headers dropped, framing
//! re-announced), body relayed as it arrives (Content-Length, chunked passed through after
//! validation, or until close). A small response goes out in one write together with its head.
//! The upstream connection returns to the shard pool when its response ended cleanly.

use monoio::net::TcpStream;

use super::chunked::ChunkedScanner;
use super::conn::{read_onto, write_range, Conn};
use super::encode;
use super::exchange::{Facts, Next};
use super::head::{Framing, ResponseHead};
use crate::cluster::{Balancer, PooledConn};
use crate::shard::ShardCtx;

/// Relays the response whose head is at the start of `ubuf`.
#[allow(clippy::too_many_arguments)]
pub async fn response(
    conn: &mut Conn,
    ctx: &ShardCtx,
    balancer: &Balancer,
    mut up: PooledConn,
    ubuf: &mut Vec<u8>,
    resp: &ResponseHead,
    facts: Facts,
    request_body_done: bool,
) -> Next {
    let close_client = facts.close || resp.framing == Framing::UntilClose || !request_body_done;
    let mut out = ctx.scratch.take();
    encode::response_head(&mut out, ubuf, resp, close_client);
    let mut pos = resp.len;
    let outcome = relay_body(conn, &mut up.stream, ubuf, &mut pos, &mut out, resp.framing).await;
    ctx.scratch.give(out);
    let clean = match outcome {
        Ok(()) => true,
        Err(Side::Client) => return Next::Close,
        Err(Side::Upstream) => {
            // Truncated response: closing tells the client (length or chunk terminator missing).
            return Next::Close;
        }
    };
    if clean && !resp.close && pos == ubuf.len() {
        balancer.pools.put(up);
    }
    if close_client {
        Next::Close
    } else {
        Next::KeepAlive
    }
}

enum Side {
    Client,
    Upstream,
}

/// Sends `out` (the head) plus the body. `pos` is where unsent body bytes start in `ubuf`.
async fn relay_body(
    conn: &mut Conn,
    up: &mut TcpStream,
    ubuf: &mut Vec<u8>,
    pos: &mut usize,
    out: &mut Vec<u8>,
    framing: Framing,
) -> Result<(), Side> {
    let mut scanner = ChunkedScanner::default();
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut first = true;
    loop {
        let avail = &ubuf[*pos..];
        let take = match framing {
            Framing::None => 0,
            Framing::Length(_) => (left as usize).min(avail.len()),
            Framing::Chunked => scanner.scan(avail).map_err(|_| Side::Upstream)?,
            Framing::UntilClose => avail.len(),
        };
        if first {
            // Head and the first body bytes in one write.
            out.extend_from_slice(&ubuf[*pos..*pos + take]);
            let n = out.len();
            write_range(&mut conn.stream, out, 0..n)
                .await
                .map_err(|_| Side::Client)?;
            first = false;
        } else {
            write_range(&mut conn.stream, ubuf, *pos..*pos + take)
                .await
                .map_err(|_| Side::Client)?;
        }
        *pos += take;
        if framing == Framing::Length(0) || framing == Framing::None {
            return Ok(());
        }
        if let Framing::Length(_) = framing {
            left -= take as u64;
            if left == 0 {
                return Ok(());
            }
        }
        if framing == Framing::Chunked && scanner.is_done() {
            return Ok(());
        }
        if *pos == ubuf.len() {
            ubuf.clear();
            *pos = 0;
        }
        match read_onto(up, ubuf).await {
            Ok(0) if framing == Framing::UntilClose => return Ok(()),
            Ok(0) | Err(_) => return Err(Side::Upstream),
            Ok(_) => {}
        }
    }
}

/// After 101 Switching Protocols (or a 2xx to CONNECT): send the head and whatever both sides
/// already sent past their heads, then hand both sockets to the L4 tunnel.
pub async fn open_tunnel(
    conn: &mut Conn,
    up: PooledConn,
    ubuf: &[u8],
    resp: &ResponseHead,
) -> Next {
    let mut up = up.stream;
    let mut out = Vec::with_capacity(resp.len + 64);
    encode::response_head(&mut out, ubuf, resp, false);
    out.extend_from_slice(&ubuf[resp.len..]);
    let n = out.len();
    if write_range(&mut conn.stream, &mut out, 0..n).await.is_err() {
        return Next::Close;
    }
    let (start, end) = (conn.consumed, conn.rbuf.len());
    if write_range(&mut up, &mut conn.rbuf, start..end)
        .await
        .is_err()
    {
        return Next::Close;
    }
    conn.consumed = end;
    Next::Tunnel(up)
}
