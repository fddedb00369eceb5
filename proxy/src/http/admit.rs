//! Admission for one upstream HTTP attempt, shared by every codec: the cluster's circuit
//! breaker first (full → [`Failure::Overflow`], 503 `UO`), then a healthy endpoint (none →
//! [`Failure::NoHealthy`], 503 `UH`). The breaker slot is held by the returned [`InFlight`].

use crate::cluster::{Balancer, InFlight};
use crate::config::Endpoint;
use crate::http::Failure;

/// Admits a request to `balancer`'s cluster and picks its endpoint.
pub fn pick(balancer: &Balancer) -> Result<(usize, &Endpoint, InFlight), Failure> {
    let slot = balancer.breaker.admit().ok_or(Failure::Overflow)?;
    let (idx, ep, in_flight) = balancer.pick_healthy().ok_or(Failure::NoHealthy)?;
    Ok((idx, ep, in_flight.hold(slot)))
}
