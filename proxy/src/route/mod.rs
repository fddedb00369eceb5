//! L7 routing for `protocol: http` listeners: virtual hosts matched on Host (exact, `*.suffix`,
//! `*`), routes matched on path (exact, prefix, regex), method and headers, and what a matched
//! route does (forward to a cluster, weighted split, or a direct response) with its per-route
//! policy (timeout, retries, header edits, host rewrite).
//!
//! The types below are protocol-neutral: HTTP/1.1 selects with them today and HTTP/2 will
//! use them unchanged. A route's header edits and other per-route behaviour are its compiled
//! [`filter::FilterChain`].
//!
//! # Selection
//! 1. Virtual host by `Host` (case-insensitive, `:port` and a trailing `.` ignored): an exact
//!    domain first, then the longest matching `*.suffix` (`*.example.com` matches
//!    `a.example.com` and `a.b.example.com`, not `example.com`), then `*`.
//! 2. Within that virtual host only, the first route (config order) whose `match` holds: path
//!    condition (query string excluded), methods (any listed; none listed = any), and every
//!    header condition. No route → `None` (404 `NR`); there is no fall-through to another host.
//!
//! `select` does not allocate (`host::HostIndex` lower-cases into a stack buffer; regexes are
//! compiled at load).
//!
//! # Config (`protocol: http` listener)
//! ```yaml
//! listeners:
//!   - name: web
//!     address: 127.0.0.1:8000
//!     protocol: http
//!     request_headers_timeout: 10s     # optional; whole request head must arrive in this → 408
//!     max_request_headers_size: 60KiB  # optional; bytes as an integer, or "<n>KiB" / "<n>MiB" → 431
//!     max_request_headers: 100         # optional; header count → 431
//!     max_request_line_size: 8KiB      # optional; → 414
//!     retry_buffer_size: 64KiB         # optional; largest body kept so a request can be retried
//!     normalize_path: false            # optional; dot segments, unreserved %XX (normalize::normalize)
//!     merge_slashes: false             # optional; `//` → `/`
//!     path_with_escaped_slashes: keep_unchanged  # optional; %2F %5C: reject_request (default) |
//!                                      # unescape_and_forward | keep_unchanged; acts only with
//!                                      # normalize_path or merge_slashes (the first two without
//!                                      # either are an error)
//!     virtual_hosts:                   # required on http listeners (and only there)
//!       - name: api
//!         domains: ["api.example.com", "*.example.com", "*"]  # lower-cased; no ports; unique per listener
//!         routes:                      # first match wins
//!           - name: canary             # optional; default "<vhost>/<index>"
//!             match:
//!               prefix: "/"            # exactly one of: path (exact) | prefix | regex (full match)
//!               methods: [GET, POST]   # optional; any of these
//!               headers:               # optional; all must hold; exactly one of exact | present | regex
//!                 - {name: x-canary, exact: "1"}
//!                 - {name: x-debug, present: true}   # present: false = header must be absent
//!                 - {name: user-agent, regex: "curl.*"}
//!             # exactly one of cluster | weighted_clusters | direct_response:
//!             weighted_clusters: [{cluster: a, weight: 90}, {cluster: b, weight: 10}]
//!             timeout: 30s             # default 30s; 0 = none
//!             retry_policy:            # optional; default: no retries
//!               retry_on: [5xx, gateway-error, connect-failure, reset, retriable-status-codes]
//!               num_retries: 1                # default 1
//!               per_try_timeout: 1s           # default none (0 = none)
//!               retriable_status_codes: [503] # only with retry_on: retriable-status-codes
//!               retry_non_idempotent: false   # default false
//!             request_headers_to_add: [{name: x-env, value: prod}]
//!             request_headers_to_remove: [x-internal]
//!             host_rewrite: backend.internal
//!             response_headers_to_add: [{name: x-served-by, value: shardcar}]
//!             response_headers_to_remove: [server]
//!           - match: {path: /healthz}
//!             direct_response: {status: 200, body: "ok\n"}  # body optional
//!           - match: {regex: "/v[0-9]+/.*"}
//!             cluster: a
//! clusters:
//!   - name: a
//!     endpoints: ["127.0.0.1:8080"]
//!     pool: {max_idle_per_endpoint: 64, idle_timeout: 60s, max_requests_per_connection: 1000}
//!   - name: b
//!     endpoints: ["127.0.0.1:8081"]  # pool optional: 64 idle, 60s, unlimited requests
//! ```
//! Durations are strings with a unit (`250ms`, `30s`); a bare `0` is accepted where `0` means
//! none. `cluster` and `l4_mode` belong to `tcp` listeners only; an http listener's routes may
//! not name an `original_dst` cluster. Header names in `headers_to_add`/`_remove` may not be
//! `host` (use `host_rewrite`), `content-length`, `transfer-encoding` or `connection`.

use std::time::Duration;

pub mod fault;
pub mod filter;
mod host;
mod matcher;
pub mod normalize;

pub use filter::{FilterChain, RequestFilter, ResponseFilter, Verdict};
pub use host::strip_port;
pub use matcher::{anchored_regex, path_of, HeaderMatch, HeaderValueMatch, PathMatch, RouteMatch};

/// One listener's routing table (immutable; shared in the config snapshot). Build it with
/// [`RouteTable::new`], which indexes the domains.
///
/// Give each shard its own `clone()` of the table: a cloned regex gets its own match-cache pool
/// whose owner is the first thread to use it, so every shard then matches on the lock-free owner
/// path. One table shared by several shards still works, but regex matches on non-owner threads
/// go through the regex crate's sharded cache stacks (a short lock each).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    pub virtual_hosts: Vec<VirtualHost>,
    hosts: host::HostIndex,
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
    /// The `Host` header value as sent (a `:port` is ignored by the matcher); empty if absent.
    /// For an absolute-form target (`GET http://h/p`), RFC 9112 §3.2.2 says the target's
    /// authority is the host.
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
    /// When this route applies.
    pub matcher: RouteMatch,
    pub action: Action,
    /// Whole-request timeout; `None` = no timeout (config `0`). Default 30s.
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
    /// Header edits (and later authz, faults, mirroring) compiled from the route's config.
    pub filters: FilterChain,
    /// `request_mirror_policies`: shadow copies of a share of the requests.
    pub mirrors: Box<[Mirror]>,
}

/// One mirror policy: copy `per_million` of the route's requests to cluster `cluster`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirror {
    /// Index into `Config::clusters`.
    pub cluster: usize,
    pub per_million: u32,
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
    /// gRPC statuses in a trailers-only response that are retried, a bit per code (1 <<
    /// code): `cancelled` (1), `deadline-exceeded` (4), `resource-exhausted` (8),
    /// `unavailable` (14), as Envoy's `retry_on` gRPC conditions.
    pub grpc_codes: u32,
    /// Retries after the first try (default 1).
    pub num_retries: u32,
    /// Per attempt; `None` = only the route timeout applies.
    pub per_try_timeout: Option<Duration>,
    /// Retry non-idempotent requests (POST, PATCH...) even after bytes reached the upstream.
    pub retry_non_idempotent: bool,
}

impl RouteTable {
    /// Indexes the virtual hosts' domains (lower-case patterns, validated by config loading).
    pub fn new(virtual_hosts: Vec<VirtualHost>) -> RouteTable {
        let hosts = host::HostIndex::build(virtual_hosts.iter().map(|v| v.domains.as_slice()));
        RouteTable {
            virtual_hosts,
            hosts,
        }
    }

    /// The virtual host for a raw Host value (any case, optional `:port`).
    pub fn virtual_host(&self, host: &[u8]) -> Option<&VirtualHost> {
        self.hosts.lookup(host).map(|i| &self.virtual_hosts[i])
    }

    /// The route for this request, or `None` (→ 404 `NR`). Hot path: no allocation.
    pub fn select(&self, req: &dyn RequestView) -> Option<&Route> {
        let vhost = self.virtual_host(req.host())?;
        let path = path_of(req.path());
        vhost.routes.iter().find(|r| r.matcher.matches(path, req))
    }
}

impl Action {
    /// For `Weighted`: the cluster index for `r` in `[0, total)` (larger `r` is reduced modulo
    /// `total`), each cluster owning a contiguous range of its weight. `Cluster(c)` gives `c`.
    /// The caller supplies the randomness. `Direct` has no cluster: `None`.
    pub fn pick_weighted(&self, r: u32) -> Option<usize> {
        Some(match self {
            Action::Cluster(c) => *c,
            Action::Weighted { clusters, total } => {
                let mut r = r % (*total).max(1);
                for (c, w) in clusters {
                    if r < *w {
                        return Some(*c);
                    }
                    r -= w;
                }
                // Unreachable when weights sum to `total` (config guarantees it).
                clusters.last()?.0
            }
            Action::Direct { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests;
