//! One request/response exchange: route, choose an upstream (pooled or new), send the request,
//! relay the response; retries with exponential backoff and jitter; failures mapped to a status,
//! a response flag and one structured log line.

use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::body::{self, Body};
use super::conn::{read_onto, write_range, Conn};
use super::encode::{self, Forwarding};
use super::failure::Failure;
use super::head::{self, Framing, ResponseHead};
use super::relay;
use super::view::View;
use crate::cluster::{Balancer, PooledConn};
use crate::config::{HttpSettings, Listener};
use crate::route::{Action, RetryPolicy, Route};
use crate::shard::ShardCtx;

/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// What the connection does after an exchange.
pub enum Next {
    KeepAlive,
    Close,
    /// Switch to a byte tunnel with this upstream (after 101 Switching Protocols or a CONNECT 2xx).
    Tunnel(TcpStream),
}

/// Facts about the request that outlive its head bytes.
#[derive(Clone, Copy)]
pub struct Facts {
    pub is_head: bool,
    pub idempotent: bool,
    pub close: bool,
    pub framing: Framing,
}

fn retries_enabled(p: &RetryPolicy) -> bool {
    p.num_retries > 0
        && (p.on_5xx
            || p.on_gateway_error
            || p.on_connect_failure
            || p.on_reset
            || !p.retriable_status_codes.is_empty())
}

fn retry_on_status(p: &RetryPolicy, status: u16) -> bool {
    (p.on_5xx && (500..600).contains(&status))
        || (p.on_gateway_error && matches!(status, 502..=504))
        || p.retriable_status_codes.contains(&status)
}

fn retry_on_failure(p: &RetryPolicy, f: Failure) -> bool {
    match f {
        Failure::Connect => p.on_connect_failure || p.on_5xx || p.on_gateway_error,
        Failure::Reset | Failure::Stale => p.on_reset || p.on_5xx || p.on_gateway_error,
        Failure::Timeout | Failure::Protocol | Failure::TooManyHeaders => {
            p.on_5xx || p.on_gateway_error
        }
        Failure::NoHealthy | Failure::Client => false,
    }
}

/// Full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)).
fn backoff(attempt: u32, random: u64) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(8))
        .min(BACKOFF_MAX);
    Duration::from_nanos(random % cap.as_nanos().max(1) as u64)
}

/// Handles the request whose head is at the start of `conn.rbuf`.
pub async fn handle(
    conn: &mut Conn,
    listener_idx: usize,
    listener: &Listener,
    settings: &HttpSettings,
    ctx: &ShardCtx,
) -> Next {
    let started = Instant::now();
    let routes = ctx.routes[listener_idx]
        .as_ref()
        .unwrap_or(&settings.routes);
    let route = routes.select(&View {
        buf: &conn.rbuf,
        head: &conn.head,
    });
    let Some(route) = route else {
        return local(conn, ctx, listener, 404, Some("NR"), b"no route\n", started).await;
    };
    let cluster = match &route.action {
        Action::Direct { status, body } => {
            return local(conn, ctx, listener, *status, None, body.as_bytes(), started).await;
        }
        action => match action.pick_weighted(ctx.random() as u32) {
            Some(c) => c,
            None => {
                return local(
                    conn,
                    ctx,
                    listener,
                    503,
                    Some("UH"),
                    b"no cluster\n",
                    started,
                )
                .await
            }
        },
    };
    let balancer = &ctx.balancers[cluster];
    let head = &conn.head;
    let facts = Facts {
        is_head: head.is_head(&conn.rbuf),
        idempotent: head.is_idempotent(&conn.rbuf),
        close: head.close,
        framing: head.framing,
    };
    let tunnel = head.upgrade || head.is_connect(&conn.rbuf);
    let mut request_id = [0u8; 36];
    encode::uuid_v4(
        (u128::from(ctx.random()) << 64) | u128::from(ctx.random()),
        &mut request_id,
    );
    let mut wbuf = ctx.scratch.take();
    encode::request_head(
        &mut wbuf,
        &conn.rbuf,
        head,
        &Forwarding {
            route,
            client_ip: conn.peer_ip.as_bytes(),
            request_id: &request_id,
            framing: facts.framing,
        },
    );
    let expect_continue = head.expect_continue;
    conn.consumed = head.len;
    if expect_continue && facts.framing != Framing::None {
        let (res, _) = conn.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]).await;
        if res.is_err() {
            ctx.scratch.give(wbuf);
            return Next::Close;
        }
    }
    let policy = &route.retry;
    let mut body = match facts.framing {
        Framing::Length(n)
            if retries_enabled(policy) && n as usize <= settings.retry_buffer_bytes && !tunnel =>
        {
            match body::buffer(conn, n as usize).await {
                Ok(b) => Body::Buffered(b),
                Err(_) => {
                    ctx.scratch.give(wbuf);
                    return Next::Close;
                }
            }
        }
        Framing::None | Framing::UntilClose => Body::Empty,
        _ => Body::Stream { done: false },
    };
    let tries = if retries_enabled(policy) {
        1 + policy.num_retries
    } else {
        1
    };
    let deadline = route.timeout.map(|t| started + t);
    let mut ubuf = ctx.scratch.take();
    let mut resp = ResponseHead::default();
    let mut attempt = 0;
    let mut stale_retried = false;
    let outcome = loop {
        let now = Instant::now();
        let mut limit = deadline.map(|d| d.saturating_duration_since(now));
        if let Some(pt) = policy.per_try_timeout {
            limit = Some(limit.map_or(pt, |l| l.min(pt)));
        }
        let try_once = Box::pin(attempt_once(
            conn, balancer, &mut wbuf, &mut body, &mut ubuf, &mut resp, facts,
        ));
        let result = match limit {
            Some(l) => monoio::time::timeout(l, try_once)
                .await
                .unwrap_or(Err(Failure::Timeout)),
            None => try_once.await,
        };
        let replayable = body.replayable() && !wbuf.is_empty();
        let after_bytes_ok = facts.idempotent || policy.retry_non_idempotent;
        match result {
            Ok(up)
                if !tunnel
                    && attempt + 1 < tries
                    && replayable
                    && after_bytes_ok
                    && retry_on_status(policy, resp.status) =>
            {
                drop(up);
            }
            Ok(up) => break Ok(up),
            Err(Failure::Stale) if replayable && !stale_retried => {
                stale_retried = true;
                continue;
            }
            Err(f) => {
                let may_repeat = replayable && (f == Failure::Connect || after_bytes_ok);
                if !(attempt + 1 < tries && may_repeat && retry_on_failure(policy, f)) {
                    break Err(f);
                }
            }
        }
        attempt += 1;
        monoio::time::sleep(backoff(attempt - 1, ctx.random())).await;
    };
    ctx.scratch.give(wbuf);
    let next = match outcome {
        Ok(up) if tunnel && (resp.status == 101 || (200..300).contains(&resp.status)) => {
            relay::open_tunnel(conn, up, &ubuf, &resp).await
        }
        Ok(up) => {
            let body_done = body.done();
            let n =
                relay::response(conn, ctx, balancer, up, &mut ubuf, &resp, facts, body_done).await;
            log_done(listener, conn, route, resp.status, started, attempt);
            n
        }
        Err(f) => {
            let close = facts.close || !body.done();
            let n = send_local(conn, ctx, f.status(), Some(f.flag()), f.body(), close).await;
            crate::warn_limited!(
                "upstream request failed",
                listener = %listener.name,
                peer = %conn.peer,
                route = %route.name,
                cluster = %balancer.cluster().name,
                status = f.status(),
                flag = f.flag(),
                attempts = attempt + 1,
                duration_ms = started.elapsed().as_millis() as u64,
                "upstream request failed"
            );
            n
        }
    };
    ctx.scratch.give(ubuf);
    next
}

/// One try: endpoint, connection, request out, response head in.
async fn attempt_once(
    conn: &mut Conn,
    balancer: &Balancer,
    wbuf: &mut Vec<u8>,
    body: &mut Body,
    ubuf: &mut Vec<u8>,
    resp: &mut ResponseHead,
    facts: Facts,
) -> Result<PooledConn, Failure> {
    let (ep_idx, ep, _in_flight) = balancer.pick_healthy().ok_or(Failure::NoHealthy)?;
    let mut up = match balancer.pools.take(ep_idx) {
        Some(c) => c,
        None => {
            let connect = TcpStream::connect_addr(ep.addr);
            match monoio::time::timeout(balancer.cluster().connect_timeout, connect).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    balancer.connect_succeeded(ep_idx);
                    balancer.pools.note_connected();
                    PooledConn::fresh(s, ep_idx)
                }
                Ok(Err(_)) | Err(_) => {
                    balancer.connect_failed(ep_idx);
                    return Err(Failure::Connect);
                }
            }
        }
    };
    let len = wbuf.len();
    let lost = if up.reused {
        Failure::Stale
    } else {
        Failure::Reset
    };
    write_range(&mut up.stream, wbuf, 0..len)
        .await
        .map_err(|_| lost)?;
    match body {
        Body::Empty => {}
        Body::Buffered(b) => {
            let n = b.len();
            write_range(&mut up.stream, b, 0..n)
                .await
                .map_err(|_| lost)?;
        }
        Body::Stream { done } => {
            body::stream(conn, &mut up.stream, facts.framing).await?;
            *done = true;
        }
    }
    ubuf.clear();
    loop {
        if !ubuf.is_empty() {
            let max_headers = balancer.cluster().max_response_headers;
            match head::parse_response(ubuf, MAX_RESPONSE_HEAD, max_headers, facts.is_head, resp) {
                Ok(true) if (100..200).contains(&resp.status) && resp.status != 101 => {
                    ubuf.drain(..resp.len); // interim response: we already sent our own 100
                    continue;
                }
                Ok(true) => return Ok(up),
                Ok(false) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match read_onto(&mut up.stream, ubuf).await {
            Ok(0) | Err(_) => {
                return Err(if up.reused && ubuf.is_empty() {
                    Failure::Stale
                } else {
                    Failure::Reset
                })
            }
            Ok(_) => {}
        }
    }
}

/// A locally generated response (no route, direct response). A request body we did not read
/// makes the connection unusable afterwards, so then it is closed.
async fn local(
    conn: &mut Conn,
    ctx: &ShardCtx,
    listener: &Listener,
    status: u16,
    flag: Option<&str>,
    body: &[u8],
    started: Instant,
) -> Next {
    conn.consumed = conn.head.len;
    let close = conn.head.close || conn.head.framing != Framing::None;
    if let Some(flag) = flag {
        let buf = &conn.rbuf;
        crate::warn_limited!(
            "request answered locally",
            listener = %listener.name,
            peer = %conn.peer,
            method = %String::from_utf8_lossy(conn.head.method.get(buf)),
            path = %String::from_utf8_lossy(conn.head.target.get(buf)),
            status,
            flag,
            duration_ms = started.elapsed().as_millis() as u64,
            "request answered locally"
        );
    }
    send_local(conn, ctx, status, flag, body, close).await
}

/// Writes a locally generated response; `close` ends the connection afterwards.
async fn send_local(
    conn: &mut Conn,
    ctx: &ShardCtx,
    status: u16,
    flag: Option<&str>,
    body: &[u8],
    close: bool,
) -> Next {
    let mut out = ctx.scratch.take();
    encode::local_response(&mut out, status, body, flag, close);
    let (res, out) = conn.write_all(out).await;
    ctx.scratch.give(out);
    if res.is_ok() && !close {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

fn log_done(
    listener: &Listener,
    conn: &Conn,
    route: &Route,
    status: u16,
    started: Instant,
    retries: u32,
) {
    tracing::debug!(
        listener = %listener.name,
        peer = %conn.peer,
        route = %route.name,
        status,
        retries,
        duration_us = started.elapsed().as_micros() as u64,
        "request done"
    );
}
