//! The admin API: a small blocking HTTP/1.1 server on plain std threads on the control side,
//! never on a shard (DESIGN.md §4c). One accept thread per bound address, one short-lived
//! thread per admin connection (so a streaming endpoint such as `/tap` does not block the
//! others). It reaches shards only through a [`ServerHandle`] (their command channels).
//!
//! Two tables: [`routes::ADMIN`] on `admin.address` (Envoy's paths, default 127.0.0.1:15000)
//! and [`routes::HEALTH`] on `admin.health_address` (the Istio agent's `/healthz/ready` and
//! `/stats/prometheus`, default 127.0.0.1:15020).
//!
//! **Adding an endpoint:** write `fn my_endpoint(ctx: &AdminCtx, req: &Request, out: &mut
//! TcpStream) -> io::Result<()>` in a new file under `admin/` (use [`respond`] for a plain
//! reply, or write a head with [`write_head`] and then stream), and add one
//! `Route { method, path, handler }` line to the table in `routes.rs`. Paths match exactly
//! (the query string is split off into `Request::query`).

mod baseline;
mod inspect;
mod lifecycle;
mod prometheus;
mod reload;
mod routes;
mod tap;
pub mod tap_client;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use baseline::Baseline;
pub use routes::{Route, ADMIN, HEALTH};

use crate::server::ServerHandle;

/// Largest admin request head (and body) read.
const MAX_REQUEST: usize = 64 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler gets: the way to the shards and process facts.
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub server: ServerHandle,
    pub started: Instant,
    /// Set by `POST /healthcheck/fail`, cleared by `POST /healthcheck/ok`: the health port's
    /// `/healthz/ready` then answers 503 so the orchestrator stops sending traffic (shared by
    /// the admin and health servers, which clone this context).
    pub health_failed: Arc<std::sync::atomic::AtomicBool>,
    /// The control thread (`POST /reload`, `/config_dump`); `None` when nothing can reload.
    pub control: Option<crate::reload::ControlHandle>,
    /// Counter values at the last `POST /reset_counters` (subtracted from what is shown).
    pub baseline: Arc<Baseline>,
}

/// A parsed admin request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string after `?` (empty if none).
    pub query: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of query parameter `key` (`?key=v&…`; a bare `?key` gives `Some("")`).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }
}

/// A running admin listener (accept thread detached; it lives as long as the process).
#[derive(Debug)]
pub struct AdminServer {
    pub addr: SocketAddr,
}

/// Binds `addr` and serves `table` on a std thread.
pub fn serve(addr: SocketAddr, table: &'static [Route], ctx: AdminCtx) -> io::Result<AdminServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let ctx = Arc::new(ctx);
    std::thread::Builder::new()
        .name(format!("admin-{}", addr.port()))
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let ctx = ctx.clone();
                let _ = std::thread::Builder::new()
                    .name("admin-conn".into())
                    .spawn(move || handle(conn, table, &ctx));
            }
        })?;
    Ok(AdminServer { addr })
}

fn handle(mut conn: TcpStream, table: &[Route], ctx: &AdminCtx) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_nodelay(true);
    let req = match read_request(&mut conn) {
        Ok(r) => r,
        Err(e) => {
            let _ = respond(&mut conn, 400, "text/plain", format!("{e}\n").as_bytes());
            return;
        }
    };
    let same_path = || table.iter().filter(|r| r.path == req.path);
    let found = same_path()
        .find(|r| r.method == req.method || (r.method == "GET" && req.method == "HEAD"))
        .or_else(|| same_path().next());
    let result = match found {
        Some(r) if r.method == req.method || (r.method == "GET" && req.method == "HEAD") => {
            (r.handler)(ctx, &req, &mut conn)
        }
        Some(r) => respond(
            &mut conn,
            405,
            "text/plain",
            format!("{} needs {}\n", r.path, r.method).as_bytes(),
        ),
        None => {
            let mut body = format!("no admin endpoint {}; these exist:\n", req.path);
            for r in table {
                body.push_str(&format!("  {} {}: {}\n", r.method, r.path, r.help));
            }
            respond(&mut conn, 404, "text/plain", body.as_bytes())
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, path = %req.path, "admin response not sent");
    }
}

fn read_request(conn: &mut TcpStream) -> io::Result<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed mid-head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let (path, query) = parsed
                    .path
                    .unwrap_or("/")
                    .split_once('?')
                    .map(|(p, q)| (p.to_string(), q.to_string()))
                    .unwrap_or_else(|| (parsed.path.unwrap_or("/").to_string(), String::new()));
                let len = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize);
                if len > MAX_REQUEST {
                    return Err(io::Error::other("request body too large"));
                }
                let method = parsed.method.unwrap_or("GET").to_string();
                let mut body = buf[head_len..].to_vec();
                while body.len() < len {
                    let n = conn.read(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(len);
                return Ok(Request {
                    method,
                    path,
                    query,
                    body,
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => {}
            Ok(httparse::Status::Partial) => {
                return Err(io::Error::other("request head too large"))
            }
            Err(e) => return Err(io::Error::other(format!("bad request: {e}"))),
        }
    }
}

/// Writes a response head; `len: None` means the body runs until the connection closes.
pub fn write_head(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    len: Option<usize>,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\nconnection: close\r\n"
    );
    if let Some(n) = len {
        head.push_str(&format!("content-length: {n}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

/// A whole response with a body.
pub fn respond(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    write_head(out, status, content_type, Some(body.len()))?;
    out.write_all(body)
}
