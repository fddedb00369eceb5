//! The origin's HTTP/1.1 side: parse requests (pipelining allowed), skip Content-Length bodies,
//! answer each with the pre-built fixed response.

use std::rc::Rc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::Behaviour;

pub(super) async fn serve<S>(mut s: S, mut buf: Vec<u8>, b: Rc<Behaviour>)
where
    S: AsyncReadRent + AsyncWriteRent,
{
    let mut served = 0u64;
    let mut pos = 0usize;
    loop {
        // Answer every complete request in the buffer.
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&buf[pos..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    let _ = s
                        .write_all(&b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[..])
                        .await;
                    return;
                }
            };
            let mut body = 0usize;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    body = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                }
            }
            if buf.len() - pos < n + body {
                break;
            }
            pos += n + body;
            served += 1;
            if b.resets(served) {
                return; // SO_LINGER 0 on the socket: dropping it sends RST.
            }
            b.wait().await;
            let (r, _) = s.write_all(b.h1_response.clone()).await;
            if r.is_err() {
                return;
            }
        }
        if pos == buf.len() {
            buf.clear();
            pos = 0;
        }
        let len = buf.len();
        if buf.capacity() - len < 4096 {
            buf.reserve(16 * 1024);
        }
        let cap = buf.capacity();
        let (r, slice) = s.read(buf.slice_mut(len..cap)).await;
        buf = slice.into_inner();
        match r {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
