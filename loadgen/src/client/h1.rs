//! HTTP/1.1 client side of one keepalive connection: write a pre-built request, read one
//! response (Content-Length, chunked, or close-delimited body). One buffer per connection,
//! reused for every response; nothing allocated per request.

use bytes::Bytes;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::{ReqError, Response};
use crate::plan::Plan;
use crate::stats::ErrorKind;

const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 16 * 1024;

/// Builds the wire bytes of the request for target `i` once, before the run.
pub fn build_request(plan: &Plan, i: usize) -> Bytes {
    let t = &plan.targets[i];
    let mut s = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        plan.method, t.path, t.authority
    );
    for (k, v) in &plan.headers {
        s.push_str(k);
        s.push_str(": ");
        s.push_str(v);
        s.push_str("\r\n");
    }
    if !plan.body.is_empty() || matches!(plan.method.as_str(), "POST" | "PUT" | "PATCH") {
        s.push_str(&format!("content-length: {}\r\n", plan.body.len()));
    }
    s.push_str("\r\n");
    let mut v = s.into_bytes();
    v.extend_from_slice(&plan.body);
    Bytes::from(v)
}

/// Body framing of a response.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Where a chunked body ends, if it is complete in `b` (which starts at the first chunk).
fn chunked_end(b: &[u8]) -> Result<Option<usize>, ReqError> {
    let mut pos = 0;
    loop {
        let Some(nl) = b[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &b[pos..pos + nl];
        let hex = line.split(|c| *c == b';').next().unwrap_or(&[]);
        let hex = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
            .ok_or_else(|| ReqError::new(ErrorKind::Protocol, "bad chunk size"))?;
        pos += nl + 2;
        if hex == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(nl) = b[pos..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                pos += nl + 2;
                if nl == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if b.len() < pos + hex + 2 {
            return Ok(None);
        }
        pos += hex + 2;
    }
}

/// One HTTP/1.1 connection.
pub struct H1Conn<S> {
    io: S,
    buf: Vec<u8>,
    /// Set when the peer asked to close or the body was close-delimited.
    pub closed: bool,
}

impl<S: AsyncReadRent + AsyncWriteRent> H1Conn<S> {
    pub fn new(io: S) -> H1Conn<S> {
        H1Conn {
            io,
            buf: Vec::with_capacity(READ_CHUNK),
            closed: false,
        }
    }

    async fn fill(&mut self) -> Result<usize, ReqError> {
        let len = self.buf.len();
        if self.buf.capacity() - len < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        let cap = self.buf.capacity();
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = self.io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res.map_err(ReqError::io)
    }

    /// Sends `req` and reads the whole response. `head_only` for HEAD requests.
    pub async fn exchange(&mut self, req: Bytes, head_only: bool) -> Result<Response, ReqError> {
        let (res, _) = self.io.write_all(req).await;
        res.map_err(ReqError::io)?;
        self.buf.clear();
        // Head.
        let (status, head_len, framing) = loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let mut framing = Framing::UntilClose;
                        for h in resp.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let v = std::str::from_utf8(h.value)
                                    .ok()
                                    .and_then(|v| v.trim().parse().ok())
                                    .ok_or_else(|| {
                                        ReqError::new(ErrorKind::Protocol, "bad content-length")
                                    })?;
                                framing = Framing::Length(v);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                                && h.value.eq_ignore_ascii_case(b"chunked")
                            {
                                framing = Framing::Chunked;
                            } else if h.name.eq_ignore_ascii_case("connection")
                                && h.value.eq_ignore_ascii_case(b"close")
                            {
                                self.closed = true;
                            }
                        }
                        if head_only || status == 204 || status == 304 || status / 100 == 1 {
                            framing = Framing::Length(0);
                        }
                        break (status, n, framing);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(ReqError::new(ErrorKind::Protocol, e.to_string())),
                }
            }
            if self.fill().await? == 0 {
                return Err(ReqError::new(
                    ErrorKind::Reset,
                    "connection closed before a response",
                ));
            }
        };
        // Body.
        let total = loop {
            match framing {
                Framing::Length(n) if self.buf.len() >= head_len + n => break head_len + n,
                Framing::Chunked => {
                    if let Some(end) = chunked_end(&self.buf[head_len..])? {
                        break head_len + end;
                    }
                }
                _ => {}
            }
            if self.fill().await? == 0 {
                if matches!(framing, Framing::UntilClose) {
                    self.closed = true;
                    break self.buf.len();
                }
                return Err(ReqError::new(
                    ErrorKind::Reset,
                    "connection closed mid-body",
                ));
            }
        };
        if self.buf.len() > total {
            return Err(ReqError::new(
                ErrorKind::Protocol,
                "unsolicited response bytes",
            ));
        }
        Ok(Response {
            status,
            bytes_in: total as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_they_should() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n").unwrap(), Some(15));
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n").unwrap(), None);
        assert_eq!(chunked_end(b"5\r\nhel").unwrap(), None);
        assert_eq!(chunked_end(b"0;x=y\r\nT: 1\r\n\r\n").unwrap(), Some(15));
        assert!(chunked_end(b"zz\r\n").is_err());
    }
}
