//! Evaluator tests on hand-built attributes: principals (which the end-to-end tests can only
//! reach over mTLS), namespaces, DENY-over-ALLOW, default deny, `notX` fields, conditions and
//! the TCP treatment of HTTP-only fields.

use std::net::IpAddr;

use super::jwt::Authn;
use super::policy::{Attrs, HttpAttrs};
use super::{Decision, ListenerAuthz};
use crate::http::{HeaderSpan, Headers, Span};

/// Compiles `yaml` (an `authorization_policies` list for listener `l`) through the config.
fn compile(policies: &str) -> ListenerAuthz {
    let yaml = format!(
        "listeners:
  - name: l
    address: 127.0.0.1:0
    cluster: c
clusters:
  - name: c
    endpoints: [\"127.0.0.1:1\"]
authorization_policies:
{policies}"
    );
    let cfg = crate::Config::from_yaml(&yaml).unwrap();
    (*cfg.listeners[0].authz.clone().unwrap()).clone()
}

fn tcp<'a>(ip: &str, port: u16, principal: Option<&'a str>) -> Attrs<'a> {
    let ip: IpAddr = ip.parse().unwrap();
    Attrs {
        source_ip: ip,
        dest_ip: "127.0.0.1".parse().unwrap(),
        dest_port: port,
        principal,
        sni: None,
        http: None,
    }
}

struct Req {
    buf: Vec<u8>,
    spans: Vec<HeaderSpan>,
}

impl Req {
    fn new(headers: &[(&str, &str)]) -> Req {
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        for (n, v) in headers {
            let s = buf.len() as u32;
            buf.extend_from_slice(n.as_bytes());
            let m = buf.len() as u32;
            buf.extend_from_slice(v.as_bytes());
            spans.push(HeaderSpan {
                name: Span { start: s, end: m },
                value: Span {
                    start: m,
                    end: buf.len() as u32,
                },
            });
        }
        Req { buf, spans }
    }

    fn attrs<'a>(
        &'a self,
        base: Attrs<'a>,
        method: &'a str,
        path: &'a str,
        auth: Option<&'a Authn>,
    ) -> Attrs<'a> {
        Attrs {
            http: Some(HttpAttrs {
                method: method.as_bytes(),
                path: path.as_bytes(),
                host: b"api.example.com:8080",
                headers: Headers {
                    buf: &self.buf,
                    spans: &self.spans,
                },
                auth,
            }),
            ..base
        }
    }
}

const FRONTEND: &str = "cluster.local/ns/web/sa/frontend";
const BATCH: &str = "cluster.local/ns/jobs/sa/batch";

#[test]
fn principals_exact_prefix_suffix_any_and_not() {
    let a = compile(
        "  - name: p
    rules:
      - from: [{source: {principals: [\"spiffe://cluster.local/ns/web/sa/frontend\"]}}]
      - from: [{source: {principals: [\"cluster.local/ns/jobs/*\"], notPrincipals: [\"*/sa/evil\"]}}]
",
    );
    let allowed = |p: Option<&str>| a.decide(&tcp("10.0.0.1", 80, p)) == Decision::Allow;
    assert!(allowed(Some(FRONTEND)), "exact, written with spiffe://");
    assert!(allowed(Some(BATCH)), "prefix");
    assert!(
        !allowed(Some("cluster.local/ns/jobs/sa/evil")),
        "notPrincipals suffix"
    );
    assert!(!allowed(Some("cluster.local/ns/web/sa/other")));
    assert!(!allowed(None), "no identity never matches a principal");
    let any = compile("  - name: any\n    rules: [{from: [{source: {principals: [\"*\"]}}]}]\n");
    assert_eq!(
        any.decide(&tcp("10.0.0.1", 80, Some(BATCH))),
        Decision::Allow
    );
    assert_eq!(any.decide(&tcp("10.0.0.1", 80, None)), Decision::Deny(None));
}

#[test]
fn deny_wins_over_allow_and_allow_defaults_to_deny() {
    let a = compile(
        "  - name: allow-all
    rules: [{}]
  - name: deny-jobs
    action: DENY
    rules: [{from: [{source: {namespaces: [jobs]}}]}]
",
    );
    assert_eq!(
        a.decide(&tcp("10.0.0.1", 80, Some(FRONTEND))),
        Decision::Allow
    );
    assert_eq!(
        a.decide(&tcp("10.0.0.1", 80, Some(BATCH))),
        Decision::Deny(Some("deny-jobs"))
    );
    let none = compile("  - name: no-rules\n");
    assert_eq!(
        none.decide(&tcp("10.0.0.1", 80, Some(FRONTEND))),
        Decision::Deny(None),
        "an ALLOW policy without rules allows nothing"
    );
    let deny_only =
        compile("  - name: d\n    action: DENY\n    rules: [{to: [{operation: {ports: [9]}}]}]\n");
    assert_eq!(
        deny_only.decide(&tcp("10.0.0.1", 80, None)),
        Decision::Allow
    );
    assert_eq!(
        deny_only.decide(&tcp("10.0.0.1", 9, None)),
        Decision::Deny(Some("d"))
    );
}

#[test]
fn ip_blocks_ports_and_conditions() {
    let a = compile(
        "  - name: p
    rules:
      - from: [{source: {ipBlocks: [\"10.0.0.0/8\"], notIpBlocks: [\"10.9.0.0/16\"]}}]
        to: [{operation: {ports: [\"8080\", 9090], notPorts: [9091]}}]
        when:
          - {key: source.ip, notValues: [\"10.1.1.1\"]}
          - {key: destination.port, values: [8080, 9090]}
",
    );
    let ok = |ip: &str, port| a.decide(&tcp(ip, port, None)) == Decision::Allow;
    assert!(ok("10.2.3.4", 8080) && ok("10.2.3.4", 9090));
    assert!(!ok("11.0.0.1", 8080), "outside ipBlocks");
    assert!(!ok("10.9.1.1", 8080), "in notIpBlocks");
    assert!(!ok("10.2.3.4", 8081), "port");
    assert!(!ok("10.1.1.1", 8080), "when source.ip notValues");
}

#[test]
fn http_fields_methods_paths_hosts_headers_claims() {
    let a = compile(
        "  - name: p
    rules:
      - to: [{operation: {methods: [GET], paths: [\"/api/*\", /health], notPaths: [\"*.secret\"], hosts: [\"API.example.com\"]}}]
        when:
          - {key: \"request.headers[X-Tenant]\", values: [acme, \"beta*\"]}
      - to: [{operation: {methods: [POST], paths: [/submit]}}]
        from: [{source: {requestPrincipals: [\"https://issuer/*\"]}}]
        when:
          - {key: \"request.auth.claims[groups]\", values: [writers]}
          - {key: \"request.auth.claims[org][tier]\", values: [gold]}
",
    );
    let t = Req::new(&[("x-tenant", "acme")]);
    let base = tcp("10.0.0.1", 8080, None);
    let ok = |r: &Req, m, p, auth| a.decide(&r.attrs(base, m, p, auth)) == Decision::Allow;
    assert!(ok(&t, "GET", "/api/x", None));
    assert!(ok(&t, "GET", "/health", None));
    assert!(!ok(&t, "GET", "/healthz", None), "exact path");
    assert!(!ok(&t, "GET", "/api/x.secret", None), "notPaths");
    assert!(!ok(&t, "DELETE", "/api/x", None), "method");
    assert!(ok(
        &Req::new(&[("X-TENANT", "beta-1")]),
        "GET",
        "/api/x",
        None
    ));
    assert!(!ok(
        &Req::new(&[("x-tenant", "other")]),
        "GET",
        "/api/x",
        None
    ));
    assert!(!ok(&Req::new(&[]), "GET", "/api/x", None), "header absent");
    let claims = |groups: serde_json::Value| Authn {
        principal: "https://issuer/alice".into(),
        claims: serde_json::from_value(serde_json::json!({
            "groups": groups, "org": {"tier": "gold"}
        }))
        .unwrap(),
    };
    let w = claims(serde_json::json!(["readers", "writers"]));
    assert!(
        ok(&t, "POST", "/submit", Some(&w)),
        "claim in a list, nested claim"
    );
    assert!(
        !ok(&t, "POST", "/submit", None),
        "no token → no request principal"
    );
    let r = claims(serde_json::json!("readers"));
    assert!(!ok(&t, "POST", "/submit", Some(&r)));
}

#[test]
fn http_only_fields_on_tcp_fail_in_allow_and_are_ignored_in_deny() {
    let allow = compile("  - name: a\n    rules: [{to: [{operation: {methods: [GET]}}]}]\n");
    assert_eq!(
        allow.decide(&tcp("10.0.0.1", 80, None)),
        Decision::Deny(None)
    );
    let deny = compile(
        "  - name: d\n    action: DENY\n    rules: [{to: [{operation: {methods: [GET], ports: [80]}}]}]\n",
    );
    assert_eq!(
        deny.decide(&tcp("10.0.0.1", 80, None)),
        Decision::Deny(Some("d"))
    );
    assert_eq!(deny.decide(&tcp("10.0.0.1", 81, None)), Decision::Allow);
}

#[test]
fn config_errors_name_the_field() {
    let bad = |p: &str| {
        let yaml = format!(
            "listeners:\n  - name: l\n    address: 127.0.0.1:0\n    cluster: c\nclusters:\n  - name: c\n    endpoints: [\"127.0.0.1:1\"]\nauthorization_policies:\n{p}"
        );
        crate::Config::from_yaml(&yaml).unwrap_err().to_string()
    };
    let e =
        bad("  - name: p\n    rules:\n      - from: [{source: {ipBlocks: [\"10.0.0.0/40\"]}}]\n");
    assert!(
        e.starts_with("authorization_policies[0].rules[0].from[0].source.ipBlocks[0]"),
        "{e}"
    );
    assert!(e.contains("line 11"), "{e}");
    let e = bad("  - name: p\n    action: AUDIT\n");
    assert!(
        e.contains("authorization_policies[0].action") && e.contains("AUDIT"),
        "{e}"
    );
    let e = bad("  - name: p\n    rules: [{to: [{operation: {verbs: [GET]}}]}]\n");
    assert!(e.contains("unknown field `verbs`"), "{e}");
    let e = bad("  - name: p\n    listeners: [nope]\n");
    assert!(
        e.contains("listeners[0]") && e.contains("unknown listener"),
        "{e}"
    );
    let e = bad("  - name: p\n    rules: [{when: [{key: request.body, values: [x]}]}]\n");
    assert!(
        e.contains("when[0].key") && e.contains("unknown key"),
        "{e}"
    );
}

#[test]
fn jwks_counts_from_several_shards_merge_by_max_per_provider_and_issuer() {
    use super::refresh::{merge_counts, JwksCount};
    let c = |p: &str, i: &str, success, failure| JwksCount {
        provider: p.into(),
        issuer: i.into(),
        success,
        failure,
    };
    // Every shard reads the same counters: a shard that answered a moment later sees more.
    let mut total = vec![c("jwt", "https://a", 3, 1)];
    merge_counts(
        &mut total,
        &[c("jwt", "https://a", 4, 1), c("b", "https://b", 1, 0)],
    );
    assert_eq!(
        total,
        vec![c("b", "https://b", 1, 0), c("jwt", "https://a", 4, 1)]
    );
}
