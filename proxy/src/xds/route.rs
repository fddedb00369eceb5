//! `RouteConfiguration` (RDS, or inline in an HTTP connection manager) → `virtual_hosts`.
//!
//! Mapped: virtual host `name`, `domains`, `routes`; route `name`, `match` (`prefix`, `path`,
//! `safe_regex`, `headers` with `exact_match` / `present_match` / `string_match.exact` /
//! `safe_regex_match`), `route` (`cluster`, `weighted_clusters`, `timeout`, `retry_policy`
//! with `retry_on` / `num_retries` / `per_try_timeout` / `retriable_status_codes`,
//! `host_rewrite_literal`), `direct_response` (`status`, inline `body`), and the four header
//! edit lists (`request_headers_to_add` / `_remove`, `response_headers_to_add` / `_remove`).
//! Ignored labels: `metadata`, `decorator`, `validate_clusters`. Anything else → NACK.

// Deprecated fields are still what many control planes send; they are mapped, not refused.
#![allow(deprecated)]

use envoy_types::pb::envoy::config::core::v3::{data_source, HeaderValueOption};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, HeaderMatcher, Route, RouteConfiguration,
    VirtualHost,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use serde_json::{json, Map, Value};

use super::check::{done, duration, nack, Unsupported};

/// A translated route configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct XRoute {
    pub name: String,
    pub vhosts: Value,
    /// Every cluster its routes name (a listener using it waits until all exist).
    pub clusters: Vec<String>,
}

pub fn translate(mut rc: RouteConfiguration) -> Result<XRoute, Unsupported> {
    let name = std::mem::take(&mut rc.name);
    let who = format!("RouteConfiguration {name:?}");
    let mut clusters = Vec::new();
    let vhosts = std::mem::take(&mut rc.virtual_hosts)
        .into_iter()
        .enumerate()
        .map(|(i, v)| vhost(&who, &format!("virtual_hosts[{i}]."), v, &mut clusters))
        .collect::<Result<Vec<_>, _>>()?;
    rc.validate_clusters = None;
    rc.metadata = None;
    done(&who, "", &rc)?;
    clusters.sort();
    clusters.dedup();
    Ok(XRoute {
        name,
        vhosts: Value::Array(vhosts),
        clusters,
    })
}

fn vhost(
    who: &str,
    at: &str,
    mut v: VirtualHost,
    clusters: &mut Vec<String>,
) -> Result<Value, Unsupported> {
    let routes = std::mem::take(&mut v.routes)
        .into_iter()
        .enumerate()
        .map(|(i, r)| one_route(who, &format!("{at}routes[{i}]."), r, clusters))
        .collect::<Result<Vec<_>, _>>()?;
    let out = json!({
        "name": std::mem::take(&mut v.name),
        "domains": std::mem::take(&mut v.domains),
        "routes": routes,
    });
    v.metadata = None;
    done(who, at, &v)?;
    Ok(out)
}

fn one_route(
    who: &str,
    at: &str,
    mut r: Route,
    clusters: &mut Vec<String>,
) -> Result<Value, Unsupported> {
    let mut o = Map::new();
    if !r.name.is_empty() {
        o.insert("name".into(), json!(std::mem::take(&mut r.name)));
    }
    let m = r.r#match.take().unwrap_or_default();
    o.insert("match".into(), matcher(who, &format!("{at}match."), m)?);
    match r.action.take() {
        Some(route::Action::Route(a)) => action(who, &format!("{at}route."), a, &mut o, clusters)?,
        Some(route::Action::DirectResponse(mut d)) => {
            let body = match d.body.take().and_then(|b| b.specifier) {
                None => String::new(),
                Some(data_source::Specifier::InlineString(s)) => s,
                Some(data_source::Specifier::InlineBytes(b)) => {
                    String::from_utf8_lossy(&b).into_owned()
                }
                Some(_) => {
                    return Err(nack(
                        who,
                        format!("{at}direct_response.body"),
                        "only inline bodies",
                    ))
                }
            };
            o.insert(
                "direct_response".into(),
                json!({"status": d.status, "body": body}),
            );
            d.status = 0;
            done(who, &format!("{at}direct_response."), &d)?;
        }
        Some(_) => {
            return Err(nack(
                who,
                format!("{at}action"),
                "only route and direct_response",
            ))
        }
        None => return Err(nack(who, format!("{at}action"), "required")),
    }
    for (key, list) in [
        (
            "request_headers_to_add",
            std::mem::take(&mut r.request_headers_to_add),
        ),
        (
            "response_headers_to_add",
            std::mem::take(&mut r.response_headers_to_add),
        ),
    ] {
        if !list.is_empty() {
            o.insert(key.into(), header_adds(who, &format!("{at}{key}"), list)?);
        }
    }
    for (key, list) in [
        (
            "request_headers_to_remove",
            std::mem::take(&mut r.request_headers_to_remove),
        ),
        (
            "response_headers_to_remove",
            std::mem::take(&mut r.response_headers_to_remove),
        ),
    ] {
        if !list.is_empty() {
            o.insert(key.into(), json!(list));
        }
    }
    r.metadata = None;
    r.decorator = None;
    done(who, at, &r)?;
    Ok(Value::Object(o))
}

fn header_adds(who: &str, at: &str, list: Vec<HeaderValueOption>) -> Result<Value, Unsupported> {
    let mut out = Vec::new();
    for (i, mut h) in list.into_iter().enumerate() {
        let mut hv = h.header.take().unwrap_or_default();
        out.push(
            json!({"name": std::mem::take(&mut hv.key), "value": std::mem::take(&mut hv.value)}),
        );
        // APPEND_IF_EXISTS_OR_ADD (0) is what the config's add does.
        if h.append.as_ref().is_some_and(|a| a.value) {
            h.append = None;
        }
        done(who, &format!("{at}[{i}].header."), &hv)?;
        done(who, &format!("{at}[{i}]."), &h)?;
    }
    Ok(Value::Array(out))
}

fn matcher(
    who: &str,
    at: &str,
    mut m: envoy_types::pb::envoy::config::route::v3::RouteMatch,
) -> Result<Value, Unsupported> {
    let mut o = Map::new();
    match m.path_specifier.take() {
        Some(route_match::PathSpecifier::Prefix(p)) => {
            o.insert("prefix".into(), json!(p));
        }
        Some(route_match::PathSpecifier::Path(p)) => {
            o.insert("path".into(), json!(p));
        }
        Some(route_match::PathSpecifier::SafeRegex(mut r)) => {
            o.insert("regex".into(), json!(std::mem::take(&mut r.regex)));
            r.engine_type = None;
            done(who, &format!("{at}safe_regex."), &r)?;
        }
        Some(_) => {
            return Err(nack(
                who,
                format!("{at}path_specifier"),
                "only prefix, path and safe_regex",
            ))
        }
        None => return Err(nack(who, format!("{at}path_specifier"), "required")),
    }
    if m.case_sensitive.as_ref().is_some_and(|c| c.value) {
        m.case_sensitive = None;
    }
    let headers = std::mem::take(&mut m.headers)
        .into_iter()
        .enumerate()
        .map(|(i, h)| header(who, &format!("{at}headers[{i}]"), h))
        .collect::<Result<Vec<_>, _>>()?;
    if !headers.is_empty() {
        o.insert("headers".into(), Value::Array(headers));
    }
    done(who, at, &m)?;
    Ok(Value::Object(o))
}

fn header(who: &str, at: &str, mut h: HeaderMatcher) -> Result<Value, Unsupported> {
    use header_matcher::HeaderMatchSpecifier as S;
    let name = std::mem::take(&mut h.name);
    // `:method` is how Envoy matches methods; it is just another header to the matcher here.
    let v = match h.header_match_specifier.take() {
        Some(S::ExactMatch(s)) => json!({"name": name, "exact": s}),
        Some(S::PresentMatch(p)) => json!({"name": name, "present": p}),
        Some(S::SafeRegexMatch(r)) => json!({"name": name, "regex": r.regex}),
        Some(S::StringMatch(sm)) if !sm.ignore_case => match sm.match_pattern {
            Some(string_matcher::MatchPattern::Exact(s)) => json!({"name": name, "exact": s}),
            Some(string_matcher::MatchPattern::SafeRegex(r)) => {
                json!({"name": name, "regex": r.regex})
            }
            _ => {
                return Err(nack(
                    who,
                    format!("{at}.string_match"),
                    "only exact and safe_regex",
                ))
            }
        },
        _ => {
            return Err(nack(
                who,
                format!("{at}.header_match_specifier"),
                "only exact, present, string_match (exact, safe_regex) and safe_regex_match",
            ))
        }
    };
    done(who, &format!("{at}."), &h)?;
    Ok(v)
}

fn action(
    who: &str,
    at: &str,
    mut a: envoy_types::pb::envoy::config::route::v3::RouteAction,
    o: &mut Map<String, Value>,
    clusters: &mut Vec<String>,
) -> Result<(), Unsupported> {
    match a.cluster_specifier.take() {
        Some(route_action::ClusterSpecifier::Cluster(c)) => {
            clusters.push(c.clone());
            o.insert("cluster".into(), json!(c));
        }
        Some(route_action::ClusterSpecifier::WeightedClusters(mut w)) => {
            let mut list = Vec::new();
            for (i, mut cw) in std::mem::take(&mut w.clusters).into_iter().enumerate() {
                let weight = cw.weight.take().map_or(0, |v| v.value);
                clusters.push(cw.name.clone());
                list.push(json!({"cluster": std::mem::take(&mut cw.name), "weight": weight}));
                done(who, &format!("{at}weighted_clusters.clusters[{i}]."), &cw)?;
            }
            w.total_weight = None;
            done(who, &format!("{at}weighted_clusters."), &w)?;
            o.insert("weighted_clusters".into(), Value::Array(list));
        }
        _ => {
            return Err(nack(
                who,
                format!("{at}cluster_specifier"),
                "only cluster and weighted_clusters",
            ))
        }
    }
    if let Some(t) = a.timeout.take() {
        o.insert("timeout".into(), json!(duration(&t)));
    }
    if let Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(h)) =
        &a.host_rewrite_specifier
    {
        o.insert("host_rewrite".into(), json!(h));
        a.host_rewrite_specifier = None;
    }
    if let Some(mut r) = a.retry_policy.take() {
        let mut p = Map::new();
        let on: Vec<&str> = r
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        p.insert("retry_on".into(), json!(on));
        r.retry_on.clear();
        if let Some(n) = r.num_retries.take() {
            p.insert("num_retries".into(), json!(n.value));
        }
        if let Some(t) = r.per_try_timeout.take() {
            p.insert("per_try_timeout".into(), json!(duration(&t)));
        }
        if !r.retriable_status_codes.is_empty() {
            p.insert(
                "retriable_status_codes".into(),
                json!(std::mem::take(&mut r.retriable_status_codes)),
            );
        }
        // Envoy's default; the per-try selection already prefers another endpoint.
        r.host_selection_retry_max_attempts = 0;
        done(who, &format!("{at}retry_policy."), &r)?;
        o.insert("retry_policy".into(), Value::Object(p));
    }
    done(who, at, &a)
}
