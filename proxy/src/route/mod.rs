//! L7 routing for `protocol: http` listeners: virtual hosts matched on Host (exact, `*.suffix`,
//! `*`), routes matched on path (exact, prefix, regex), method and headers, and what a matched
//! route does (forward to a cluster, weighted split, or a direct response) with its per-route
//! policy (timeout, retries, header edits, host rewrite).
//!
//! INTERFACE CONTRACT (lead ↔ route helper): the types below are what the HTTP/1.1 proxy in
//! `crate::http1` consumes. The route helper implements `RouteTable::select`, config parsing
//! and tests; the types may gain fields but these names and meanings stay.

use std::time::Duration;

/// One listener's routing table (immutable; shared in the config snapshot).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub name: String,
    /// Lower-case patterns: `example.com`, `*.example.com`, `*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

/// What a request looks like to the matcher. Header names are compared case-insensitively.
pub trait RequestView {
    /// Host without port, as sent (`Host` header); empty if absent.
    fn host(&self) -> &[u8];
    fn method(&self) -> &[u8];
    /// Path (and query) as sent on the request line.
    fn path(&self) -> &[u8];
    /// The first value of header `name` (any case), if present.
    fn header(&self, name: &str) -> Option<&[u8]>;
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub action: Action,
    /// Whole-request timeout; `None` = no timeout (config `0`). Default 30s.
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
    pub request_headers_to_add: Vec<(String, String)>,
    /// Lower-case header names to remove before forwarding.
    pub request_headers_to_remove: Vec<String>,
    /// Replace the Host header sent upstream.
    pub host_rewrite: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// Index into `Config::clusters`.
    Cluster(usize),
    /// (cluster index, weight); weights sum to `total`, picked per request.
    Weighted {
        clusters: Vec<(usize, u32)>,
        total: u32,
    },
    Direct {
        status: u16,
        body: String,
    },
}

/// Envoy-style retry policy.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicy {
    /// `5xx`: any 5xx response. `gateway-error`: 502/503/504. `connect-failure`. `reset`:
    /// upstream reset/closed before a response. `retriable-status-codes`: the codes below.
    pub on_5xx: bool,
    pub on_gateway_error: bool,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub retriable_status_codes: Vec<u16>,
    /// Retries after the first try (default 1).
    pub num_retries: u32,
    /// Per attempt; `None` = only the route timeout applies.
    pub per_try_timeout: Option<Duration>,
    /// Retry non-idempotent requests (POST, PATCH...) even after bytes reached the upstream.
    pub retry_non_idempotent: bool,
}

impl RouteTable {
    /// The route for this request, or `None` (→ 404 `NR`). Hot path: no allocation.
    pub fn select(&self, req: &dyn RequestView) -> Option<&Route> {
        let _ = req;
        unimplemented!("route helper implements matching")
    }
}
