//! HTTP/2 stream → HTTP/2 upstream, over a shared connection from `crate::upstream::h2`.
//! Headers cross with the same edits as every codec (hop-by-hop names dropped, the route's
//! filters, x-forwarded-*, x-request-id; the authority rewritten by `host_rewrite`). Request
//! and response bodies stream at the same time (gRPC bidi), each within the receiver's
//! flow-control window and releasing the sender's window only once forwarded; trailers pass
//! through. A stream the upstream never processed (REFUSED_STREAM, above a GOAWAY's last
//! stream id) is retried when nothing of its body was consumed.

use std::cell::RefCell;
use std::pin::pin;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::{select, Either};
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};

use super::respond::{send_data, Downstream, Gone};
use super::stream::{idle_bounded, Head, StreamEnv};
use crate::cluster::Balancer;
use crate::http::header::{classify, is_hop_by_hop, Known};
use crate::http::retry::{Retrier, Step};
use crate::http::Failure;
use crate::http1::attempt::{within, Timing};
use crate::route::{FilterChain, Route};
use crate::telemetry::propagate::Outgoing;
use crate::upstream::h2 as up_h2;

/// The upstream request head, and the trace headers it carries (this hop's span).
fn request(
    head: &Head<'_>,
    filters: &FilterChain,
    env: StreamEnv<'_>,
) -> (Request<()>, Option<Outgoing>) {
    let authority = filters
        .host_rewrite()
        .map(str::as_bytes)
        .unwrap_or(head.authority);
    let mut uri = Vec::with_capacity(8 + authority.len() + head.path.len());
    uri.extend_from_slice(b"http://");
    uri.extend_from_slice(authority);
    uri.extend_from_slice(head.path);
    let mut req = Request::new(());
    *req.method_mut() = head.parts.method.clone();
    *req.uri_mut() = http::Uri::try_from(uri).unwrap_or_else(|_| head.parts.uri.clone());
    let h = req.headers_mut();
    let mut xff: Vec<u8> = Vec::new();
    let mut has_request_id = false;
    for (n, v) in &head.parts.headers {
        let name = n.as_str().as_bytes();
        match classify(name) {
            Known::HopByHop if name == b"te" && head.te_trailers => {}
            k if is_hop_by_hop(k) => continue,
            // Set by the proxy below (XFCC only for a verified mTLS peer).
            Known::Host | Known::XForwardedProto | Known::XForwardedClientCert => continue,
            Known::XForwardedFor => {
                xff.extend_from_slice(v.as_bytes());
                xff.extend_from_slice(b", ");
                continue;
            }
            Known::XRequestId => has_request_id = true,
            _ => {}
        }
        if filters.drops_request_header(name) {
            continue;
        }
        h.append(n.clone(), v.clone());
    }
    let trace = crate::http::h2_request::finish_headers(
        h,
        xff,
        has_request_id,
        filters,
        env.peer_ip,
        env.ctx.tls.as_deref(),
        env.svc,
    );
    (req, trace)
}

/// The response head for the client: the route's response edits applied.
pub(crate) fn response_head(up: &Response<RecvStream>, filters: &FilterChain) -> Response<()> {
    let mut out = Response::new(());
    *out.status_mut() = up.status();
    let h = out.headers_mut();
    for (n, v) in up.headers() {
        if !filters.drops_response_header(n.as_str().as_bytes()) {
            h.append(n.clone(), v.clone());
        }
    }
    for (n, v) in filters.response_adds() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    out
}

pub async fn exchange(
    ds: &mut Downstream,
    head: &Head<'_>,
    mut body: RecvStream,
    route: &Route,
    balancer: &Balancer,
    mark: Option<u32>,
    env: StreamEnv<'_>,
) -> Result<(), Failure> {
    let (req, trace) = request(head, &route.filters, env);
    ds.rec.trace = trace;
    let mut retrier =
        Retrier::new(&route.retry, head.method.is_idempotent()).with_cluster(balancer);
    let mut timing = Timing {
        tried: Default::default(),
        route_timeout: route.timeout,
        per_try: route.retry.per_try_timeout,
        deadline: None,
    };
    let no_body = body.is_end_stream();
    let rng = &env.svc.rng;
    // A copy of the body as it goes up, so a retry can send it again (Envoy's model: the
    // upload is never held back; the copy is dropped once it outgrows the retry buffer).
    let limit = if retrier.enabled() && !no_body {
        env.settings.retry_buffer_bytes
    } else {
        0
    };
    let replay = RefCell::new(Replay::new(limit));
    loop {
        let replayable = no_body || replay.borrow().replayable();
        let try_start = Instant::now();
        let r = up_h2::open_stream(balancer, mark, &req, no_body, &timing.tried).await;
        let (slot, in_flight, response, mut send) = match r {
            Ok(x) => x,
            Err(f) => match retrier.on_failure(f, replayable, rng.next()) {
                Step::Retry(p) => {
                    monoio::time::sleep(p).await;
                    continue;
                }
                Step::Stop => return Err(f),
            },
        };
        if timing.deadline.is_none() && no_body {
            timing.deadline = timing.route_timeout.map(|t| Instant::now() + t);
        }
        let idle = env.settings.h2.stream_idle_timeout;
        // Upload and download run together; the download decides the outcome.
        let upload = pin!(async {
            if let Some(send) = send.as_mut() {
                if upload_body(&mut body, send, idle, env, &replay)
                    .await
                    .is_err()
                {
                    send.send_reset(h2::Reason::CANCEL);
                }
            }
            std::future::pending::<()>().await
        });
        let conn = slot.conn.clone();
        let download = pin!(async {
            let resp = within(timing.limit(try_start), async {
                response.await.map_err(|e| {
                    if e.is_go_away() {
                        // Going away: that connection takes no more streams.
                        conn.gone.set(true);
                    }
                    up_h2::classify(&e, !no_body)
                })
            })
            .await?;
            Ok::<_, Failure>(resp)
        });
        let resp = match select(upload, download).await {
            Either::Left(_) => unreachable!("the upload never completes"),
            Either::Right((r, upload)) => (r, upload),
        };
        let (resp, upload) = resp; // the upload keeps running while the response streams
        balancer.answered(
            in_flight.endpoint(),
            resp.as_ref().map(|r| r.status().as_u16()).map_err(|f| *f),
        );
        let replayable = no_body || replay.borrow().replayable();
        let resp = match resp {
            Ok(r) => r,
            Err(f) => {
                drop(slot);
                match retrier.on_failure(f, replayable, rng.next()) {
                    Step::Retry(p) => {
                        monoio::time::sleep(p).await;
                        continue;
                    }
                    Step::Stop => return Err(f),
                }
            }
        };
        let step = match trailers_only_grpc_status(&resp) {
            Some(code) => retrier.on_grpc_status(code, replayable, rng.next()),
            None => retrier.on_status(resp.status().as_u16(), replayable, rng.next()),
        };
        if let Step::Retry(p) = step {
            drop((resp, slot));
            monoio::time::sleep(p).await;
            continue;
        }
        ds.rec.retries = retrier.retries;
        ds.rec.upstream_answered();
        let head_out = response_head(&resp, &route.filters);
        let mut rbody = resp.into_body();
        let end = rbody.is_end_stream();
        if ds.send_head(head_out, end).is_err() || end {
            return Ok(());
        }
        let outcome = {
            let relay = pin!(relay_body(ds, &mut rbody, env));
            match select(upload, relay).await {
                Either::Left(_) => unreachable!("the upload never completes"),
                Either::Right((r, _)) => r,
            }
        };
        if let Err(Side::Upstream) = outcome {
            ds.reset(h2::Reason::INTERNAL_ERROR);
        }
        drop(slot);
        return Ok(());
    }
}

/// The `grpc-status` of a trailers-only response (HEADERS with END_STREAM), if any.
fn trailers_only_grpc_status(resp: &Response<RecvStream>) -> Option<u32> {
    if !resp.body().is_end_stream() {
        return None;
    }
    resp.headers()
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// What of the client's body has gone up so far, kept for a retry while it fits `limit`.
struct Replay {
    chunks: Vec<Bytes>,
    bytes: usize,
    limit: usize,
    /// Outgrew `limit` (or retries are off): a retry cannot resend the body.
    dropped: bool,
    /// The client's body ended; `trailers` are its trailers.
    complete: bool,
    trailers: Option<HeaderMap>,
}

impl Replay {
    fn new(limit: usize) -> Replay {
        Replay {
            chunks: Vec::new(),
            bytes: 0,
            limit,
            dropped: limit == 0,
            complete: false,
            trailers: None,
        }
    }
    fn replayable(&self) -> bool {
        !self.dropped
    }
    fn keep(&mut self, chunk: &Bytes) {
        if self.dropped {
            return;
        }
        self.bytes += chunk.len();
        if self.bytes > self.limit {
            self.dropped = true;
            self.chunks = Vec::new();
        } else {
            self.chunks.push(chunk.clone()); // a reference count, not a copy
        }
    }
}

/// Client DATA → upstream DATA, then the client's trailers (or END_STREAM). A retry first
/// resends what `replay` kept, then goes on reading the client.
async fn upload_body(
    body: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    idle: Option<std::time::Duration>,
    env: StreamEnv<'_>,
    replay: &RefCell<Replay>,
) -> Result<(), Gone> {
    let kept: Vec<Bytes> = replay.borrow().chunks.clone();
    for chunk in kept {
        send_data(send, chunk, false, idle).await?;
    }
    if !replay.borrow().complete {
        while let Some(chunk) = idle_bounded(idle, body.data()).await.ok_or(Gone)? {
            let chunk = chunk?;
            let n = chunk.len();
            replay.borrow_mut().keep(&chunk);
            send_data(send, chunk, false, idle).await?;
            let _ = body.flow_control().release_capacity(n);
            env.watch.touch();
        }
        let t = idle_bounded(idle, body.trailers()).await.ok_or(Gone)??;
        let mut r = replay.borrow_mut();
        r.complete = true;
        r.trailers = t;
    }
    let trailers = replay.borrow().trailers.clone();
    match trailers {
        Some(t) => send.send_trailers(t)?,
        None => send.send_data(Bytes::new(), true)?,
    }
    Ok(())
}

enum Side {
    Client,
    Upstream,
}

/// Upstream DATA → client DATA, then the upstream's trailers.
async fn relay_body(
    ds: &mut Downstream,
    rbody: &mut RecvStream,
    env: StreamEnv<'_>,
) -> Result<(), Side> {
    let idle = ds.idle;
    while let Some(chunk) = idle_bounded(idle, rbody.data())
        .await
        .ok_or(Side::Upstream)?
    {
        let chunk = chunk.map_err(|_| Side::Upstream)?;
        let n = chunk.len();
        ds.data(chunk, false).await.map_err(|_| Side::Client)?;
        let _ = rbody.flow_control().release_capacity(n);
        env.watch.touch();
    }
    let trailers: Option<HeaderMap> = idle_bounded(idle, rbody.trailers())
        .await
        .ok_or(Side::Upstream)?
        .map_err(|_| Side::Upstream)?;
    match trailers {
        Some(t) => ds.trailers(t).map_err(|_| Side::Client),
        None => ds.finish().map_err(|_| Side::Client),
    }
}
