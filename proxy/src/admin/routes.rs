//! The admin routing tables and the small endpoints: `/ready`, `/server_info`, `/stats`,
//! `POST /healthcheck/fail|ok` on the admin port, and `/healthz/ready`, `/stats/prometheus`
//! on the health port (the others live in their own files). To add an endpoint, add one [`Route`] line here (see the `admin` module doc).

use std::fmt::Write as _;
use std::io;
use std::net::TcpStream;

use super::{respond, AdminCtx, Request};

/// A handler writes the whole response itself (so it may stream).
pub type Handler = fn(&AdminCtx, &Request, &mut TcpStream) -> io::Result<()>;

/// One admin path.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub handler: Handler,
    /// One line for the 404 listing.
    pub help: &'static str,
}

const fn get(path: &'static str, handler: Handler, help: &'static str) -> Route {
    Route {
        method: "GET",
        path,
        handler,
        help,
    }
}

const fn post(path: &'static str, handler: Handler, help: &'static str) -> Route {
    Route {
        method: "POST",
        path,
        handler,
        help,
    }
}

/// Envoy's admin paths (admin.address).
pub static ADMIN: &[Route] = &[
    get("/ready", ready, "LIVE when every shard answers"),
    get(
        "/server_info",
        server_info,
        "version, uptime, shards, config generation",
    ),
    get("/stats", stats, "all counters as name: value"),
    get(
        "/stats/prometheus",
        super::prometheus::prometheus,
        "all metrics, Prometheus text format",
    ),
    post(
        "/healthcheck/fail",
        healthcheck_fail,
        "make /healthz/ready fail (503) until /healthcheck/ok",
    ),
    post("/healthcheck/ok", healthcheck_ok, "undo /healthcheck/fail"),
    post(
        "/reload",
        super::reload::reload,
        "re-read the config file; 200 with the new version or 400 naming the error",
    ),
    get(
        "/tap",
        super::tap::tap,
        "stream JSON lines of matching requests (?authority=&path_prefix=&method=&status=&identity=&rate=)",
    ),
    get(
        "/config_dump",
        super::reload::config_dump,
        "config version in force, reload counters, listeners, clusters, the config (secrets redacted)",
    ),
    get(
        "/clusters",
        super::inspect::clusters,
        "endpoints with health flags, weight and active requests (?format=json)",
    ),
    get(
        "/listeners",
        super::inspect::listeners,
        "listeners accepting now and their addresses (?format=json)",
    ),
    get(
        "/logging",
        super::lifecycle::logging,
        "log filter in force and each module's level",
    ),
    post(
        "/logging",
        super::lifecycle::logging,
        "?level=<level> for all modules, ?<module>=<level> for one",
    ),
    post(
        "/drain_listeners",
        super::lifecycle::drain_listeners,
        "stop accepting on every listener (?graceful: drain open connections too)",
    ),
    post(
        "/reset_counters",
        super::lifecycle::reset_counters,
        "counters read as zero from now on",
    ),
    post(
        "/quitquitquit",
        super::lifecycle::quitquitquit,
        "shut down as SIGTERM does (drain, exit)",
    ),
];

/// The Istio agent's paths (admin.health_address).
pub static HEALTH: &[Route] = &[
    get(
        "/healthz/ready",
        healthz_ready,
        "200 when every shard answers and /healthcheck/fail is not in force",
    ),
    get(
        "/stats/prometheus",
        super::prometheus::prometheus,
        "all metrics, Prometheus text format",
    ),
];

fn ready(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    let answered = ctx.server.stats().len();
    if answered == ctx.server.shard_count() {
        respond(out, 200, "text/plain", b"LIVE\n")
    } else {
        let body = format!(
            "{answered} of {} shards answered\n",
            ctx.server.shard_count()
        );
        respond(out, 503, "text/plain", body.as_bytes())
    }
}

fn healthz_ready(ctx: &AdminCtx, req: &Request, out: &mut TcpStream) -> io::Result<()> {
    if ctx.health_failed.load(std::sync::atomic::Ordering::Relaxed) {
        let body = b"health check failed by POST /healthcheck/fail\n";
        return respond(out, 503, "text/plain", body);
    }
    ready(ctx, req, out)
}

fn healthcheck_fail(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    ctx.health_failed
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!("health checks set to fail by POST /healthcheck/fail");
    respond(out, 200, "text/plain", b"OK\n")
}

fn healthcheck_ok(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    ctx.health_failed
        .store(false, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("health checks restored by POST /healthcheck/ok");
    respond(out, 200, "text/plain", b"OK\n")
}

fn server_info(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    let total = ctx.server.total_stats();
    let body = format!(
        "{{\"version\":\"{}\",\"state\":\"LIVE\",\"uptime_seconds\":{},\"shards\":{},\"config_generation\":{}}}\n",
        env!("CARGO_PKG_VERSION"),
        ctx.started.elapsed().as_secs(),
        ctx.server.shard_count(),
        total.generation
    );
    respond(out, 200, "application/json", body.as_bytes())
}

/// The merged shard counters as `(name, help, value, is_gauge)`.
fn counters(ctx: &AdminCtx) -> Vec<(&'static str, &'static str, u64, bool)> {
    counters_of(ctx, &ctx.server.total_stats())
}

/// [`counters`] from an already merged snapshot, less the `/reset_counters` baseline.
pub(super) fn counters_of(
    ctx: &AdminCtx,
    t: &crate::shard::ShardStats,
) -> Vec<(&'static str, &'static str, u64, bool)> {
    let mut c = raw_counters(ctx, t);
    ctx.baseline.apply_counters(&mut c);
    c
}

/// The counters as the shards report them (no baseline).
pub(super) fn raw_counters(
    ctx: &AdminCtx,
    t: &crate::shard::ShardStats,
) -> Vec<(&'static str, &'static str, u64, bool)> {
    vec![
        (
            "downstream_cx_total",
            "connections accepted",
            t.accepted,
            false,
        ),
        (
            "downstream_cx_active",
            "open connections",
            t.active_connections as u64,
            true,
        ),
        (
            "downstream_cx_accept_paused",
            "accept paused at max_connections",
            t.accept_paused,
            false,
        ),
        (
            "downstream_cx_accept_errors",
            "accept errors",
            t.accept_errors,
            false,
        ),
        (
            "downstream_cx_parked",
            "idle connections that gave back their buffers",
            t.parked,
            false,
        ),
        (
            "downstream_cx_read_buffer_bytes",
            "client read-buffer bytes held by HTTP/1 connections",
            t.read_buffer_bytes,
            true,
        ),
        (
            "downstream_cx_copy_buffers_active",
            "L4 copy buffers (16 KiB) held by connections",
            t.copy_buffers_in_use,
            true,
        ),
        (
            "downstream_cx_idle_timeout",
            "connections closed by idle_timeout",
            t.idle_timeouts,
            false,
        ),
        (
            "downstream_cx_deadline_timeout",
            "connections closed by a deadline",
            t.deadline_timeouts,
            false,
        ),
        (
            "upstream_cx_pool_reused",
            "upstream requests on a pooled connection",
            t.pool_reused,
            false,
        ),
        (
            "upstream_cx_total",
            "upstream HTTP/1 connections opened",
            t.pool_connected,
            false,
        ),
        (
            "upstream_cx_pool_dropped_dead",
            "pooled connections found dead",
            t.pool_dropped_dead,
            false,
        ),
        (
            "upstream_cx_pool_expired",
            "pooled connections closed idle",
            t.pool_expired,
            false,
        ),
        (
            "downstream_h2_cx_total",
            "downstream HTTP/2 connections",
            t.h2_connections,
            false,
        ),
        (
            "downstream_h2_streams_total",
            "downstream HTTP/2 streams",
            t.h2_streams,
            false,
        ),
        (
            "downstream_h2_guard_closes",
            "HTTP/2 connections closed by a flood guard",
            t.h2_guard_closes,
            false,
        ),
        (
            "upstream_h2_cx_total",
            "upstream HTTP/2 connections",
            t.h2_upstream_connected,
            false,
        ),
        (
            "upstream_h2_multiplexed",
            "upstream streams on a shared HTTP/2 connection",
            t.h2_upstream_multiplexed,
            false,
        ),
        (
            "rbac_allowed",
            "requests allowed by authorization policies",
            t.authz[0],
            false,
        ),
        (
            "rbac_denied",
            "requests denied by authorization policies (403)",
            t.authz[1],
            false,
        ),
        (
            "rbac_tcp_allowed",
            "connections allowed by authorization policies",
            t.authz[2],
            false,
        ),
        (
            "rbac_tcp_denied",
            "connections denied by authorization policies (closed)",
            t.authz[3],
            false,
        ),
        (
            "jwt_authn_rejected",
            "requests refused for an invalid JWT (401)",
            t.authz[4],
            false,
        ),
        (
            "access_log_lines",
            "access-log lines handed to a writer",
            t.access_log_lines,
            false,
        ),
        (
            "access_log_dropped",
            "access-log lines dropped because the writer's queue was full (slow sink)",
            t.access_log_dropped,
            false,
        ),
        (
            "tracing_spans_exported_total",
            "spans the OTLP collector accepted",
            t.tracing_exporter[0],
            false,
        ),
        (
            "tracing_spans_dropped_total",
            "spans lost: the exporter's queue was full, or their export request failed",
            t.tracing_spans_dropped + t.tracing_exporter[2],
            false,
        ),
        (
            "tracing_export_failures_total",
            "OTLP export requests that failed (connect, I/O or a non-2xx answer)",
            t.tracing_exporter[1],
            false,
        ),
        (
            "tap_events",
            "tap lines sent to tap clients",
            t.tap_events,
            false,
        ),
        (
            "tap_dropped",
            "matching requests a tap did not send (rate cap or full queue)",
            t.tap_dropped,
            false,
        ),
        (
            "server_config_generation",
            "config generation in force",
            t.generation,
            true,
        ),
        (
            "server_uptime_seconds",
            "seconds since start",
            ctx.started.elapsed().as_secs(),
            true,
        ),
    ]
}

fn stats(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    let mut body = String::new();
    for (name, _, v, _) in counters(ctx) {
        let _ = writeln!(body, "shardcar.{name}: {v}");
    }
    respond(out, 200, "text/plain", body.as_bytes())
}
