use super::*;

fn err(src: &str) -> String {
    Config::from_yaml(src).unwrap_err().to_string()
}

const GOOD: &str = "\
listeners:
  - name: l
    address: 127.0.0.1:0
    cluster: c
clusters:
  - name: c
    endpoints: [\"127.0.0.1:80\"]
";

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded_default();
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[0].address.port(), 15001);
    assert_eq!(c.clusters[c.listeners[1].tcp_cluster()].name, "local-app");
}

#[test]
fn good_config_has_defaults() {
    let c = Config::from_yaml(GOOD).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.backlog, 1024);
    assert_eq!(l.l4_mode, L4Mode::Copy);
    assert_eq!(c.clusters[0].lb_policy, LbPolicy::RoundRobin);
    assert_eq!(c.drain_timeout, Duration::from_secs(30));
}

#[test]
fn bad_port_names_field_and_line() {
    let src = "\
listeners:
  - name: l
    address: 127.0.0.1:0
    cluster: b
clusters:
  - name: a
    endpoints: [\"127.0.0.1:1\"]
  - name: b
    endpoints:
      - \"127.0.0.1:80x\"
";
    assert_eq!(
        err(src),
        "clusters[1].endpoints[0]: invalid port \"80x\" at line 10"
    );
}

#[test]
fn unknown_field_is_an_error_with_line() {
    let src = GOOD.replace("    cluster: c\n", "    cluster: c\n    clutser: d\n");
    let e = err(&src);
    assert!(
        e.starts_with("listeners[0].clutser: unknown field `clutser`"),
        "{e}"
    );
    assert!(e.ends_with("at line 5"), "{e}");
}

#[test]
fn duplicate_names_unknown_refs_and_empty_endpoints() {
    let dup = GOOD.replace(
        "clusters:\n",
        "clusters:\n  - name: c\n    endpoints: [\"127.0.0.1:2\"]\n",
    );
    assert_eq!(
        err(&dup),
        "clusters[1].name: duplicate name \"c\" at line 8"
    );
    let unknown = GOOD.replace("cluster: c", "cluster: nope");
    assert_eq!(
        err(&unknown),
        "listeners[0].cluster: unknown cluster \"nope\" at line 4"
    );
    let empty = GOOD.replace("[\"127.0.0.1:80\"]", "[]");
    assert_eq!(
        err(&empty),
        "clusters[0].endpoints: a static cluster needs at least one endpoint at line 7"
    );
}

#[test]
fn bad_values_name_their_field() {
    let e = err(&GOOD.replace("127.0.0.1:0", "nowhere"));
    assert!(
        e.starts_with("listeners[0].address: invalid socket address"),
        "{e}"
    );
    let e = err(&GOOD.replace(
        "    cluster: c\n",
        "    cluster: c\n    idle_timeout: 5 parsecs\n",
    ));
    assert!(
        e.starts_with("listeners[0].idle_timeout: invalid duration"),
        "{e}"
    );
    let e = err(&GOOD.replace(
        "    cluster: c\n",
        "    cluster: c\n    l4_mode: teleport\n",
    ));
    assert!(e.contains("l4_mode: unknown mode \"teleport\""), "{e}");
    let e = err(&GOOD.replace("name: c\n", "name: c\n    lb_policy: random\n"));
    assert!(e.contains("clusters[0].lb_policy: unknown policy"), "{e}");
    let e = err("listeners: [\n");
    assert!(e.contains("line"), "{e}");
}

#[test]
fn upstream_mark_accepts_numbers_and_hex_strings() {
    let with = |v: &str| Config::from_yaml(&format!("upstream_mark: {v}\n{GOOD}"));
    assert_eq!(with("1337").unwrap().upstream_mark, Some(1337));
    assert_eq!(with("\"0x539\"").unwrap().upstream_mark, Some(0x539));
    assert_eq!(with("0x539").unwrap().upstream_mark, Some(0x539));
    assert!(with("0").unwrap_err().to_string().contains("upstream_mark"));
    assert!(with("\"lots\"").is_err());
    assert_eq!(Config::from_yaml(GOOD).unwrap().upstream_mark, None);
}

#[test]
fn override_ip_only_on_original_dst_clusters() {
    let src = "\
listeners:
  - name: l
    address: 127.0.0.1:0
    original_dst: true
    cluster: c
clusters:
  - name: c
    type: original_dst
    override_ip: 127.0.0.1
";
    let c = Config::from_yaml(src).unwrap();
    assert_eq!(
        c.clusters[0].kind,
        ClusterKind::OriginalDst {
            override_ip: Some("127.0.0.1".parse().unwrap())
        }
    );
    let bad = src.replace("127.0.0.1\n", "localhost\n");
    assert!(err(&bad).contains("override_ip"));
    let e = err(&GOOD.replace("endpoints:", "override_ip: 127.0.0.1\n    endpoints:"));
    assert!(e.contains("override_ip"), "{e}");
}

#[test]
fn endpoints_keep_their_written_text_only_when_it_is_not_the_address() {
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let own = Endpoint::new(addr, "127.0.0.1:80");
    assert!(own.written.is_none(), "an ip:port costs no copy");
    assert_eq!(own.written(), "127.0.0.1:80");
    let named = Endpoint::new(addr, "localhost:80");
    assert_eq!(named.written(), "localhost:80");
    // An address written another way than its display (leading zeros, IPv6 spelling) is kept.
    let v6: SocketAddr = "[::1]:80".parse().unwrap();
    assert_eq!(Endpoint::new(v6, "[0:0::1]:80").written(), "[0:0::1]:80");
    assert_ne!(own, named);
}

#[test]
fn a_cluster_keeps_its_rarely_used_blocks_boxed() {
    // An xDS config carries thousands of clusters: health checks, TLS and DNS discovery are
    // boxed (a pointer each when absent), endpoints hold no copy of an `ip:port` text.
    assert!(
        std::mem::size_of::<Cluster>() <= 400,
        "{}",
        std::mem::size_of::<Cluster>()
    );
    assert!(
        std::mem::size_of::<Endpoint>() <= 48,
        "{}",
        std::mem::size_of::<Endpoint>()
    );
}
