//! `l4-bulk`: the harness's own source/sink. A sink server on the load CPU reads everything a
//! connection sends while sending `bytes` back; the client sends `bytes` while reading `bytes`.
//! Both directions run at once, so MB/s counts bytes moved both ways.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const CHUNK: usize = 256 * 1024;

/// The sink/source server; stops accepting when dropped (a wake-up connection ends its loop).
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn send(mut s: &TcpStream, bytes: u64) -> std::io::Result<()> {
    let buf = vec![0x5a_u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        s.write_all(&buf[..n])?;
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write)
}

fn drain(mut s: &TcpStream) -> std::io::Result<u64> {
    let mut buf = vec![0_u8; CHUNK];
    let mut total = 0;
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// Sends `bytes` while reading until EOF on one stream; returns bytes read.
fn both_ways(s: TcpStream, bytes: u64) -> std::io::Result<u64> {
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.set_write_timeout(Some(Duration::from_secs(120)))?;
    let w = s.try_clone()?;
    let writer = std::thread::spawn(move || send(&w, bytes));
    let got = drain(&s);
    let sent = writer
        .join()
        .map_err(|_| std::io::Error::other("writer panicked"))?;
    sent?;
    got
}

impl Sink {
    pub fn start(bytes: u64) -> anyhow::Result<Sink> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || {
            for c in l.incoming() {
                if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                if let Ok(c) = c {
                    std::thread::spawn(move || both_ways(c, bytes));
                }
            }
        });
        Ok(Sink {
            addr,
            accept: Some(accept),
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Moves `bytes` each way over each of `connections` connections to `addr`; returns elapsed.
pub fn run(addr: SocketAddr, connections: u64, bytes: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|_| -> anyhow::Result<_> {
            let s = TcpStream::connect(addr).context("bulk connect")?;
            Ok(std::thread::spawn(move || both_ways(s, bytes)))
        })
        .collect::<anyhow::Result<_>>()?;
    for h in handles {
        let got = h
            .join()
            .map_err(|_| anyhow::anyhow!("bulk client panicked"))??;
        if got != bytes {
            bail!("bulk: received {got} bytes, expected {bytes}");
        }
    }
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_bytes_both_ways() {
        let sink = Sink::start(3 << 20).unwrap();
        let t = run(sink.addr(), 2, 3 << 20).unwrap();
        assert!(t < Duration::from_secs(30));
    }
}
