use super::*;

struct Req<'a> {
    host: &'a str,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
}

impl RequestView for Req<'_> {
    fn host(&self) -> &[u8] {
        self.host.as_bytes()
    }
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }
    fn path(&self) -> &[u8] {
        self.path.as_bytes()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
}

fn get<'a>(host: &'a str, path: &'a str) -> Req<'a> {
    Req {
        host,
        method: "GET",
        path,
        headers: &[],
    }
}

fn route(name: &str, matcher: RouteMatch) -> Route {
    Route {
        name: name.into(),
        matcher,
        action: Action::Cluster(0),
        timeout: None,
        retry: RetryPolicy::default(),
        filters: Default::default(),
        mirrors: Default::default(),
    }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path: PathMatch::Prefix(p.into()),
        ..Default::default()
    }
}

fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
    }
}

/// One catch-all route per virtual host, named after the host; returns the chosen vhost name.
fn hosts_table(spec: &[(&str, &[&str])]) -> RouteTable {
    RouteTable::new(
        spec.iter()
            .map(|(n, d)| vhost(n, d, vec![route(n, prefix("/"))]))
            .collect(),
    )
}

fn chosen<'a>(t: &'a RouteTable, req: &Req) -> Option<&'a str> {
    t.select(req).map(|r| r.name.as_str())
}

#[test]
fn host_precedence_exact_then_longest_wildcard_then_any() {
    let t = hosts_table(&[
        ("any", &["*"]),
        ("short", &["*.example.com"]),
        ("long", &["*.api.example.com"]),
        ("exact", &["x.api.example.com", "example.com"]),
    ]);
    assert_eq!(chosen(&t, &get("x.api.example.com", "/")), Some("exact"));
    assert_eq!(chosen(&t, &get("y.api.example.com", "/")), Some("long"));
    assert_eq!(chosen(&t, &get("a.b.api.example.com", "/")), Some("long"));
    assert_eq!(chosen(&t, &get("api.example.com", "/")), Some("short"));
    assert_eq!(chosen(&t, &get("example.com", "/")), Some("exact"));
    // `*.example.com` does not match `example.com` itself nor `badexample.com`.
    assert_eq!(chosen(&t, &get("badexample.com", "/")), Some("any"));
    assert_eq!(chosen(&t, &get("other.org", "/")), Some("any"));
    assert_eq!(chosen(&t, &get("", "/")), Some("any"));
}

#[test]
fn host_is_case_insensitive_and_port_is_ignored() {
    let t = hosts_table(&[
        ("a", &["api.example.com", "*.svc.local"]),
        ("v6", &["[::1]"]),
    ]);
    assert_eq!(chosen(&t, &get("API.Example.COM", "/")), Some("a"));
    assert_eq!(chosen(&t, &get("api.example.com:8080", "/")), Some("a"));
    assert_eq!(chosen(&t, &get("api.example.com.", "/")), Some("a"));
    assert_eq!(chosen(&t, &get("Foo.SVC.local:80", "/")), Some("a"));
    assert_eq!(chosen(&t, &get("[::1]:8080", "/")), Some("v6"));
    assert_eq!(chosen(&t, &get("[::1]", "/")), Some("v6"));
    // No `*`: unknown hosts get no route.
    assert_eq!(chosen(&t, &get("api.example.org", "/")), None);
    assert_eq!(chosen(&t, &get("", "/")), None);
    let long = format!("{}.svc.local", "a".repeat(300));
    assert_eq!(chosen(&t, &get(&long, "/")), None);
}

#[test]
fn strip_port_cases() {
    assert_eq!(strip_port(b"a.b:80"), b"a.b");
    assert_eq!(strip_port(b"a.b"), b"a.b");
    assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
    assert_eq!(strip_port(b"::1"), b"::1");
}

#[test]
fn path_kinds_and_query_stripping() {
    let exact = RouteMatch {
        path: PathMatch::Exact("/x".into()),
        ..Default::default()
    };
    let re = RouteMatch {
        path: PathMatch::Regex(anchored_regex("/v[0-9]+/.*").unwrap()),
        ..Default::default()
    };
    let t = RouteTable::new(vec![vhost(
        "h",
        &["*"],
        vec![
            route("exact", exact),
            route("regex", re),
            route("prefix", prefix("/static/")),
        ],
    )]);
    let pick = |p| chosen(&t, &get("h", p));
    assert_eq!(pick("/x"), Some("exact"));
    assert_eq!(pick("/x?y=1"), Some("exact"));
    assert_eq!(pick("/xy"), None);
    assert_eq!(pick("/x/"), None);
    assert_eq!(pick("/v12/users"), Some("regex"));
    // Anchored: a regex match in the middle is not enough.
    assert_eq!(pick("/api/v1/users"), None);
    assert_eq!(pick("/v1"), None);
    assert_eq!(pick("/static/app.js"), Some("prefix"));
    assert_eq!(pick("/static"), None);
    assert_eq!(pick("http://h:80/x?q"), Some("exact"));
    assert_eq!(pick("http://h/static/a"), Some("prefix"));
}

#[test]
fn path_of_reduces_targets() {
    assert_eq!(path_of(b"/a?b"), b"/a");
    assert_eq!(path_of(b"/a#f"), b"/a");
    assert_eq!(path_of(b"http://h"), b"/");
    assert_eq!(path_of(b"http://h?q"), b"/");
    assert_eq!(path_of(b"http://h:1/p/q?z"), b"/p/q");
    assert_eq!(path_of(b"*"), b"*");
}

#[test]
fn methods_and_headers() {
    let m = RouteMatch {
        methods: vec!["POST".into(), "PUT".into()],
        ..Default::default()
    };
    let h = RouteMatch {
        headers: vec![
            HeaderMatch {
                name: "x-canary".into(),
                value: HeaderValueMatch::Exact("1".into()),
            },
            HeaderMatch {
                name: "x-debug".into(),
                value: HeaderValueMatch::Present(true),
            },
            HeaderMatch {
                name: "user-agent".into(),
                value: HeaderValueMatch::Regex(anchored_regex("curl.*").unwrap()),
            },
            HeaderMatch {
                name: "x-internal".into(),
                value: HeaderValueMatch::Present(false),
            },
        ],
        ..Default::default()
    };
    let t = RouteTable::new(vec![vhost(
        "h",
        &["*"],
        vec![route("headers", h), route("methods", m)],
    )]);
    let req = |method, headers| Req {
        host: "h",
        method,
        path: "/",
        headers,
    };
    assert_eq!(chosen(&t, &req("GET", &[])), None);
    assert_eq!(chosen(&t, &req("POST", &[])), Some("methods"));
    assert_eq!(chosen(&t, &req("PUT", &[])), Some("methods"));
    assert_eq!(chosen(&t, &req("post", &[])), None);
    let all: &[(&str, &str)] = &[
        ("X-Canary", "1"),
        ("x-debug", ""),
        ("User-Agent", "curl/8.0"),
    ];
    assert_eq!(chosen(&t, &req("GET", all)), Some("headers"));
    let wrong_value: &[(&str, &str)] = &[
        ("x-canary", "10"),
        ("x-debug", "y"),
        ("user-agent", "curl/8"),
    ];
    assert_eq!(chosen(&t, &req("GET", wrong_value)), None);
    let no_debug: &[(&str, &str)] = &[("x-canary", "1"), ("user-agent", "curl/8")];
    assert_eq!(chosen(&t, &req("GET", no_debug)), None);
    // Regex is anchored: "xcurl" does not match `curl.*`.
    let wget: &[(&str, &str)] = &[("x-canary", "1"), ("x-debug", "1"), ("user-agent", "xcurl")];
    assert_eq!(chosen(&t, &req("GET", wget)), None);
    let internal: &[(&str, &str)] = &[
        ("x-canary", "1"),
        ("x-debug", "1"),
        ("user-agent", "curl"),
        ("x-internal", "1"),
    ];
    assert_eq!(chosen(&t, &req("GET", internal)), None);
    assert_eq!(chosen(&t, &req("POST", internal)), Some("methods"));
}

#[test]
fn first_match_wins_in_config_order() {
    let t = RouteTable::new(vec![vhost(
        "h",
        &["*"],
        vec![
            route("api", prefix("/api")),
            route("root", prefix("/")),
            route("api-v2", prefix("/api/v2")),
        ],
    )]);
    assert_eq!(chosen(&t, &get("h", "/api/v2/x")), Some("api"));
    assert_eq!(chosen(&t, &get("h", "/other")), Some("root"));
    // The matched virtual host has no matching route: no fall-through to `*`.
    let t = RouteTable::new(vec![
        vhost("exact", &["a.com"], vec![route("only-x", prefix("/x"))]),
        vhost("any", &["*"], vec![route("any", prefix("/"))]),
    ]);
    assert_eq!(chosen(&t, &get("a.com", "/y")), None);
    assert_eq!(chosen(&t, &get("b.com", "/y")), Some("any"));
}

#[test]
fn empty_table_selects_nothing() {
    assert!(RouteTable::default().select(&get("h", "/")).is_none());
}

#[test]
fn weighted_pick_covers_ranges_exactly() {
    let a = Action::Weighted {
        clusters: vec![(3, 90), (7, 0), (5, 10)],
        total: 100,
    };
    let mut counts = [0u32; 8];
    for r in 0..100_000u32 {
        counts[a.pick_weighted(r).unwrap()] += 1;
    }
    // r mod 100 is uniform over 0..100 here: exactly 90% / 0% / 10%.
    assert_eq!(counts[3], 90_000);
    assert_eq!(counts[7], 0);
    assert_eq!(counts[5], 10_000);
    assert_eq!(a.pick_weighted(89), Some(3));
    assert_eq!(a.pick_weighted(90), Some(5));
    assert_eq!(a.pick_weighted(u32::MAX), Some(5)); // 4294967295 % 100 = 95
}

#[test]
fn weighted_pick_distribution_from_a_deterministic_generator() {
    let a = Action::Weighted {
        clusters: vec![(0, 1), (1, 2), (2, 7)],
        total: 10,
    };
    // xorshift32: deterministic, roughly uniform.
    let mut x = 0x9e37_79b9u32;
    let mut counts = [0u32; 3];
    let n = 20_000;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        counts[a.pick_weighted(x).unwrap()] += 1;
    }
    for (i, want) in [0.1, 0.2, 0.7].iter().enumerate() {
        let got = f64::from(counts[i]) / f64::from(n);
        assert!((got - want).abs() < 0.02, "cluster {i}: {got} vs {want}");
    }
    assert_eq!(Action::Cluster(4).pick_weighted(123), Some(4));
    let direct = Action::Direct {
        status: 200,
        body: String::new(),
    };
    assert_eq!(direct.pick_weighted(1), None);
}

#[test]
fn a_cloned_table_matches_like_the_original() {
    let re = RouteMatch {
        path: PathMatch::Regex(anchored_regex("/r/[a-z]+").unwrap()),
        ..Default::default()
    };
    let t = RouteTable::new(vec![vhost("h", &["h.com"], vec![route("re", re)])]);
    let per_shard = t.clone();
    let other_thread = std::thread::spawn(move || {
        chosen(&per_shard, &get("H.com:1", "/r/abc")).map(str::to_string)
    });
    assert_eq!(other_thread.join().unwrap().as_deref(), Some("re"));
    assert_eq!(chosen(&t, &get("h.com", "/r/abc")), Some("re"));
    assert_eq!(chosen(&t, &get("h.com", "/r/ABC")), None);
}
