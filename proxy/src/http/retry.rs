//! Retry decisions, protocol-neutral: which outcomes a route's policy retries, whether the
//! request may be sent again at all (replayable body; idempotent, or the route allows it), and
//! the backoff between tries.

use std::time::Duration;

use super::failure::Failure;
use crate::route::RetryPolicy;

const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);
/// Retries of requests the upstream provably never processed, beyond the policy's budget.
pub const MAX_FREE_RETRIES: u32 = 3;

pub fn retries_enabled(p: &RetryPolicy) -> bool {
    p.num_retries > 0
        && (p.on_5xx
            || p.on_gateway_error
            || p.on_connect_failure
            || p.on_reset
            || p.grpc_codes != 0
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
        Failure::Reset | Failure::Stale | Failure::StaleAfterSend | Failure::Refused => {
            p.on_reset || p.on_5xx || p.on_gateway_error
        }
        Failure::Timeout | Failure::Protocol | Failure::TooManyHeaders => {
            p.on_5xx || p.on_gateway_error
        }
        Failure::NoHealthy | Failure::Overflow | Failure::Client => false,
    }
}

/// Whether a request that failed with `f` may be sent again, whatever the policy says:
/// the body must be replayable, and unless the upstream provably never acted on it (connect
/// failed, or the write to a dead pooled connection failed) the request must be idempotent or
/// the route must allow non-idempotent retries.
pub fn may_resend(f: Failure, replayable: bool, idempotent: bool, p: &RetryPolicy) -> bool {
    replayable
        && match f {
            Failure::Connect | Failure::Stale | Failure::Refused => true,
            _ => idempotent || p.retry_non_idempotent,
        }
}

/// What to do after a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Try again after this backoff.
    Retry(Duration),
    /// Stop: the outcome is final.
    Stop,
}

/// One request's retry state across tries, for every codec: the policy's budget, the free
/// retry after a dead pooled connection, and backoff between tries.
#[derive(Debug)]
pub struct Retrier<'a> {
    policy: &'a RetryPolicy,
    tries: u32,
    /// Tries made so far beyond the first (free retries are not counted).
    pub retries: u32,
    free_retries: u32,
    idempotent: bool,
    budget: Option<&'a crate::cluster::budget::RetryBudget>,
    breaker: Option<&'a crate::cluster::Breaker>,
    /// The `max_retries` slot the current retry holds.
    retry_slot: Option<crate::cluster::Admitted>,
}

impl<'a> Retrier<'a> {
    pub fn new(policy: &'a RetryPolicy, idempotent: bool) -> Retrier<'a> {
        let tries = if retries_enabled(policy) {
            1 + policy.num_retries
        } else {
            1
        };
        Retrier {
            policy,
            tries,
            retries: 0,
            free_retries: 0,
            idempotent,
            budget: None,
            breaker: None,
            retry_slot: None,
        }
    }

    /// Ties retries to the cluster: its retry budget (this request is counted, retries spend
    /// from it) and its `max_retries` breaker.
    pub fn with_cluster(mut self, b: &'a crate::cluster::Balancer) -> Retrier<'a> {
        if b.budget.enabled() {
            b.budget.deposit();
            self.budget = Some(&b.budget);
        }
        self.breaker = Some(&b.breaker);
        self
    }

    pub fn enabled(&self) -> bool {
        self.tries > 1
    }

    fn budget_left(&self) -> bool {
        self.retries + 1 < self.tries
    }

    fn spend(&mut self, random: u64) -> Step {
        // The previous retry's try is over: its slot goes back first.
        self.retry_slot = None;
        if let Some(b) = self.breaker {
            match b.admit_retry() {
                Some(slot) => self.retry_slot = Some(slot),
                None => return Step::Stop,
            }
        }
        if self.budget.is_some_and(|b| !b.withdraw()) {
            self.retry_slot = None;
            return Step::Stop;
        }
        self.retries += 1;
        Step::Retry(backoff(self.retries - 1, random))
    }

    /// After a response head with `status` (`replayable`: the request can be sent again).
    pub fn on_status(&mut self, status: u16, replayable: bool, random: u64) -> Step {
        if self.budget_left()
            && may_resend(Failure::Reset, replayable, self.idempotent, self.policy)
            && retry_on_status(self.policy, status)
        {
            self.spend(random)
        } else {
            Step::Stop
        }
    }

    /// After a trailers-only gRPC response with status `code`. The route asked for these
    /// gRPC conditions by name, and the server answered the call with that status, so the
    /// call is sent again whatever its method (gRPC calls are all POSTs), when replayable.
    pub fn on_grpc_status(&mut self, code: u32, replayable: bool, random: u64) -> Step {
        if self.budget_left()
            && replayable
            && code < 32
            && self.policy.grpc_codes & (1 << code) != 0
        {
            self.spend(random)
        } else {
            Step::Stop
        }
    }

    /// After a failed try. A dead pooled connection (or an HTTP/2 stream the upstream
    /// refused or excluded by GOAWAY) is not the upstream's answer: up to
    /// [`MAX_FREE_RETRIES`] free retries (no backoff), when the request may be sent again.
    pub fn on_failure(&mut self, f: Failure, replayable: bool, random: u64) -> Step {
        let p = self.policy;
        if matches!(f, Failure::Stale | Failure::StaleAfterSend)
            && self.free_retries < MAX_FREE_RETRIES
            && may_resend(f, replayable, self.idempotent, p)
        {
            self.free_retries += 1;
            return Step::Retry(Duration::ZERO);
        }
        if f == Failure::Refused
            && self.free_retries < MAX_FREE_RETRIES
            && may_resend(f, replayable, self.idempotent, p)
        {
            // The peer is at its stream limit or going away: give it a moment.
            self.free_retries += 1;
            return Step::Retry(backoff(self.free_retries, random));
        }
        if self.budget_left()
            && may_resend(f, replayable, self.idempotent, p)
            && retry_on_failure(p, f)
        {
            self.spend(random)
        } else {
            Step::Stop
        }
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
    fn retrier_spends_its_budget_after_the_free_stale_retries() {
        let p = RetryPolicy {
            on_5xx: true,
            num_retries: 1,
            ..RetryPolicy::default()
        };
        let mut r = Retrier::new(&p, true);
        assert!(r.enabled());
        for _ in 0..MAX_FREE_RETRIES {
            assert_eq!(
                r.on_failure(Failure::Stale, true, 7),
                Step::Retry(Duration::ZERO)
            );
        }
        assert_eq!(r.retries, 0, "free retries are not counted");
        // Then the policy's budget (5xx covers resets): one retry, then stop.
        assert!(matches!(
            r.on_failure(Failure::Stale, true, 7),
            Step::Retry(_)
        ));
        assert_eq!(r.on_status(503, true, 7), Step::Stop, "budget spent");
        assert_eq!(r.retries, 1);
        let none = RetryPolicy::default();
        let mut r = Retrier::new(&none, true);
        assert_eq!(r.on_failure(Failure::Connect, true, 1), Step::Stop);
    }

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
