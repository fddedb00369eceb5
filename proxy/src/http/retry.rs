//! Retry decisions, protocol-neutral: which outcomes a route's policy retries, whether the
//! request may be sent again at all (replayable body; idempotent, or the route allows it), and
//! the backoff between tries.

use std::time::Duration;

use super::failure::Failure;
use crate::route::RetryPolicy;

const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

pub fn retries_enabled(p: &RetryPolicy) -> bool {
    p.num_retries > 0
        && (p.on_5xx
            || p.on_gateway_error
            || p.on_connect_failure
            || p.on_reset
            || !p.retriable_status_codes.is_empty())
}

pub fn retry_on_status(p: &RetryPolicy, status: u16) -> bool {
    (p.on_5xx && (500..600).contains(&status))
        || (p.on_gateway_error && matches!(status, 502..=504))
        || p.retriable_status_codes.contains(&status)
}

pub fn retry_on_failure(p: &RetryPolicy, f: Failure) -> bool {
    match f {
        Failure::Connect => p.on_connect_failure || p.on_5xx || p.on_gateway_error,
        Failure::Reset | Failure::Stale | Failure::StaleAfterSend => {
            p.on_reset || p.on_5xx || p.on_gateway_error
        }
        Failure::Timeout | Failure::Protocol | Failure::TooManyHeaders => {
            p.on_5xx || p.on_gateway_error
        }
        Failure::NoHealthy | Failure::Client => false,
    }
}

/// Whether a request that failed with `f` may be sent again, whatever the policy says:
/// the body must be replayable, and unless the upstream provably never acted on it (connect
/// failed, or the write to a dead pooled connection failed) the request must be idempotent or
/// the route must allow non-idempotent retries.
pub fn may_resend(f: Failure, replayable: bool, idempotent: bool, p: &RetryPolicy) -> bool {
    replayable
        && match f {
            Failure::Connect | Failure::Stale => true,
            _ => idempotent || p.retry_non_idempotent,
        }
}

/// Full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)).
pub fn backoff(attempt: u32, random: u64) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(8))
        .min(BACKOFF_MAX);
    Duration::from_nanos(random % cap.as_nanos().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_is_resent_only_when_the_upstream_cannot_have_acted() {
        let p = RetryPolicy::default();
        assert!(may_resend(Failure::Stale, true, false, &p));
        assert!(may_resend(Failure::Connect, true, false, &p));
        assert!(!may_resend(Failure::StaleAfterSend, true, false, &p));
        assert!(may_resend(Failure::StaleAfterSend, true, true, &p));
        let allow = RetryPolicy {
            retry_non_idempotent: true,
            ..RetryPolicy::default()
        };
        assert!(may_resend(Failure::StaleAfterSend, true, false, &allow));
        assert!(!may_resend(Failure::Stale, false, true, &allow));
    }
}
