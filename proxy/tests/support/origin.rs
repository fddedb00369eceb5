//! A scriptable HTTP/1.1 origin for proxy tests (blocking, thread per connection, port 0).
//! Behaviour is chosen by path:
//! `/name` → the origin's name; `/echo` → the request body back (Content-Length);
//! `/chunked/N` → N bytes in chunks plus a trailer; `/echo-trailers` → the body back chunked
//! with the request's trailers as `x-echo-<name>` response trailers; `/big/N` → N bytes with Content-Length;
//! `/headers/N` → N extra response headers;
//! `/close/N` → N bytes delimited by close; `/sleep/MS` → 200 after MS ms;
//! `/fail-once` → 503 on the first request, 200 afterwards; `/reset` → close with no response;
//! `/ws` → 101 Switching Protocols, then echo bytes; anything else → 200 "hello".

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Origin {
    pub addr: SocketAddr,
    pub name: String,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Requests served so far.
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    name: String,
    requests: Arc<AtomicUsize>,
    failed_once: AtomicBool,
}

impl Origin {
    pub fn start(name: &str) -> Origin {
        Origin::start_at(name, "127.0.0.1:0".parse().unwrap())
    }

    /// Like [`Origin::start`], on `addr` (e.g. another loopback address).
    pub fn start_at(name: &str, addr: SocketAddr) -> Origin {
        let l = TcpListener::bind(addr).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            name: name.to_string(),
            requests: requests.clone(),
            failed_once: AtomicBool::new(false),
        });
        let (s, c) = (stop.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &shared);
                });
            }
        });
        Origin {
            addr,
            name: name.to_string(),
            connections,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Trailer lines of a chunked request, as sent (`name: value`).
    trailers: Vec<String>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Req>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let end = line == b"\r\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut hs);
    req.parse(&head)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut out = Req {
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("").to_string(),
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    if let Some(cl) = out.header("content-length") {
        let n: usize = cl.trim().parse().unwrap_or(0);
        out.body = vec![0; n];
        r.read_exact(&mut out.body)?;
    } else if out
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if size == 0 {
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t)?;
                    if t == "\r\n" || t.is_empty() {
                        break;
                    }
                    out.trailers.push(t.trim_end().to_string());
                }
                break;
            }
            let start = out.body.len();
            out.body.resize(start + size, 0);
            r.read_exact(&mut out.body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    }
    Ok(Some(out))
}

/// One write per response, so the test origin never waits on Nagle + delayed ACK.
fn respond(w: &mut TcpStream, status: u16, body: &[u8], extra: &str) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)
}

fn pattern(n: usize) -> impl Iterator<Item = u8> {
    (0..n).map(|i| (i % 251) as u8)
}

fn serve(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r)? {
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let path = req.path.clone();
        let arg = |p: &str| path.strip_prefix(p).and_then(|v| v.parse::<usize>().ok());
        // Echo what the proxy added, for header tests.
        let seen = format!(
            "x-seen-xff: {}\r\nx-seen-proto: {}\r\nx-seen-request-id: {}\r\nx-seen-host: {}\r\nx-seen-method: {}\r\nx-seen-te: {}\r\nx-seen-framing: {}\r\n",
            req.header("x-forwarded-for").unwrap_or("-"),
            req.header("x-forwarded-proto").unwrap_or("-"),
            req.header("x-request-id").unwrap_or("-"),
            req.header("host").unwrap_or("-"),
            req.method,
            req.header("te").unwrap_or("-"),
            if req.header("content-length").is_some() {
                "length"
            } else if req.header("transfer-encoding").is_some() {
                "chunked"
            } else {
                "none"
            },
        );
        if path == "/name" {
            respond(&mut w, 200, shared.name.as_bytes(), &seen)?;
        } else if path == "/echo" {
            respond(&mut w, 200, &req.body, &seen)?;
        } else if path == "/echo-trailers" {
            // The body back chunked, the request's trailers back as response trailers.
            write!(
                w,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{seen}\r\n"
            )?;
            for c in req.body.chunks(7919) {
                write!(w, "{:x}\r\n", c.len())?;
                w.write_all(c)?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\n")?;
            for t in &req.trailers {
                write!(w, "x-echo-{t}\r\n")?;
            }
            w.write_all(b"x-checksum: ok\r\n\r\n")?;
        } else if let Some(n) = arg("/chunked/") {
            write!(w, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")?;
            let data: Vec<u8> = pattern(n).collect();
            for c in data.chunks(7919) {
                write!(w, "{:x}\r\n", c.len())?;
                w.write_all(c)?;
                w.write_all(b"\r\n")?;
            }
            w.write_all(b"0\r\nx-checksum: ok\r\n\r\n")?;
        } else if let Some(n) = arg("/headers/") {
            let extra: String = (0..n).map(|i| format!("x-h-{i}: v\r\n")).collect();
            respond(&mut w, 200, b"many headers", &extra)?;
        } else if let Some(n) = arg("/big/") {
            write!(w, "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n")?;
            let block: Vec<u8> = pattern(65536).collect();
            let mut left = n;
            while left > 0 {
                let k = left.min(block.len());
                w.write_all(&block[..k])?;
                left -= k;
            }
        } else if let Some(n) = arg("/close/") {
            write!(w, "HTTP/1.1 200 OK\r\n\r\n")?;
            w.write_all(&pattern(n).collect::<Vec<u8>>())?;
            w.shutdown(Shutdown::Both)?;
            return Ok(());
        } else if let Some(ms) = arg("/sleep/") {
            std::thread::sleep(Duration::from_millis(ms as u64));
            respond(&mut w, 200, b"slept", "")?;
        } else if path == "/fail-once" {
            if shared.failed_once.swap(true, Ordering::SeqCst) {
                respond(&mut w, 200, b"second time lucky", "")?;
            } else {
                respond(&mut w, 503, b"try again", "")?;
            }
        } else if path == "/reset" {
            socket2::SockRef::from(&w).set_linger(Some(Duration::ZERO))?;
            return Ok(());
        } else if path == "/ws" || req.method == "CONNECT" {
            if req.method == "CONNECT" {
                w.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
                return echo(&mut r, &mut w);
            }
            write!(
                w,
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n"
            )?;
            return echo(&mut r, &mut w);
        } else {
            respond(&mut w, 200, b"hello", &seen)?;
        }
    }
    Ok(())
}

fn echo(r: &mut BufReader<TcpStream>, w: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        w.write_all(&buf[..n])?;
    }
}

/// The byte pattern `/big`, `/chunked` and `/close` send.
pub fn expected_pattern(n: usize) -> Vec<u8> {
    pattern(n).collect()
}

/// An origin answering each request with its head as the body.
pub fn echo_head_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{head}",
                        head.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
