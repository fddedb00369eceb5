//! TPROXY's policy routing: packets carrying the TPROXY fwmark are looked up in an own table
//! whose only route says "every address is local", so the kernel delivers them to the proxy's
//! transparent socket instead of forwarding them.

use super::options::{Family, Options};
use super::plan::Plan;

fn ip(f: Family) -> Vec<&'static str> {
    match f {
        Family::V4 => vec!["ip"],
        Family::V6 => vec!["ip", "-6"],
    }
}

fn with(f: Family, rest: &[String]) -> super::plan::Step {
    let mut v: Vec<String> = ip(f).into_iter().map(String::from).collect();
    v.extend(rest.iter().cloned());
    super::plan::Step::Run(v)
}

fn rule_args(o: &Options) -> Vec<String> {
    let m = format!("{:#x}/{:#x}", o.tproxy_mark, o.tproxy_mark);
    ["fwmark", &m, "lookup", &o.route_table.to_string()]
        .map(String::from)
        .to_vec()
}

fn route_args(o: &Options) -> Vec<String> {
    [
        "local",
        "default",
        "dev",
        "lo",
        "table",
        &o.route_table.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn cmd(verb: &[&str], args: Vec<String>) -> Vec<String> {
    verb.iter().map(|s| s.to_string()).chain(args).collect()
}

/// `ip rule add` + `ip route add` for every family.
pub fn install(o: &Options) -> Plan {
    let mut plan = Plan::default();
    for f in o.families() {
        plan.push(with(f, &cmd(&["rule", "add"], rule_args(o))));
        plan.push(with(f, &cmd(&["route", "add"], route_args(o))));
    }
    plan
}

/// How many of our rules, and whether our route, exist in one family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Installed {
    pub rules: usize,
    pub route: bool,
}

impl Installed {
    /// From `ip rule show` and `ip route show table all` output.
    pub fn parse(o: &Options, rules: &str, routes: &str) -> Installed {
        let table = o.route_table.to_string();
        let want = format!(
            "fwmark {:#x}/{:#x} lookup {}",
            o.tproxy_mark, o.tproxy_mark, o.route_table
        );
        Installed {
            rules: rules
                .lines()
                .filter(|l| l.trim_end().ends_with(&want))
                .count(),
            route: routes.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.starts_with(&["local", "default", "dev", "lo"])
                    && w.windows(2).any(|p| p[0] == "table" && p[1] == table)
            }),
        }
    }
}

/// Removes our rules and route from one family (only what `present` says exists).
pub fn uninstall(o: &Options, f: Family, present: Installed) -> Plan {
    let mut plan = Plan::default();
    for _ in 0..present.rules {
        plan.push(with(f, &cmd(&["rule", "del"], rule_args(o))));
    }
    if present.route {
        plan.push(with(f, &cmd(&["route", "del"], route_args(o))));
    }
    plan
}

/// The commands whose output [`Installed::parse`] reads.
pub fn show_commands(f: Family) -> [Vec<String>; 2] {
    // `show table all`, not `show table T`: the latter fails when the table does not exist.
    [
        cmd(&ip(f), vec!["rule".into(), "show".into()]),
        cmd(
            &ip(f),
            ["route", "show", "table", "all"].map(String::from).to_vec(),
        ),
    ]
}
