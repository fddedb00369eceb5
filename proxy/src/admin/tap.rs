//! `GET /tap?authority=&path_prefix=&method=&status=&identity=&rate=`: attaches a tap to every
//! shard and streams one JSON line per matching request (`telemetry::tap` has the fields)
//! until the client goes away, then detaches it. `rate` caps lines a second for the whole
//! process (default 100, at most 10,000); what the cap or a slow client drops is counted in
//! `tap_dropped`. The response is close-delimited (`curl -N` prints lines as they come).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::{respond, write_head, AdminCtx, Request};
use crate::telemetry::tap::TapFilter;
use crate::telemetry::tap_live::TapAttach;

const DEFAULT_RATE: u32 = 100;
const MAX_RATE: u32 = 10_000;
/// Lines queued for the client before shards drop.
const QUEUE: usize = 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `%XX` and `+` decoded (query values).
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn filter_of(req: &Request) -> Result<(TapFilter, u32), String> {
    for kv in req.query.split('&').filter(|s| !s.is_empty()) {
        let k = kv.split_once('=').map_or(kv, |(k, _)| k);
        if !matches!(
            k,
            "authority" | "path_prefix" | "method" | "status" | "identity" | "rate"
        ) {
            return Err(format!(
                "unknown parameter {k:?} (authority, path_prefix, method, status, identity, rate)"
            ));
        }
    }
    let get = |k: &str| req.param(k).map(decode).filter(|v| !v.is_empty());
    let status = match get("status") {
        Some(s) => Some(
            s.parse::<u16>()
                .map_err(|_| format!("status {s:?} is not a number"))?,
        ),
        None => None,
    };
    let rate = match get("rate") {
        Some(r) => match r.parse::<u32>() {
            Ok(n) if (1..=MAX_RATE).contains(&n) => n,
            _ => return Err(format!("rate {r:?} must be 1..{MAX_RATE}")),
        },
        None => DEFAULT_RATE,
    };
    Ok((
        TapFilter {
            authority: get("authority"),
            path_prefix: get("path_prefix"),
            method: get("method"),
            status,
            identity: get("identity"),
        },
        rate,
    ))
}

/// Whether the client closed its side (a non-blocking peek reads end of stream).
fn client_gone(out: &TcpStream) -> bool {
    let _ = out.set_nonblocking(true);
    let mut b = [0u8; 1];
    let gone = match (&*out).read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = out.set_nonblocking(false);
    gone
}

pub fn tap(ctx: &AdminCtx, req: &Request, out: &mut TcpStream) -> io::Result<()> {
    let (filter, per_second) = match filter_of(req) {
        Ok(f) => f,
        Err(e) => return respond(out, 400, "text/plain", format!("{e}\n").as_bytes()),
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let attach = TapAttach {
        id,
        filter,
        per_second,
        tx,
    };
    if ctx.server.tap(&attach) == 0 {
        return respond(out, 503, "text/plain", b"no shard is running\n");
    }
    drop(attach);
    tracing::info!(id, query = %req.query, "tap attached");
    let result = stream(out, &rx);
    ctx.server.untap(id);
    tracing::info!(id, "tap detached");
    result
}

fn stream(out: &mut TcpStream, rx: &mpsc::Receiver<Vec<u8>>) -> io::Result<()> {
    write_head(out, 200, "application/x-ndjson", None)?;
    out.flush()?;
    let mut batch = Vec::with_capacity(16 * 1024);
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                batch.extend_from_slice(&line);
                while batch.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(l) => batch.extend_from_slice(&l),
                        Err(_) => break,
                    }
                }
                out.write_all(&batch)?;
                batch.clear();
            }
            Err(RecvTimeoutError::Timeout) => {
                if client_gone(out) {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
