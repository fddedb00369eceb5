//! A minimal blocking HTTP/1.1 client for proxy tests: raw request bytes in, parsed response out.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test read waits before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.w.write_all(raw).unwrap();
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.read_response(false).expect("response")
    }

    /// Reads one response; `None` if the connection closed first.
    pub fn read_response(&mut self, head_request: bool) -> Option<Response> {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match self.r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let mut hs = [httparse::EMPTY_HEADER; 160];
        let mut resp = httparse::Response::new(&mut hs);
        resp.parse(&head).expect("valid response head");
        let status = resp.code.unwrap();
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut out = Response {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if head_request
            || status == 101
            || status == 204
            || status == 304
            || (100..200).contains(&status)
        {
            return Some(out);
        }
        if let Some(cl) = out.header("content-length") {
            let n: usize = cl.parse().unwrap();
            out.body = vec![0; n];
            self.r.read_exact(&mut out.body).ok()?;
        } else if out.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut line = String::new();
                self.r.read_line(&mut line).ok()?;
                let size =
                    usize::from_str_radix(line.trim().split(';').next().unwrap(), 16).unwrap();
                if size == 0 {
                    loop {
                        let mut t = String::new();
                        self.r.read_line(&mut t).ok()?;
                        if t == "\r\n" {
                            break;
                        }
                        let (n, v) = t.trim_end().split_once(':').unwrap();
                        out.trailers
                            .push((n.to_ascii_lowercase(), v.trim().to_string()));
                    }
                    break;
                }
                let start = out.body.len();
                out.body.resize(start + size, 0);
                self.r.read_exact(&mut out.body[start..]).ok()?;
                let mut crlf = [0u8; 2];
                self.r.read_exact(&mut crlf).ok()?;
            }
        } else {
            self.r.read_to_end(&mut out.body).ok()?;
        }
        Some(out)
    }

    /// True when the server closed the connection within `limit`: EOF or a reset. False when
    /// the limit passed with the connection still open, or when bytes arrived instead (the
    /// caller's assertion then fails).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        if !self.r.buffer().is_empty() {
            return false;
        }
        self.r.get_ref().set_read_timeout(Some(limit)).unwrap();
        let mut b = [0u8; 1];
        let got = self.r.read(&mut b);
        self.r
            .get_ref()
            .set_read_timeout(Some(READ_TIMEOUT))
            .unwrap();
        match got {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) => panic!("unexpected read error while waiting for a close: {e}"),
        }
    }
}
