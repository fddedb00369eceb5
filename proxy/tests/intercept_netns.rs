//! Transparent interception end to end, in network namespaces (root only; CI runs as root).
//!
//! `app` (10.200.0.1) runs HTTP servers on :8080 and :8081, Shardcar and the rules; `peer`
//! (10.200.0.2) runs HTTP servers on :9090 and :9091. Every server answers with the client
//! address it saw, so a client can tell whether its own socket reached the server (direct) or
//! the proxy's (captured). Each test runs both backends' rules in one mode and checks:
//! (a) outbound capture on 15001 with the original destination in the proxy's log,
//! (b) inbound capture on 15006 delivered to the app at 127.0.0.1:8080,
//! (c) the proxy's uid and mark are not captured (and the proxy's own upstream connections,
//!     which carry the mark, are not captured again — else (a) would loop and fail),
//! (d) excluded ports bypass the proxy, a direct hit on 15006 is refused, not looped,
//! (e) after uninstall every table, chain, rule, `ip rule` and route equals the pre-install state.
//!
//! Not root: every test here fails, saying why, so a green run always means they ran. To skip
//! them on purpose set `SHARDCAR_ALLOW_SKIP=1`; each then prints `SKIPPED <name>` to stderr
//! (visible with `--nocapture`) and passes.

mod netns;

use netns::{get, Pair, Proxy, WhoAmI, APP_IP, PEER_IP};

const CONFIG: &str = "\
upstream_mark: 0x539
listeners:
  - name: outbound
    address: 0.0.0.0:15001
    original_dst: true
    cluster: passthrough
  - name: inbound
    address: 0.0.0.0:15006
    original_dst: true
    transparent: true
    cluster: inbound-local
clusters:
  - name: passthrough
    type: original_dst
  - name: inbound-local
    type: original_dst
    override_ip: 127.0.0.1
";

const UID: &str = "1337";

/// Foreign rules in every built-in chain we hook, so "uninstall removes only what it added" is
/// checked against rules that must survive (and iptables-nft's lazily created built-in chains
/// exist before install).
fn add_foreign_rules(pair: &Pair) {
    for tool in ["iptables", "ip6tables"] {
        for (table, chain) in [
            ("nat", "PREROUTING"),
            ("nat", "OUTPUT"),
            ("mangle", "PREROUTING"),
        ] {
            pair.exec(
                &pair.app,
                &[
                    tool, "-t", table, "-A", chain, "-p", "udp", "--dport", "53", "-j", "ACCEPT",
                ],
            );
        }
    }
    pair.exec(&pair.app, &["nft", "add", "table", "inet", "foreign"]);
}

fn intercept(pair: &Pair, verb: &str, mode: &str, backend: &str) {
    let bin = env!("CARGO_BIN_EXE_shardcar");
    pair.exec(
        &pair.app,
        &[
            bin,
            "intercept",
            verb,
            "--mode",
            mode,
            "--backend",
            backend,
            "--mark",
            "0x539",
            "--proxy-uid",
            UID,
            "--exclude-inbound-ports",
            "8081",
            "--exclude-outbound-ports",
            "9091",
        ],
    );
}

/// A GET as another uid, through curl: `(local address, what the server saw)`.
fn curl_as_uid(pair: &Pair, url: &str) -> (String, String) {
    let out = pair.exec(
        &pair.app,
        &[
            "setpriv",
            "--reuid",
            UID,
            "--regid",
            UID,
            "--clear-groups",
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-w",
            " %{local_ip}:%{local_port}",
            url,
        ],
    );
    let (body, local) = out.rsplit_once(' ').expect("curl output");
    (local.to_string(), body.to_string())
}

fn scenario(mode: &str, backend: &str) {
    let pair = Pair::create();
    let _app = WhoAmI::start(&pair.app, "0.0.0.0:8080");
    let _app_excluded = WhoAmI::start(&pair.app, "0.0.0.0:8081");
    let _peer = WhoAmI::start(&pair.peer, &format!("{PEER_IP}:9090"));
    let _peer_excluded = WhoAmI::start(&pair.peer, &format!("{PEER_IP}:9091"));
    add_foreign_rules(&pair);

    // Without rules every path is direct.
    assert!(get(&pair.app, &format!("{PEER_IP}:9090"), None).direct());
    assert!(get(&pair.peer, &format!("{APP_IP}:8080"), None).direct());

    let before = pair.snapshot(&pair.app);
    intercept(&pair, "install", mode, backend);
    intercept(&pair, "install", mode, backend); // idempotent: replaces, does not duplicate
    let installed = pair.snapshot(&pair.app);
    let show = |pair: &Pair| {
        let bin = env!("CARGO_BIN_EXE_shardcar");
        pair.exec(
            &pair.app,
            &[
                bin,
                "intercept",
                "show",
                "--backend",
                backend,
                "--mark",
                "0x539",
            ],
        )
    };
    let shown = show(&pair);
    assert!(
        shown.starts_with("shardcar interception: installed\n"),
        "{shown}"
    );
    assert!(shown.contains("SHARDCAR_INBOUND"), "{shown}");
    let jumps = match backend {
        "iptables" => installed
            .matches("-A OUTPUT -p tcp -j SHARDCAR_OUTBOUND\n")
            .count(),
        _ => installed.matches("jump SHARDCAR_OUTBOUND\n").count(),
    };
    assert_eq!(
        jumps, 1,
        "a second install must not duplicate:\n{installed}"
    );

    let dir = netns::TempDir::new(&format!("intercept-{mode}-{backend}"));
    let cfg = dir.0.join("shardcar.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut proxy = Proxy::start(&pair.app, &cfg);

    // (a) outbound: captured on 15001, reaches the peer through the proxy's (marked) socket.
    let out = get(&pair.app, &format!("{PEER_IP}:9090"), None);
    let saw = out
        .server_saw
        .unwrap_or_else(|| panic!("outbound got no answer; log:\n{}", proxy.drain()));
    assert_ne!(saw, out.local, "outbound was not captured");
    assert_eq!(saw.ip().to_string(), APP_IP);
    assert!(
        proxy.wait_log(&format!("original_dst={PEER_IP}:9090")),
        "no original destination in the log:\n{}",
        proxy.drain()
    );

    // (b) inbound: captured on 15006, delivered to the app at 127.0.0.1:8080.
    let inb = get(&pair.peer, &format!("{APP_IP}:8080"), None);
    let saw = inb
        .server_saw
        .unwrap_or_else(|| panic!("inbound got no answer; log:\n{}", proxy.drain()));
    assert!(
        saw.ip().is_loopback(),
        "inbound not delivered via 127.0.0.1: app saw {saw}"
    );
    assert!(
        proxy.wait_log(&format!("original_dst={APP_IP}:8080")),
        "{}",
        proxy.drain()
    );

    // (c) the proxy's uid and mark are left alone.
    assert!(
        get(&pair.app, &format!("{PEER_IP}:9090"), Some(0x539)).direct(),
        "marked traffic was captured"
    );
    let (local, saw) = curl_as_uid(&pair, &format!("http://{PEER_IP}:9090/"));
    assert_eq!(local, saw, "traffic of uid {UID} was captured");

    // (d) excluded ports bypass the proxy; a direct hit on the inbound port is refused.
    assert!(
        get(&pair.app, &format!("{PEER_IP}:9091"), None).direct(),
        "excluded outbound port captured"
    );
    assert!(
        get(&pair.peer, &format!("{APP_IP}:8081"), None).direct(),
        "excluded inbound port captured"
    );
    let looped = get(&pair.peer, &format!("{APP_IP}:15006"), None);
    assert_eq!(
        looped.server_saw, None,
        "a connection to the proxy's own port must be refused"
    );
    assert!(proxy.wait_log("refusing to loop"), "{}", proxy.drain());

    drop(proxy);
    // (e) uninstall restores the exact pre-install state.
    intercept(&pair, "uninstall", mode, backend);
    let after = pair.snapshot(&pair.app);
    assert_eq!(show(&pair), "shardcar interception: not installed\n");
    assert_eq!(
        before, after,
        "uninstall left something behind or removed something"
    );
    assert!(get(&pair.app, &format!("{PEER_IP}:9090"), None).direct());
}

#[test]
fn redirect_mode_iptables() {
    if netns::root_or_skip("redirect_mode_iptables") {
        scenario("redirect", "iptables");
    }
}

#[test]
fn tproxy_mode_iptables() {
    if netns::root_or_skip("tproxy_mode_iptables") {
        scenario("tproxy", "iptables");
    }
}

#[test]
fn redirect_mode_nft() {
    if netns::root_or_skip("redirect_mode_nft") {
        scenario("redirect", "nft");
    }
}

#[test]
fn tproxy_mode_nft() {
    if netns::root_or_skip("tproxy_mode_nft") {
        scenario("tproxy", "nft");
    }
}

/// Uninstall finds our rules whichever backend it is told, so changing `--backend` between
/// install and uninstall (e.g. in /etc/default/shardcar) leaves nothing behind.
#[test]
fn uninstall_with_the_other_backend_still_removes_everything() {
    if !netns::root_or_skip("uninstall_with_the_other_backend_still_removes_everything") {
        return;
    }
    let pair = Pair::create();
    add_foreign_rules(&pair);
    let before = pair.snapshot(&pair.app);
    for (install, uninstall) in [("iptables", "nft"), ("nft", "iptables")] {
        intercept(&pair, "install", "tproxy", install);
        assert_ne!(before, pair.snapshot(&pair.app));
        intercept(&pair, "uninstall", "tproxy", uninstall);
        assert_eq!(
            before,
            pair.snapshot(&pair.app),
            "installed with {install}, removed with {uninstall}"
        );
    }
}

/// A proxy whose upstream sockets are not excluded by the rules (no `upstream_mark`) captures
/// its own connections: the shard recognises the looped connection and refuses it instead of
/// connecting again and again.
#[test]
fn proxy_capturing_itself_is_refused_not_looped() {
    if !netns::root_or_skip("proxy_capturing_itself_is_refused_not_looped") {
        return;
    }
    let pair = Pair::create();
    let _peer = WhoAmI::start(&pair.peer, &format!("{PEER_IP}:9090"));
    intercept(&pair, "install", "redirect", "iptables");
    let dir = netns::TempDir::new("intercept-selfloop");
    let cfg = dir.0.join("shardcar.yaml");
    std::fs::write(&cfg, CONFIG.replace("upstream_mark: 0x539\n", "")).unwrap();
    let mut proxy = Proxy::start(&pair.app, &cfg);
    let seen = get(&pair.app, &format!("{PEER_IP}:9090"), None);
    assert_eq!(
        seen.server_saw, None,
        "a self-captured proxy must not reach the peer"
    );
    assert!(proxy.wait_log("own upstream socket"), "{}", proxy.drain());
    let log = proxy.drain();
    let hops = log.matches("captured connection").count();
    assert!(hops <= 3, "the loop ran {hops} hops:\n{log}");
    drop(proxy);
    intercept(&pair, "uninstall", "redirect", "iptables");
}

/// With `--ipv6` both families get rules (and TPROXY routes), and uninstall still restores the
/// exact pre-install state. (Traffic is exercised over IPv4 above; this checks the v6 rule set
/// loads into the kernel and comes out again.)
#[test]
fn ipv6_rules_install_and_uninstall_exactly() {
    if !netns::root_or_skip("ipv6_rules_install_and_uninstall_exactly") {
        return;
    }
    let pair = Pair::create();
    add_foreign_rules(&pair);
    let before = pair.snapshot(&pair.app);
    let bin = env!("CARGO_BIN_EXE_shardcar");
    for backend in ["iptables", "nft"] {
        for mode in ["redirect", "tproxy"] {
            let args = |verb| {
                [
                    bin,
                    "intercept",
                    verb,
                    "--mode",
                    mode,
                    "--backend",
                    backend,
                    "--mark",
                    "0x539",
                ]
                .into_iter()
                .chain(["--ipv6", "--exclude-outbound-cidrs", "fd00::/8,10.0.0.0/8"])
                .collect::<Vec<_>>()
            };
            pair.exec(&pair.app, &args("install"));
            let installed = pair.snapshot(&pair.app);
            assert!(
                installed.contains("fd00::/8"),
                "{backend}/{mode}: no v6 rules:\n{installed}"
            );
            if mode == "tproxy" {
                let rules = pair.exec(&pair.app, &["ip", "-6", "rule", "show"]);
                assert!(rules.contains("fwmark 0x80/0x80 lookup 133"), "{rules}");
            }
            pair.exec(&pair.app, &args("uninstall"));
            assert_eq!(
                before,
                pair.snapshot(&pair.app),
                "{backend}/{mode} with --ipv6"
            );
        }
    }
}
