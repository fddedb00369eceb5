//! What `shardcar intercept` is asked to do: typed, validated options shared by every backend.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Ports that are never captured inbound: the proxy's own admin (15000), outbound (15001),
/// inbound (15006) and health (15020) ports, as in Istio's layout.
pub const ALWAYS_EXCLUDED_INBOUND: [u16; 4] = [15000, 15001, 15006, 15020];

/// How inbound traffic reaches the proxy. Outbound (locally generated) traffic is always
/// captured with `REDIRECT`: the `TPROXY` target only exists in `PREROUTING`, which locally
/// generated packets do not traverse (Istio's TPROXY mode makes the same split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `nat` table `REDIRECT`; the proxy recovers the destination with `SO_ORIGINAL_DST`.
    Redirect,
    /// `mangle` table `TPROXY` + fwmark policy route; the destination is the socket's local
    /// address (the listener needs `IP_TRANSPARENT`) and the client's source IP is preserved.
    Tproxy,
}

/// Which tool writes the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `iptables`/`ip6tables` (either the legacy or the nf_tables flavour), own chains.
    Iptables,
    /// `nft`, one own table per family (`ip shardcar`, `ip6 shardcar`).
    Nft,
}

/// IPv4 or IPv6: every backend writes one rule set per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }
    pub fn any(self) -> &'static str {
        match self {
            Family::V4 => "0.0.0.0",
            Family::V6 => "::",
        }
    }
}

/// Which inbound destination ports are captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundPorts {
    /// `*`: every TCP port except the excluded ones.
    All,
    /// Only these ports (an empty list disables inbound capture).
    List(Vec<u16>),
}

impl FromStr for InboundPorts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(InboundPorts::All);
        }
        if s.is_empty() {
            return Ok(InboundPorts::List(Vec::new()));
        }
        s.split(',')
            .map(|p| {
                p.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("bad port {p:?}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(InboundPorts::List)
    }
}

/// An IP prefix such as `10.0.0.0/8` or `fd00::/8` (a bare address means a host route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn family(&self) -> Family {
        if self.addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("bad address {a:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix length {p:?} in {s:?}"))?
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Everything the rule generators need. Build with [`Options::new`] and adjust fields, then
/// [`Options::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub backend: Backend,
    /// Traffic from this uid is never captured (the proxy's own user).
    pub proxy_uid: Option<u32>,
    /// Traffic from this gid is never captured.
    pub proxy_gid: Option<u32>,
    /// Packets carrying this `SO_MARK` are never captured (set `upstream_mark` in the proxy).
    pub mark: Option<u32>,
    pub inbound_ports: InboundPorts,
    /// Extra inbound ports to leave alone (in addition to [`ALWAYS_EXCLUDED_INBOUND`]).
    pub exclude_inbound_ports: Vec<u16>,
    pub exclude_outbound_cidrs: Vec<Cidr>,
    pub exclude_outbound_ports: Vec<u16>,
    /// Also write the IPv6 rule set.
    pub ipv6: bool,
    /// The proxy's outbound listener (Istio: 15001).
    pub outbound_port: u16,
    /// The proxy's inbound listener (Istio: 15006).
    pub inbound_port: u16,
    /// TPROXY: the fwmark bit that selects the `local` route table.
    pub tproxy_mark: u32,
    /// TPROXY: the policy route table holding `local default dev lo`.
    pub route_table: u32,
}

impl Options {
    pub fn new(mode: Mode, backend: Backend) -> Options {
        Options {
            mode,
            backend,
            proxy_uid: None,
            proxy_gid: None,
            mark: None,
            inbound_ports: InboundPorts::All,
            exclude_inbound_ports: Vec::new(),
            exclude_outbound_cidrs: Vec::new(),
            exclude_outbound_ports: Vec::new(),
            ipv6: false,
            outbound_port: 15001,
            inbound_port: 15006,
            tproxy_mark: 0x80,
            route_table: 133,
        }
    }

    /// Rejects option sets that would capture the proxy's own traffic or clash with each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.proxy_uid.is_none() && self.proxy_gid.is_none() && self.mark.is_none() {
            return Err("one of --proxy-uid, --proxy-gid or --mark is required, or the proxy's own upstream connections would be captured again".into());
        }
        if self.mark == Some(0) {
            return Err("--mark 0 matches every unmarked packet".into());
        }
        if self.mode == Mode::Tproxy {
            if self.tproxy_mark == 0 {
                return Err("--tproxy-mark must not be 0".into());
            }
            if let Some(m) = self.mark.filter(|m| m & self.tproxy_mark != 0) {
                return Err(format!(
                    "--mark {m:#x} overlaps --tproxy-mark {:#x}: the proxy's own packets would be routed back to itself",
                    self.tproxy_mark
                ));
            }
            if matches!(self.route_table, 0 | 253..=255) {
                return Err(format!(
                    "--route-table {} is a reserved table",
                    self.route_table
                ));
            }
        }
        for c in &self.exclude_outbound_cidrs {
            if c.family() == Family::V6 && !self.ipv6 {
                return Err(format!("--exclude-outbound-cidrs {c} is IPv6; add --ipv6"));
            }
        }
        Ok(())
    }

    /// The families to write rules for.
    pub fn families(&self) -> Vec<Family> {
        if self.ipv6 {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    /// Inbound ports left alone: the fixed proxy ports plus the configured ones, sorted, unique.
    pub fn inbound_exclusions(&self) -> Vec<u16> {
        let mut v: Vec<u16> = ALWAYS_EXCLUDED_INBOUND
            .iter()
            .chain(&self.exclude_inbound_ports)
            .chain([&self.outbound_port, &self.inbound_port])
            .copied()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Excluded outbound prefixes of one family, in the order given.
    pub fn outbound_cidrs(&self, f: Family) -> impl Iterator<Item = &Cidr> {
        self.exclude_outbound_cidrs
            .iter()
            .filter(move |c| c.family() == f)
    }
}
