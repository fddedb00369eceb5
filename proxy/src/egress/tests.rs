use super::*;
use crate::config::Config;

const YAML: &str = "\
listeners:
  - name: outbound
    address: 127.0.0.1:0
    original_dst: true
    cluster: passthrough
  - name: inbound
    address: 127.0.0.1:0
    cluster: passthrough
    original_dst: true
clusters:
  - name: passthrough
    type: original_dst
outbound_traffic_policy:
  mode: registry_only
  listeners: [outbound]
  registry:
    - hosts: [api.example.com, \"*.svc.test\"]
    - hosts: [db.example.com]
      ports: [5432]
    - cidrs: [10.1.0.0/16]
      ports: [443, 8443]
    - cidrs: [169.254.0.0/16, 0.0.0.0/0]
      ports: [9999]
    - cidrs: [169.254.170.2]
";

fn policy() -> Arc<EgressPolicy> {
    let c = Config::from_yaml(YAML).unwrap();
    assert!(c.listeners[1].egress.is_none(), "only the named listener");
    c.listeners[0].egress.clone().unwrap()
}

use std::sync::Arc;

fn d<'a>(host: Option<&'a str>, ip: Option<&str>, port: u16) -> Destination<'a> {
    Destination {
        host: host.map(str::as_bytes),
        ip: ip.map(|i| i.parse().unwrap()),
        port,
    }
}

#[test]
fn hosts_wildcards_cidrs_and_ports() {
    let p = policy();
    let ok = |x: Destination<'_>| p.check(&x, None);
    assert_eq!(ok(d(Some("api.example.com"), None, 80)), Ok(()));
    assert_eq!(ok(d(Some("API.Example.COM"), None, 80)), Ok(()), "case");
    assert_eq!(ok(d(Some("a.b.svc.test"), None, 8080)), Ok(()), "wildcard");
    assert_eq!(
        ok(d(Some("svc.test"), None, 80)),
        Err(Blocked::NotRegistered),
        "*.x does not match x"
    );
    assert_eq!(
        ok(d(Some("evil.test"), None, 80)),
        Err(Blocked::NotRegistered)
    );
    assert_eq!(ok(d(Some("db.example.com"), None, 5432)), Ok(()));
    assert_eq!(
        ok(d(Some("db.example.com"), None, 5433)),
        Err(Blocked::NotRegistered),
        "port"
    );
    assert_eq!(ok(d(None, Some("10.1.2.3"), 443)), Ok(()));
    assert_eq!(
        ok(d(None, Some("10.1.2.3"), 80)),
        Err(Blocked::NotRegistered)
    );
    assert_eq!(
        ok(d(None, Some("10.2.0.1"), 443)),
        Err(Blocked::NotRegistered)
    );
    assert_eq!(
        ok(d(None, None, 443)),
        Err(Blocked::NotRegistered),
        "nothing known"
    );
}

#[test]
fn metadata_endpoints_need_their_own_address() {
    let p = policy();
    // 0.0.0.0/0 and 169.254.0.0/16 on 9999 open every other address there, not metadata.
    assert_eq!(p.check(&d(None, Some("8.8.8.8"), 9999), None), Ok(()));
    assert_eq!(
        p.check(&d(None, Some("169.254.169.254"), 9999), None),
        Err(Blocked::Metadata)
    );
    // An allowed Host sent to the metadata IP stays blocked.
    assert_eq!(
        p.check(
            &d(Some("api.example.com"), Some("169.254.169.254"), 80),
            None
        ),
        Err(Blocked::Metadata)
    );
    // An IP-literal authority naming it, whatever the original destination.
    assert_eq!(
        p.check(
            &d(Some("api.example.com"), None, 80),
            Some("169.254.169.254".parse().unwrap())
        ),
        Err(Blocked::Metadata)
    );
    assert_eq!(
        p.check(&d(None, Some("::ffff:169.254.169.254"), 80), None),
        Err(Blocked::Metadata),
        "v4-mapped"
    );
    assert_eq!(
        p.check(&d(None, Some("fd00:ec2::254"), 80), None),
        Err(Blocked::Metadata)
    );
    // Listed by address: open.
    assert_eq!(p.check(&d(None, Some("169.254.170.2"), 80), None), Ok(()));
}

#[test]
fn authorities_split_into_host_and_port() {
    let s = |a: &str| {
        let (h, p) = split_authority(a.as_bytes());
        (h.map(|h| String::from_utf8(h.to_vec()).unwrap()), p)
    };
    assert_eq!(s("a.test:8080"), (Some("a.test".into()), Some(8080)));
    assert_eq!(s("a.test."), (Some("a.test".into()), None));
    assert_eq!(s("[::1]:443"), (Some("::1".into()), Some(443)));
    assert_eq!(s("::1"), (Some("::1".into()), None));
    assert_eq!(s(""), (None, None));
}

#[test]
fn config_errors_name_the_field_and_line() {
    let bad = |tail: &str| {
        let y = format!(
            "listeners:\n  - name: outbound\n    address: 127.0.0.1:0\n    cluster: c\nclusters:\n  - name: c\n    endpoints: [\"127.0.0.1:1\"]\noutbound_traffic_policy:\n{tail}"
        );
        Config::from_yaml(&y).unwrap_err().to_string()
    };
    assert_eq!(
        bad("  mode: registry_only\n  listeners: [nope]\n"),
        "outbound_traffic_policy.listeners[0]: unknown listener \"nope\" at line 10"
    );
    assert_eq!(
        bad("  mode: strict\n  listeners: [outbound]\n"),
        "outbound_traffic_policy.mode: unknown mode \"strict\" (expected allow_any or registry_only) at line 9"
    );
    assert_eq!(
        bad("  mode: registry_only\n  listeners: [outbound]\n  registry:\n    - ports: [80]\n"),
        "outbound_traffic_policy.registry[0]: an entry needs hosts or cidrs (ports alone name no destination) at line 12"
    );
    assert_eq!(
        bad("  mode: registry_only\n  listeners: [outbound]\n  registry:\n    - cidrs: [10.0.0.0/40]\n"),
        "outbound_traffic_policy.registry[0].cidrs[0]: \"10.0.0.0/40\": prefix length must be 0..=32 at line 12"
    );
    assert_eq!(
        bad("  mode: registry_only\n  listeners: [outbound]\n  registry:\n    - hosts: [\"a.*.test\"]\n"),
        "outbound_traffic_policy.registry[0].hosts[0]: \"a.*.test\": `*` may only stand alone or as a leading `*.` at line 12"
    );
    assert_eq!(
        bad("  mode: registry_only\n  listeners: [outbound]\n  registry:\n    - hosts: [a.test]\n      ports: [0]\n"),
        "outbound_traffic_policy.registry[0].ports[0]: \"0\" is not a port (1..=65535) at line 13"
    );
    assert_eq!(
        bad("  mode: registry_only\n"),
        "outbound_traffic_policy.listeners: name the listeners that carry outbound traffic (e.g. [outbound]) at line 8"
    );
    assert!(
        bad("  mode: registry_only\n  listeners: [outbound]\n  registy: []\n")
            .contains("unknown field `registy`")
    );
    // allow_any attaches nothing.
    let y = "listeners:\n  - name: outbound\n    address: 127.0.0.1:0\n    cluster: c\nclusters:\n  - name: c\n    endpoints: [\"127.0.0.1:1\"]\noutbound_traffic_policy:\n  mode: allow_any\n  listeners: [outbound]\n";
    assert!(Config::from_yaml(y).unwrap().listeners[0].egress.is_none());
}
