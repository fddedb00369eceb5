//! Responses back to the client: head rewritten (hop-by-hop headers dropped, framing
//! re-announced), body relayed as it arrives (Content-Length, chunked passed through after
//! validation, or until close). A small response goes out in one write together with its head.
//! The upstream connection returns to the shard pool only with a [`CleanEnd`]: the request was
//! sent in full, the response read to its end and not one byte more was buffered.

use crate::upstream::UpStream;

use super::chunked::ChunkedScanner;
use super::conn::{read_onto, write_range, Conn};
use super::encode;
use super::head::Framing;
use super::outcome::{Facts, Next};
use super::response_head::ResponseHead;
use super::Env;
use crate::cluster::{Balancer, CleanEnd, PooledConn};
use crate::io::Stream;
use crate::route::FilterChain;
use crate::upstream;

/// Relays the response whose head is at the start of `ubuf`.
#[allow(clippy::too_many_arguments)]
pub async fn response<S: Stream>(
    conn: &mut Conn<S>,
    env: Env<'_>,
    balancer: &Balancer,
    mut up: PooledConn,
    ubuf: &mut Vec<u8>,
    resp: &ResponseHead,
    filters: &FilterChain,
    facts: Facts,
    request_body_done: bool,
) -> Next {
    // An HTTP/1.0 client does not know chunked coding (RFC 9112 §7.1): it gets the data alone,
    // delimited by closing the connection.
    let dechunk = facts.minor == 0 && resp.framing == Framing::Chunked;
    let client_framing = if dechunk {
        Framing::UntilClose
    } else {
        resp.framing
    };
    let close_client = facts.close || client_framing == Framing::UntilClose || !request_body_done;
    conn.rec.respond(resp.status, None);
    let mut out = env.h1.scratch.take();
    encode::response_head(&mut out, ubuf, resp, client_framing, close_client, filters);
    let mut pos = resp.len;
    let outcome = if dechunk {
        relay_dechunked(conn, &mut up.stream, ubuf, &mut pos, &mut out).await
    } else {
        relay_body(conn, &mut up.stream, ubuf, &mut pos, &mut out, resp.framing).await
    };
    env.h1.scratch.give(out);
    match outcome {
        Ok(()) => {}
        // A truncated response: closing tells the client (length or chunk terminator missing).
        Err(Side::Client | Side::Upstream) => return Next::Close,
    }
    if let Some(clean) = CleanEnd::check(request_body_done, true, ubuf.len() - pos, resp.close) {
        upstream::h1::checkin(balancer, up, clean);
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
async fn relay_body<S: Stream>(
    conn: &mut Conn<S>,
    up: &mut UpStream,
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
            conn.write_range(out, 0..n)
                .await
                .map_err(|_| Side::Client)?;
            first = false;
        } else {
            conn.write_range(ubuf, *pos..*pos + take)
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
            Ok(_) => conn.watch.touch(),
        }
    }
}

/// Sends `out` (the head) plus the chunk data of a chunked body without its framing (sizes,
/// extensions and trailers are validated and dropped).
async fn relay_dechunked<S: Stream>(
    conn: &mut Conn<S>,
    up: &mut UpStream,
    ubuf: &mut Vec<u8>,
    pos: &mut usize,
    out: &mut Vec<u8>,
) -> Result<(), Side> {
    let mut scanner = ChunkedScanner::default();
    loop {
        let avail = &ubuf[*pos..];
        let n = scanner
            .scan_data(avail, |r| out.extend_from_slice(&avail[r]))
            .map_err(|_| Side::Upstream)?;
        *pos += n;
        let len = out.len();
        conn.write_range(out, 0..len)
            .await
            .map_err(|_| Side::Client)?;
        out.clear();
        if scanner.is_done() {
            return Ok(());
        }
        ubuf.clear();
        *pos = 0;
        match read_onto(up, ubuf).await {
            Ok(0) | Err(_) => return Err(Side::Upstream),
            Ok(_) => conn.watch.touch(),
        }
    }
}

/// After 101 Switching Protocols (or a 2xx to CONNECT): send the head and whatever both sides
/// already sent past their heads, then hand both sockets to the L4 tunnel.
pub async fn open_tunnel<S: Stream>(
    conn: &mut Conn<S>,
    up: PooledConn,
    ubuf: &[u8],
    resp: &ResponseHead,
) -> Next {
    conn.rec.respond(resp.status, None);
    let Ok(mut up) = up.stream.into_tcp() else {
        tracing::warn!("upgrade to a TLS upstream is not supported; closed");
        return Next::Close;
    };
    let mut out = Vec::with_capacity(resp.len + 64);
    encode::response_head(
        &mut out,
        ubuf,
        resp,
        resp.framing,
        false,
        &FilterChain::default(),
    );
    out.extend_from_slice(&ubuf[resp.len..]);
    let n = out.len();
    if conn.write_range(&mut out, 0..n).await.is_err() {
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
