//! One shard of a run: its schedule, its workers (one per in-flight slot: a keepalive HTTP/1.1
//! connection, or one stream of a shared h2 connection) and its statistics. Nothing here is
//! shared with other shards; the statistics go back to the caller when the shard ends.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;

use crate::client::{self, Connect, PlainConnect, ReqError, Response, TlsConnect};
use crate::plan::{Mode, Plan, Protocol, Stop};
use crate::schedule::{Schedule, Slot};
use crate::stats::{ErrorKind, ShardStats};
use crate::timer::PreciseTimer;

/// What a shard is given at birth.
pub struct ShardJob {
    pub plan: Arc<Plan>,
    pub index: usize,
    pub connections: u64,
    /// Open loop: this shard's share of the rate.
    pub rps: f64,
    /// Open loop: offset of this shard's schedule, as a fraction of its interval.
    pub phase: f64,
    /// `--requests`: this shard's share.
    pub requests: Option<u64>,
    pub t0: Instant,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Requests completed so far, published once per 100 ms for the progress line.
    pub progress: Arc<AtomicU64>,
}

struct Ctx {
    plan: Arc<Plan>,
    sched: Schedule,
    timer: PreciseTimer,
    stats: RefCell<ShardStats>,
    h1_reqs: Vec<Bytes>,
    h2_reqs: Vec<http::Request<()>>,
    /// Target index -> index into `addrs`.
    addr_of: Vec<usize>,
    addrs: Vec<SocketAddr>,
    head: bool,
    done: Cell<bool>,
}

impl Ctx {
    /// Claims the next slot and waits for its intended time (open loop). Returns the slot, the
    /// actual send time, and records the generator-health figures.
    async fn next(&self) -> Option<(Slot, Instant)> {
        let claimed = Instant::now();
        let slot = self.sched.claim(claimed)?;
        if !self.sched.is_open() {
            self.stats
                .borrow_mut()
                .record_send(Duration::ZERO, Duration::ZERO);
            return Some((slot, claimed));
        }
        if slot.at > claimed {
            self.timer.sleep_until(slot.at).await;
        }
        let sent = Instant::now();
        let (queued, lag) = if slot.at >= claimed {
            (Duration::ZERO, sent.saturating_duration_since(slot.at))
        } else {
            (claimed - slot.at, sent - claimed)
        };
        self.stats.borrow_mut().record_send(queued, lag);
        Some((slot, sent))
    }

    /// Records the outcome of one slot.
    fn finish(&self, slot: Slot, sent: Instant, bytes_out: usize, res: Result<Response, ReqError>) {
        let done = Instant::now();
        if !slot.measured {
            return;
        }
        let mut st = self.stats.borrow_mut();
        st.bytes_out += bytes_out as u64;
        match res {
            Ok(r) => {
                st.bytes_in += r.bytes_in;
                let from = if self.sched.is_open() { slot.at } else { sent };
                st.record_response(r.status, done.saturating_duration_since(from), sent, done);
            }
            Err(e) => {
                if st.first_error.is_none() {
                    st.first_error = Some(format!("{:?}: {}", e.kind, e.msg));
                }
                st.record_error(e.kind, done);
            }
        }
    }

    /// After a connect failure, closed loop would spin; back off a little.
    async fn backoff(&self, kind: ErrorKind) {
        if kind == ErrorKind::Connect && !self.sched.is_open() {
            self.timer.sleep(Duration::from_millis(10)).await;
        }
    }
}

fn timed_out() -> ReqError {
    ReqError::new(ErrorKind::Timeout, "no response within --timeout")
}

async fn h1_worker<C: Connect>(ctx: Rc<Ctx>, connector: C) {
    let mut conns: Vec<Option<client::h1::H1Conn<C::Io>>> =
        (0..ctx.addrs.len()).map(|_| None).collect();
    while let Some((slot, sent)) = ctx.next().await {
        let t = (slot.seq as usize) % ctx.h1_reqs.len();
        let a = ctx.addr_of[t];
        let req = ctx.h1_reqs[t].clone();
        let len = req.len();
        let work = async {
            if conns[a].is_none() {
                let io = connector.connect(ctx.addrs[a]).await?;
                conns[a] = Some(client::h1::H1Conn::new(io));
            }
            let c = conns[a].as_mut().expect("just connected");
            c.exchange(req, ctx.head).await
        };
        let res = match monoio::time::timeout(ctx.plan.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        };
        if res.is_err() || conns[a].as_ref().is_some_and(|c| c.closed) {
            conns[a] = None;
        }
        let kind = res.as_ref().err().map(|e| e.kind);
        ctx.finish(slot, sent, len, res);
        if let Some(k) = kind {
            ctx.backoff(k).await;
        }
    }
}

/// One h2 connection shared by `streams` workers; re-established when it dies.
struct H2Shared {
    send: RefCell<Option<h2::client::SendRequest<Bytes>>>,
    connecting: Cell<bool>,
}

async fn h2_get<C: Connect>(
    ctx: &Ctx,
    shared: &H2Shared,
    connector: &C,
) -> Result<h2::client::SendRequest<Bytes>, ReqError> {
    loop {
        if let Some(s) = shared.send.borrow().as_ref() {
            return Ok(s.clone());
        }
        if shared.connecting.get() {
            ctx.timer.sleep(Duration::from_micros(500)).await;
            continue;
        }
        shared.connecting.set(true);
        let r = connector.connect_h2(ctx.addrs[0]).await;
        shared.connecting.set(false);
        let s = r?;
        *shared.send.borrow_mut() = Some(s.clone());
        return Ok(s);
    }
}

async fn h2_worker<C: Connect>(ctx: Rc<Ctx>, shared: Rc<H2Shared>, connector: C) {
    while let Some((slot, sent)) = ctx.next().await {
        let t = (slot.seq as usize) % ctx.h2_reqs.len();
        let body = ctx.plan.body.clone();
        let work = async {
            let mut send = h2_get(&ctx, &shared, &connector).await?;
            client::h2::exchange(&mut send, &ctx.h2_reqs[t], &body).await
        };
        let res = match monoio::time::timeout(ctx.plan.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        };
        if let Err(e) = &res {
            if matches!(
                e.kind,
                ErrorKind::Reset | ErrorKind::Connect | ErrorKind::Tls
            ) {
                shared.send.borrow_mut().take();
            }
        }
        let kind = res.as_ref().err().map(|e| e.kind);
        ctx.finish(slot, sent, body.len(), res);
        if let Some(k) = kind {
            ctx.backoff(k).await;
        }
    }
}

async fn run_workers<C: Connect + Clone>(ctx: Rc<Ctx>, job: &ShardJob, connector: C) {
    let mut futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> = Vec::new();
    for _ in 0..job.connections {
        match ctx.plan.protocol {
            Protocol::Http1 => futs.push(Box::pin(h1_worker(ctx.clone(), connector.clone()))),
            Protocol::H2 => {
                let shared = Rc::new(H2Shared {
                    send: RefCell::new(None),
                    connecting: Cell::new(false),
                });
                for _ in 0..ctx.plan.streams {
                    futs.push(Box::pin(h2_worker(
                        ctx.clone(),
                        shared.clone(),
                        connector.clone(),
                    )));
                }
            }
        }
    }
    join_all(futs).await;
}

/// Runs one shard to completion and returns its statistics.
pub async fn run_shard(job: ShardJob, ring: &'static str) -> ShardStats {
    let plan = job.plan.clone();
    let (duration, requests) = match plan.stop {
        Stop::Duration(d) => (Some(d), None),
        Stop::Requests(_) => (None, job.requests),
    };
    let sched = match plan.mode {
        Mode::Open { .. } => {
            Schedule::open(job.rps, job.phase, job.t0, plan.warmup, duration, requests)
        }
        Mode::Closed { .. } => Schedule::closed(job.t0, plan.warmup, duration, requests),
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let addr_of = plan
        .targets
        .iter()
        .map(|t| match addrs.iter().position(|a| *a == t.addr) {
            Some(i) => i,
            None => {
                addrs.push(t.addr);
                addrs.len() - 1
            }
        })
        .collect();
    let mut stats = ShardStats::new(sched.warmup_end());
    stats.ring = ring;
    let timer = match PreciseTimer::start() {
        Ok(t) => t,
        Err(e) => {
            stats.first_error = Some(format!("timerfd: {e}"));
            return stats;
        }
    };
    let h2_reqs = match plan.protocol {
        Protocol::H2 => (0..plan.targets.len())
            .filter_map(|i| client::h2::build_request(&plan, i).ok())
            .collect(),
        Protocol::Http1 => Vec::new(),
    };
    let ctx = Rc::new(Ctx {
        h1_reqs: (0..plan.targets.len())
            .map(|i| client::h1::build_request(&plan, i))
            .collect(),
        h2_reqs,
        addr_of,
        addrs,
        head: plan.method == "HEAD",
        plan: plan.clone(),
        sched,
        timer,
        stats: RefCell::new(stats),
        done: Cell::new(false),
    });
    // Publish progress a few times a second (never per request: no shared counter on the hot path).
    {
        let ctx = ctx.clone();
        let progress = job.progress.clone();
        monoio::spawn(async move {
            while !ctx.done.get() {
                monoio::time::sleep(Duration::from_millis(100)).await;
                let n = ctx.stats.borrow().latency.len();
                progress.store(n, Ordering::Relaxed);
            }
        });
    }
    match &job.tls {
        None => run_workers(ctx.clone(), &job, PlainConnect).await,
        Some(cfg) => {
            let t = &plan.targets[0];
            let opts = plan.tls.clone().unwrap_or_default();
            match crate::tls::server_name(&opts, &t.host) {
                Ok(name) => {
                    let c = TlsConnect {
                        connector: monoio_rustls::TlsConnector::from(cfg.clone()),
                        tokio_connector: tokio_rustls::TlsConnector::from(cfg.clone()),
                        server_name: Rc::new(name),
                    };
                    run_workers(ctx.clone(), &job, c).await
                }
                Err(e) => ctx.stats.borrow_mut().first_error = Some(e.to_string()),
            }
        }
    }
    ctx.done.set(true);
    let mut stats = ShardStats::new(ctx.sched.warmup_end());
    std::mem::swap(&mut stats, &mut ctx.stats.borrow_mut());
    stats.planned_end = ctx.sched.planned_end();
    stats
}
