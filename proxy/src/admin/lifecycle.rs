//! Endpoints that change what the process does: `POST /drain_listeners[?graceful]`,
//! `POST /quitquitquit`, `POST /reset_counters`, and `GET|POST /logging`.

use std::fmt::Write as _;
use std::io;
use std::net::TcpStream;

use super::{respond, AdminCtx, Request};

/// Stops accepting on every listener of every shard; with `?graceful` the open connections
/// are drained too (as on SIGTERM) while the process keeps running.
pub fn drain_listeners(ctx: &AdminCtx, req: &Request, out: &mut TcpStream) -> io::Result<()> {
    let graceful = req.param("graceful").is_some();
    let n = ctx.server.drain_listeners(graceful);
    tracing::warn!(
        graceful,
        shards = n,
        "listeners drained by POST /drain_listeners"
    );
    respond(out, 200, "text/plain", b"OK\n")
}

/// Shuts down as SIGTERM does (stop accepting, drain up to `drain_timeout`, exit).
pub fn quitquitquit(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    let Some(control) = &ctx.control else {
        return respond(out, 503, "text/plain", b"no control thread to stop\n");
    };
    let sent = respond(out, 200, "text/plain", b"OK\n");
    tracing::info!("shutting down by POST /quitquitquit: no new connections, draining open ones");
    control.shutdown();
    sent
}

/// Counters (not gauges) read as zero from now on, on `/stats` and `/stats/prometheus`.
pub fn reset_counters(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    let total = ctx.server.total_stats();
    let counters = super::routes::raw_counters(ctx, &total);
    ctx.baseline.save(&counters, &total.metrics);
    tracing::info!("counters reset by POST /reset_counters");
    respond(out, 200, "text/plain", b"OK\n")
}

/// `GET`: the filter in force and each module's level. `POST ?level=L`: every module to L.
/// `POST ?<module>=L` (`http1` or `shardcar::http1`, several allowed): those modules.
pub fn logging(_: &AdminCtx, req: &Request, out: &mut TcpStream) -> io::Result<()> {
    use crate::logging::{directives, effective_level, set_level, MODULES};
    if req.method == "POST" {
        let mut result = Ok(String::new());
        for kv in req.query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            result = if k == "level" {
                set_level(None, v)
            } else {
                set_level(Some(k), v)
            };
            if result.is_err() {
                break;
            }
        }
        if req.query.is_empty() {
            result = Err(crate::logging::LevelError::Filter(
                "POST /logging needs ?level=<level> or ?<module>=<level>".into(),
            ));
        }
        if let Err(e) = result {
            return respond(out, 400, "text/plain", format!("{e}\n").as_bytes());
        }
    }
    let d = directives().unwrap_or_else(|| "(no reloadable filter)".into());
    let mut body = format!("filter: {d}\nactive loggers:\n");
    for m in MODULES {
        let target = format!("shardcar::{m}");
        let _ = writeln!(body, "  {m}: {}", effective_level(&d, &target));
    }
    respond(out, 200, "text/plain", body.as_bytes())
}
