//! An HTTP/1.1 origin whose answer the test switches at run time — one status for `/healthz…`
//! (health probes) and one for everything else — recording when each request arrived and its
//! Host: what outlier-detection and health-check tests need to turn an endpoint bad and good
//! again and to time its ejection.
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
    health: Arc<AtomicU16>,
    /// Arrival time, path and Host of every request, in order.
    arrivals: Arc<Mutex<Vec<(Instant, String, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatusOrigin {
    /// Answers every request with `status` and the body `name`, keeping connections alive.
    pub fn start(name: &str, status: u16) -> StatusOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let health = Arc::new(AtomicU16::new(status));
        let status = Arc::new(AtomicU16::new(status));
        let arrivals: Arc<Mutex<Vec<(Instant, String, String)>>> = Arc::default();
        let (s, st, ar) = (stop.clone(), status.clone(), arrivals.clone());
        let hs = health.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, hs, ar, name) = (st.clone(), hs.clone(), ar.clone(), name.clone());
                std::thread::spawn(move || serve(conn, [&st, &hs], &ar, &name));
            }
        });
        StatusOrigin {
            addr,
            status,
            health,
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    /// From now on answer with `status` (paths other than `/healthz…`).
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// From now on answer `/healthz…` with `status`.
    pub fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::SeqCst);
    }

    /// Host headers of the requests to paths starting with `prefix`.
    pub fn hosts_of(&self, prefix: &str) -> Vec<String> {
        let a = self.arrivals.lock().unwrap();
        a.iter()
            .filter(|r| r.1.starts_with(prefix))
            .map(|r| r.2.clone())
            .collect()
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Requests received so far whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> usize {
        let a = self.arrivals.lock().unwrap();
        a.iter().filter(|r| r.1.starts_with(prefix)).count()
    }

    /// Arrival times of the requests received so far.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().iter().map(|a| a.0).collect()
    }
}

type Arrivals = Mutex<Vec<(Instant, String, String)>>;

/// `statuses`: for other paths, for `/healthz…`.
fn serve(conn: TcpStream, statuses: [&AtomicU16; 2], arrivals: &Arrivals, name: &str) {
    let _ = conn.set_nodelay(true);
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let log: Log = Arc::default();
    while let Some(req) = read_request(&mut r, &log) {
        let path = req.line().split(' ').nth(1).unwrap_or("").to_string();
        let host = req.header("host").unwrap_or_default();
        let which = usize::from(path.starts_with("/healthz"));
        arrivals.lock().unwrap().push((Instant::now(), path, host));
        let s = statuses[which].load(Ordering::SeqCst);
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
