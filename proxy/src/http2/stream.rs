//! One HTTP/2 stream: its protocol-neutral [`RequestCtx`] (`:authority` as the host, `:path`,
//! the header list as spans into one buffer), then the same steps as HTTP/1 — route selection
//! from the shard's current snapshot, the route's request filters, a direct response or a
//! cluster — and the exchange with an HTTP/1 ([`super::to_h1`]) or HTTP/2 ([`super::to_h2`])
//! upstream. A gRPC request's `grpc-timeout` bounds the whole call; proxy errors on gRPC
//! requests are answered as trailers-only gRPC statuses.

use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::request::Parts;
use http::Request;

use super::respond::Downstream;
use super::{to_h1, to_h2};
use crate::config::{HttpSettings, UpstreamProtocol};
use crate::ctx::{ConnCtx, ConnWatch, Services};
use crate::http::request::BodyKind;
use crate::http::{grpc, Failure, HeaderSpan, Headers, Method, RequestCtx, Span};
use crate::http1::H1State;
use crate::route::{Action, Route, Verdict};

/// What a stream borrows from its connection and shard.
#[derive(Clone, Copy)]
pub struct StreamEnv<'a> {
    pub svc: &'a Services,
    pub h1: &'a H1State,
    pub ctx: &'a ConnCtx,
    pub settings: &'a HttpSettings,
    pub watch: &'a ConnWatch,
    /// The client's IP as text (x-forwarded-for).
    pub peer_ip: &'a [u8],
}

/// A request head as the layers above the codec see it.
pub struct Head<'p> {
    pub parts: &'p Parts,
    pub authority: &'p [u8],
    pub path: &'p [u8],
    pub method: Method,
    /// Declared request body length (`content-length`).
    pub content_length: Option<u64>,
    pub te_trailers: bool,
    buf: Vec<u8>,
    spans: Vec<HeaderSpan>,
}

impl<'p> Head<'p> {
    pub fn of(parts: &'p Parts) -> Head<'p> {
        let h = &parts.headers;
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .or_else(|| h.get(http::header::HOST).map(|v| v.as_bytes()))
            .unwrap_or(b"");
        let path = parts
            .uri
            .path_and_query()
            .map_or(&b"/"[..], |p| p.as_str().as_bytes());
        let mut buf = Vec::with_capacity(256);
        let mut spans = Vec::with_capacity(h.len());
        for (n, v) in h {
            let start = buf.len() as u32;
            buf.extend_from_slice(n.as_str().as_bytes());
            let mid = buf.len() as u32;
            buf.extend_from_slice(v.as_bytes());
            spans.push(HeaderSpan {
                name: Span { start, end: mid },
                value: Span {
                    start: mid,
                    end: buf.len() as u32,
                },
            });
        }
        Head {
            parts,
            authority,
            path,
            method: Method::parse(parts.method.as_str().as_bytes()),
            content_length: h
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            te_trailers: h
                .get(http::header::TE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers")),
            buf,
            spans,
        }
    }

    /// The header list as `(name, value)` pairs, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        let buf = &self.buf;
        self.spans
            .iter()
            .map(move |h| (h.name.get(buf), h.value.get(buf)))
    }

    pub fn request_ctx<'a>(&'a self, conn: &'a ConnCtx, body: BodyKind) -> RequestCtx<'a> {
        RequestCtx {
            method: self.method,
            method_raw: self.parts.method.as_str().as_bytes(),
            authority: self.authority,
            path: self.path,
            headers: Headers {
                buf: &self.buf,
                spans: &self.spans,
            },
            body,
            conn,
        }
    }
}

/// Serves one stream to its end.
pub async fn handle(req: Request<RecvStream>, respond: SendResponse<Bytes>, env: StreamEnv<'_>) {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let head = Head::of(&parts);
    let grpc = grpc::is_grpc(
        parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
    );
    let mut ds = Downstream::new(respond, grpc, env.settings.h2.stream_idle_timeout);
    ds.rec.grpc = grpc;
    ds.rec.start = started;
    ds.rec.bytes_received = head.content_length.unwrap_or(0);
    let (snap, listener) = env.ctx.request_snapshot(env.svc.snapshots.current());
    ds.rec.listener = listener as u16;
    let deadline = grpc
        .then(|| parts.headers.get(grpc::TIMEOUT_HEADER))
        .flatten()
        .and_then(|v| grpc::parse_timeout(v.as_bytes()));
    // Boxed: the forwarding future is several KB, and `FuturesUnordered::push` moves the
    // stream future twice (into its argument, then into its task). With this inline, those
    // two copies cost ≈ 19,000 of the 55,500 instructions of an h2c → h1 request (callgrind);
    // one allocation is far cheaper.
    let work = Box::pin(route_and_forward(
        &mut ds,
        &head,
        body,
        (&snap, listener),
        env,
    ));
    let outcome = match deadline {
        Some(t) => monoio::time::timeout(t, work)
            .await
            .unwrap_or(Err(Failure::Timeout)),
        None => work.await,
    };
    if let Err(f) = outcome {
        crate::warn_limited!(
            "upstream request failed",
            listener = %env.ctx.listener().name,
            peer = %env.ctx.peer,
            status = f.status(),
            flag = f.flag(),
            duration_ms = started.elapsed().as_millis() as u64,
            "upstream request failed (h2)"
        );
        ds.failure(f).await;
    }
    env.svc
        .telemetry
        .http_done(&mut ds.rec, env.ctx, &snap, &head);
}

impl crate::telemetry::RequestView for Head<'_> {
    fn method(&self) -> &[u8] {
        self.parts.method.as_str().as_bytes()
    }
    fn path(&self) -> &[u8] {
        self.path
    }
    fn authority(&self) -> &[u8] {
        self.authority
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.parts.headers.get(name).map(|v| v.as_bytes())
    }
}

async fn route_and_forward(
    ds: &mut Downstream,
    head: &Head<'_>,
    body: RecvStream,
    (snap, listener): (&std::rc::Rc<crate::ctx::Snapshot>, usize),
    env: StreamEnv<'_>,
) -> Result<(), Failure> {
    let Some(_active) = env.svc.overload.admit() else {
        use crate::overload::{BODY, FLAG};
        ds.local(503, Some(FLAG), BODY).await;
        return Ok(());
    };
    let Some(routes) = snap.routes[listener].as_ref() else {
        ds.local(404, Some("NR"), b"no route\n").await;
        return Ok(());
    };
    let kind = if body.is_end_stream() {
        BodyKind::None
    } else {
        head.content_length
            .map_or(BodyKind::Streamed, BodyKind::Sized)
    };
    let req = head.request_ctx(env.ctx, kind);
    if let Some(Err(b)) = snap.config.listeners[listener]
        .egress
        .as_ref()
        .map(|e| e.check_request(&req))
    {
        env.svc
            .telemetry
            .egress_blocked(listener, crate::egress::Path::Http, b);
        ds.local(502, Some(crate::egress::FLAG), b.body()).await;
        return Ok(());
    }
    let route: Option<&Route> = routes.select(&req);
    let fault = route.map(|r| crate::http::fault::decide(&r.filters, &req, &env.svc.rng));
    let Some(route) = route else {
        ds.local(404, Some("NR"), b"no route\n").await;
        return Ok(());
    };
    if let Verdict::Respond { status, body, flag } = route.filters.on_request(&req, &env.svc.authz)
    {
        ds.local(status, Some(flag), body).await;
        return Ok(());
    }
    if let Some(f) = fault.filter(|f| !f.is_none()) {
        if let Some((status, grpc)) = crate::http::fault::apply(f, &env.svc.faults).await {
            ds.fault_abort(status, grpc).await;
            return Ok(());
        }
    }
    let cluster = match &route.action {
        Action::Direct { status, body } => {
            ds.local(*status, None, body.as_bytes()).await;
            return Ok(());
        }
        action => match action.pick_weighted(env.svc.rng.next() as u32) {
            Some(c) => c,
            None => {
                ds.local(503, Some("UH"), b"no cluster\n").await;
                return Ok(());
            }
        },
    };
    ds.rec.cluster = Some(cluster as u16);
    let balancer = snap.balancer(cluster);
    let mark = snap.config.upstream_mark;
    let protocol = match balancer.cluster().protocol {
        UpstreamProtocol::Auto => Box::pin(crate::upstream::auto_protocol(balancer, mark)).await,
        p => p,
    };
    match protocol {
        UpstreamProtocol::Http1 | UpstreamProtocol::Auto => {
            to_h1::exchange(ds, head, body, route, (snap, balancer), mark, env).await
        }
        UpstreamProtocol::Http2 => {
            to_h2::exchange(ds, head, body, route, balancer, mark, env).await
        }
    }
}

/// Waits for `f` at most `idle` (a stalled stream).
pub async fn idle_bounded<T>(
    idle: Option<Duration>,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    match idle {
        Some(t) => monoio::time::timeout(t, f).await.ok(),
        None => Some(f.await),
    }
}
