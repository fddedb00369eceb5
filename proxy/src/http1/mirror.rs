//! Traffic mirroring (Envoy's route `request_mirror_policies`): a share of a route's requests
//! is copied, fire and forget, to a shadow cluster; the shadow's responses are read and
//! discarded, never seen by the client.
//!
//! - The copy is the upstream head the primary gets (same filters, trace headers, request id)
//!   with `-shadow` appended to the host (`api.example.com:8080` → `api.example.com-shadow:8080`,
//!   as Envoy does), plus the body when it was kept (bodiless requests, and bodies up to the
//!   listener's `retry_buffer_size`; a route with mirrors keeps such bodies). A request whose
//!   body streams is not mirrored (counted `skipped`).
//! - Each copy runs as its own task on the shard, never awaited by the primary. Buffering is
//!   bounded: at most [`MAX_IN_FLIGHT`] mirrored requests per shard are out at once, each
//!   holding its head and body; when a slow or stalled shadow keeps them all busy, further
//!   copies are dropped and counted (`dropped`), so the primary never waits on the shadow. A
//!   copy gives up after the route's `timeout` (or [`DEFAULT_TIMEOUT`] when the route has
//!   none), counted `failed`.
//! - Shadow connections go through the shadow cluster's own pool, balancer, breakers and
//!   outlier detection; a connection returns to the pool when the response had a
//!   `content-length` and was read whole, otherwise it is closed.
//!
//! Cost when a route has no mirrors: one branch. A mirrored request costs one allocation (the
//! copy) and one task spawn.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::conn::{read_onto, write_range};
use crate::cluster::CleanEnd;
use crate::ctx::{Rng, Snapshot, UpstreamAddr};
use crate::http::Failure;
use crate::route::Mirror;
use crate::upstream;

/// Mirrored requests in flight per shard before copies are dropped.
pub const MAX_IN_FLIGHT: u32 = 64;
/// How long a copy may take when its route has no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest shadow response head read (larger: the connection is closed).
const MAX_HEAD: usize = 64 * 1024;

/// Mirroring counters of one shard.
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Copies sent whose response head arrived.
    pub sent: Cell<u64>,
    /// Copies not made because [`MAX_IN_FLIGHT`] were already out (a slow shadow).
    pub dropped: Cell<u64>,
    /// Requests chosen for mirroring whose body streamed (not kept), so not copied.
    pub skipped: Cell<u64>,
    /// Copies that failed (no endpoint, connect, reset, timeout).
    pub failed: Cell<u64>,
    /// Copies out now (gauge).
    pub in_flight: Cell<u32>,
}

struct Out(Rc<MirrorStats>);

impl Drop for Out {
    fn drop(&mut self) {
        let f = &self.0.in_flight;
        f.set(f.get().saturating_sub(1));
    }
}

/// What a copy needs from the primary request.
pub struct Copy<'a> {
    /// The primary's upstream head, as encoded.
    pub head: &'a [u8],
    /// The body, when it was kept (`None`: the body streams).
    pub body: Option<&'a [u8]>,
    pub mark: Option<u32>,
    pub timeout: Option<Duration>,
}

/// Draws each policy's share and launches the chosen copies.
pub fn launch(
    mirrors: &[Mirror],
    snap: &Rc<Snapshot>,
    stats: &Rc<MirrorStats>,
    rng: &Rng,
    req: &Copy<'_>,
) {
    for m in mirrors {
        if (rng.next() % 1_000_000) as u32 >= m.per_million {
            continue;
        }
        let Some(body) = req.body else {
            stats.skipped.set(stats.skipped.get() + 1);
            continue;
        };
        let n = stats.in_flight.get();
        if n >= MAX_IN_FLIGHT {
            stats.dropped.set(stats.dropped.get() + 1);
            continue;
        }
        stats.in_flight.set(n + 1);
        let out = Out(stats.clone());
        let mut buf = Vec::with_capacity(req.head.len() + 8 + body.len());
        shadow_head(req.head, &mut buf);
        buf.extend_from_slice(body);
        let (snap, cluster, mark) = (snap.clone(), m.cluster, req.mark);
        let limit = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
        monoio::spawn(async move {
            let done = monoio::time::timeout(limit, send(&snap, cluster, mark, buf)).await;
            let s = &out.0;
            match done {
                Ok(Ok(())) => s.sent.set(s.sent.get() + 1),
                _ => s.failed.set(s.failed.get() + 1),
            }
        });
    }
}

/// Copies `head` into `out` with `-shadow` appended to the `Host` value's host part.
pub fn shadow_head(head: &[u8], out: &mut Vec<u8>) {
    let mut at = 0;
    while let Some(nl) = head[at..].iter().position(|&b| b == b'\n') {
        let line = &head[at..at + nl + 1];
        at += nl + 1;
        let is_host = line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:");
        if !is_host {
            out.extend_from_slice(line);
            continue;
        }
        let value_end = line.len() - if line.ends_with(b"\r\n") { 2 } else { 1 };
        let value = &line[5..value_end];
        // The port, if any: after the last ':' that follows any IPv6 literal's ']'.
        let tail = value.iter().rposition(|&b| b == b']').unwrap_or(0);
        let split = match value[tail..].iter().rposition(|&b| b == b':') {
            Some(c) if value[tail + c + 1..].iter().all(u8::is_ascii_digit) => tail + c,
            _ => value.len(),
        };
        out.extend_from_slice(&line[..5 + split]);
        out.extend_from_slice(b"-shadow");
        out.extend_from_slice(&line[5 + split..]);
    }
    out.extend_from_slice(&head[at..]);
}

/// One copy: endpoint, connection, request out, response read and discarded.
async fn send(
    snap: &Snapshot,
    cluster: usize,
    mark: Option<u32>,
    mut buf: Vec<u8>,
) -> Result<(), Failure> {
    let b = snap.balancer(cluster);
    let tried = Cell::new(None);
    let (idx, ep, _in_flight) = crate::http::admit::pick(b, &tried)?;
    let mut up = upstream::h1::checkout(b, idx, UpstreamAddr(ep.addr), mark, false).await?;
    let len = buf.len();
    write_range(&mut up.stream, &mut buf, 0..len)
        .await
        .map_err(|_| Failure::Reset)?;
    buf.clear();
    // The response head, then a content-length body read whole (kept connection) or nothing.
    let (status, head_len, body_len, close) = loop {
        let got = read_onto(&mut up.stream, &mut buf).await;
        if !matches!(got, Ok(n) if n > 0) {
            b.answered(idx, Err(Failure::Reset));
            return Err(Failure::Reset);
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = r.code.unwrap_or(0);
                let len = r
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    });
                let close = r.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
                break (status, n, len, close);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => {
                b.answered(idx, Err(Failure::Protocol));
                return Err(Failure::Protocol);
            }
        }
    };
    b.answered(idx, Ok(status));
    let Some(body_len) = body_len.filter(|_| !close && status >= 200) else {
        return Ok(()); // framing we do not track here: the connection is closed
    };
    while buf.len() < head_len + body_len {
        match read_onto(&mut up.stream, &mut buf).await {
            Ok(n) if n > 0 => {}
            _ => return Ok(()),
        }
    }
    let leftover = buf.len() - head_len - body_len;
    if let Some(clean) = CleanEnd::check(true, true, leftover, false) {
        upstream::h1::checkin(b, up, clean);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shadow_head;

    fn shadow(h: &str) -> String {
        let mut out = Vec::new();
        shadow_head(h.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn host_gets_shadow_before_the_port() {
        assert_eq!(
            shadow("GET / HTTP/1.1\r\nHost: a.example\r\nx: y\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: a.example-shadow\r\nx: y\r\n\r\n"
        );
        assert_eq!(
            shadow("GET / HTTP/1.1\r\nhost: a:8080\r\n\r\n"),
            "GET / HTTP/1.1\r\nhost: a-shadow:8080\r\n\r\n"
        );
        assert_eq!(
            shadow("GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n"),
            "GET / HTTP/1.1\r\nhost: [::1]-shadow:80\r\n\r\n"
        );
        assert_eq!(
            shadow("GET / HTTP/1.1\r\nx-host: a\r\n\r\n"),
            "GET / HTTP/1.1\r\nx-host: a\r\n\r\n"
        );
    }
}
