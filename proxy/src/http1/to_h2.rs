//! HTTP/1.1 client → HTTP/2 upstream (`protocol: http2` clusters), over a shared connection
//! from [`crate::upstream::h2`].
//!
//! Request: the head becomes `:method`, `:authority` (the route's `host_rewrite`, else the
//! absolute-form target's authority, else `Host`) and `:path`. Hop-by-hop headers (RFC 9113
//! §8.2.2) and the names `Connection` lists never cross; `TE: trailers` does. A
//! `content-length` body goes as DATA as it is read; a chunked body is validated by the same
//! strict scanner as every HTTP/1 body ([`super::chunked`]), de-chunked into DATA
//! ([`super::dechunk`]) and its trailer section sent as a trailing HEADERS frame.
//!
//! Response: status and headers become an HTTP/1.1 head with the route's response edits. A
//! body with `content-length` keeps it; any other goes chunked to an HTTP/1.1 client (the
//! upstream's trailers become chunked trailers) or is delimited by close for HTTP/1.0.
//!
//! Retries follow the route's policy as for HTTP/1 upstreams: a bodiless request, or one whose
//! body fits `retry_buffer_size` and was buffered, may be sent again; a streamed body cannot.
//! The route timeout starts once the request is complete and runs to the response head.
//! CONNECT cannot be carried (that needs RFC 8441's extended CONNECT): 501.

use std::pin::pin;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::{select, Either};
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};

use super::attempt::{within, Timing};
use super::body::{buffer, compact};
use super::chunked::ChunkedScanner;
use super::conn::Conn;
use super::dechunk::{Dechunker, Pieces};
use super::forward::Upstream;
use super::head::Framing;
use super::outcome::{Facts, Next};
use super::{local, target, Env};
use crate::config::HttpSettings;
use crate::http::h2_request::finish_headers;
use crate::http::header::{classify, is_hop_by_hop, reason_phrase, Known};
use crate::http::retry::{Retrier, Step};
use crate::http::{Failure, Method};
use crate::io::Stream;
use crate::route::FilterChain;
use crate::upstream::h2 as up_h2;

/// How the request body goes upstream.
enum Upload {
    None,
    /// Read whole (it fits the retry buffer): can be sent again.
    Buffered(Bytes),
    /// Streamed from the client during the first try.
    Stream(Framing),
}

/// Why streaming the request body stopped.
enum Side {
    /// The client's body ended early (`false`) or broke the chunked grammar (`true`).
    Client(bool),
    Upstream,
}

pub async fn forward<S: Stream>(
    conn: &mut Conn<S>,
    settings: &HttpSettings,
    env: Env<'_>,
    to: Upstream<'_>,
    facts: Facts,
    started: Instant,
) -> Next {
    if facts.method == Method::Connect {
        let body = b"CONNECT to an HTTP/2 cluster is not supported\n";
        return local::respond(conn, env, 501, None, body, started).await;
    }
    let Some((req, trace)) = request(conn, &to, env) else {
        let body = b"request head cannot be expressed in HTTP/2\n";
        return local::respond(conn, env, 400, Some("DPE"), body, started).await;
    };
    conn.rec.trace = trace;
    conn.consumed = conn.head.len;
    let route = to.route;
    let mut retrier = Retrier::new(&route.retry, facts.idempotent).with_cluster(to.balancer);
    if conn.head.expect_continue && facts.framing != Framing::None {
        let (res, _) = conn.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]).await;
        if res.is_err() {
            return Next::Close;
        }
    }
    let upload = match facts.framing {
        Framing::None | Framing::UntilClose => Upload::None,
        Framing::Length(n) if retrier.enabled() && n as usize <= settings.retry_buffer_bytes => {
            match buffer(conn, n as usize).await {
                Ok(b) => Upload::Buffered(Bytes::from(b)),
                Err(_) => return Next::Close,
            }
        }
        f => Upload::Stream(f),
    };
    let replayable = !matches!(upload, Upload::Stream(_));
    let mut timing = Timing {
        tried: Default::default(),
        route_timeout: route.timeout,
        per_try: route.retry.per_try_timeout,
        deadline: replayable
            .then(|| route.timeout.map(|t| Instant::now() + t))
            .flatten(),
    };
    let rng = &env.svc.rng;
    let mut body_done = replayable;
    let outcome = loop {
        let try_start = Instant::now();
        let no_body = matches!(upload, Upload::None);
        let (slot, in_flight, response, send) =
            match up_h2::open_stream(to.balancer, to.mark, &req, no_body, &timing.tried).await {
                Ok(x) => x,
                Err(f) => match retrier.on_failure(f, replayable, rng.next()) {
                    Step::Retry(p) => {
                        monoio::time::sleep(p).await;
                        continue;
                    }
                    Step::Stop => break Err(f),
                },
            };
        let gone = &slot.conn.gone;
        let response = async {
            response.await.map_err(|e| {
                if e.is_go_away() {
                    gone.set(true); // that connection takes no more streams
                }
                up_h2::classify(&e, !no_body)
            })
        };
        let result = match (&upload, send) {
            (Upload::None, _) | (_, None) => within(timing.limit(try_start), response).await,
            (Upload::Buffered(b), Some(mut send)) => {
                let up = pin!(up_h2::send_data(&mut send, b.clone(), true, None));
                let down = pin!(within(timing.limit(try_start), response));
                match select(up, down).await {
                    Either::Left((_, down)) => down.await,
                    Either::Right((r, _)) => r,
                }
            }
            (Upload::Stream(framing), Some(mut send)) => {
                let framing = *framing;
                let mut response = pin!(response);
                let r = {
                    let up = pin!(stream_body(conn, &mut send, framing));
                    match select(up, response.as_mut()).await {
                        Either::Left((up, _)) => Ok(up),
                        // Answered before the upload finished: finish reading it (the
                        // connection stays in step), then relay the answer.
                        Either::Right((r, up)) => Err((r, up.await)),
                    }
                };
                match r {
                    Ok(up) => {
                        body_done = up.is_ok();
                        if let Err(Side::Client(malformed)) = up {
                            send.send_reset(h2::Reason::CANCEL);
                            break Err(if malformed {
                                Failure::Protocol
                            } else {
                                Failure::Client
                            });
                        }
                        timing.deadline = timing.route_timeout.map(|t| Instant::now() + t);
                        within(timing.limit(try_start), response).await
                    }
                    Err((r, up)) => {
                        body_done = up.is_ok();
                        r
                    }
                }
            }
        };
        to.balancer.answered(
            in_flight.endpoint(),
            result.as_ref().map(|r| r.status().as_u16()).map_err(|f| *f),
        );
        match result {
            Ok(resp) => {
                if replayable {
                    if let Step::Retry(p) =
                        retrier.on_status(resp.status().as_u16(), true, rng.next())
                    {
                        drop((resp, slot));
                        monoio::time::sleep(p).await;
                        continue;
                    }
                }
                break Ok((resp, slot));
            }
            Err(f) => {
                drop(slot);
                match retrier.on_failure(f, replayable, rng.next()) {
                    Step::Retry(p) => monoio::time::sleep(p).await,
                    Step::Stop => break Err(f),
                }
            }
        }
    };
    conn.rec.retries = retrier.retries;
    match outcome {
        Ok((resp, _slot)) => {
            conn.rec.upstream_answered();
            conn.rec.respond(resp.status().as_u16(), None);
            let close = facts.close || !body_done;
            relay(conn, env, resp, &route.filters, facts, close).await
        }
        Err(Failure::Client) => Next::Close,
        Err(f) => {
            let close = facts.close || !body_done;
            let status = if f == Failure::Protocol && !body_done {
                400 // the client's chunked body was malformed
            } else {
                f.status()
            };
            crate::warn_limited!(
                "upstream request failed",
                listener = %conn.ctx.listener().name,
                peer = %conn.ctx.peer,
                route = %route.name,
                cluster = %to.balancer.cluster().name,
                status,
                flag = f.flag(),
                attempts = retrier.retries + 1,
                duration_ms = started.elapsed().as_millis() as u64,
                "upstream request failed (HTTP/2 upstream)"
            );
            conn.rec.upstream_failure = f.transport_failure();
            local::send(conn, env, status, Some(f.flag()), f.body(), close).await
        }
    }
}

/// The upstream request head and the trace headers it carries (this hop's span); `None` when
/// the method or target is not valid HTTP/2.
fn request<S>(
    conn: &Conn<S>,
    to: &Upstream<'_>,
    env: Env<'_>,
) -> Option<(Request<()>, Option<crate::telemetry::propagate::Outgoing>)> {
    let (buf, head) = (&conn.rbuf, &conn.head);
    let filters = &to.route.filters;
    let raw_target = head.target.get(buf);
    let (abs_authority, origin_form) = match target::absolute_form(raw_target) {
        Some((a, p)) => (Some(a), p),
        None => (None, raw_target),
    };
    let path = to.path.unwrap_or(origin_form);
    let authority = filters
        .host_rewrite()
        .map(str::as_bytes)
        .or(abs_authority)
        .or(head.host.map(|h| h.get(buf)))
        .unwrap_or(to.balancer.cluster().name.as_bytes());
    let mut uri = Vec::with_capacity(7 + authority.len() + path.len());
    uri.extend_from_slice(b"http://");
    uri.extend_from_slice(authority);
    uri.extend_from_slice(path);
    let mut req = Request::new(());
    *req.method_mut() = http::Method::from_bytes(head.method.get(buf)).ok()?;
    *req.uri_mut() = http::Uri::try_from(uri).ok()?;
    let h = req.headers_mut();
    let mut xff = Vec::new();
    let mut has_request_id = false;
    for span in &head.headers {
        let (n, v) = (span.name.get(buf), span.value.get(buf));
        match classify(n) {
            Known::HopByHop if n.eq_ignore_ascii_case(b"te") => {
                if has_token(v, b"trailers") {
                    h.insert(http::header::TE, HeaderValue::from_static("trailers"));
                }
                continue;
            }
            k if is_hop_by_hop(k) => continue,
            // The proxy answered `Expect: 100-continue` itself; x-forwarded-proto and XFCC
            // (only for a verified mTLS peer) are set by `finish_headers`.
            Known::Host | Known::XForwardedProto | Known::XForwardedClientCert | Known::Expect => {
                continue
            }
            Known::XForwardedFor => {
                xff.extend_from_slice(v);
                xff.extend_from_slice(b", ");
                continue;
            }
            Known::XRequestId => has_request_id = true,
            _ => {}
        }
        let listed = head
            .connection_listed
            .iter()
            .any(|s| s.get(buf).eq_ignore_ascii_case(n));
        if listed || filters.drops_request_header(n) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            h.append(n, v);
        }
    }
    let trace = finish_headers(
        h,
        xff,
        has_request_id,
        filters,
        conn.peer_ip.as_bytes(),
        conn.ctx.tls.as_deref(),
        env.svc,
    );
    Some((req, trace))
}

/// `token` is one of the comma-separated elements of `list` (case-insensitive).
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',').any(|t| {
        let name = t.split(|b| *b == b';').next().unwrap_or(t); // drop `;q=` parameters
        name.trim_ascii().eq_ignore_ascii_case(token)
    })
}

/// The client's body → DATA frames (a chunked body's trailer section → trailing HEADERS).
/// Bytes of a pipelined next request stay in `conn.rbuf`.
async fn stream_body<S: Stream>(
    conn: &mut Conn<S>,
    send: &mut SendStream<Bytes>,
    framing: Framing,
) -> Result<(), Side> {
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut scanner = ChunkedScanner::default();
    let mut dechunk = Dechunker::default();
    let mut pieces = Pieces::default();
    loop {
        let avail = &conn.rbuf[conn.consumed..];
        let (data, took, end) = match framing {
            Framing::Chunked => {
                let take = scanner.scan(avail).map_err(|_| Side::Client(true))?;
                let valid = &avail[..take];
                dechunk.feed(valid, &mut pieces);
                let mut data = Vec::with_capacity(pieces.data.iter().map(|r| r.len()).sum());
                for r in &pieces.data {
                    data.extend_from_slice(&valid[r.clone()]);
                }
                (Bytes::from(data), take, dechunk.is_done())
            }
            _ => {
                let take = (left as usize).min(avail.len());
                left -= take as u64;
                (Bytes::copy_from_slice(&avail[..take]), take, left == 0)
            }
        };
        conn.consumed += took;
        let trailers = (end && framing == Framing::Chunked)
            .then(|| trailer_map(&dechunk))
            .filter(|t| !t.is_empty());
        let end_data = end && trailers.is_none();
        if !data.is_empty() || end_data {
            up_h2::send_data(send, data, end_data, None)
                .await
                .map_err(|_| Side::Upstream)?;
            conn.watch.touch();
        }
        if end {
            if let Some(t) = trailers {
                send.send_trailers(t).map_err(|_| Side::Upstream)?;
            }
            return Ok(());
        }
        compact(conn);
        match conn.read_more().await {
            Ok(0) | Err(_) => return Err(Side::Client(false)),
            Ok(_) => {}
        }
    }
}

fn trailer_map(d: &Dechunker) -> HeaderMap {
    let fields = d.trailer_fields();
    let mut t = HeaderMap::with_capacity(fields.len());
    for (n, v) in fields {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            t.append(n, v);
        }
    }
    t
}

/// How the response body is framed towards the client.
fn client_framing(resp: &Response<RecvStream>, facts: Facts) -> (Framing, Option<u64>) {
    let status = resp.status().as_u16();
    let length = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let framing = if facts.method == Method::Head || status == 204 || status == 304 {
        Framing::None
    } else if resp.body().is_end_stream() {
        Framing::Length(0)
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if facts.minor >= 1 {
        Framing::Chunked
    } else {
        Framing::UntilClose
    };
    (framing, length)
}

/// The client-facing head, with the route's response edits.
fn response_head(
    out: &mut Vec<u8>,
    resp: &Response<RecvStream>,
    filters: &FilterChain,
    framing: Framing,
    length: Option<u64>,
    close: bool,
) {
    use std::io::Write;
    out.clear();
    let status = resp.status().as_u16();
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    let mut put = |n: &[u8], v: &[u8]| {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    };
    for (n, v) in resp.headers() {
        let n = n.as_str().as_bytes();
        if n == b"content-length" || filters.drops_response_header(n) {
            continue;
        }
        put(n, v.as_bytes());
    }
    for (n, v) in filters.response_adds() {
        put(n.as_bytes(), v.as_bytes());
    }
    match (framing, length) {
        (Framing::Length(n), _) | (Framing::None, Some(n)) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        (Framing::Chunked, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the response head, then the body as it arrives, then (chunked) the trailers.
async fn relay<S: Stream>(
    conn: &mut Conn<S>,
    env: Env<'_>,
    resp: Response<RecvStream>,
    filters: &FilterChain,
    facts: Facts,
    close: bool,
) -> Next {
    let (framing, length) = client_framing(&resp, facts);
    let close = close || framing == Framing::UntilClose;
    let mut out = env.h1.scratch.take();
    response_head(&mut out, &resp, filters, framing, length, close);
    let mut body = resp.into_body();
    let result = relay_body(conn, &mut out, &mut body, framing).await;
    env.h1.scratch.give(out);
    match result {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// `out` holds the head on entry; it goes out with the first DATA frame (one write for a
/// small response). A reset mid-body closes the client connection (a truncated body).
async fn relay_body<S: Stream>(
    conn: &mut Conn<S>,
    out: &mut Vec<u8>,
    body: &mut RecvStream,
    framing: Framing,
) -> Result<(), ()> {
    let chunked = framing == Framing::Chunked;
    if !matches!(framing, Framing::None | Framing::Length(0)) {
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(drop)?;
            if chunk.is_empty() {
                continue;
            }
            if chunked {
                use std::io::Write;
                let _ = write!(out, "{:x}\r\n", chunk.len());
            }
            out.extend_from_slice(&chunk);
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
            write_out(conn, out).await?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        if chunked {
            out.extend_from_slice(b"0\r\n");
            if let Some(t) = body.trailers().await.map_err(drop)? {
                for (n, v) in &t {
                    out.extend_from_slice(n.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(v.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    if !out.is_empty() {
        write_out(conn, out).await?;
    }
    Ok(())
}

async fn write_out<S: Stream>(conn: &mut Conn<S>, out: &mut Vec<u8>) -> Result<(), ()> {
    let (res, buf) = conn.write_all(std::mem::take(out)).await;
    *out = buf;
    out.clear();
    res.map_err(drop)
}

#[cfg(test)]
mod tests {
    use super::has_token;

    #[test]
    fn te_trailers_is_found_among_other_codings() {
        assert!(has_token(b"trailers", b"trailers"));
        assert!(has_token(b"gzip, Trailers", b"trailers"));
        assert!(!has_token(b"gzip", b"trailers"));
        assert!(!has_token(b"trailersx", b"trailers"));
    }
}
