//! Transparent interception, the way istio-init does it: `shardcar intercept install|uninstall|show`.
//!
//! Rule generation is pure ([`install_plan`], [`uninstall_plan`]) and golden-tested; [`exec`]
//! reads the current state from the kernel's tools and runs a plan. Install always removes a
//! previous install first (idempotent); uninstall is computed from what is actually present and
//! removes our chains/tables, the jumps into them and the TPROXY policy route, nothing else.
//!
//! Layout (both backends, both families):
//! - outbound: `nat OUTPUT → SHARDCAR_OUTBOUND` skips the proxy's uid/gid/mark, loopback and
//!   excluded CIDRs/ports, then `REDIRECT` to 15001 (the proxy reads `SO_ORIGINAL_DST`);
//! - inbound, redirect mode: `nat PREROUTING → SHARDCAR_INBOUND` skips lo and excluded ports
//!   (always 15000/15001/15006/15020), then `REDIRECT` to 15006;
//! - inbound, tproxy mode: `mangle PREROUTING → SHARDCAR_INBOUND`, `TPROXY` to 15006 with a
//!   fwmark, plus `ip rule fwmark M lookup T` and `local default dev lo table T`.
//!
//! [`ebpf`] is the netfilter-free alternative for outbound (`--mode ebpf`): cgroup hooks
//! rewrite connects and answer `SO_ORIGINAL_DST`, optionally with a sockmap fast path.

pub mod ebpf;
pub mod exec;
pub mod iptables;
pub mod nft;
pub mod options;
pub mod plan;
pub mod route;
pub mod scripts;

pub use options::{Backend, Cidr, Family, InboundPorts, Mode, Options, ALWAYS_EXCLUDED_INBOUND};
pub use plan::{Plan, Step};

/// What of ours is present on the host (or in the namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub iptables: Vec<(Family, iptables::Installed)>,
    pub nft: Vec<Family>,
    pub routes: Vec<(Family, route::Installed)>,
}

impl State {
    pub fn is_empty(&self) -> bool {
        self.iptables.iter().all(|(_, i)| i.is_empty())
            && self.nft.is_empty()
            && self.routes.iter().all(|(_, r)| r.rules == 0 && !r.route)
    }

    /// The state a successful [`install_plan`] leaves behind (for the generated scripts).
    pub fn after_install(o: &Options) -> State {
        let mut s = State::default();
        match o.backend {
            Backend::Iptables => {
                for f in o.families() {
                    let p = iptables::install(o, f);
                    s.iptables.push((f, iptables::Installed::from_plan(&p)));
                }
            }
            Backend::Nft => s.nft = o.families(),
        }
        if o.mode == Mode::Tproxy {
            for f in o.families() {
                s.routes.push((
                    f,
                    route::Installed {
                        rules: 1,
                        route: true,
                    },
                ));
            }
        }
        s
    }
}

/// The commands that install the rules on a host where none of ours are present. Policy
/// routes come first, so no TPROXY-marked packet is ever routed without them.
pub fn install_plan(o: &Options) -> Plan {
    let mut plan = Plan::default();
    if o.mode == Mode::Tproxy {
        plan.extend(route::install(o));
    }
    match o.backend {
        Backend::Iptables => {
            for f in o.families() {
                plan.extend(iptables::install(o, f));
            }
        }
        Backend::Nft => plan.extend(nft::install(o)),
    }
    plan
}

/// The commands that remove exactly what `state` lists: rules first, then policy routes.
pub fn uninstall_plan(o: &Options, state: &State) -> Plan {
    let mut plan = Plan::default();
    for (f, i) in &state.iptables {
        plan.extend(iptables::uninstall(i, *f));
    }
    plan.extend(nft::uninstall(&state.nft));
    for (f, r) in &state.routes {
        plan.extend(route::uninstall(o, *f, *r));
    }
    plan
}

#[cfg(test)]
mod tests;
