//! `memory`: RSS of the proxy idle, then with N idle keepalive client connections, each of
//! which has completed one request (so a proxy has its upstream side open too).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

/// Opens `n` connections to `addr`, completes one GET on each and keeps them open.
pub fn open_idle(addr: SocketAddr, n: u64) -> anyhow::Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut s = TcpStream::connect(addr).with_context(|| format!("connection {i}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        read_response(&mut s).with_context(|| format!("response on connection {i}"))?;
        conns.push(s);
    }
    Ok(conns)
}

/// Reads one response with a Content-Length body.
fn read_response(s: &mut TcpStream) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0_u8; 512];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("closed before a full response");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .context("no content-length")?;
            if buf.len() >= end + 4 + len {
                return Ok(());
            }
        }
    }
}
