//! Fault injection, one of a route's request filters (Envoy's `envoy.filters.http.fault`): a fixed
//! delay for a share of requests, an abort with a status for a share (a gRPC status for gRPC
//! requests), and, only when the route asks for it, the same faults chosen per request by
//! headers (`x-envoy-fault-delay-request`, `x-envoy-fault-abort-request`, …).
//!
//! [`Fault::decide`] is synchronous and protocol-neutral — it reads the request through
//! [`RequestView`] and takes its randomness from the caller — so HTTP/1 and HTTP/2 decide in the
//! same place and apply the [`Decision`] with [`crate::http::fault`]. Shares are kept in parts
//! per million (`percentage: 12.5` → 125 000), compared against one uniform draw per fault.
//!
//! ```yaml
//! routes:
//!   - match: {prefix: "/"}
//!     cluster: app
//!     fault:
//!       delay: {fixed_delay: 200ms, percentage: 10}   # 10% of requests wait 200 ms first
//!       abort: {http_status: 503, percentage: 5}      # 5% answered 503 (flag FI), not forwarded
//!       # abort: {grpc_status: 14, percentage: 5}     # gRPC requests get this grpc-status
//!       header_control: false                         # default; true honours x-envoy-fault-*
//! ```

use std::time::Duration;

use super::RequestView;

/// Parts per million of requests.
pub const MILLION: u32 = 1_000_000;

/// Header naming an abort status (header control only).
pub const H_ABORT: &str = "x-envoy-fault-abort-request";
/// Header naming a gRPC abort status (header control only).
pub const H_ABORT_GRPC: &str = "x-envoy-fault-abort-grpc-request";
/// Header overriding the abort share in percent (header control only; capped at the config's).
pub const H_ABORT_PCT: &str = "x-envoy-fault-abort-request-percentage";
/// Header naming a delay in milliseconds (header control only).
pub const H_DELAY: &str = "x-envoy-fault-delay-request";
/// Header overriding the delay share in percent (header control only; capped at the config's).
pub const H_DELAY_PCT: &str = "x-envoy-fault-delay-request-percentage";

/// A route's fault filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
    /// Let `x-envoy-fault-*` request headers choose the delay and abort (off by default: any
    /// client could otherwise slow or fail the service).
    pub header_control: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub fixed: Duration,
    pub per_million: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    /// The HTTP status (also what a gRPC request gets mapped from when `grpc_status` is unset).
    pub http_status: u16,
    /// The gRPC status a gRPC request is answered with.
    pub grpc_status: Option<u32>,
    pub per_million: u32,
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decision {
    pub delay: Option<Duration>,
    /// HTTP status and, if set, the gRPC status.
    pub abort: Option<(u16, Option<u32>)>,
}

impl Decision {
    pub fn is_none(&self) -> bool {
        self.delay.is_none() && self.abort.is_none()
    }
}

/// Whether a draw in `[0, 1e6)` falls within the share.
fn hit(per_million: u32, draw: u32) -> bool {
    draw < per_million
}

fn header_num<T: std::str::FromStr>(req: &dyn RequestView, name: &str) -> Option<T> {
    std::str::from_utf8(req.header(name)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A header's percentage in parts per million, never above the configured share.
fn header_share(req: &dyn RequestView, name: &str, configured: u32) -> u32 {
    match header_num::<u32>(req, name) {
        Some(p) => p.saturating_mul(MILLION / 100).min(configured),
        None => configured,
    }
}

impl Fault {
    /// Decides this request's faults; `random` is one uniform 64-bit draw (two 32-bit halves
    /// are used, one per fault, so delay and abort are independent).
    pub fn decide(&self, req: &dyn RequestView, random: u64) -> Decision {
        let delay_draw = ((random & 0xFFFF_FFFF) % u64::from(MILLION)) as u32;
        let abort_draw = ((random >> 32) % u64::from(MILLION)) as u32;
        let mut d = Decision::default();
        if let Some(delay) = &self.delay {
            let mut fixed = delay.fixed;
            let mut share = delay.per_million;
            if self.header_control {
                if let Some(ms) = header_num::<u64>(req, H_DELAY) {
                    fixed = Duration::from_millis(ms);
                }
                share = header_share(req, H_DELAY_PCT, share);
            }
            if hit(share, delay_draw) && !fixed.is_zero() {
                d.delay = Some(fixed);
            }
        }
        if let Some(abort) = &self.abort {
            let (mut status, mut grpc) = (abort.http_status, abort.grpc_status);
            let mut share = abort.per_million;
            if self.header_control {
                if let Some(s) = header_num::<u16>(req, H_ABORT).filter(|s| (200..600).contains(s))
                {
                    status = s;
                }
                if let Some(g) = header_num::<u32>(req, H_ABORT_GRPC).filter(|g| *g < 17) {
                    grpc = Some(g);
                }
                share = header_share(req, H_ABORT_PCT, share);
            }
            if hit(share, abort_draw) {
                d.abort = Some((status, grpc));
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req(Vec<(&'static str, &'static str)>);
    impl RequestView for Req {
        fn host(&self) -> &[u8] {
            b"h"
        }
        fn method(&self) -> &[u8] {
            b"GET"
        }
        fn path(&self) -> &[u8] {
            b"/"
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        }
    }

    fn fault(header_control: bool) -> Fault {
        Fault {
            delay: Some(Delay {
                fixed: Duration::from_millis(5),
                per_million: 500_000,
            }),
            abort: Some(Abort {
                http_status: 503,
                grpc_status: None,
                per_million: 250_000,
            }),
            header_control,
        }
    }

    #[test]
    fn shares_follow_the_draw() {
        let f = fault(false);
        let none = Req(vec![]);
        // Low halves decide the delay, high halves the abort.
        let d = f.decide(&none, 499_999);
        assert_eq!(d.delay, Some(Duration::from_millis(5)));
        assert_eq!(d.abort, Some((503, None)), "high half 0 is within 25%");
        let d = f.decide(&none, 500_000 | (250_000u64 << 32));
        assert_eq!(d, Decision::default());
    }

    #[test]
    fn headers_count_only_with_header_control_and_never_raise_the_share() {
        let req = Req(vec![
            (H_ABORT, "418"),
            (H_ABORT_PCT, "100"),
            (H_DELAY, "7"),
            (H_DELAY_PCT, "0"),
        ]);
        let draw = 0u64; // within any non-zero share
        assert_eq!(
            fault(false).decide(&req, draw),
            Decision {
                delay: Some(Duration::from_millis(5)),
                abort: Some((503, None))
            }
        );
        let d = fault(true).decide(&req, draw);
        assert_eq!(d.abort, Some((418, None)));
        assert_eq!(d.delay, None, "0% from the header");
        // 100% from the header is capped at the configured 25%.
        let d = fault(true).decide(&req, 300_000u64 << 32);
        assert_eq!(d.abort, None);
    }
}
