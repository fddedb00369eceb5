//! Per-shard statistics, single writer, merged after the run. Latency histograms cover
//! 1 µs .. 60 s at 3 significant digits; per-second buckets use 2 digits to stay small.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::ErrorCounts;

/// What went wrong with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Reset,
    Protocol,
    Tls,
    Other,
}

impl ErrorKind {
    /// Classifies an I/O error from a socket.
    pub fn from_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        if e.get_ref()
            .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
        {
            return ErrorKind::Tls;
        }
        match e.kind() {
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::NotConnected => ErrorKind::Reset,
            K::ConnectionRefused | K::AddrNotAvailable => ErrorKind::Connect,
            K::TimedOut => ErrorKind::Timeout,
            K::InvalidData => ErrorKind::Protocol,
            _ => ErrorKind::Other,
        }
    }
}

pub const HIST_MAX_US: u64 = 60_000_000;

pub fn new_hist(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, sigfig).expect("valid histogram bounds")
}

/// One second of the measurement window.
pub struct SecondAcc {
    pub requests: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

/// Everything one shard measured.
pub struct ShardStats {
    pub latency: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub queue_wait: Histogram<u64>,
    pub sends: u64,
    pub late_sends: u64,
    pub queued_sends: u64,
    pub status: BTreeMap<u16, u64>,
    pub errors: ErrorCounts,
    pub series: Vec<SecondAcc>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Latest actual send of a measured request.
    pub last_send: Option<Instant>,
    /// Latest completion of a measured request.
    pub last_done: Option<Instant>,
    /// Start of the measurement window (end of warm-up).
    pub window_start: Instant,
    pub ring: &'static str,
    /// Open loop: the planned end of the measurement window.
    pub planned_end: Option<Instant>,
    /// The first failure's message, for the human table.
    pub first_error: Option<String>,
}

/// A send is "late" when it left more than this after it could have.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(1);

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, HIST_MAX_US)
}

impl ShardStats {
    pub fn new(window_start: Instant) -> ShardStats {
        ShardStats {
            latency: new_hist(3),
            lag: new_hist(3),
            queue_wait: new_hist(3),
            sends: 0,
            late_sends: 0,
            queued_sends: 0,
            status: BTreeMap::new(),
            errors: ErrorCounts::default(),
            series: Vec::new(),
            bytes_in: 0,
            bytes_out: 0,
            last_send: None,
            last_done: None,
            window_start,
            ring: "",
            planned_end: None,
            first_error: None,
        }
    }

    /// Records how a send departed: `queued` is the wait for a free connection, `lag` the
    /// generator's own delay after that.
    pub fn record_send(&mut self, queued: Duration, lag: Duration) {
        self.sends += 1;
        if lag > LATE_THRESHOLD {
            self.late_sends += 1;
        }
        if queued > LATE_THRESHOLD {
            self.queued_sends += 1;
        }
        let _ = self.lag.record(us(lag));
        let _ = self.queue_wait.record(us(queued));
    }

    fn second(&mut self, at: Instant) -> &mut SecondAcc {
        let idx = at.saturating_duration_since(self.window_start).as_secs() as usize;
        while self.series.len() <= idx {
            self.series.push(SecondAcc {
                requests: 0,
                errors: 0,
                hist: new_hist(2),
            });
        }
        &mut self.series[idx]
    }

    /// Records a measured response.
    pub fn record_response(
        &mut self,
        status: u16,
        latency: Duration,
        sent: Instant,
        done: Instant,
    ) {
        let v = us(latency);
        let _ = self.latency.record(v);
        *self.status.entry(status).or_default() += 1;
        self.last_send = self.last_send.max(Some(sent));
        self.last_done = self.last_done.max(Some(done));
        let s = self.second(done);
        s.requests += 1;
        let _ = s.hist.record(v);
    }

    /// Records a measured failure.
    pub fn record_error(&mut self, kind: ErrorKind, done: Instant) {
        let e = &mut self.errors;
        match kind {
            ErrorKind::Connect => e.connect += 1,
            ErrorKind::Timeout => e.timeout += 1,
            ErrorKind::Reset => e.reset += 1,
            ErrorKind::Protocol => e.protocol += 1,
            ErrorKind::Tls => e.tls += 1,
            ErrorKind::Other => e.other += 1,
        }
        self.second(done).errors += 1;
    }

    /// Folds another shard's figures into this one.
    pub fn merge(&mut self, o: ShardStats) {
        let _ = self.latency.add(&o.latency);
        let _ = self.lag.add(&o.lag);
        let _ = self.queue_wait.add(&o.queue_wait);
        self.sends += o.sends;
        self.late_sends += o.late_sends;
        self.queued_sends += o.queued_sends;
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        let e = &mut self.errors;
        e.connect += o.errors.connect;
        e.timeout += o.errors.timeout;
        e.reset += o.errors.reset;
        e.protocol += o.errors.protocol;
        e.tls += o.errors.tls;
        e.other += o.errors.other;
        for (i, s) in o.series.into_iter().enumerate() {
            if i >= self.series.len() {
                self.series.push(s);
            } else {
                let m = &mut self.series[i];
                m.requests += s.requests;
                m.errors += s.errors;
                let _ = m.hist.add(&s.hist);
            }
        }
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.last_send = self.last_send.max(o.last_send);
        self.last_done = self.last_done.max(o.last_done);
        if self.ring.is_empty() {
            self.ring = o.ring;
        }
        self.planned_end = self.planned_end.max(o.planned_end);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let t0 = Instant::now();
        let mut a = ShardStats::new(t0);
        let mut b = ShardStats::new(t0);
        a.record_response(200, Duration::from_micros(100), t0, t0);
        b.record_response(
            503,
            Duration::from_micros(300),
            t0,
            t0 + Duration::from_secs(1),
        );
        b.record_error(ErrorKind::Reset, t0);
        b.record_send(Duration::ZERO, Duration::from_millis(5));
        a.merge(b);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.status[&200], 1);
        assert_eq!(a.status[&503], 1);
        assert_eq!(a.errors.reset, 1);
        assert_eq!(a.late_sends, 1);
        assert_eq!(a.series.len(), 2);
        assert_eq!(a.series[0].errors, 1);
    }
}
