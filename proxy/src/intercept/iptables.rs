//! The `iptables` backend: own chains (`SHARDCAR_*`) in the `nat` table (and `mangle` for
//! TPROXY), entered by one jump rule from each built-in chain we hook.
//!
//! Install creates and fills the own chains first and adds the jumps last, so traffic never
//! enters a half-built chain. Uninstall is computed from `iptables-save` output: it deletes the
//! jumps to `SHARDCAR_*` chains and then those chains, and touches nothing else.

use super::options::{Family, InboundPorts, Mode, Options};
use super::plan::{run, words, Plan};

pub const INBOUND: &str = "SHARDCAR_INBOUND";
pub const IN_REDIRECT: &str = "SHARDCAR_IN_REDIRECT";
pub const OUTBOUND: &str = "SHARDCAR_OUTBOUND";
pub const REDIRECT: &str = "SHARDCAR_REDIRECT";
pub const DIVERT: &str = "SHARDCAR_DIVERT";
pub const TPROXY: &str = "SHARDCAR_TPROXY";
/// Every chain we own starts with this.
pub const PREFIX: &str = "SHARDCAR_";

fn tool(f: Family) -> &'static str {
    match f {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// Collects `<tool> -t <table> ...` commands for one family.
struct Emit<'a> {
    plan: &'a mut Plan,
    tool: &'static str,
}

impl Emit<'_> {
    fn new_chain(&mut self, table: &str, chain: &str) {
        self.plan.push(run([self.tool, "-t", table, "-N", chain]));
    }
    fn append(&mut self, table: &str, chain: &str, rule: &str) {
        let head = [self.tool, "-t", table, "-A", chain].map(String::from);
        self.plan.push(super::plan::Step::Run(
            head.into_iter().chain(words(rule)).collect(),
        ));
    }
}

/// Inbound port selection: `None` when inbound capture is disabled.
fn inbound_matches(o: &Options) -> Option<Vec<String>> {
    match &o.inbound_ports {
        InboundPorts::All => Some(vec!["-p tcp".into()]),
        InboundPorts::List(ps) if ps.is_empty() => None,
        InboundPorts::List(ps) => Some(ps.iter().map(|p| format!("-p tcp --dport {p}")).collect()),
    }
}

/// The outbound chain in `nat`: skip the proxy's own traffic, loopback and exclusions, then
/// redirect to the outbound listener.
fn outbound(e: &mut Emit<'_>, o: &Options, f: Family) {
    e.new_chain("nat", OUTBOUND);
    e.new_chain("nat", REDIRECT);
    e.append(
        "nat",
        REDIRECT,
        &format!("-p tcp -j REDIRECT --to-ports {}", o.outbound_port),
    );
    if let Some(uid) = o.proxy_uid {
        e.append(
            "nat",
            OUTBOUND,
            &format!("-m owner --uid-owner {uid} -j RETURN"),
        );
    }
    if let Some(gid) = o.proxy_gid {
        e.append(
            "nat",
            OUTBOUND,
            &format!("-m owner --gid-owner {gid} -j RETURN"),
        );
    }
    if let Some(mark) = o.mark {
        e.append(
            "nat",
            OUTBOUND,
            &format!("-m mark --mark {mark:#x} -j RETURN"),
        );
    }
    e.append("nat", OUTBOUND, &format!("-d {} -j RETURN", f.loopback()));
    for c in o.outbound_cidrs(f) {
        e.append("nat", OUTBOUND, &format!("-d {c} -j RETURN"));
    }
    for p in &o.exclude_outbound_ports {
        e.append("nat", OUTBOUND, &format!("-p tcp --dport {p} -j RETURN"));
    }
    e.append("nat", OUTBOUND, &format!("-p tcp -j {REDIRECT}"));
}

/// The inbound chain: `nat` + REDIRECT, or `mangle` + TPROXY. Returns the table it lives in.
fn inbound(e: &mut Emit<'_>, o: &Options, f: Family) -> Option<&'static str> {
    let matches = inbound_matches(o)?;
    let (table, target) = match o.mode {
        Mode::Redirect => ("nat", IN_REDIRECT),
        Mode::Tproxy => ("mangle", TPROXY),
    };
    e.new_chain(table, INBOUND);
    e.new_chain(table, target);
    let mark = format!("{:#x}/{:#x}", o.tproxy_mark, o.tproxy_mark);
    match o.mode {
        Mode::Redirect => e.append(
            table,
            target,
            &format!("-p tcp -j REDIRECT --to-ports {}", o.inbound_port),
        ),
        Mode::Tproxy => {
            e.new_chain(table, DIVERT);
            e.append(table, DIVERT, &format!("-j MARK --set-xmark {mark}"));
            e.append(table, DIVERT, "-j ACCEPT");
            e.append(
                table,
                target,
                &format!(
                    "-p tcp -j TPROXY --on-port {} --on-ip {} --tproxy-mark {mark}",
                    o.inbound_port,
                    f.any()
                ),
            );
        }
    }
    e.append(table, INBOUND, "-i lo -j RETURN");
    if o.mode == Mode::Tproxy {
        // Packets of connections the proxy already holds go straight to its socket.
        e.append(
            table,
            INBOUND,
            &format!("-p tcp -m socket --transparent -j {DIVERT}"),
        );
    }
    for p in o.inbound_exclusions() {
        e.append(table, INBOUND, &format!("-p tcp --dport {p} -j RETURN"));
    }
    // TPROXY only connection-opening SYNs: the target drops any packet it cannot hand to a
    // transparent socket, which would include the replies to the host's outbound connections.
    let syn = if o.mode == Mode::Tproxy { " --syn" } else { "" };
    for m in matches {
        e.append(table, INBOUND, &format!("{m}{syn} -j {target}"));
    }
    Some(table)
}

/// The install plan for one family (own chains, then the jumps into them).
pub fn install(o: &Options, f: Family) -> Plan {
    let mut plan = Plan::default();
    let mut e = Emit {
        plan: &mut plan,
        tool: tool(f),
    };
    let in_table = inbound(&mut e, o, f);
    outbound(&mut e, o, f);
    if let Some(t) = in_table {
        e.append(t, "PREROUTING", &format!("-p tcp -j {INBOUND}"));
    }
    e.append("nat", "OUTPUT", &format!("-p tcp -j {OUTBOUND}"));
    plan
}

/// What of ours is present in one family's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// `(table, rule)` where rule is the `-A CHAIN ...` line of a jump into one of our chains
    /// from a chain that is not ours.
    pub jumps: Vec<(String, String)>,
    /// `(table, chain)` of every chain we own.
    pub chains: Vec<(String, String)>,
}

impl Installed {
    pub fn is_empty(&self) -> bool {
        self.jumps.is_empty() && self.chains.is_empty()
    }

    /// Reads `iptables-save` output.
    pub fn parse(save: &str) -> Installed {
        let mut out = Installed::default();
        let mut table = String::new();
        for line in save.lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t.trim().to_string();
            } else if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap_or("");
                if name.starts_with(PREFIX) {
                    out.chains.push((table.clone(), name.to_string()));
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let chain = rule.split_whitespace().next().unwrap_or("");
                let target = rule.split_whitespace().skip_while(|w| *w != "-j").nth(1);
                if !chain.starts_with(PREFIX) && target.is_some_and(|t| t.starts_with(PREFIX)) {
                    out.jumps.push((table.clone(), rule.to_string()));
                }
            }
        }
        out
    }

    /// What [`install`] leaves behind, without asking the kernel (for the generated scripts).
    pub fn from_plan(plan: &Plan) -> Installed {
        let mut out = Installed::default();
        for s in &plan.steps {
            let super::plan::Step::Run(a) = s else {
                continue;
            };
            match a.get(3).map(String::as_str) {
                Some("-N") => out.chains.push((a[2].clone(), a[4].clone())),
                Some("-A") if !a[4].starts_with(PREFIX) => {
                    out.jumps.push((a[2].clone(), a[4..].join(" ")))
                }
                _ => {}
            }
        }
        out
    }
}

/// Removes exactly what `installed` lists: jumps first, then flush and delete our chains
/// (all are flushed before any is deleted, since they reference each other).
pub fn uninstall(installed: &Installed, f: Family) -> Plan {
    let t = tool(f);
    let mut plan = Plan::default();
    for (table, rule) in &installed.jumps {
        plan.push(super::plan::Step::Run(
            [t, "-t", table, "-D"]
                .map(String::from)
                .into_iter()
                .chain(words(rule))
                .collect(),
        ));
    }
    for (table, chain) in &installed.chains {
        plan.push(run([t, "-t", table, "-F", chain]));
    }
    for (table, chain) in &installed.chains {
        plan.push(run([t, "-t", table, "-X", chain]));
    }
    plan
}
