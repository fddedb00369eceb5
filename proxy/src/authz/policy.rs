//! Compiled Istio `AuthorizationPolicy` rules and their evaluation against one request's (or
//! one connection's) [`Attrs`].
//!
//! Istio's semantics: a policy matches when any of its rules matches; a rule matches when its
//! `from`, `to` and `when` all hold; `from` (`to`) holds when any listed source (operation)
//! holds, and a source holds when every field it sets holds (a field holds when any value
//! matches; a `notX` field holds when none does). A policy with no rules never matches.
//!
//! On a TCP connection the HTTP-only fields (hosts, methods, paths, request principals,
//! `request.*` keys) have nothing to match: in an ALLOW policy such a field fails, so the rule
//! cannot allow; in a DENY policy it is ignored, so the rule denies more — Istio's choice, the
//! safe side both ways.

use std::net::IpAddr;

use super::jwt::Authn;
use super::matcher::{any_cidr, any_str, Cidr, StrMatch};
use crate::http::Headers;

/// What one decision looks at. Borrowed from the connection and the request; built per
/// request on the stack.
#[derive(Debug, Clone, Copy)]
pub struct Attrs<'a> {
    pub source_ip: IpAddr,
    pub dest_ip: IpAddr,
    pub dest_port: u16,
    /// The peer's SPIFFE ID without `spiffe://` (`cluster.local/ns/a/sa/b`), once mTLS
    /// verified it.
    pub principal: Option<&'a str>,
    pub sni: Option<&'a str>,
    /// `None` on a TCP connection.
    pub http: Option<HttpAttrs<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub struct HttpAttrs<'a> {
    pub method: &'a [u8],
    /// Without the query string.
    pub path: &'a [u8],
    /// Host / `:authority` as sent.
    pub host: &'a [u8],
    pub headers: Headers<'a>,
    /// The verified JWT, if the request carried one.
    pub auth: Option<&'a Authn>,
}

impl Attrs<'_> {
    /// The namespace in an Istio-shaped SPIFFE ID (`td/ns/<ns>/sa/<sa>`).
    fn namespace(&self) -> Option<&[u8]> {
        let p = self.principal?;
        let at = p.find("/ns/")? + 4;
        let rest = &p[at..];
        Some(&rest.as_bytes()[..rest.find('/').unwrap_or(rest.len())])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: Box<str>,
    pub action: Action,
    pub rules: Box<[Rule]>,
}

#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub from: Box<[Source]>,
    pub to: Box<[Operation]>,
    pub when: Box<[Condition]>,
}

/// `from[].source`. Empty lists do not constrain.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub principals: Box<[StrMatch]>,
    pub not_principals: Box<[StrMatch]>,
    pub request_principals: Box<[StrMatch]>,
    pub not_request_principals: Box<[StrMatch]>,
    pub namespaces: Box<[StrMatch]>,
    pub not_namespaces: Box<[StrMatch]>,
    pub ip_blocks: Box<[Cidr]>,
    pub not_ip_blocks: Box<[Cidr]>,
}

/// `to[].operation`. Empty lists do not constrain.
#[derive(Debug, Clone, Default)]
pub struct Operation {
    /// Lower-case patterns, matched case-insensitively, with or without the `:port`.
    pub hosts: Box<[StrMatch]>,
    pub not_hosts: Box<[StrMatch]>,
    pub ports: Box<[u16]>,
    pub not_ports: Box<[u16]>,
    pub methods: Box<[StrMatch]>,
    pub not_methods: Box<[StrMatch]>,
    pub paths: Box<[StrMatch]>,
    pub not_paths: Box<[StrMatch]>,
}

/// One `when` condition.
#[derive(Debug, Clone)]
pub struct Condition {
    pub key: Key,
    pub values: Values,
    pub not_values: Values,
}

/// The attribute a condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `request.headers[name]` (lower-case name).
    Header(Box<str>),
    /// `request.auth.claims[a][b]`: the claim path.
    Claim(Box<[Box<str>]>),
    /// `request.auth.principal` (`iss/sub`).
    RequestPrincipal,
    /// `request.auth.audiences`.
    Audiences,
    /// `request.auth.presenter` (`azp`).
    Presenter,
    /// `source.ip` and `remote.ip` (the peer address; no proxy protocol or XFF trust here).
    SourceIp,
    SourcePrincipal,
    SourceNamespace,
    DestinationIp,
    DestinationPort,
    /// `connection.sni`.
    Sni,
}

impl Key {
    fn http_only(&self) -> bool {
        matches!(
            self,
            Key::Header(_)
                | Key::Claim(_)
                | Key::RequestPrincipal
                | Key::Audiences
                | Key::Presenter
        )
    }
}

/// A condition's values, typed by its key.
#[derive(Debug, Clone)]
pub enum Values {
    Str(Box<[StrMatch]>),
    Ip(Box<[Cidr]>),
    Port(Box<[u16]>),
}

impl Values {
    fn is_empty(&self) -> bool {
        match self {
            Values::Str(v) => v.is_empty(),
            Values::Ip(v) => v.is_empty(),
            Values::Port(v) => v.is_empty(),
        }
    }
}

/// A listed field's verdict: `Some(holds)`, or `None` when an HTTP-only field meets a TCP
/// connection (resolved by the policy's action, see the module doc).
type Field = Option<bool>;

/// Whether a `values` (`pos = true`) or `notValues` list holds for `found`.
fn listed<T>(list: &[T], pos: bool, found: impl FnOnce(&[T]) -> bool) -> bool {
    list.is_empty() || found(list) == pos
}

impl Policy {
    /// Whether any rule matches.
    #[inline]
    pub fn matches(&self, a: &Attrs<'_>) -> bool {
        // A DENY policy ignores HTTP-only fields on TCP; an ALLOW policy fails on them.
        let tcp_field = self.action == Action::Deny;
        self.rules.iter().any(|r| r.matches(a, tcp_field))
    }
}

impl Rule {
    fn matches(&self, a: &Attrs<'_>, tcp_field: bool) -> bool {
        let ok = |f: Field| f.unwrap_or(tcp_field);
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(a, &ok)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(a, &ok)))
            && self.when.iter().all(|c| ok(c.holds(a)))
    }
}

impl Source {
    fn matches(&self, a: &Attrs<'_>, ok: &dyn Fn(Field) -> bool) -> bool {
        let principal = a.principal.map(str::as_bytes);
        let ns = a.namespace();
        listed(&self.principals, true, |l| any_str(l, principal))
            && listed(&self.not_principals, false, |l| any_str(l, principal))
            && listed(&self.namespaces, true, |l| any_str(l, ns))
            && listed(&self.not_namespaces, false, |l| any_str(l, ns))
            && listed(&self.ip_blocks, true, |l| any_cidr(l, a.source_ip))
            && listed(&self.not_ip_blocks, false, |l| any_cidr(l, a.source_ip))
            && http_field(a, ok, &self.request_principals, true, |h, l| {
                any_str(l, h.auth.map(|j| j.principal.as_bytes()))
            })
            && http_field(a, ok, &self.not_request_principals, false, |h, l| {
                any_str(l, h.auth.map(|j| j.principal.as_bytes()))
            })
    }
}

/// An HTTP-only list: empty holds; on TCP it is resolved by `ok(None)`.
fn http_field<T>(
    a: &Attrs<'_>,
    ok: &dyn Fn(Field) -> bool,
    list: &[T],
    pos: bool,
    found: impl FnOnce(&HttpAttrs<'_>, &[T]) -> bool,
) -> bool {
    if list.is_empty() {
        return true;
    }
    match &a.http {
        Some(h) => found(h, list) == pos,
        None => ok(None),
    }
}

fn host_matches(l: &[StrMatch], host: &[u8]) -> bool {
    let bare = crate::route::strip_port(host);
    l.iter().any(|m| m.matches_ci(host) || m.matches_ci(bare))
}

impl Operation {
    fn matches(&self, a: &Attrs<'_>, ok: &dyn Fn(Field) -> bool) -> bool {
        listed(&self.ports, true, |l| l.contains(&a.dest_port))
            && listed(&self.not_ports, false, |l| l.contains(&a.dest_port))
            && http_field(a, ok, &self.hosts, true, |h, l| host_matches(l, h.host))
            && http_field(a, ok, &self.not_hosts, false, |h, l| {
                host_matches(l, h.host)
            })
            && http_field(a, ok, &self.methods, true, |h, l| {
                any_str(l, Some(h.method))
            })
            && http_field(a, ok, &self.not_methods, false, |h, l| {
                any_str(l, Some(h.method))
            })
            && http_field(a, ok, &self.paths, true, |h, l| any_str(l, Some(h.path)))
            && http_field(a, ok, &self.not_paths, false, |h, l| {
                any_str(l, Some(h.path))
            })
    }
}

impl Condition {
    /// `Some(holds)`, or `None` for an HTTP-only key on a TCP connection.
    fn holds(&self, a: &Attrs<'_>) -> Field {
        if self.key.http_only() && a.http.is_none() {
            return None;
        }
        let pos = self.values.is_empty() || self.any(&self.values, a);
        let neg = self.not_values.is_empty() || !self.any(&self.not_values, a);
        Some(pos && neg)
    }

    /// Whether the attribute matches any of `vals`.
    fn any(&self, vals: &Values, a: &Attrs<'_>) -> bool {
        match vals {
            Values::Ip(l) => match self.key {
                Key::SourceIp => any_cidr(l, a.source_ip),
                Key::DestinationIp => any_cidr(l, a.dest_ip),
                _ => false,
            },
            Values::Port(l) => l.contains(&a.dest_port),
            Values::Str(l) => {
                let http = a.http.as_ref();
                let auth = http.and_then(|h| h.auth);
                match &self.key {
                    Key::Header(n) => any_str(l, http.and_then(|h| h.headers.get(n))),
                    Key::SourcePrincipal => any_str(l, a.principal.map(str::as_bytes)),
                    Key::SourceNamespace => any_str(l, a.namespace()),
                    Key::Sni => any_str(l, a.sni.map(str::as_bytes)),
                    Key::RequestPrincipal => any_str(l, auth.map(|j| j.principal.as_bytes())),
                    Key::Presenter => any_str(l, auth.and_then(|j| j.presenter())),
                    Key::Audiences => auth.is_some_and(|j| j.any_claim_str(&["aud"], l)),
                    Key::Claim(path) => auth.is_some_and(|j| j.any_claim_str(path, l)),
                    _ => false,
                }
            }
        }
    }
}
