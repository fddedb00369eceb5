//! Forwarding a routed request to its cluster: the upstream head is built once, the body is
//! buffered when the route may retry (and it fits `retry_buffer_size`) or streamed, and
//! [`attempt`](super::attempt)s repeat as the route's retry policy and
//! [`crate::http::retry`] allow, with backoff. Then the response is relayed, or the failure
//! answered with its status and flag.
//!
//! Timeouts: the route `timeout` starts once the downstream request is complete (as Envoy's
//! does) — at once for a bodiless or buffered request, after the upload for a streamed one —
//! and runs until the response head; a slow upload to a healthy upstream is governed by the
//! idle timeout, never answered 504 `UT`. `per_try_timeout` bounds each try the same way.

use std::time::Instant;

use super::attempt::{self, Timing};
use super::body::{self, Body};
use super::conn::Conn;
use super::encode::{self, Forwarding};
use super::head::Framing;
use super::outcome::{Facts, Next};
use super::relay;
use super::response_head::ResponseHead;
use super::target;
use super::{local, Env};
use crate::cluster::Balancer;
use crate::config::HttpSettings;
use crate::http::retry::{Retrier, Step};
use crate::io::Stream;
use crate::route::Route;

/// Where a routed request goes.
pub struct Upstream<'a> {
    pub route: &'a Route,
    /// The snapshot the request runs on (mirror copies keep it alive).
    pub snap: &'a std::rc::Rc<crate::ctx::Snapshot>,
    pub balancer: &'a Balancer,
    /// `SO_MARK` for new upstream connections.
    pub mark: Option<u32>,
    /// The normalised path to send instead of the client's, when it changed.
    pub path: Option<&'a [u8]>,
}

pub async fn forward<S: Stream>(
    conn: &mut Conn<S>,
    settings: &HttpSettings,
    env: Env<'_>,
    to: Upstream<'_>,
    facts: Facts,
    started: Instant,
) -> Next {
    let Upstream {
        route,
        snap,
        balancer,
        mark,
        path,
    } = to;
    let mut request_id = [0u8; 36];
    let rng = &env.svc.rng;
    encode::uuid_v4(
        (u128::from(rng.next()) << 64) | u128::from(rng.next()),
        &mut request_id,
    );
    conn.rec.request_id = Some(request_id);
    let mut wbuf = env.h1.scratch.take();
    {
        let head = &conn.head;
        let raw_target = head.target.get(&conn.rbuf);
        let (authority, target) = match target::absolute_form(raw_target) {
            Some((a, p)) => (Some(a), p),
            None => (None, raw_target),
        };
        let target = path.unwrap_or(target);
        conn.rec.trace = encode::request_head(
            &mut wbuf,
            &conn.rbuf,
            head,
            &Forwarding {
                filters: &route.filters,
                target,
                authority,
                client_ip: conn.peer_ip.as_bytes(),
                request_id: &request_id,
                framing: facts.framing,
                te_trailers: false,
                tls: conn.ctx.tls.as_deref(),
                trace: env.svc.telemetry.fresh_trace(rng),
            },
        );
    }
    conn.consumed = conn.head.len;
    if conn.head.expect_continue && facts.framing != Framing::None {
        let (res, _) = conn.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]).await;
        if res.is_err() {
            env.h1.scratch.give(wbuf);
            return Next::Close;
        }
    }
    let mut retrier = Retrier::new(&route.retry, facts.idempotent).with_cluster(balancer);
    let retrying = retrier.enabled();
    let mut body = match facts.framing {
        Framing::Length(n)
            if (retrying || !route.mirrors.is_empty())
                && n as usize <= settings.retry_buffer_bytes
                && !facts.tunnel =>
        {
            match body::buffer(conn, n as usize).await {
                Ok(b) => Body::Buffered(b),
                Err(_) => {
                    env.h1.scratch.give(wbuf);
                    return Next::Close;
                }
            }
        }
        Framing::None | Framing::UntilClose => Body::Empty,
        _ => Body::Stream { done: false },
    };
    if !route.mirrors.is_empty() && !facts.tunnel {
        let copy = super::mirror::Copy {
            head: &wbuf,
            body: match &body {
                Body::Empty => Some(&[][..]),
                Body::Buffered(b) => Some(&b[..]),
                Body::Stream { .. } => None,
            },
            mark,
            timeout: route.timeout,
        };
        super::mirror::launch(&route.mirrors, snap, &env.svc.mirrors, rng, &copy);
    }
    let mut timing = Timing {
        tried: Default::default(),
        route_timeout: route.timeout,
        per_try: route.retry.per_try_timeout,
        // Bodiless or buffered: the downstream request is complete now.
        deadline: body
            .done()
            .then(|| route.timeout.map(|t| Instant::now() + t))
            .flatten(),
    };
    let mut ubuf = env.h1.scratch.take();
    let mut resp = ResponseHead::default();
    let outcome = loop {
        let result = attempt::run(
            conn,
            balancer,
            mark,
            &mut wbuf,
            &mut body,
            &mut ubuf,
            &mut resp,
            facts,
            &mut timing,
        )
        .await;
        let replayable = body.replayable() && !wbuf.is_empty();
        let step = match &result {
            Ok(_) if facts.tunnel => Step::Stop,
            Ok(_) => retrier.on_status(resp.status, replayable, rng.next()),
            Err(f) => retrier.on_failure(*f, replayable, rng.next()),
        };
        match step {
            Step::Stop => break result,
            Step::Retry(pause) => monoio::time::sleep(pause).await,
        }
    };
    env.h1.scratch.give(wbuf);
    conn.rec.retries = retrier.retries;
    let next = match outcome {
        Ok(up) if facts.tunnel && (resp.status == 101 || (200..300).contains(&resp.status)) => {
            relay::open_tunnel(conn, up.conn, &ubuf, &resp).await
        }
        Ok(up) => {
            let body_done = body.done();
            let n = relay::response(
                conn,
                env,
                balancer,
                up.conn,
                &mut ubuf,
                &resp,
                &route.filters,
                facts,
                body_done,
            )
            .await;
            tracing::debug!(
                listener = %conn.ctx.listener().name,
                peer = %conn.ctx.peer,
                route = %route.name,
                status = resp.status,
                retries = retrier.retries,
                duration_us = started.elapsed().as_micros() as u64,
                "request done"
            );
            n
        }
        Err(f) => {
            let close = facts.close || !body.done();
            conn.rec.upstream_failure = f.transport_failure();
            let n = local::send(conn, env, f.status(), Some(f.flag()), f.body(), close).await;
            crate::warn_limited!(
                "upstream request failed",
                listener = %conn.ctx.listener().name,
                peer = %conn.ctx.peer,
                route = %route.name,
                cluster = %balancer.cluster().name,
                status = f.status(),
                flag = f.flag(),
                attempts = retrier.retries + 1,
                duration_ms = started.elapsed().as_millis() as u64,
                "upstream request failed"
            );
            n
        }
    };
    env.h1.scratch.give(ubuf);
    next
}
