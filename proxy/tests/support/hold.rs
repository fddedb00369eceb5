//! An HTTP/1.1 origin that holds every request until released: each request head is counted
//! on arrival and answered `200 held` only after [`HoldOrigin::release`], so a test can keep an
//! exact number of requests in flight (thread per connection, port 0, stopped on drop).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct HoldOrigin {
    pub addr: SocketAddr,
    /// Request heads received so far.
    pub arrived: Arc<AtomicUsize>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HoldOrigin {
    pub fn start() -> HoldOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let arrived = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (a, r, s) = (arrived.clone(), released.clone(), stop.clone());
        let n = connections.clone();
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                n.fetch_add(1, Ordering::SeqCst);
                let Ok(conn) = conn else { continue };
                let (a, r) = (a.clone(), r.clone());
                std::thread::spawn(move || serve(conn, &a, &r));
            }
        });
        HoldOrigin {
            addr,
            arrived,
            connections,
            released,
            stop,
            thread: Some(thread),
        }
    }

    /// Answers every held request, and every later one at once.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Waits (polling, up to 20 s) until `n` requests have arrived.
    pub fn wait_arrived(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.arrived.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests arrived",
                self.arrived.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn serve(conn: TcpStream, arrived: &AtomicUsize, released: &AtomicBool) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        // Request line and headers (these tests send no bodies).
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        arrived.fetch_add(1, Ordering::SeqCst);
        while !released.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nheld")
            .is_err()
        {
            return;
        }
    }
}

impl Drop for HoldOrigin {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
