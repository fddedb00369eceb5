//! The per-request (or per-TCP-connection) record of facts every telemetry consumer reads:
//! metrics, access logs and tap. Each protocol fills one [`Record`] as the exchange runs and
//! hands it over at exactly one place — HTTP/1 at the end of `http1::exchange::handle`,
//! HTTP/2 at the end of `http2::stream::handle`, L4 at the end of `l4::serve` — so consumers
//! never learn a codec's internals.
//!
//! The record owns no heap memory and borrows nothing: string facts that belong to the
//! connection (peer identity, TLS) stay in its `ConnCtx`, and the upstream cluster is an index
//! into the config snapshot the request ran on, resolved to a name only by the consumer that
//! needs one (cold path). Filling it is plain stores; it is reset in place per request.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// What the request spoke downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    Http10,
    #[default]
    Http11,
    Http2,
    Tcp,
}

impl Protocol {
    /// Envoy's `%PROTOCOL%` (`None` for TCP, which renders `-`).
    pub fn envoy_name(self) -> Option<&'static str> {
        match self {
            Protocol::Http10 => Some("HTTP/1.0"),
            Protocol::Http11 => Some("HTTP/1.1"),
            Protocol::Http2 => Some("HTTP/2"),
            Protocol::Tcp => None,
        }
    }
}

/// Envoy's response flags as a bit set (a request can carry several, e.g. `URX,UF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u32);

/// Known flags, in the order Envoy prints them.
/// `EB` (egress blocked, [`crate::egress`]) is ours, after Envoy's.
const FLAG_CODES: [&str; 25] = [
    "UH", "UF", "UO", "NR", "URX", "UT", "UR", "UC", "LR", "DC", "DPE", "UPE", "RL", "UAEX", "DI",
    "FI", "SI", "RBAC", "UMSDR", "DF", "NC", "OM", "DT", "UDO", "EB",
];

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Upstream connect failure (the bit of `"UF"` in `FLAG_CODES`).
    pub const UF: Flags = Flags(1 << 1);
    /// Upstream request timeout (`"UT"`).
    pub const UT: Flags = Flags(1 << 5);

    /// The bit for one flag code; a code Envoy does not define maps to nothing.
    pub fn of(code: &str) -> Flags {
        FLAG_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(Flags::NONE, |i| Flags(1 << i))
    }

    pub fn add(&mut self, code: &str) {
        self.0 |= Flags::of(code).0;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Comma-separated codes (Envoy's `%RESPONSE_FLAGS%`); `-` when empty.
    pub fn write_to(self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        if self.is_empty() {
            return out.write_str("-");
        }
        let mut first = true;
        for (i, c) in FLAG_CODES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    out.write_char(',')?;
                }
                out.write_str(c)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write_to(f)
    }
}

/// The facts of one HTTP request or one TCP connection.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Index of the listener (in the config's `listeners`).
    pub listener: u16,
    pub protocol: Protocol,
    /// The request was gRPC (`content-type: application/grpc…`).
    pub grpc: bool,
    pub start: Instant,
    /// The status sent downstream; 0 when none was (client gone, or TCP).
    pub status: u16,
    /// The `grpc-status` sent downstream (trailers or trailers-only), when one was.
    pub grpc_status: Option<u8>,
    pub flags: Flags,
    /// Bytes read from / written to the downstream (HTTP: heads and bodies).
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Start → the request was read in full.
    pub request_done: Option<Duration>,
    /// Start → the upstream's response head arrived.
    pub upstream_first_byte: Option<Duration>,
    /// Start → the response was sent in full (set at hand-off if not before).
    pub duration: Duration,
    /// Index of the upstream cluster in the snapshot the request ran on.
    pub cluster: Option<u16>,
    pub upstream_host: Option<SocketAddr>,
    /// Tries beyond the first.
    pub retries: u32,
    /// The upstream connection could not be made (`%UPSTREAM_TRANSPORT_FAILURE_REASON%`).
    pub upstream_failure: Option<&'static str>,
    /// Why the connection ended, when the proxy ended it (`%CONNECTION_TERMINATION_DETAILS%`).
    pub termination: Option<&'static str>,
    /// The `x-request-id` the proxy generated (the client sent none), for logs.
    pub request_id: Option<[u8; 36]>,
    /// The trace headers sent upstream (this hop's span), when the request was forwarded.
    pub trace: Option<super::propagate::Outgoing>,
}

impl Record {
    /// A fresh record starting now.
    pub fn new(listener: usize, protocol: Protocol) -> Record {
        Record {
            listener: listener as u16,
            protocol,
            grpc: false,
            start: Instant::now(),
            status: 0,
            grpc_status: None,
            flags: Flags::NONE,
            bytes_received: 0,
            bytes_sent: 0,
            request_done: None,
            upstream_first_byte: None,
            duration: Duration::ZERO,
            cluster: None,
            upstream_host: None,
            retries: 0,
            upstream_failure: None,
            termination: None,
            request_id: None,
            trace: None,
        }
    }

    /// Clears the facts for the next request on the same connection, keeping the listener,
    /// protocol and start (the next request sets `start` when it begins): no clock is read.
    pub fn restart(&mut self) {
        *self = Record {
            status: 0,
            grpc_status: None,
            flags: Flags::NONE,
            bytes_received: 0,
            bytes_sent: 0,
            request_done: None,
            upstream_first_byte: None,
            duration: Duration::ZERO,
            cluster: None,
            upstream_host: None,
            retries: 0,
            upstream_failure: None,
            termination: None,
            request_id: None,
            trace: None,
            ..*self
        };
    }

    /// A response the proxy or the upstream sent: its status and (for local answers) flag.
    pub fn respond(&mut self, status: u16, flag: Option<&str>) {
        self.status = status;
        if let Some(f) = flag {
            self.flags.add(f);
        }
    }

    /// Marks the request as read in full (first call wins).
    pub fn request_complete(&mut self) {
        if self.request_done.is_none() {
            self.request_done = Some(self.start.elapsed());
        }
    }

    /// Marks the upstream response head's arrival.
    pub fn upstream_answered(&mut self) {
        self.upstream_first_byte = Some(self.start.elapsed());
    }

    /// Wall-clock start (`%START_TIME%`), derived from the monotonic start when asked (a
    /// consumer that prints it pays for the clock read; recording a request does not).
    pub fn start_wall(&self) -> SystemTime {
        SystemTime::now() - self.start.elapsed()
    }

    /// Fixes the duration at hand-off.
    pub fn finish(&mut self) {
        self.duration = self.start.elapsed();
    }

    /// Response class index: 0 for none, 1 for 1xx … 5 for 5xx.
    pub fn class(&self) -> usize {
        match self.status {
            100..=599 => (self.status / 100) as usize,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_in_envoy_order() {
        let mut f = Flags::NONE;
        assert_eq!(f.to_string(), "-");
        f.add("UF");
        f.add("URX");
        f.add("UH");
        assert_eq!(f.to_string(), "UH,UF,URX");
    }

    #[test]
    fn constants_match_their_codes() {
        assert_eq!(Flags::UF, Flags::of("UF"));
        assert_eq!(Flags::UT, Flags::of("UT"));
    }

    #[test]
    fn every_code_in_use_is_known() {
        for code in ["UH", "UO", "UF", "UR", "UT", "UPE", "DPE", "NR"] {
            assert!(!Flags::of(code).is_empty(), "{code}");
        }
    }

    #[test]
    fn class_of_status() {
        let mut r = Record::new(0, Protocol::Http11);
        assert_eq!(r.class(), 0);
        r.respond(503, Some("UF"));
        assert_eq!((r.class(), r.flags.to_string().as_str()), (5, "UF"));
    }
}
