//! One health probe of one endpoint, bounded by the check's `timeout`: a TCP connect, an HTTP/1.1
//! `GET` whose status must be expected, or a gRPC `grpc.health.v1.Health/Check` over h2c whose
//! answer must be `SERVING`. Every connect goes through [`crate::upstream::connect`] (the
//! upstream mark applies, so interception rules never capture probes).

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::{HealthCheck, Probe};
use crate::ctx::UpstreamAddr;
use crate::upstream::{connect, ConnectOpts};

/// Largest HTTP status line read.
const MAX_HEAD: usize = 8 * 1024;
/// `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// Whether endpoint `addr` passes `check` now.
pub async fn run(check: &HealthCheck, addr: SocketAddr, mark: Option<u32>) -> bool {
    monoio::time::timeout(check.timeout, probe(check, addr, mark))
        .await
        .unwrap_or(false)
}

async fn probe(check: &HealthCheck, addr: SocketAddr, mark: Option<u32>) -> bool {
    let opts = ConnectOpts {
        timeout: check.timeout,
        mark,
    };
    let Ok(stream) = connect(UpstreamAddr(addr), opts).await else {
        return false;
    };
    match &check.probe {
        Probe::Tcp => true,
        Probe::Http {
            path,
            host,
            expected,
        } => http(stream, path, host)
            .await
            .is_some_and(|s| expected.contains(&s)),
        Probe::Grpc { service, authority } => grpc(stream, service, authority).await,
    }
}

/// The status of `GET path` (the status line is all that is read).
async fn http(mut s: TcpStream, path: &str, host: &str) -> Option<u16> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: shardcar-health-check\r\nConnection: close\r\n\r\n"
    );
    let (r, _) = s.write_all(req.into_bytes()).await;
    r.ok()?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = std::str::from_utf8(&buf[..end]).ok()?;
            let mut parts = line.split(' ');
            let version = parts.next()?;
            if !version.starts_with("HTTP/1.") {
                return None;
            }
            return parts.next()?.parse().ok();
        }
        if buf.len() >= MAX_HEAD {
            return None;
        }
        buf.reserve(1024);
        let len = buf.len();
        let (r, slice): (_, SliceMut<Vec<u8>>) = s.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        if r.ok()? == 0 {
            return None;
        }
    }
}

/// The `HealthCheckRequest { service }` message as one gRPC frame.
fn request_frame(service: &str) -> Bytes {
    let mut msg = BytesMut::new();
    if !service.is_empty() {
        msg.put_u8(0x0A); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut frame = BytesMut::with_capacity(5 + msg.len());
    frame.put_u8(0);
    frame.put_u32(msg.len() as u32);
    frame.put_slice(&msg);
    frame.freeze()
}

fn put_varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7F) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// `status` (field 1) of a `HealthCheckResponse` frame; absent means 0 (UNKNOWN).
pub fn response_status(frame: &[u8]) -> Option<u64> {
    if frame.len() < 5 || frame[0] != 0 {
        return None; // compressed or short
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let mut msg = frame.get(5..5 + len)?;
    let mut status = 0;
    while !msg.is_empty() {
        let (key, n) = varint(msg)?;
        msg = &msg[n..];
        match key & 7 {
            0 => {
                let (v, n) = varint(msg)?;
                if key >> 3 == 1 {
                    status = v;
                }
                msg = &msg[n..];
            }
            2 => {
                let (l, n) = varint(msg)?;
                msg = msg.get(n + l as usize..)?;
            }
            _ => return None,
        }
    }
    Some(status)
}

async fn grpc(tcp: TcpStream, service: &str, authority: &str) -> bool {
    match grpc_check(tcp, service, authority).await {
        Ok(SERVING) => true,
        Ok(status) => {
            tracing::debug!(status, "gRPC health check: not SERVING");
            false
        }
        Err(why) => {
            tracing::debug!(why, "gRPC health check failed");
            false
        }
    }
}

async fn grpc_check(tcp: TcpStream, service: &str, authority: &str) -> Result<u64, &'static str> {
    let io = monoio_compat::StreamWrapper::new_with_buffer_size(tcp, 16 * 1024, 16 * 1024);
    let (send, conn) = h2::client::Builder::new()
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|_| "h2 handshake")?;
    monoio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.map_err(|_| "h2 connection not ready")?;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{authority}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "shardcar-health-check")
        .body(())
        .map_err(|_| "bad authority")?;
    let (response, mut body) = send.send_request(req, false).map_err(|_| "send request")?;
    body.send_data(request_frame(service), true)
        .map_err(|_| "send body")?;
    let resp = response.await.map_err(|_| "no response")?;
    if resp.status() != http::StatusCode::OK {
        return Err("HTTP status not 200");
    }
    let trailers_only = resp.headers().get("grpc-status").cloned();
    let mut rbody = resp.into_body();
    let mut data = BytesMut::new();
    while let Some(chunk) = rbody.data().await {
        let chunk = chunk.map_err(|_| "response body")?;
        let _ = rbody.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let code = match trailers_only {
        Some(c) => c,
        None => rbody
            .trailers()
            .await
            .map_err(|_| "trailers")?
            .and_then(|t| t.get("grpc-status").cloned())
            .ok_or("no grpc-status")?,
    };
    if code.as_bytes() != b"0" {
        return Err("grpc-status not OK");
    }
    response_status(&data).ok_or("malformed HealthCheckResponse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_messages_encode_and_decode() {
        assert_eq!(&request_frame("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &request_frame("a.B")[..],
            &[0, 0, 0, 0, 5, 0x0A, 3, b'a', b'.', b'B']
        );
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(SERVING));
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(
            response_status(&[0, 0, 0, 0, 0]),
            Some(0),
            "default UNKNOWN"
        );
        assert_eq!(response_status(&[1, 0, 0, 0, 0]), None, "compressed");
    }
}
