//! Golden tests: the exact commands for representative option sets, uninstall computed from
//! real `iptables-save`/`ip` output, and the committed `kernel-config/intercept/` files.

use super::*;

fn opts(mode: Mode, backend: Backend) -> Options {
    let mut o = Options::new(mode, backend);
    o.mark = Some(0x539);
    o
}

#[test]
fn redirect_iptables_with_every_exclusion() {
    let mut o = opts(Mode::Redirect, Backend::Iptables);
    o.proxy_uid = Some(1337);
    o.proxy_gid = Some(1338);
    o.inbound_ports = "8080,9000".parse().unwrap();
    o.exclude_inbound_ports = vec![22, 15006];
    o.exclude_outbound_cidrs = vec![
        "10.0.0.0/8".parse().unwrap(),
        "169.254.169.254".parse().unwrap(),
    ];
    o.exclude_outbound_ports = vec![53];
    o.validate().unwrap();
    assert_eq!(
        install_plan(&o).to_shell(),
        "\
iptables -t nat -N SHARDCAR_INBOUND
iptables -t nat -N SHARDCAR_IN_REDIRECT
iptables -t nat -A SHARDCAR_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
iptables -t nat -A SHARDCAR_INBOUND -i lo -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 22 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15000 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15001 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15006 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 15020 -j RETURN
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 8080 -j SHARDCAR_IN_REDIRECT
iptables -t nat -A SHARDCAR_INBOUND -p tcp --dport 9000 -j SHARDCAR_IN_REDIRECT
iptables -t nat -N SHARDCAR_OUTBOUND
iptables -t nat -N SHARDCAR_REDIRECT
iptables -t nat -A SHARDCAR_REDIRECT -p tcp -j REDIRECT --to-ports 15001
iptables -t nat -A SHARDCAR_OUTBOUND -m owner --uid-owner 1337 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -m owner --gid-owner 1338 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -m mark --mark 0x539 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -d 127.0.0.0/8 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -d 10.0.0.0/8 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -d 169.254.169.254/32 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -p tcp --dport 53 -j RETURN
iptables -t nat -A SHARDCAR_OUTBOUND -p tcp -j SHARDCAR_REDIRECT
iptables -t nat -A PREROUTING -p tcp -j SHARDCAR_INBOUND
iptables -t nat -A OUTPUT -p tcp -j SHARDCAR_OUTBOUND
"
    );
}

#[test]
fn tproxy_iptables_ipv6_without_inbound_ports_only_captures_outbound() {
    let mut o = opts(Mode::Tproxy, Backend::Iptables);
    o.ipv6 = true;
    o.inbound_ports = "".parse().unwrap();
    o.exclude_outbound_cidrs = vec!["fd00::/8".parse().unwrap()];
    o.validate().unwrap();
    let shell = install_plan(&o).to_shell();
    assert!(shell.starts_with(
        "\
ip rule add fwmark 0x80/0x80 lookup 133
ip route add local default dev lo table 133
ip -6 rule add fwmark 0x80/0x80 lookup 133
ip -6 route add local default dev lo table 133
iptables -t nat -N SHARDCAR_OUTBOUND
"
    ));
    assert!(!shell.contains("PREROUTING"), "{shell}");
    assert!(shell.contains("ip6tables -t nat -A SHARDCAR_OUTBOUND -d ::1/128 -j RETURN\n"));
    assert!(shell.contains("ip6tables -t nat -A SHARDCAR_OUTBOUND -d fd00::/8 -j RETURN\n"));
    assert!(!shell.contains("iptables -t nat -A SHARDCAR_OUTBOUND -d fd00::/8"));
}

#[test]
fn tproxy_iptables_inbound_chain() {
    let o = opts(Mode::Tproxy, Backend::Iptables);
    let shell = iptables::install(&o, Family::V4).to_shell();
    let inbound: String = shell
        .lines()
        .filter(|l| l.contains("-t mangle"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        inbound,
        "\
iptables -t mangle -N SHARDCAR_INBOUND
iptables -t mangle -N SHARDCAR_TPROXY
iptables -t mangle -N SHARDCAR_DIVERT
iptables -t mangle -A SHARDCAR_DIVERT -j MARK --set-xmark 0x80/0x80
iptables -t mangle -A SHARDCAR_DIVERT -j ACCEPT
iptables -t mangle -A SHARDCAR_TPROXY -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x80/0x80
iptables -t mangle -A SHARDCAR_INBOUND -i lo -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp -m socket --transparent -j SHARDCAR_DIVERT
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15000 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15001 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15006 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --dport 15020 -j RETURN
iptables -t mangle -A SHARDCAR_INBOUND -p tcp --syn -j SHARDCAR_TPROXY
iptables -t mangle -A PREROUTING -p tcp -j SHARDCAR_INBOUND
"
    );
}

#[test]
fn nft_redirect_with_port_list() {
    let mut o = opts(Mode::Redirect, Backend::Nft);
    o.inbound_ports = "8080,9000".parse().unwrap();
    o.exclude_outbound_ports = vec![53];
    assert_eq!(
        nft::table(&o, Family::V4),
        "\
table ip shardcar {
\tchain SHARDCAR_OUTBOUND {
\t\tmeta mark 0x539 return
\t\tip daddr 127.0.0.0/8 return
\t\ttcp dport 53 return
\t\tmeta l4proto tcp redirect to :15001
\t}
\tchain SHARDCAR_INBOUND {
\t\tiifname \"lo\" return
\t\ttcp dport 15000 return
\t\ttcp dport 15001 return
\t\ttcp dport 15006 return
\t\ttcp dport 15020 return
\t\ttcp dport { 8080, 9000 } redirect to :15006
\t}
\tchain nat_prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tmeta l4proto tcp jump SHARDCAR_INBOUND
\t}
\tchain nat_output {
\t\ttype nat hook output priority -100; policy accept;
\t\tmeta l4proto tcp jump SHARDCAR_OUTBOUND
\t}
}
"
    );
}

/// Real `iptables-save` output (iptables-nft 1.8.9) with foreign rules around ours.
const SAVE: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables)
*mangle
:PREROUTING ACCEPT [0:0]
:SHARDCAR_DIVERT - [0:0]
:SHARDCAR_INBOUND - [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT
-A PREROUTING -p tcp -j SHARDCAR_INBOUND
-A SHARDCAR_INBOUND -p tcp -m socket --transparent -j SHARDCAR_DIVERT
COMMIT
*nat
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:SHARDCAR_OUTBOUND - [0:0]
-A OUTPUT -j DOCKER
-A OUTPUT -p tcp -j SHARDCAR_OUTBOUND
-A SHARDCAR_OUTBOUND -d 127.0.0.0/8 -j RETURN
COMMIT
";

#[test]
fn uninstall_removes_our_jumps_and_chains_only() {
    let i = iptables::Installed::parse(SAVE);
    assert_eq!(
        iptables::uninstall(&i, Family::V4).to_shell(),
        "\
iptables -t mangle -D PREROUTING -p tcp -j SHARDCAR_INBOUND
iptables -t nat -D OUTPUT -p tcp -j SHARDCAR_OUTBOUND
iptables -t mangle -F SHARDCAR_DIVERT
iptables -t mangle -F SHARDCAR_INBOUND
iptables -t nat -F SHARDCAR_OUTBOUND
iptables -t mangle -X SHARDCAR_DIVERT
iptables -t mangle -X SHARDCAR_INBOUND
iptables -t nat -X SHARDCAR_OUTBOUND
"
    );
    assert!(iptables::Installed::parse(
        "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j DOCKER\nCOMMIT\n"
    )
    .is_empty());
}

#[test]
fn uninstall_of_a_fresh_install_matches_what_install_created() {
    for mode in [Mode::Redirect, Mode::Tproxy] {
        let o = opts(mode, Backend::Iptables);
        let created = iptables::Installed::from_plan(&iptables::install(&o, Family::V4));
        let jumps: Vec<_> = created.jumps.iter().map(|(_, r)| r.as_str()).collect();
        let want_in = if mode == Mode::Redirect {
            "nat"
        } else {
            "mangle"
        };
        assert_eq!(
            jumps,
            [
                "PREROUTING -p tcp -j SHARDCAR_INBOUND",
                "OUTPUT -p tcp -j SHARDCAR_OUTBOUND"
            ]
        );
        assert_eq!(created.jumps[0].0, want_in);
        assert!(created
            .chains
            .iter()
            .all(|(_, c)| c.starts_with("SHARDCAR_")));
    }
}

#[test]
fn routes_are_found_and_removed_per_family() {
    let o = opts(Mode::Tproxy, Backend::Nft);
    let rules = "0:\tfrom all lookup local\n32765:\tfrom all fwmark 0x80/0x80 lookup 133\n32766:\tfrom all lookup main\n";
    let routes = "local default dev lo table 133 scope host \nlocal 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 \n";
    let r = route::Installed::parse(&o, rules, routes);
    assert_eq!(
        r,
        route::Installed {
            rules: 1,
            route: true
        }
    );
    assert_eq!(
        route::uninstall(&o, Family::V6, r).to_shell(),
        "ip -6 rule del fwmark 0x80/0x80 lookup 133\nip -6 route del local default dev lo table 133\n"
    );
    assert_eq!(
        route::Installed::parse(&o, "0:\tfrom all lookup local\n", ""),
        route::Installed::default()
    );
}

#[test]
fn nft_tables_are_found_by_name_and_family() {
    let list = "table ip nat\ntable ip shardcar\ntable inet filter\ntable ip6 shardcar\n";
    assert_eq!(nft::installed(list), vec![Family::V4, Family::V6]);
    assert_eq!(
        nft::uninstall(&nft::installed(list)).to_shell(),
        "nft delete table ip shardcar\nnft delete table ip6 shardcar\n"
    );
}

#[test]
fn validation_refuses_loops_and_clashes() {
    let o = Options::new(Mode::Redirect, Backend::Iptables);
    assert!(o.validate().unwrap_err().contains("--proxy-uid"));
    let mut o = opts(Mode::Tproxy, Backend::Iptables);
    o.mark = Some(0x81);
    assert!(o.validate().unwrap_err().contains("overlaps"));
    let mut o = opts(Mode::Redirect, Backend::Iptables);
    o.exclude_outbound_cidrs = vec!["fd00::/8".parse().unwrap()];
    assert!(o.validate().unwrap_err().contains("--ipv6"));
    assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    assert_eq!(crate::config::parse_u32("0x539"), Ok(1337));
    assert!("8080,x".parse::<InboundPorts>().is_err());
}

/// The committed `kernel-config/intercept/` files equal what the source renders.
/// `SHARDCAR_BLESS=1` rewrites them.
#[test]
fn kernel_config_files_match_the_source() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-config");
    let bless = std::env::var_os("SHARDCAR_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, want) in scripts::files() {
        let p = dir.join(&path);
        if bless {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &want).unwrap();
            continue;
        }
        if std::fs::read_to_string(&p).ok().as_deref() != Some(want.as_str()) {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "kernel-config files differ from proxy/src/intercept: {stale:?}; regenerate with SHARDCAR_BLESS=1 cargo test -p shardcar intercept::"
    );
}
