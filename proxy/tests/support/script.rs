//! A scripted raw origin: every accepted connection runs the test's closure with the
//! connection's index, a line reader and a shared log of the request heads it received, so a
//! test can misbehave on purpose (close after reading, answer slowly, stream forever).
// The log is shared by the origin's threads and the test thread; this is test scaffolding,
// not the proxy's data path, so a mutex is the plain tool.
#![allow(clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Request heads received, in arrival order, shared with the test.
pub type Log = Arc<Mutex<Vec<String>>>;

pub struct ScriptOrigin {
    pub addr: SocketAddr,
    pub log: Log,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One request as the origin read it.
pub struct Request {
    pub head: String,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    pub fn line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
}

/// Reads one request (Content-Length or chunked body); `None` at EOF.
pub fn read_request(r: &mut BufReader<TcpStream>, log: &Log) -> Option<Request> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    log.lock().unwrap().push(head.clone());
    let mut req = Request {
        head,
        body: Vec::new(),
    };
    if let Some(n) = req.header("content-length") {
        let mut body = vec![0; n.parse().ok()?];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    } else if req.header("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).ok()?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(req)
}

/// A 200 with `body` and keepalive.
pub fn ok(w: &mut TcpStream, body: &str) -> std::io::Result<()> {
    write!(
        w,
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

impl ScriptOrigin {
    pub fn start<F>(script: F) -> ScriptOrigin
    where
        F: Fn(usize, BufReader<TcpStream>, Log) + Send + Sync + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log: Log = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let (s, lg, c) = (stop.clone(), log.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let i = c.fetch_add(1, Ordering::SeqCst);
                let (script, log) = (script.clone(), lg.clone());
                std::thread::spawn(move || script(i, BufReader::new(conn), log));
            }
        });
        ScriptOrigin {
            addr,
            log,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// Request lines received that start with `prefix` (e.g. "POST ").
    pub fn count(&self, prefix: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.starts_with(prefix))
            .count()
    }
}

impl Drop for ScriptOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
