//! Responses the proxy makes itself: no route (404 `NR`), direct responses, filter verdicts and
//! upstream failures. A request body that was not read makes the connection unusable
//! afterwards, so then it is closed.

use std::time::Instant;

use super::conn::Conn;
use super::encode;
use super::head::Framing;
use super::outcome::Next;
use super::Env;
use crate::io::Stream;

/// Answers the current request locally; `flag` marks a failure (logged at warn).
pub async fn respond<S: Stream>(
    conn: &mut Conn<S>,
    env: Env<'_>,
    status: u16,
    flag: Option<&str>,
    body: &[u8],
    started: Instant,
) -> Next {
    conn.consumed = conn.head.len;
    let close = conn.head.close || conn.head.framing != Framing::None || env.svc.draining.get();
    if let Some(flag) = flag {
        let buf = &conn.rbuf;
        crate::warn_limited!(
            "request answered locally",
            listener = %conn.ctx.listener().name,
            peer = %conn.ctx.peer,
            method = %String::from_utf8_lossy(conn.head.method.get(buf)),
            path = %String::from_utf8_lossy(conn.head.target.get(buf)),
            status,
            flag,
            duration_ms = started.elapsed().as_millis() as u64,
            "request answered locally"
        );
    }
    send(conn, env, status, flag, body, close).await
}

/// Writes a locally generated response; `close` ends the connection afterwards.
pub async fn send<S: Stream>(
    conn: &mut Conn<S>,
    env: Env<'_>,
    status: u16,
    flag: Option<&str>,
    body: &[u8],
    close: bool,
) -> Next {
    conn.rec.respond(status, flag);
    let mut out = env.h1.scratch.take();
    encode::local_response(&mut out, status, body, flag, close);
    let (res, out) = conn.write_all(out).await;
    env.h1.scratch.give(out);
    if res.is_ok() && !close {
        Next::KeepAlive
    } else {
        Next::Close
    }
}
