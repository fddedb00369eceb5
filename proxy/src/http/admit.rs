//! Admission for one upstream HTTP attempt, shared by every codec: the cluster's circuit
//! breaker first (full → [`Failure::Overflow`], 503 `UO`), then a healthy endpoint (none →
//! [`Failure::NoHealthy`], 503 `UH`). The breaker slot is held by the returned [`InFlight`].

use std::cell::Cell;

use crate::cluster::{Balancer, InFlight};
use crate::config::Endpoint;
use crate::http::Failure;

/// Admits a try to `balancer`'s cluster and picks its endpoint: another than the previous
/// try's (`tried`, updated here) when another is available, so a retry goes elsewhere.
pub fn pick<'b>(
    balancer: &'b Balancer,
    tried: &Cell<Option<usize>>,
) -> Result<(usize, &'b Endpoint, InFlight), Failure> {
    let slot = balancer.breaker.admit().ok_or(Failure::Overflow)?;
    let (idx, ep, in_flight) = balancer
        .pick_avoiding(tried.get())
        .ok_or(Failure::NoHealthy)?;
    tried.set(Some(idx));
    Ok((idx, ep, in_flight.hold(slot)))
}
