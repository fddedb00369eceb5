//! The `authorization_policies:` and `request_authentication:` blocks: raw serde shapes (Istio's
//! field names inside each policy, `deny_unknown_fields` throughout) and their compilation into
//! one [`ListenerAuthz`] per listener that any policy or JWT rule selects. Errors name the
//! field path (`authorization_policies[0].rules[1].from[0].source.ipBlocks[2]`).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::scalar::{duration_field, Scalar};
use super::{Cluster, ClusterKind, ConfigError};
use crate::authz::jwt::{Authenticator, JwtRule, Location};
use crate::authz::matcher::{parse_port, Cidr, StrMatch};
use crate::authz::policy::{Condition, Key, Operation, Rule, Source, Values};
use crate::authz::{Action, ListenerAuthz, Policy};

const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzPolicy {
    pub name: String,
    /// Listener names; absent = every listener.
    pub listeners: Option<Vec<String>>,
    /// `ALLOW` (default) or `DENY`.
    pub action: Option<String>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub from: Vec<RawFrom>,
    #[serde(default)]
    pub to: Vec<RawTo>,
    #[serde(default)]
    pub when: Vec<RawCondition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFrom {
    pub source: RawSource,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSource {
    pub principals: Option<Vec<String>>,
    pub not_principals: Option<Vec<String>>,
    pub request_principals: Option<Vec<String>>,
    pub not_request_principals: Option<Vec<String>>,
    pub namespaces: Option<Vec<String>>,
    pub not_namespaces: Option<Vec<String>>,
    pub ip_blocks: Option<Vec<String>>,
    pub not_ip_blocks: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTo {
    pub operation: RawOperation,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOperation {
    pub hosts: Option<Vec<String>>,
    pub not_hosts: Option<Vec<String>>,
    pub ports: Option<Vec<Scalar>>,
    pub not_ports: Option<Vec<Scalar>>,
    pub methods: Option<Vec<String>>,
    pub not_methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub not_paths: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCondition {
    pub key: String,
    pub values: Option<Vec<Scalar>>,
    pub not_values: Option<Vec<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequestAuthn {
    pub name: String,
    pub listeners: Option<Vec<String>>,
    pub jwt_rules: Vec<RawJwtRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJwtRule {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Inline JWKS JSON.
    pub jwks: Option<String>,
    /// A JWKS file, read at load (and at every reload).
    pub jwks_file: Option<String>,
    /// A JWKS fetched at load (and at every reload) from `jwksCluster`'s first endpoint:
    /// `http://host/path` gives the Host header and the path.
    pub jwks_uri: Option<String>,
    pub jwks_cluster: Option<String>,
    /// How often a `jwksUri` JWKS is fetched again (ours, like Envoy's `cache_duration`).
    pub jwks_refresh_interval: Option<Scalar>,
    pub from_headers: Option<Vec<RawFromHeader>>,
    pub from_params: Option<Vec<String>>,
    pub clock_skew: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFromHeader {
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

fn err(path: String, m: impl Into<String>) -> ConfigError {
    ConfigError::new(path, m)
}

/// `listeners` names → indexes; absent = all.
fn selected(
    at: &str,
    names: &Option<Vec<String>>,
    listeners: &[String],
) -> Result<Vec<usize>, ConfigError> {
    let Some(names) = names else {
        return Ok((0..listeners.len()).collect());
    };
    names
        .iter()
        .enumerate()
        .map(|(j, n)| {
            listeners.iter().position(|l| l == n).ok_or_else(|| {
                err(
                    format!("{at}.listeners[{j}]"),
                    format!("unknown listener {n:?}"),
                )
            })
        })
        .collect()
}

fn strs(at: &str, field: &str, v: &Option<Vec<String>>) -> Result<Box<[StrMatch]>, ConfigError> {
    strs_with(at, field, v, |s| s.to_string())
}

fn strs_with(
    at: &str,
    field: &str,
    v: &Option<Vec<String>>,
    f: impl Fn(&str) -> String,
) -> Result<Box<[StrMatch]>, ConfigError> {
    v.iter()
        .flatten()
        .enumerate()
        .map(|(k, s)| StrMatch::parse(&f(s)).map_err(|m| err(format!("{at}.{field}[{k}]"), m)))
        .collect()
}

fn cidrs(at: &str, field: &str, v: &Option<Vec<String>>) -> Result<Box<[Cidr]>, ConfigError> {
    v.iter()
        .flatten()
        .enumerate()
        .map(|(k, s)| Cidr::parse(s).map_err(|m| err(format!("{at}.{field}[{k}]"), m)))
        .collect()
}

fn ports(at: &str, field: &str, v: &Option<Vec<Scalar>>) -> Result<Box<[u16]>, ConfigError> {
    v.iter()
        .flatten()
        .enumerate()
        .map(|(k, s)| parse_port(s).map_err(|m| err(format!("{at}.{field}[{k}]"), m)))
        .collect()
}

fn source(at: &str, s: &RawSource) -> Result<Source, ConfigError> {
    // Istio principals have no scheme; accept `spiffe://` too.
    let principal = |p: &str| p.strip_prefix("spiffe://").unwrap_or(p).to_string();
    let src = Source {
        principals: strs_with(at, "principals", &s.principals, principal)?,
        not_principals: strs_with(at, "notPrincipals", &s.not_principals, principal)?,
        request_principals: strs(at, "requestPrincipals", &s.request_principals)?,
        not_request_principals: strs(at, "notRequestPrincipals", &s.not_request_principals)?,
        namespaces: strs(at, "namespaces", &s.namespaces)?,
        not_namespaces: strs(at, "notNamespaces", &s.not_namespaces)?,
        ip_blocks: cidrs(at, "ipBlocks", &s.ip_blocks)?,
        not_ip_blocks: cidrs(at, "notIpBlocks", &s.not_ip_blocks)?,
    };
    Ok(src)
}

fn operation(at: &str, o: &RawOperation) -> Result<Operation, ConfigError> {
    let lower = |h: &str| h.to_ascii_lowercase();
    Ok(Operation {
        hosts: strs_with(at, "hosts", &o.hosts, lower)?,
        not_hosts: strs_with(at, "notHosts", &o.not_hosts, lower)?,
        ports: ports(at, "ports", &o.ports)?,
        not_ports: ports(at, "notPorts", &o.not_ports)?,
        methods: strs(at, "methods", &o.methods)?,
        not_methods: strs(at, "notMethods", &o.not_methods)?,
        paths: strs(at, "paths", &o.paths)?,
        not_paths: strs(at, "notPaths", &o.not_paths)?,
    })
}

/// `request.headers[x]`, `request.auth.claims[a][b]`, `source.ip` …
fn key(at: &str, k: &str) -> Result<Key, ConfigError> {
    let bracketed = |prefix: &str| -> Option<Vec<Box<str>>> {
        let rest = k.strip_prefix(prefix)?;
        let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
        let parts: Vec<Box<str>> = inner.split("][").map(Into::into).collect();
        parts.iter().all(|p| !p.is_empty()).then_some(parts)
    };
    if let Some(mut h) = bracketed("request.headers") {
        if h.len() != 1 {
            return Err(err(at.into(), "request.headers takes one header name"));
        }
        return Ok(Key::Header(h.remove(0).to_ascii_lowercase().into()));
    }
    if let Some(c) = bracketed("request.auth.claims") {
        return Ok(Key::Claim(c.into()));
    }
    Ok(match k {
        "source.ip" | "remote.ip" => Key::SourceIp,
        "source.principal" => Key::SourcePrincipal,
        "source.namespace" => Key::SourceNamespace,
        "destination.ip" => Key::DestinationIp,
        "destination.port" => Key::DestinationPort,
        "connection.sni" => Key::Sni,
        "request.auth.principal" => Key::RequestPrincipal,
        "request.auth.audiences" => Key::Audiences,
        "request.auth.presenter" => Key::Presenter,
        o => {
            return Err(err(
                at.into(),
                format!(
                    "unknown key {o:?} (expected request.headers[..], request.auth.claims[..], \
                     request.auth.principal|audiences|presenter, source.ip, remote.ip, \
                     source.principal, source.namespace, destination.ip, destination.port, \
                     connection.sni)"
                ),
            ))
        }
    })
}

fn values(
    at: &str,
    field: &str,
    key: &Key,
    v: &Option<Vec<Scalar>>,
) -> Result<Values, ConfigError> {
    let texts: Vec<String> = v.iter().flatten().map(|s| s.0.clone()).collect();
    let texts = Some(texts);
    Ok(match key {
        Key::SourceIp | Key::DestinationIp => Values::Ip(cidrs(at, field, &texts)?),
        Key::DestinationPort => Values::Port(ports(at, field, &v.clone())?),
        Key::SourcePrincipal => Values::Str(strs_with(at, field, &texts, |p| {
            p.strip_prefix("spiffe://").unwrap_or(p).to_string()
        })?),
        _ => Values::Str(strs(at, field, &texts)?),
    })
}

fn condition(at: &str, c: &RawCondition) -> Result<Condition, ConfigError> {
    let k = key(&format!("{at}.key"), &c.key)?;
    if c.values.as_ref().is_none_or(Vec::is_empty)
        && c.not_values.as_ref().is_none_or(Vec::is_empty)
    {
        return Err(err(at.into(), "a condition needs values or notValues"));
    }
    Ok(Condition {
        values: values(at, "values", &k, &c.values)?,
        not_values: values(at, "notValues", &k, &c.not_values)?,
        key: k,
    })
}

fn rule(at: &str, r: &RawRule) -> Result<Rule, ConfigError> {
    let from = r
        .from
        .iter()
        .enumerate()
        .map(|(i, f)| source(&format!("{at}.from[{i}].source"), &f.source))
        .collect::<Result<Box<[_]>, _>>()?;
    let to =
        r.to.iter()
            .enumerate()
            .map(|(i, t)| operation(&format!("{at}.to[{i}].operation"), &t.operation))
            .collect::<Result<Box<[_]>, _>>()?;
    let when = r
        .when
        .iter()
        .enumerate()
        .map(|(i, c)| condition(&format!("{at}.when[{i}]"), c))
        .collect::<Result<Box<[_]>, _>>()?;
    Ok(Rule { from, to, when })
}

fn policy(at: &str, p: &RawAuthzPolicy) -> Result<Policy, ConfigError> {
    if p.name.is_empty() {
        return Err(err(format!("{at}.name"), "must not be empty"));
    }
    let action = match p.action.as_deref() {
        None | Some("ALLOW") => Action::Allow,
        Some("DENY") => Action::Deny,
        Some(o) => {
            return Err(err(
                format!("{at}.action"),
                format!("unknown action {o:?} (expected ALLOW or DENY)"),
            ))
        }
    };
    let rules = p
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(&format!("{at}.rules[{i}]"), r))
        .collect::<Result<Box<[_]>, _>>()?;
    Ok(Policy {
        name: p.name.as_str().into(),
        action,
        rules,
    })
}

/// Where a rule's keys come from.
enum Jwks {
    Text(String, &'static str),
    Remote(crate::authz::refresh::RemoteJwks),
}

/// The JWKS of a rule, from exactly one of `jwks`, `jwksFile`, `jwksUri`.
fn jwks_source(
    at: &str,
    r: &RawJwtRule,
    clusters: &[Arc<Cluster>],
    skew: Duration,
) -> Result<Jwks, ConfigError> {
    if r.jwks_refresh_interval.is_some() && r.jwks_uri.is_none() {
        return Err(err(
            format!("{at}.jwksRefreshInterval"),
            "only with jwksUri (a file JWKS is re-read on reload)",
        ));
    }
    if r.jwks_cluster.is_some() != r.jwks_uri.is_some() {
        return Err(err(
            format!("{at}.jwksCluster"),
            "jwksUri and jwksCluster go together",
        ));
    }
    Ok(match (&r.jwks, &r.jwks_file, &r.jwks_uri) {
        (Some(j), None, None) => Jwks::Text(j.clone(), "jwks"),
        (None, Some(f), None) => Jwks::Text(
            std::fs::read_to_string(f)
                .map_err(|e| err(format!("{at}.jwksFile"), format!("cannot read {f:?}: {e}")))?,
            "jwksFile",
        ),
        (None, None, Some(uri)) => {
            let name = r.jwks_cluster.as_deref().unwrap_or_default();
            let c = clusters.iter().find(|c| c.name == name).ok_or_else(|| {
                err(
                    format!("{at}.jwksCluster"),
                    format!("unknown cluster {name:?}"),
                )
            })?;
            let ClusterKind::Static(eps) = &c.kind else {
                return Err(err(
                    format!("{at}.jwksCluster"),
                    "needs a static cluster (endpoints)",
                ));
            };
            let every = duration_field(
                format!("{at}.jwksRefreshInterval"),
                &r.jwks_refresh_interval,
                crate::authz::refresh::DEFAULT_REFRESH,
            )?;
            if every.is_zero() {
                return Err(err(format!("{at}.jwksRefreshInterval"), "must be above 0"));
            }
            Jwks::Remote(
                crate::authz::refresh::RemoteJwks::fetch_first(
                    uri,
                    eps[0].addr,
                    c.connect_timeout,
                    every,
                    &r.issuer,
                    &r.audiences,
                    skew.as_secs(),
                )
                .map_err(|m| err(format!("{at}.jwksUri"), m))?,
            )
        }
        _ => {
            return Err(err(
                at.into(),
                "exactly one of jwks | jwksFile | jwksUri (with jwksCluster)",
            ))
        }
    })
}

/// One compiled rule of the `request_authentication` block named `provider`.
fn jwt_rule(
    at: &str,
    provider: &str,
    r: &RawJwtRule,
    clusters: &[Arc<Cluster>],
) -> Result<JwtRule, ConfigError> {
    if r.issuer.is_empty() {
        return Err(err(format!("{at}.issuer"), "must not be empty"));
    }
    let skew = duration_field(format!("{at}.clockSkew"), &r.clock_skew, DEFAULT_CLOCK_SKEW)?;
    let jwks = jwks_source(at, r, clusters, skew)?;
    let mut locations: Vec<Location> = r
        .from_headers
        .iter()
        .flatten()
        .map(|h| Location::Header(h.name.to_ascii_lowercase().into(), h.prefix.as_str().into()))
        .collect();
    locations.extend(
        r.from_params
            .iter()
            .flatten()
            .map(|p| Location::Param(p.as_str().into())),
    );
    if r.from_headers.is_none() && r.from_params.is_none() {
        locations = vec![
            Location::Header("authorization".into(), "Bearer ".into()),
            Location::Param("access_token".into()),
        ];
    }
    match jwks {
        Jwks::Text(jwks, field) => {
            JwtRule::new(&r.issuer, &r.audiences, &jwks, locations, skew.as_secs())
                .map_err(|m| err(format!("{at}.{field}"), m))
        }
        Jwks::Remote(remote) => Ok(JwtRule::with_remote(
            &r.issuer,
            locations,
            Arc::new(remote.with_provider(provider)),
        )),
    }
}

/// Compiles both blocks into one entry per listener (`None` where nothing selects it).
pub fn build_authz(
    policies: &[RawAuthzPolicy],
    authn: &[RawRequestAuthn],
    listeners: &[String],
    clusters: &[Arc<Cluster>],
) -> Result<Vec<Option<Arc<ListenerAuthz>>>, ConfigError> {
    let mut out: Vec<Option<ListenerAuthz>> = vec![None; listeners.len()];
    let mut deny: Vec<Vec<Policy>> = vec![Vec::new(); listeners.len()];
    let mut allow: Vec<Vec<Policy>> = vec![Vec::new(); listeners.len()];
    let mut rules: Vec<Vec<JwtRule>> = vec![Vec::new(); listeners.len()];
    let mut touched = vec![false; listeners.len()];
    for (i, p) in policies.iter().enumerate() {
        let at = format!("authorization_policies[{i}]");
        let compiled = policy(&at, p)?;
        for l in selected(&at, &p.listeners, listeners)? {
            touched[l] = true;
            match compiled.action {
                Action::Deny => deny[l].push(compiled.clone()),
                Action::Allow => allow[l].push(compiled.clone()),
            }
        }
    }
    for (i, a) in authn.iter().enumerate() {
        let at = format!("request_authentication[{i}]");
        if a.name.is_empty() {
            return Err(err(format!("{at}.name"), "must not be empty"));
        }
        if a.jwt_rules.is_empty() {
            return Err(err(format!("{at}.jwtRules"), "needs at least one rule"));
        }
        let compiled = a
            .jwt_rules
            .iter()
            .enumerate()
            .map(|(j, r)| jwt_rule(&format!("{at}.jwtRules[{j}]"), &a.name, r, clusters))
            .collect::<Result<Vec<_>, _>>()?;
        for l in selected(&at, &a.listeners, listeners)? {
            touched[l] = true;
            rules[l].extend(compiled.iter().cloned());
        }
    }
    for l in 0..listeners.len() {
        if touched[l] {
            let r = std::mem::take(&mut rules[l]);
            out[l] = Some(ListenerAuthz {
                deny: std::mem::take(&mut deny[l]).into(),
                allow: std::mem::take(&mut allow[l]).into(),
                jwt: (!r.is_empty()).then(|| Authenticator { rules: r.into() }),
            });
        }
    }
    Ok(out.into_iter().map(|a| a.map(Arc::new)).collect())
}

/// Compiles the blocks and attaches each listener's result: to the listener (for L4) and as
/// the first filter of every one of its routes (for HTTP/1 and HTTP/2).
pub(super) fn attach(
    raw: &super::raw::RawConfig,
    listeners: &mut [super::Listener],
    clusters: &[Arc<Cluster>],
) -> Result<(), ConfigError> {
    let names: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
    let built = build_authz(
        &raw.authorization_policies,
        &raw.request_authentication,
        &names,
        clusters,
    )?;
    for (l, a) in listeners.iter_mut().zip(built) {
        let Some(a) = a else { continue };
        if let Some(http) = l.http.as_mut() {
            let http = Arc::make_mut(http);
            for vh in &mut http.routes.virtual_hosts {
                for r in &mut vh.routes {
                    let mut chain = Vec::with_capacity(r.filters.request.len() + 1);
                    chain.push(crate::route::RequestFilter::Authz(a.clone()));
                    chain.extend(r.filters.request.iter().cloned());
                    r.filters.request = chain.into();
                }
            }
        }
        l.authz = Some(a);
    }
    Ok(())
}
