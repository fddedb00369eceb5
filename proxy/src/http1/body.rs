//! Request bodies: read fully into memory (bounded, so the request can be retried) or streamed
//! from the client to the upstream with backpressure — each read is written before the next.
//! Chunked bodies pass through byte for byte after validation.

use std::io;

use crate::upstream::UpStream;

use super::chunked::ChunkedScanner;
use super::conn::{write_range, Conn};
use super::head::Framing;
use crate::http::Failure;
use crate::io::Stream;

/// How the current request's body is handled.
#[derive(Debug)]
pub enum Body {
    Empty,
    /// Whole body in memory: the request can be sent again.
    Buffered(Vec<u8>),
    /// Streamed from the client during the first attempt; `done` once fully forwarded.
    Stream {
        done: bool,
    },
}

impl Body {
    pub fn replayable(&self) -> bool {
        !matches!(self, Body::Stream { .. })
    }
    /// The client's body has been read completely (so the connection can be reused).
    pub fn done(&self) -> bool {
        match self {
            Body::Stream { done } => *done,
            _ => true,
        }
    }
}

/// Reads a `Content-Length` body of `n` bytes (already checked against the retry buffer limit).
pub async fn buffer<S: Stream>(conn: &mut Conn<S>, n: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    loop {
        let start = conn.consumed;
        let take = (n - out.len()).min(conn.rbuf.len() - start);
        out.extend_from_slice(&conn.rbuf[start..start + take]);
        conn.consumed += take;
        if out.len() == n {
            return Ok(out);
        }
        compact(conn);
        if conn.read_more().await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Forgets consumed bytes when nothing after them is buffered, so a long body reuses one
/// buffer instead of growing it.
pub fn compact<S>(conn: &mut Conn<S>) {
    if conn.consumed > 0 && conn.consumed == conn.rbuf.len() {
        conn.rbuf.clear();
        conn.consumed = 0;
    }
}

/// Streams the request body from the client to `up`. Bytes of the next pipelined request stay
/// in `conn.rbuf`.
pub async fn stream<S: Stream>(
    conn: &mut Conn<S>,
    up: &mut UpStream,
    framing: Framing,
) -> Result<(), Failure> {
    match framing {
        Framing::None | Framing::UntilClose => Ok(()),
        Framing::Length(n) => {
            let mut left = n;
            loop {
                let start = conn.consumed;
                let take = (left as usize).min(conn.rbuf.len() - start);
                write_range(up, &mut conn.rbuf, start..start + take)
                    .await
                    .map_err(|_| Failure::Reset)?;
                conn.watch.touch();
                conn.consumed += take;
                left -= take as u64;
                if left == 0 {
                    return Ok(());
                }
                compact(conn);
                match conn.read_more().await {
                    Ok(0) | Err(_) => return Err(Failure::Client),
                    Ok(_) => {}
                }
            }
        }
        Framing::Chunked => {
            let mut scanner = ChunkedScanner::default();
            loop {
                let start = conn.consumed;
                let take = scanner
                    .scan(&conn.rbuf[start..])
                    .map_err(|_| Failure::Client)?;
                write_range(up, &mut conn.rbuf, start..start + take)
                    .await
                    .map_err(|_| Failure::Reset)?;
                conn.watch.touch();
                conn.consumed += take;
                if scanner.is_done() {
                    return Ok(());
                }
                compact(conn);
                match conn.read_more().await {
                    Ok(0) | Err(_) => return Err(Failure::Client),
                    Ok(_) => {}
                }
            }
        }
    }
}
