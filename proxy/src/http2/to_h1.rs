//! HTTP/2 stream → HTTP/1.1 upstream. The request head is written by the same serializer as
//! HTTP/1's (`http1::encode::request_head_from`: hop-by-hop removal, route edits,
//! x-forwarded-*, `:authority` as Host, `TE: trailers` announced); DATA frames go out as the
//! body (Content-Length when the client declared one, else chunked, with the client's
//! trailers as chunked trailers). The response head is parsed by HTTP/1's parser and sent as
//! HEADERS; its body becomes DATA frames within the client's flow-control window (chunked
//! bodies are validated by HTTP/1's scanner, then de-chunked, trailers → trailing HEADERS).
//! Retries follow [`crate::http::retry::Retrier`]; a body is buffered for them only when it is
//! declared and fits `retry_buffer_size`.

use std::time::Instant;

use crate::upstream::UpStream;
use bytes::Bytes;
use h2::RecvStream;
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use monoio::io::AsyncWriteRentExt;

use super::respond::{Downstream, Gone};
use super::stream::{idle_bounded, Head, StreamEnv};
use crate::cluster::{Balancer, CleanEnd, InFlight, PooledConn};
use crate::ctx::UpstreamAddr;
use crate::http::header::{classify, is_hop_by_hop, Known};
use crate::http::retry::{Retrier, Step};
use crate::http::{Failure, Method};
use crate::http1::attempt::{recv_head, within, Timing};
use crate::http1::chunked::ChunkedScanner;
use crate::http1::conn::{read_onto, write_range};
use crate::http1::dechunk::{Dechunker, Pieces};
use crate::http1::encode::{self, Forwarding, Source};
use crate::http1::head::Framing;
use crate::http1::response_head::ResponseHead;
use crate::route::{FilterChain, Route};
use crate::upstream;

enum ReqBody {
    Empty,
    Buffered(Vec<u8>),
    Stream(RecvStream),
    /// Streamed into an earlier try: cannot be sent again.
    Spent,
}

pub async fn exchange(
    ds: &mut Downstream,
    head: &Head<'_>,
    mut body: RecvStream,
    route: &Route,
    (snap, balancer): (&std::rc::Rc<crate::ctx::Snapshot>, &Balancer),
    mark: Option<u32>,
    env: StreamEnv<'_>,
) -> Result<(), Failure> {
    let mut retrier =
        Retrier::new(&route.retry, head.method.is_idempotent()).with_cluster(balancer);
    let mut req_body = if body.is_end_stream() {
        ReqBody::Empty
    } else {
        match head.content_length {
            Some(n)
                if (retrier.enabled() || !route.mirrors.is_empty())
                    && n as usize <= env.settings.retry_buffer_bytes =>
            {
                ReqBody::Buffered(buffer(&mut body, n as usize, ds).await?)
            }
            _ => ReqBody::Stream(body),
        }
    };
    let framing = match &req_body {
        ReqBody::Empty if matches!(head.method, Method::Get | Method::Head) => Framing::None,
        ReqBody::Empty => Framing::Length(0),
        ReqBody::Buffered(b) => Framing::Length(b.len() as u64),
        _ => head
            .content_length
            .map_or(Framing::Chunked, Framing::Length),
    };
    let mut request_id = [0u8; 36];
    let rng = &env.svc.rng;
    encode::uuid_v4(
        (u128::from(rng.next()) << 64) | u128::from(rng.next()),
        &mut request_id,
    );
    let mut wbuf = env.h1.scratch.take();
    ds.rec.trace = encode::request_head_from(
        &mut wbuf,
        Source {
            method: head.parts.method.as_str().as_bytes(),
            headers: head.pairs(),
            listed: |_: &[u8]| false,
            expect_continue: false,
            upgrade: None,
        },
        &Forwarding {
            filters: &route.filters,
            target: head.path,
            authority: Some(head.authority),
            client_ip: env.peer_ip,
            request_id: &request_id,
            framing,
            te_trailers: head.te_trailers,
            tls: env.ctx.tls.as_deref(),
            trace: env.svc.telemetry.fresh_trace(rng),
        },
    );
    if !route.mirrors.is_empty() {
        let copy = crate::http1::mirror::Copy {
            head: &wbuf,
            body: match &req_body {
                ReqBody::Empty => Some(&[][..]),
                ReqBody::Buffered(b) => Some(&b[..]),
                _ => None,
            },
            mark,
            timeout: route.timeout,
        };
        crate::http1::mirror::launch(&route.mirrors, snap, &env.svc.mirrors, rng, &copy);
    }
    let mut timing = Timing {
        tried: Default::default(),
        route_timeout: route.timeout,
        per_try: route.retry.per_try_timeout,
        deadline: None,
    };
    let mut ubuf = env.h1.scratch.take();
    let mut resp = ResponseHead::default();
    let is_head = head.method == Method::Head;
    let outcome = loop {
        let r = std::pin::pin!(attempt(
            balancer,
            mark,
            &mut wbuf,
            &mut req_body,
            framing,
            &mut ubuf,
            &mut resp,
            is_head,
            &mut timing,
            env,
        ))
        .await;
        let replayable = matches!(req_body, ReqBody::Empty | ReqBody::Buffered(_));
        let step = match &r {
            Ok(_) => retrier.on_status(resp.status, replayable, rng.next()),
            Err(f) => retrier.on_failure(*f, replayable, rng.next()),
        };
        match step {
            Step::Stop => break r,
            Step::Retry(pause) => monoio::time::sleep(pause).await,
        }
    };
    env.h1.scratch.give(wbuf);
    ds.rec.retries = retrier.retries;
    let result = match outcome {
        Ok((up, _in_flight)) => {
            ds.rec.upstream_answered();
            relay(ds, balancer, up, &mut ubuf, &resp, &route.filters, env).await;
            Ok(())
        }
        Err(f) => Err(f),
    };
    env.h1.scratch.give(ubuf);
    result
}

/// Reads a declared body of `n` bytes in full (so it can be sent again).
async fn buffer(body: &mut RecvStream, n: usize, ds: &Downstream) -> Result<Vec<u8>, Failure> {
    let mut b = Vec::with_capacity(n);
    while let Some(chunk) = idle_bounded(ds.idle, body.data())
        .await
        .ok_or(Failure::Client)?
    {
        let chunk = chunk.map_err(|_| Failure::Client)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        b.extend_from_slice(&chunk);
    }
    Ok(b)
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    balancer: &Balancer,
    mark: Option<u32>,
    wbuf: &mut Vec<u8>,
    body: &mut ReqBody,
    framing: Framing,
    ubuf: &mut Vec<u8>,
    resp: &mut ResponseHead,
    is_head: bool,
    timing: &mut Timing,
    env: StreamEnv<'_>,
) -> Result<(PooledConn, InFlight), Failure> {
    let try_start = Instant::now();
    let (ep_idx, ep, in_flight) = crate::http::admit::pick(balancer, &timing.tried)?;
    let mut up =
        upstream::h1::checkout(balancer, ep_idx, UpstreamAddr(ep.addr), mark, false).await?;
    let lost = if up.reused {
        Failure::Stale
    } else {
        Failure::Reset
    };
    let len = wbuf.len();
    write_range(&mut up.stream, wbuf, 0..len)
        .await
        .map_err(|_| lost)?;
    let streamed = matches!(body, ReqBody::Stream(_));
    match std::mem::replace(body, ReqBody::Spent) {
        ReqBody::Empty => *body = ReqBody::Empty,
        ReqBody::Buffered(mut b) => {
            let n = b.len();
            let r = write_range(&mut up.stream, &mut b, 0..n).await;
            *body = ReqBody::Buffered(b);
            r.map_err(|_| lost)?;
        }
        ReqBody::Stream(mut rs) => {
            let chunked = framing == Framing::Chunked;
            send_body(&mut rs, &mut up.stream, chunked, env).await?;
        }
        ReqBody::Spent => return Err(Failure::Client),
    }
    if timing.deadline.is_none() {
        timing.deadline = timing.route_timeout.map(|t| Instant::now() + t);
    }
    let per_try_from = if streamed { Instant::now() } else { try_start };
    let max_headers = balancer.cluster().max_response_headers;
    // Pinned in place: the timeout holds a pointer instead of a moved copy of the future.
    let got = {
        let receiving = std::pin::pin!(recv_head(
            &mut up,
            ubuf,
            resp,
            is_head,
            max_headers,
            env.watch
        ));
        within(timing.limit(per_try_from), receiving).await
    };
    balancer.answered(in_flight.endpoint(), got.map(|()| resp.status));
    got?;
    Ok((up, in_flight))
}

/// DATA frames → the upstream body (chunked with the client's trailers, or as declared).
async fn send_body(
    rs: &mut RecvStream,
    up: &mut UpStream,
    chunked: bool,
    env: StreamEnv<'_>,
) -> Result<(), Failure> {
    let idle = env.settings.h2.stream_idle_timeout;
    let mut line = Vec::with_capacity(32);
    while let Some(chunk) = idle_bounded(idle, rs.data()).await.ok_or(Failure::Client)? {
        let chunk = chunk.map_err(|_| Failure::Client)?;
        let n = chunk.len();
        if n == 0 {
            continue;
        }
        if chunked {
            line.clear();
            line.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            let (r, l) = up.write_all(std::mem::take(&mut line)).await;
            line = l;
            r.map_err(|_| Failure::Reset)?;
        }
        let (r, _) = up.write_all(chunk).await;
        r.map_err(|_| Failure::Reset)?;
        if chunked {
            let (r, _) = up.write_all(&b"\r\n"[..]).await;
            r.map_err(|_| Failure::Reset)?;
        }
        let _ = rs.flow_control().release_capacity(n);
        env.watch.touch();
    }
    let trailers = idle_bounded(idle, rs.trailers())
        .await
        .ok_or(Failure::Client)?
        .map_err(|_| Failure::Client)?;
    if chunked {
        line.clear();
        line.extend_from_slice(b"0\r\n");
        for (n, v) in trailers.iter().flatten() {
            if !is_hop_by_hop(classify(n.as_str().as_bytes())) {
                line.extend_from_slice(n.as_str().as_bytes());
                line.extend_from_slice(b": ");
                line.extend_from_slice(v.as_bytes());
                line.extend_from_slice(b"\r\n");
            }
        }
        line.extend_from_slice(b"\r\n");
        let (r, _) = up.write_all(line).await;
        r.map_err(|_| Failure::Reset)?;
    }
    Ok(())
}

/// The HTTP/2 response head for an HTTP/1 response: hop-by-hop and Connection-listed headers
/// dropped, the route's response edits applied, Content-Length kept only for a sized body.
fn response_head(ubuf: &[u8], resp: &ResponseHead, filters: &FilterChain) -> Response<()> {
    let mut out = Response::new(());
    *out.status_mut() =
        http::StatusCode::from_u16(resp.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let h = out.headers_mut();
    for s in &resp.headers {
        let (n, v) = (s.name.get(ubuf), s.value.get(ubuf));
        let kind = classify(n);
        if is_hop_by_hop(kind)
            || (kind == Known::ContentLength && !matches!(resp.framing, Framing::Length(_)))
            || kind == Known::Host
            || resp
                .connection_listed
                .iter()
                .any(|l| l.get(ubuf).eq_ignore_ascii_case(n))
            || filters.drops_response_header(n)
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            h.append(n, v);
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

/// Sends the response head and relays the body; pools the connection after a clean end.
async fn relay(
    ds: &mut Downstream,
    balancer: &Balancer,
    mut up: PooledConn,
    ubuf: &mut Vec<u8>,
    resp: &ResponseHead,
    filters: &FilterChain,
    env: StreamEnv<'_>,
) {
    let no_body = matches!(resp.framing, Framing::None | Framing::Length(0));
    if ds
        .send_head(response_head(ubuf, resp, filters), no_body)
        .is_err()
        || no_body
    {
        if let Some(clean) = CleanEnd::check(true, true, ubuf.len() - resp.len, resp.close) {
            upstream::h1::checkin(balancer, up, clean);
        }
        return;
    }
    let mut pos = resp.len;
    match relay_body(ds, &mut up.stream, ubuf, &mut pos, resp.framing, env).await {
        Ok(()) => {
            if let Some(clean) = CleanEnd::check(true, true, ubuf.len() - pos, resp.close) {
                upstream::h1::checkin(balancer, up, clean);
            }
        }
        Err(Side::Client) => {}
        Err(Side::Upstream) => ds.reset(h2::Reason::INTERNAL_ERROR),
    }
}

enum Side {
    Client,
    Upstream,
}

impl From<Gone> for Side {
    fn from(_: Gone) -> Side {
        Side::Client
    }
}

async fn relay_body(
    ds: &mut Downstream,
    up: &mut UpStream,
    ubuf: &mut Vec<u8>,
    pos: &mut usize,
    framing: Framing,
    env: StreamEnv<'_>,
) -> Result<(), Side> {
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut scanner = ChunkedScanner::default();
    let mut dechunk = Dechunker::default();
    let mut pieces = Pieces::default();
    loop {
        let avail = &ubuf[*pos..];
        match framing {
            Framing::Length(_) => {
                let take = (left as usize).min(avail.len());
                left -= take as u64;
                if take > 0 || left == 0 {
                    ds.data(Bytes::copy_from_slice(&avail[..take]), left == 0)
                        .await?;
                }
                *pos += take;
                if left == 0 {
                    return Ok(());
                }
            }
            Framing::Chunked => {
                let take = scanner.scan(avail).map_err(|_| Side::Upstream)?;
                let valid = &avail[..take];
                dechunk.feed(valid, &mut pieces);
                for r in &pieces.data {
                    ds.data(Bytes::copy_from_slice(&valid[r.clone()]), false)
                        .await?;
                }
                *pos += take;
                if dechunk.is_done() {
                    let fields = dechunk.trailer_fields();
                    if fields.is_empty() {
                        ds.finish()?;
                    } else {
                        let mut t = HeaderMap::with_capacity(fields.len());
                        for (n, v) in fields {
                            if let (Ok(n), Ok(v)) =
                                (HeaderName::from_bytes(n), HeaderValue::from_bytes(v))
                            {
                                t.append(n, v);
                            }
                        }
                        ds.trailers(t)?;
                    }
                    return Ok(());
                }
            }
            Framing::UntilClose => {
                if !avail.is_empty() {
                    ds.data(Bytes::copy_from_slice(avail), false).await?;
                }
                *pos = ubuf.len();
            }
            Framing::None => return Ok(()),
        }
        if *pos == ubuf.len() {
            ubuf.clear();
            *pos = 0;
        }
        match read_onto(up, ubuf).await {
            Ok(0) if framing == Framing::UntilClose => {
                ds.finish()?;
                return Ok(());
            }
            Ok(0) | Err(_) => return Err(Side::Upstream),
            Ok(_) => env.watch.touch(),
        }
    }
}
