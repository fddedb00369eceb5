//! One try of a request against its cluster: a healthy endpoint, a connection (pooled or new,
//! through `crate::upstream::h1`), the request out, the response head in. Failures are
//! classified for the retry decision: a dead pooled connection found while writing (`Stale`:
//! the upstream never had the request) is told apart from one that closed after the request
//! was written (`StaleAfterSend`: it may have acted on it).

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use super::body::{self, Body};
use super::conn::{read_onto, write_range, Conn};
use super::outcome::Facts;
use super::response_head::{self, ResponseHead};
use crate::cluster::{Balancer, InFlight, PooledConn};
use crate::ctx::{ConnWatch, UpstreamAddr};
use crate::http::Failure;
use crate::io::Stream;
use crate::upstream;

/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A connection that answered, with its endpoint's in-flight mark (least-request) held until
/// the exchange ends.
pub struct Answered {
    pub conn: PooledConn,
    pub _in_flight: InFlight,
}

/// The request's timeouts; `deadline` is set once the downstream request is complete.
pub struct Timing {
    pub route_timeout: Option<Duration>,
    pub per_try: Option<Duration>,
    pub deadline: Option<Instant>,
    /// The endpoint of the previous try (a retry prefers another).
    pub tried: std::cell::Cell<Option<usize>>,
}

impl Timing {
    /// Time left for a try that started at `per_try_from`: the earlier of the route deadline
    /// and the per-try timeout.
    pub fn limit(&self, per_try_from: Instant) -> Option<Duration> {
        let now = Instant::now();
        let route = self.deadline.map(|d| d.saturating_duration_since(now));
        let per_try = self
            .per_try
            .map(|p| (per_try_from + p).saturating_duration_since(now));
        match (route, per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Runs `f` within `limit` (a timeout is [`Failure::Timeout`]).
pub async fn within<T>(
    limit: Option<Duration>,
    f: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match limit {
        Some(l) => monoio::time::timeout(l, f)
            .await
            .unwrap_or(Err(Failure::Timeout)),
        None => f.await,
    }
}

/// One try. A streamed body is sent without a timeout (the upload is the client's pace); the
/// route and per-try timeouts then bound the wait for the response head.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: Stream>(
    conn: &mut Conn<S>,
    balancer: &Balancer,
    mark: Option<u32>,
    wbuf: &mut Vec<u8>,
    body: &mut Body,
    ubuf: &mut Vec<u8>,
    resp: &mut ResponseHead,
    facts: Facts,
    timing: &mut Timing,
) -> Result<Answered, Failure> {
    let try_start = Instant::now();
    let streamed = !body.done();
    // The try's futures are pinned in place rather than moved into `within`'s timeout future:
    // moving them cost a memcpy of each state machine per request (callgrind: h1 18,773 →
    // 17,256 instructions/request with both pinned).
    let (mut up, in_flight) = {
        let sending = pin!(send(conn, balancer, mark, wbuf, body, facts, &timing.tried));
        if streamed {
            sending.await?
        } else {
            within(timing.limit(try_start), sending).await?
        }
    };
    if timing.deadline.is_none() {
        timing.deadline = timing.route_timeout.map(|t| Instant::now() + t);
    }
    let per_try_from = if streamed { Instant::now() } else { try_start };
    let max_headers = balancer.cluster().max_response_headers;
    let is_head = facts.method == crate::http::Method::Head;
    let got = {
        let receiving = pin!(recv_head(
            &mut up,
            ubuf,
            resp,
            is_head,
            max_headers,
            &conn.watch
        ));
        within(timing.limit(per_try_from), receiving).await
    };
    balancer.answered(in_flight.endpoint(), got.map(|()| resp.status));
    got?;
    conn.rec.upstream_answered();
    Ok(Answered {
        conn: up,
        _in_flight: in_flight,
    })
}

/// Endpoint, connection, request head and body out.
async fn send<S: Stream>(
    conn: &mut Conn<S>,
    balancer: &Balancer,
    mark: Option<u32>,
    wbuf: &mut Vec<u8>,
    body: &mut Body,
    facts: Facts,
    tried: &std::cell::Cell<Option<usize>>,
) -> Result<(PooledConn, InFlight), Failure> {
    // A first try of an idempotent bodiless request is resent for free if its pooled
    // connection is dead, so it may skip the pool's liveness check (`Pools::take`).
    let resendable =
        tried.get().is_none() && facts.method.is_idempotent() && matches!(body, Body::Empty);
    let (ep_idx, ep, in_flight) = crate::http::admit::pick(balancer, tried)?;
    let addr = UpstreamAddr(ep.addr);
    conn.rec.upstream_host = Some(ep.addr);
    let mut up = upstream::h1::checkout(balancer, ep_idx, addr, mark, resendable).await?;
    let lost = if up.reused {
        Failure::Stale
    } else {
        Failure::Reset
    };
    let len = wbuf.len();
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
    conn.watch.touch();
    Ok((up, in_flight))
}

/// Reads the response head into `ubuf` (interim 1xx responses other than 101 are skipped: the
/// proxy already answered `Expect: 100-continue` itself).
pub async fn recv_head(
    up: &mut PooledConn,
    ubuf: &mut Vec<u8>,
    resp: &mut ResponseHead,
    is_head: bool,
    max_response_headers: usize,
    watch: &ConnWatch,
) -> Result<(), Failure> {
    let max_headers = max_response_headers;
    ubuf.clear();
    loop {
        if !ubuf.is_empty() {
            match response_head::parse_response(ubuf, MAX_RESPONSE_HEAD, max_headers, is_head, resp)
            {
                Ok(true) if (100..200).contains(&resp.status) && resp.status != 101 => {
                    ubuf.drain(..resp.len);
                    continue;
                }
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match read_onto(&mut up.stream, ubuf).await {
            Ok(0) | Err(_) => {
                return Err(if up.reused && ubuf.is_empty() {
                    Failure::StaleAfterSend
                } else {
                    Failure::Reset
                })
            }
            Ok(_) => watch.touch(),
        }
    }
}
