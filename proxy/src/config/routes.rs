//! Stage two, routing part: raw virtual hosts and routes → a checked [`RouteTable`] (regexes
//! compiled, cluster names resolved to indexes, domains lower-cased and unique per listener).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::raw_http::{RawDirect, RawHeaderMatch, RawMatch, RawRetry, RawRoute, RawVirtualHost};
use super::scalar::duration_field;
use super::{Cluster, ClusterKind, ConfigError};
use crate::route::{
    anchored_regex, Action, FilterChain, HeaderMatch, HeaderValueMatch, PathMatch, RequestFilter,
    ResponseFilter, RetryPolicy, Route, RouteMatch, RouteTable, VirtualHost,
};

const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers a route may not add or remove: framing and connection management belong to the
/// codec, the Host header to `host_rewrite`.
const RESERVED_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// Builds the table of listener `at` (`listeners[i]`).
pub(super) fn build_table(
    at: &str,
    raw: &[RawVirtualHost],
    clusters: &[Arc<Cluster>],
) -> Result<RouteTable, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.virtual_hosts"),
            "at least one virtual host is required",
        ));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut domains: HashMap<String, &str> = HashMap::new();
    let mut vhosts = Vec::with_capacity(raw.len());
    for (j, v) in raw.iter().enumerate() {
        let at = format!("{at}.virtual_hosts[{j}]");
        if v.name.is_empty() {
            return Err(ConfigError::new(format!("{at}.name"), "must not be empty"));
        }
        if names.insert(&v.name, j).is_some() {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("duplicate virtual host name {:?}", v.name),
            ));
        }
        if v.domains.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.domains"),
                "at least one domain is required (`*` matches any host)",
            ));
        }
        let mut lower = Vec::with_capacity(v.domains.len());
        for (k, d) in v.domains.iter().enumerate() {
            let path = format!("{at}.domains[{k}]");
            let d = check_domain(&path, d)?;
            if let Some(other) = domains.insert(d.clone(), &v.name) {
                return Err(ConfigError::new(
                    path,
                    format!("duplicate domain {d:?} (already in virtual host {other:?})"),
                ));
            }
            lower.push(d);
        }
        if v.routes.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.routes"),
                "at least one route is required",
            ));
        }
        let routes = v
            .routes
            .iter()
            .enumerate()
            .map(|(k, r)| build_route(&format!("{at}.routes[{k}]"), &v.name, k, r, clusters))
            .collect::<Result<Vec<_>, _>>()?;
        vhosts.push(VirtualHost {
            name: v.name.clone(),
            domains: lower,
            routes,
        });
    }
    Ok(RouteTable::new(vhosts))
}

/// `*`, `*.suffix` or an exact name (an IPv6 literal in brackets allowed); no port. Lower-cased.
fn check_domain(path: &str, d: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::new(path, format!("invalid domain {d:?}: {why}"));
    let lower = d.to_ascii_lowercase();
    if lower == "*" {
        return Ok(lower);
    }
    let name = match lower.strip_prefix("*.") {
        Some(rest) => rest,
        None if lower.starts_with('*') => return Err(bad("a wildcard must be `*` or `*.suffix`")),
        None => &lower,
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.contains('*') {
        return Err(bad("`*` is only allowed as a leading `*.`"));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) || name.contains('/') {
        return Err(bad("not a host name"));
    }
    let ipv6 = name.starts_with('[') && name.ends_with(']');
    if name.contains(':') && !ipv6 {
        return Err(bad(
            "no port here (the request's port is ignored when matching)",
        ));
    }
    Ok(lower)
}

fn build_route(
    at: &str,
    vhost: &str,
    index: usize,
    raw: &RawRoute,
    clusters: &[Arc<Cluster>],
) -> Result<Route, ConfigError> {
    let timeout = duration_field(format!("{at}.timeout"), &raw.timeout, DEFAULT_ROUTE_TIMEOUT)?;
    let filters = build_filters(at, raw)?;
    Ok(Route {
        name: raw
            .name
            .clone()
            .unwrap_or_else(|| format!("{vhost}/{index}")),
        matcher: build_match(&format!("{at}.match"), &raw.matcher)?,
        action: build_action(at, raw, clusters)?,
        timeout: (!timeout.is_zero()).then_some(timeout),
        retry: match &raw.retry_policy {
            Some(r) => build_retry(&format!("{at}.retry_policy"), r)?,
            None => RetryPolicy {
                num_retries: 1,
                ..Default::default()
            },
        },
        filters,
        mirrors: build_mirrors(at, raw, clusters)?,
    })
}

fn build_mirrors(
    at: &str,
    raw: &RawRoute,
    clusters: &[Arc<Cluster>],
) -> Result<Box<[crate::route::Mirror]>, ConfigError> {
    let mut out = Vec::with_capacity(raw.request_mirror_policies.len());
    for (k, m) in raw.request_mirror_policies.iter().enumerate() {
        let at = format!("{at}.request_mirror_policies[{k}]");
        let cluster = cluster_ref(format!("{at}.cluster"), &m.cluster, clusters)?;
        if clusters[cluster].protocol != super::UpstreamProtocol::Http1 {
            return Err(ConfigError::new(
                format!("{at}.cluster"),
                format!(
                    "cluster {:?} is not protocol: http1 (mirroring sends HTTP/1.1)",
                    m.cluster
                ),
            ));
        }
        let pct = m.runtime_fraction.unwrap_or(100.0);
        if !(0.0..=100.0).contains(&pct) {
            return Err(ConfigError::new(
                format!("{at}.runtime_fraction"),
                format!("{pct} is not a percentage (0 to 100)"),
            ));
        }
        out.push(crate::route::Mirror {
            cluster,
            per_million: (pct * 10_000.0).round() as u32,
        });
    }
    Ok(out.into())
}

/// Header values may not break a head.
fn check_value(path: String, v: &str) -> Result<(), ConfigError> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ConfigError::new(
            path,
            "a header value may not contain CR, LF or NUL",
        ));
    }
    Ok(())
}

/// Compiles a route's header edits into its filter chain: removals, then the host rewrite,
/// then additions, for each side.
fn build_filters(at: &str, raw: &RawRoute) -> Result<FilterChain, ConfigError> {
    let mut request = Vec::new();
    for (k, n) in raw.request_headers_to_remove.iter().enumerate() {
        let name = check_header_name(&format!("{at}.request_headers_to_remove[{k}]"), n, true)?;
        request.push(RequestFilter::RemoveHeader(name.into()));
    }
    if let Some(h) = &raw.host_rewrite {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()) || h.contains('/') {
            return Err(ConfigError::new(
                format!("{at}.host_rewrite"),
                format!("invalid host {h:?}"),
            ));
        }
        request.push(RequestFilter::SetHost(h.as_str().into()));
    }
    for (k, h) in raw.request_headers_to_add.iter().enumerate() {
        let path = format!("{at}.request_headers_to_add[{k}]");
        let name = check_header_name(&format!("{path}.name"), &h.name, true)?;
        check_value(format!("{path}.value"), &h.value)?;
        request.push(RequestFilter::AddHeader(
            name.into(),
            h.value.as_str().into(),
        ));
    }
    if let Some(f) = &raw.fault {
        let fault = super::fault::build_fault(&format!("{at}.fault"), f)?;
        request.push(RequestFilter::Fault(Box::new(fault)));
    }
    let mut response = Vec::new();
    for (k, n) in raw.response_headers_to_remove.iter().enumerate() {
        let name = check_header_name(&format!("{at}.response_headers_to_remove[{k}]"), n, true)?;
        response.push(ResponseFilter::RemoveHeader(name.into()));
    }
    for (k, h) in raw.response_headers_to_add.iter().enumerate() {
        let path = format!("{at}.response_headers_to_add[{k}]");
        let name = check_header_name(&format!("{path}.name"), &h.name, true)?;
        check_value(format!("{path}.value"), &h.value)?;
        response.push(ResponseFilter::AddHeader(
            name.into(),
            h.value.as_str().into(),
        ));
    }
    Ok(FilterChain {
        request: request.into(),
        response: response.into(),
    })
}

/// An RFC 9110 token, returned lower-case.
fn check_header_name(path: &str, n: &str, edit: bool) -> Result<String, ConfigError> {
    const SPECIAL: &[u8] = b"!#$%&'*+-.^_`|~";
    if n.is_empty()
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || SPECIAL.contains(&b))
    {
        return Err(ConfigError::new(path, format!("invalid header name {n:?}")));
    }
    let lower = n.to_ascii_lowercase();
    if edit && RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(ConfigError::new(
            path,
            format!("header {lower:?} cannot be edited here (host: use host_rewrite)"),
        ));
    }
    Ok(lower)
}

fn regex(path: String, re: &str) -> Result<regex::bytes::Regex, ConfigError> {
    anchored_regex(re).map_err(|e| {
        // A syntax error is several lines (pattern, caret, "error: ..."); keep the last.
        let text = e.to_string();
        let last = text.lines().last().unwrap_or_default().trim();
        let why = last.strip_prefix("error: ").unwrap_or(last);
        ConfigError::new(path, format!("invalid regex {re:?}: {why}"))
    })
}

fn build_match(at: &str, raw: &RawMatch) -> Result<RouteMatch, ConfigError> {
    let path = match (&raw.path, &raw.prefix, &raw.regex) {
        (Some(p), None, None) => PathMatch::Exact(p.clone()),
        (None, Some(p), None) => PathMatch::Prefix(p.clone()),
        (None, None, Some(r)) => PathMatch::Regex(regex(format!("{at}.regex"), r)?),
        _ => {
            return Err(ConfigError::new(
                at,
                "exactly one of path, prefix or regex is required",
            ))
        }
    };
    if let PathMatch::Exact(p) | PathMatch::Prefix(p) = &path {
        let f = if raw.path.is_some() { "path" } else { "prefix" };
        if !p.starts_with('/') {
            return Err(ConfigError::new(
                format!("{at}.{f}"),
                format!("must start with `/`, got {p:?}"),
            ));
        }
        if p.contains(['?', '#']) {
            return Err(ConfigError::new(
                format!("{at}.{f}"),
                "the query string is not matched; leave out `?...`",
            ));
        }
    }
    let methods = raw
        .methods
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let p = format!("{at}.methods[{k}]");
            check_header_name(&p, m, false)
                .map_err(|_| ConfigError::new(p, format!("invalid method {m:?}")))
                .map(|_| m.to_ascii_uppercase())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let headers = raw
        .headers
        .iter()
        .enumerate()
        .map(|(k, h)| build_header_match(&format!("{at}.headers[{k}]"), h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouteMatch {
        path,
        methods,
        headers,
    })
}

fn build_header_match(at: &str, raw: &RawHeaderMatch) -> Result<HeaderMatch, ConfigError> {
    let name = check_header_name(&format!("{at}.name"), &raw.name, false)?;
    let value = match (&raw.exact, raw.present, &raw.regex) {
        (Some(e), None, None) => HeaderValueMatch::Exact(e.clone()),
        (None, Some(p), None) => HeaderValueMatch::Present(p),
        (None, None, Some(r)) => HeaderValueMatch::Regex(regex(format!("{at}.regex"), r)?),
        _ => {
            return Err(ConfigError::new(
                at,
                "exactly one of exact, present or regex is required",
            ))
        }
    };
    Ok(HeaderMatch { name, value })
}

fn cluster_ref(path: String, name: &str, clusters: &[Arc<Cluster>]) -> Result<usize, ConfigError> {
    let i = clusters
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| ConfigError::new(path.clone(), format!("unknown cluster {name:?}")))?;
    if matches!(clusters[i].kind, ClusterKind::OriginalDst { .. }) {
        return Err(ConfigError::new(
            path,
            format!("cluster {name:?} is original_dst, which http routes cannot use"),
        ));
    }
    Ok(i)
}

fn build_action(
    at: &str,
    raw: &RawRoute,
    clusters: &[Arc<Cluster>],
) -> Result<Action, ConfigError> {
    match (&raw.cluster, &raw.weighted_clusters, &raw.direct_response) {
        (Some(c), None, None) => Ok(Action::Cluster(cluster_ref(
            format!("{at}.cluster"),
            c,
            clusters,
        )?)),
        (None, Some(w), None) => {
            let at = format!("{at}.weighted_clusters");
            if w.is_empty() {
                return Err(ConfigError::new(at, "at least one cluster is required"));
            }
            let mut total: u64 = 0;
            let mut list = Vec::with_capacity(w.len());
            for (k, wc) in w.iter().enumerate() {
                let i = cluster_ref(format!("{at}[{k}].cluster"), &wc.cluster, clusters)?;
                total += u64::from(wc.weight);
                list.push((i, wc.weight));
            }
            let total = u32::try_from(total).map_err(|_| {
                ConfigError::new(
                    at.clone(),
                    format!("total weight {total} exceeds {}", u32::MAX),
                )
            })?;
            if total == 0 {
                return Err(ConfigError::new(at, "total weight must be above 0"));
            }
            Ok(Action::Weighted {
                clusters: list,
                total,
            })
        }
        (None, None, Some(d)) => build_direct(&format!("{at}.direct_response"), d),
        _ => Err(ConfigError::new(
            at,
            "exactly one of cluster, weighted_clusters or direct_response is required",
        )),
    }
}

fn build_direct(at: &str, raw: &RawDirect) -> Result<Action, ConfigError> {
    if !(200..=599).contains(&raw.status) {
        return Err(ConfigError::new(
            format!("{at}.status"),
            format!("invalid status {} (expected 200-599)", raw.status),
        ));
    }
    if matches!(raw.status, 204 | 304) && !raw.body.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.body"),
            format!("a {} response has no body", raw.status),
        ));
    }
    Ok(Action::Direct {
        status: raw.status,
        body: raw.body.clone(),
    })
}

fn build_retry(at: &str, raw: &RawRetry) -> Result<RetryPolicy, ConfigError> {
    let mut p = RetryPolicy {
        num_retries: raw.num_retries.unwrap_or(1),
        retry_non_idempotent: raw.retry_non_idempotent,
        ..Default::default()
    };
    let mut on_codes = false;
    for (k, on) in raw.retry_on.iter().enumerate() {
        match on.as_str() {
            "5xx" => p.on_5xx = true,
            "gateway-error" => p.on_gateway_error = true,
            "connect-failure" => p.on_connect_failure = true,
            "reset" => p.on_reset = true,
            "retriable-status-codes" => on_codes = true,
            "cancelled" => p.grpc_codes |= 1 << 1,
            "deadline-exceeded" => p.grpc_codes |= 1 << 4,
            "resource-exhausted" => p.grpc_codes |= 1 << 8,
            "unavailable" => p.grpc_codes |= 1 << 14,
            o => {
                return Err(ConfigError::new(
                    format!("{at}.retry_on[{k}]"),
                    format!("unknown condition {o:?} (expected 5xx, gateway-error, connect-failure, reset, retriable-status-codes, cancelled, deadline-exceeded, resource-exhausted or unavailable)"),
                ))
            }
        }
    }
    for (k, &c) in raw.retriable_status_codes.iter().enumerate() {
        if !(100..=599).contains(&c) {
            return Err(ConfigError::new(
                format!("{at}.retriable_status_codes[{k}]"),
                format!("invalid status {c}"),
            ));
        }
    }
    match (on_codes, raw.retriable_status_codes.is_empty()) {
        (true, true) => {
            return Err(ConfigError::new(
                format!("{at}.retriable_status_codes"),
                "retry_on has retriable-status-codes but no codes are listed",
            ))
        }
        (false, false) => {
            return Err(ConfigError::new(
                format!("{at}.retriable_status_codes"),
                "has no effect unless retry_on includes retriable-status-codes",
            ))
        }
        _ => p.retriable_status_codes = raw.retriable_status_codes.clone(),
    }
    let per_try = duration_field(
        format!("{at}.per_try_timeout"),
        &raw.per_try_timeout,
        Duration::ZERO,
    )?;
    p.per_try_timeout = (!per_try.is_zero()).then_some(per_try);
    Ok(p)
}
