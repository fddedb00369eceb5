//! Stage one, HTTP part: the YAML shape of virtual hosts, routes and cluster pools, exactly as
//! written (`deny_unknown_fields`). `http.rs` checks and converts it; the reference with an
//! example is in `crate::route`'s module doc.

use serde::Deserialize;

use super::scalar::Scalar;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    /// Exactly one of `cluster`, `weighted_clusters`, `direct_response`.
    pub cluster: Option<String>,
    pub weighted_clusters: Option<Vec<RawWeighted>>,
    pub direct_response: Option<RawDirect>,
    pub timeout: Option<Scalar>,
    pub retry_policy: Option<RawRetry>,
    #[serde(default)]
    pub request_headers_to_add: Vec<RawHeaderValue>,
    #[serde(default)]
    pub request_headers_to_remove: Vec<String>,
    pub host_rewrite: Option<String>,
    #[serde(default)]
    pub response_headers_to_add: Vec<RawHeaderValue>,
    #[serde(default)]
    pub response_headers_to_remove: Vec<String>,
    /// Fault injection (see `crate::route::fault`).
    pub fault: Option<super::fault::RawFault>,
    /// Traffic mirroring (see `crate::http1::mirror`).
    #[serde(default)]
    pub request_mirror_policies: Vec<RawMirror>,
}

/// One `request_mirror_policies` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub cluster: String,
    /// Share of the route's requests mirrored, in percent (`0`–`100`, fractions allowed;
    /// default 100).
    pub runtime_fraction: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Exactly one of `path`, `prefix`, `regex`.
    pub path: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<RawHeaderMatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderMatch {
    pub name: String,
    /// Exactly one of `exact`, `present`, `regex`.
    pub exact: Option<String>,
    pub present: Option<bool>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeighted {
    pub cluster: String,
    pub weight: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirect {
    pub status: u16,
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default)]
    pub retry_on: Vec<String>,
    pub num_retries: Option<u32>,
    pub per_try_timeout: Option<Scalar>,
    #[serde(default)]
    pub retriable_status_codes: Vec<u16>,
    #[serde(default)]
    pub retry_non_idempotent: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub max_idle_per_endpoint: Option<usize>,
    pub idle_timeout: Option<Scalar>,
    pub max_requests_per_connection: Option<u32>,
}
