//! Request smuggling over real sockets: framing the proxy must refuse with 400 (and close),
//! checked against a lenient raw origin that counts the request lines it receives, so a
//! request hidden in a body shows up as a second request line.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use support::client::Client;
use support::http_proxy_to;
use support::origin::Origin;

/// A lenient origin: every line that looks like a request line counts as a request and gets
/// an empty 200 once the client pauses (like a backend that resynchronises on any line).
struct RawOrigin {
    addr: SocketAddr,
    request_lines: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn is_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next().unwrap_or_default();
    let _target = parts.next();
    let version = parts.next().unwrap_or_default();
    !method.is_empty()
        && method.iter().all(u8::is_ascii_uppercase)
        && version.starts_with(b"HTTP/1.")
}

fn serve_raw(mut c: TcpStream, count: &AtomicUsize) {
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut seen = Vec::new();
    let mut answered = 0;
    let mut buf = [0u8; 4096];
    loop {
        let closed = match c.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let total = seen
            .split(|b| *b == b'\n')
            .filter(|l| is_request_line(l))
            .count();
        count.fetch_add(total - answered, Ordering::SeqCst);
        if closed {
            return;
        }
        for _ in answered..total {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
        answered = total;
    }
}

impl RawOrigin {
    fn start() -> RawOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let request_lines = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, s) = (request_lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let count = count.clone();
                std::thread::spawn(move || serve_raw(conn, &count));
            }
        });
        RawOrigin {
            addr,
            request_lines,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `raw` on a new connection; expects 400 and then a closed connection.
fn refused(addr: SocketAddr, raw: &[u8]) {
    let mut c = Client::connect(addr);
    c.send(raw);
    let r = c.read_response(false).expect("a response");
    assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "connection closed after the 400: {:?}",
        String::from_utf8_lossy(raw)
    );
}

#[test]
fn request_hidden_behind_a_bare_lf_trailer_never_reaches_the_origin() {
    let origin = RawOrigin::start();
    let (server, addr) = http_proxy_to(origin.addr, "");
    let mut c = Client::connect(addr);
    c.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let status = c.read_response(false).map(|r| r.status);
    // Give the lenient origin time to count whatever it was sent.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        origin.request_lines.load(Ordering::SeqCst),
        1,
        "the origin saw only the POST, not the smuggled GET"
    );
    assert_eq!(status, Some(400));
    assert!(c.closed_within(Duration::from_secs(5)));
    server.shutdown();
}

#[test]
fn http10_request_with_transfer_encoding_is_refused() {
    let origin = RawOrigin::start();
    let (server, addr) = http_proxy_to(origin.addr, "");
    refused(
        addr,
        b"POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(origin.request_lines.load(Ordering::SeqCst), 0);
    server.shutdown();
}

#[test]
fn invalid_chunk_extensions_and_trailer_names_are_refused() {
    let origin = RawOrigin::start();
    let (server, addr) = http_proxy_to(origin.addr, "");
    let head = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "3;a=\"open\r\nabc\r\n0\r\n\r\n",
        "3;a\x01\r\nabc\r\n0\r\n\r\n",
        "3;=v\r\nabc\r\n0\r\n\r\n",
        "3\r\nabc\r\n0\r\nbad name: v\r\n\r\n",
        "3\r\nabc\r\n0\r\nx: 1\r\n folded\r\n\r\n",
        "3\r\nabc\r\n0\r\nx: a\x00b\r\n\r\n",
        "3\r\nabc\r\n0\r\nx: 1\n\r\n",
    ] {
        refused(addr, format!("{head}{body}").as_bytes());
    }
    server.shutdown();
}

#[test]
fn good_chunked_body_with_trailers_passes_and_the_connection_keeps_flowing() {
    let origin = Origin::start("a");
    let (server, addr) = http_proxy_to(origin.addr, "");
    let mut c = Client::connect(addr);
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=\"quoted \\\" value\";flag\r\nhello\r\n6 ; k = v\r\n world\r\n\
          0\r\nx-checksum: ok\r\nGrpc-Status:\t0 \r\n\r\n",
    );
    let r = c.read_response(false).expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    assert_eq!(c.get("/name").text(), "a", "the connection keeps flowing");
    assert_eq!(origin.requests.load(Ordering::SeqCst), 2);
    server.shutdown();
}
