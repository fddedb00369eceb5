//! An HTTP/1.1 origin whose answer the test switches at run time (a status, or refusing to
//! answer at all by closing), recording when each request arrived: what outlier-detection and
//! health-check tests need to turn an endpoint bad and good again and to time its ejection.
// The arrival log is shared by the origin's threads and the test thread; this is test
// scaffolding, not the proxy's data path, so a mutex is the plain tool.
#![allow(clippy::disallowed_types)]

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::script::{read_request, Log};

pub struct StatusOrigin {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// Arrival time and path of every request, in order.
    arrivals: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatusOrigin {
    /// Answers every request with `status` and the body `name`, keeping connections alive.
    pub fn start(name: &str, status: u16) -> StatusOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(AtomicU16::new(status));
        let arrivals: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let (s, st, ar) = (stop.clone(), status.clone(), arrivals.clone());
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, ar, name) = (st.clone(), ar.clone(), name.clone());
                std::thread::spawn(move || serve(conn, &st, &ar, &name));
            }
        });
        StatusOrigin {
            addr,
            status,
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    /// From now on answer with `status`.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Requests received so far whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> usize {
        let a = self.arrivals.lock().unwrap();
        a.iter().filter(|(_, p)| p.starts_with(prefix)).count()
    }

    /// Arrival times of the requests received so far.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().iter().map(|a| a.0).collect()
    }
}

fn serve(
    conn: TcpStream,
    status: &AtomicU16,
    arrivals: &Mutex<Vec<(Instant, String)>>,
    name: &str,
) {
    let _ = conn.set_nodelay(true);
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let log: Log = Arc::default();
    while let Some(req) = read_request(&mut r, &log) {
        let path = req.line().split(' ').nth(1).unwrap_or("").to_string();
        arrivals.lock().unwrap().push((Instant::now(), path));
        let s = status.load(Ordering::SeqCst);
        let ok = write!(
            w,
            "HTTP/1.1 {s} X\r\ncontent-length: {}\r\n\r\n{name}",
            name.len()
        );
        if ok.is_err() {
            return;
        }
        log.lock().unwrap().clear();
    }
}

impl Drop for StatusOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
