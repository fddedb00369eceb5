//! One request: build its protocol-neutral context, select the route from the shard's current
//! snapshot (the connection keeps the listener settings it was accepted with; routes and
//! clusters are per request), run the route's request filters, then answer locally or
//! forward to a cluster: [`forward`](super::forward) for HTTP/1 clusters,
//! [`to_h2`](super::to_h2) for `protocol: http2` ones.

use std::time::Instant;

use super::conn::Conn;
use super::forward;
use super::head::{Framing, RequestHead};
use super::local;
use super::outcome::{Facts, Next};
use super::target;
use super::to_h2;
use super::Env;
use crate::config::{HttpSettings, UpstreamProtocol};
use crate::ctx::Snapshot;
use crate::http::Method;
use crate::io::Stream;
use crate::route::normalize::{normalize, PathError};
use crate::route::{Action, RouteTable, Verdict};
use crate::telemetry::{Protocol, RequestView};

/// Handles the request whose head is at the start of `conn.rbuf`.
pub async fn handle<S: Stream>(conn: &mut Conn<S>, settings: &HttpSettings, env: Env<'_>) -> Next {
    let started = Instant::now();
    let Some(_active) = env.svc.overload.admit() else {
        use crate::overload::{BODY, FLAG};
        return local::respond(conn, env, 503, Some(FLAG), BODY, started).await;
    };
    let (snap, listener) = conn.ctx.request_snapshot(env.svc.snapshots.current());
    let Some(routes) = snap.routes[listener].as_ref() else {
        return Next::Close;
    };
    let normalized = match normalized_path(conn, settings, env) {
        Ok(n) => n,
        Err(e) => {
            let body: &[u8] = match e {
                PathError::BadEscape => b"malformed percent-encoding in path\n",
                PathError::EncodedSlash => b"encoded slash in path\n",
                PathError::NotOriginForm => b"request target is not in origin form\n",
            };
            return local::respond(conn, env, 400, Some("DPE"), body, started).await;
        }
    };
    conn.rec.start = started;
    conn.rec.listener = listener as u16;
    // A body read may reuse the buffer under the head: keep a copy for a log or tap.
    let saved = (conn.head.framing != Framing::None
        && env.svc.telemetry.wants_head(&snap, listener))
    .then(|| {
        let mut b = env.h1.scratch.take();
        b.extend_from_slice(&conn.rbuf[..conn.head.len]);
        b
    });
    let next = route_and_forward(
        conn,
        settings,
        env,
        &snap,
        routes,
        normalized.as_deref(),
        started,
    )
    .await;
    if let Some(buf) = normalized {
        env.h1.scratch.give(buf);
    }
    conn.rec.protocol = if conn.head.minor == 0 {
        Protocol::Http10
    } else {
        Protocol::Http11
    };
    let view = H1View {
        buf: saved.as_deref().unwrap_or(&conn.rbuf),
        head: &conn.head,
    };
    env.svc
        .telemetry
        .http_done(&mut conn.rec, &conn.ctx, &snap, &view);
    if let Some(b) = saved {
        env.h1.scratch.give(b);
    }
    conn.rec.restart();
    next
}

/// The request head as access logs and tap read it: spans into the read buffer (or the copy
/// kept when a body may have overwritten it).
struct H1View<'a> {
    buf: &'a [u8],
    head: &'a RequestHead,
}

impl H1View<'_> {
    fn get(&self, s: crate::http::Span) -> &[u8] {
        self.buf.get(s.range()).unwrap_or(b"")
    }
}

impl RequestView for H1View<'_> {
    fn method(&self) -> &[u8] {
        self.get(self.head.method)
    }
    fn path(&self) -> &[u8] {
        let raw = self.get(self.head.target);
        target::absolute_form(raw).map_or(raw, |(_, p)| p)
    }
    fn authority(&self) -> &[u8] {
        let raw = self.get(self.head.target);
        match target::absolute_form(raw) {
            Some((a, _)) => a,
            None => self.header("host").unwrap_or(b""),
        }
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.head
            .headers
            .iter()
            .find(|h| self.get(h.name).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| self.get(h.value))
    }
    fn headers<'s>(&'s self, names: &[Box<str>], out: &mut [Option<&'s [u8]>]) {
        out.fill(None);
        // Bit `len` set for each wanted name's length (< 64): most headers are skipped on it.
        let lens = names.iter().fold(0u64, |m, n| {
            m | 1u64.checked_shl(n.len() as u32).unwrap_or(0)
        });
        for h in &self.head.headers {
            let n = self.get(h.name);
            if n.len() < 64 && lens & (1 << n.len()) == 0 {
                continue;
            }
            for (want, o) in names.iter().zip(out.iter_mut()) {
                if o.is_none() && n.len() == want.len() && n.eq_ignore_ascii_case(want.as_bytes()) {
                    *o = Some(self.get(h.value));
                }
            }
        }
    }
}

/// The request's path normalised as the listener asks (`normalize_path`, `merge_slashes`,
/// `path_with_escaped_slashes`), in a scratch buffer; `None` when unchanged or not asked for.
/// CONNECT's authority-form target has no path.
fn normalized_path<S: Stream>(
    conn: &Conn<S>,
    settings: &HttpSettings,
    env: Env<'_>,
) -> Result<Option<Vec<u8>>, PathError> {
    if !settings.path.is_active() || conn.head.method.get(&conn.rbuf) == b"CONNECT" {
        return Ok(None);
    }
    let raw = conn.head.target.get(&conn.rbuf);
    let path = target::absolute_form(raw).map_or(raw, |(_, p)| p);
    let mut out = env.h1.scratch.take();
    match normalize(path, &settings.path, &mut out) {
        Ok(true) => Ok(Some(out)),
        Ok(false) => {
            env.h1.scratch.give(out);
            Ok(None)
        }
        Err(e) => {
            env.h1.scratch.give(out);
            Err(e)
        }
    }
}

/// Route selection, request filters, then a local answer or the upstream.
async fn route_and_forward<S: Stream>(
    conn: &mut Conn<S>,
    settings: &HttpSettings,
    env: Env<'_>,
    snap: &std::rc::Rc<Snapshot>,
    routes: &RouteTable,
    normalized: Option<&[u8]>,
    started: Instant,
) -> Next {
    let li = conn.rec.listener as usize;
    let (route, facts, verdict, fault) = {
        let req = target::request_ctx(&conn.rbuf, &conn.head, &conn.ctx, normalized);
        if let Some(Err(b)) = snap.config.listeners[li]
            .egress
            .as_ref()
            .map(|e| e.check_request(&req))
        {
            env.svc
                .telemetry
                .egress_blocked(li, crate::egress::Path::Http, b);
            return local::respond(conn, env, 502, Some(crate::egress::FLAG), b.body(), started)
                .await;
        }
        let facts = Facts {
            method: req.method,
            idempotent: req.method.is_idempotent(),
            // Draining: the response says `connection: close`, so the client does not race a close.
            close: conn.head.close || env.svc.draining.get(),
            framing: conn.head.framing,
            tunnel: conn.head.upgrade || req.method == Method::Connect,
            minor: conn.head.minor,
        };
        let route = routes.select(&req);
        let verdict = route.map(|r| r.filters.on_request(&req, &env.svc.authz));
        let fault = route.map(|r| crate::http::fault::decide(&r.filters, &req, &env.svc.rng));
        (route, facts, verdict, fault.unwrap_or_default())
    };
    let Some(route) = route else {
        return local::respond(conn, env, 404, Some("NR"), b"no route\n", started).await;
    };
    if let Some(Verdict::Respond { status, body, flag }) = verdict {
        return local::respond(conn, env, status, Some(flag), body, started).await;
    }
    if !fault.is_none() {
        use crate::http::fault::{apply, ABORT_BODY, ABORT_FLAG};
        if let Some((status, _)) = apply(fault, &env.svc.faults).await {
            return local::respond(conn, env, status, Some(ABORT_FLAG), ABORT_BODY, started).await;
        }
    }
    let cluster = match &route.action {
        Action::Direct { status, body } => {
            return local::respond(conn, env, *status, None, body.as_bytes(), started).await;
        }
        action => match action.pick_weighted(env.svc.rng.next() as u32) {
            Some(c) => c,
            None => {
                return local::respond(conn, env, 503, Some("UH"), b"no cluster\n", started).await
            }
        },
    };
    conn.rec.cluster = Some(cluster as u16);
    let balancer = snap.balancer(cluster);
    let mark = snap.config.upstream_mark;
    let fwd = forward::Upstream {
        route,
        snap,
        balancer,
        mark,
        path: normalized,
    };
    let protocol = match balancer.cluster().protocol {
        UpstreamProtocol::Auto => Box::pin(crate::upstream::auto_protocol(balancer, mark)).await,
        p => p,
    };
    match protocol {
        UpstreamProtocol::Http1 | UpstreamProtocol::Auto => {
            forward::forward(conn, settings, env, fwd, facts, started).await
        }
        UpstreamProtocol::Http2 => to_h2::forward(conn, settings, env, fwd, facts, started).await,
    }
}
