//! The `nft` backend: everything lives in one own table per family (`table ip shardcar`,
//! `table ip6 shardcar`), loaded atomically with `nft -f`. Uninstall deletes those tables and
//! nothing else. Chains carry the same names as the iptables backend.

use std::fmt::Write as _;

use super::iptables::{DIVERT, INBOUND, OUTBOUND};
use super::options::{Family, InboundPorts, Mode, Options};
use super::plan::{run, Plan, Step};

pub const TABLE: &str = "shardcar";

fn family(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

fn daddr(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip daddr",
        Family::V6 => "ip6 daddr",
    }
}

/// One family's table as an `nft -f` document.
pub fn table(o: &Options, f: Family) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "table {} {TABLE} {{", family(f));

    // Outbound: locally generated TCP, captured with redirect in the nat output hook.
    let _ = writeln!(w, "\tchain {OUTBOUND} {{");
    if let Some(uid) = o.proxy_uid {
        let _ = writeln!(w, "\t\tmeta skuid {uid} return");
    }
    if let Some(gid) = o.proxy_gid {
        let _ = writeln!(w, "\t\tmeta skgid {gid} return");
    }
    if let Some(mark) = o.mark {
        let _ = writeln!(w, "\t\tmeta mark {mark:#x} return");
    }
    let _ = writeln!(w, "\t\t{} {} return", daddr(f), f.loopback());
    for c in o.outbound_cidrs(f) {
        let _ = writeln!(w, "\t\t{} {c} return", daddr(f));
    }
    for p in &o.exclude_outbound_ports {
        let _ = writeln!(w, "\t\ttcp dport {p} return");
    }
    let _ = writeln!(w, "\t\tmeta l4proto tcp redirect to :{}", o.outbound_port);
    let _ = writeln!(w, "\t}}");

    let selector = match &o.inbound_ports {
        InboundPorts::All => Some("meta l4proto tcp".to_string()),
        InboundPorts::List(ps) if ps.is_empty() => None,
        InboundPorts::List(ps) => Some(format!(
            "tcp dport {{ {} }}",
            ps.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        )),
    };
    let mark = format!("{:#x}", o.tproxy_mark);
    if let Some(sel) = &selector {
        if o.mode == Mode::Tproxy {
            // Packets of connections the proxy already holds go straight to its socket.
            let _ = writeln!(w, "\tchain {DIVERT} {{");
            let _ = writeln!(w, "\t\tmeta mark set meta mark | {mark} accept");
            let _ = writeln!(w, "\t}}");
        }
        let _ = writeln!(w, "\tchain {INBOUND} {{");
        let _ = writeln!(w, "\t\tiifname \"lo\" return");
        if o.mode == Mode::Tproxy {
            let _ = writeln!(w, "\t\tmeta l4proto tcp socket transparent 1 jump {DIVERT}");
        }
        for p in o.inbound_exclusions() {
            let _ = writeln!(w, "\t\ttcp dport {p} return");
        }
        match o.mode {
            Mode::Redirect => {
                let _ = writeln!(w, "\t\t{sel} redirect to :{}", o.inbound_port);
            }
            Mode::Tproxy => {
                let _ = writeln!(
                    w,
                    "\t\t{sel} tcp flags & (fin | syn | rst | ack) == syn tproxy to :{} meta mark set meta mark | {mark} accept",
                    o.inbound_port
                );
            }
        }
        let _ = writeln!(w, "\t}}");
    }

    // Base chains last, as in the iptables backend.
    if selector.is_some() {
        let (name, ty, prio) = match o.mode {
            Mode::Redirect => ("nat_prerouting", "nat", "dstnat"),
            Mode::Tproxy => ("mangle_prerouting", "filter", "mangle"),
        };
        let _ = writeln!(w, "\tchain {name} {{");
        let _ = writeln!(
            w,
            "\t\ttype {ty} hook prerouting priority {prio}; policy accept;"
        );
        let _ = writeln!(w, "\t\tmeta l4proto tcp jump {INBOUND}");
        let _ = writeln!(w, "\t}}");
    }
    let _ = writeln!(w, "\tchain nat_output {{");
    let _ = writeln!(w, "\t\ttype nat hook output priority -100; policy accept;");
    let _ = writeln!(w, "\t\tmeta l4proto tcp jump {OUTBOUND}");
    let _ = writeln!(w, "\t}}");
    let _ = writeln!(w, "}}");
    t
}

/// The install plan: one atomic `nft -f` transaction holding every family's table.
pub fn install(o: &Options) -> Plan {
    let doc: String = o.families().into_iter().map(|f| table(o, f)).collect();
    Plan {
        steps: vec![Step::Nft(doc)],
    }
}

/// Which of our tables exist, from `nft list tables` output.
pub fn installed(list_tables: &str) -> Vec<Family> {
    let mut out = Vec::new();
    for line in list_tables.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["table", "ip", TABLE] => out.push(Family::V4),
            ["table", "ip6", TABLE] => out.push(Family::V6),
            _ => {}
        }
    }
    out
}

/// Deletes our tables (and with them every chain and rule in them).
pub fn uninstall(present: &[Family]) -> Plan {
    let mut plan = Plan::default();
    for f in present {
        plan.push(run(["nft", "delete", "table", family(*f), TABLE]));
    }
    plan
}
