//! Egress control: the outbound traffic policy (Istio's `outboundTrafficPolicy`) on the
//! listeners that carry an application's outbound traffic.
//!
//! `allow_any` lets everything out (nothing is attached to the listeners, nothing is checked).
//! `registry_only` lets out only what the registry lists (Istio's `ServiceEntry`s, shortened):
//! each entry names `hosts` (exact, `*.suffix`, or `*`) and/or `cidrs`, optionally limited to
//! `ports`; a destination passes when some entry's ports (all, when it has none) contain its
//! port and one of the entry's hosts matches its host or one of its CIDRs contains its IP.
//!
//! What the destination is:
//! - **HTTP** (HTTP/1.x and HTTP/2, checked before routing): the host is the request's
//!   authority (absolute-form target, `Host`, `:authority`) without its port; the IP is the
//!   original destination when the listener recovers one (else an IP-literal authority); the
//!   port is the original destination's, else the authority's, else 443 under TLS and 80.
//!   A blocked request is answered **502** with response flag **`EB`** ("egress blocked",
//!   `x-shardcar-flag: EB`, also in `response_flags` of Istio's metrics), gRPC `UNAVAILABLE`.
//! - **TCP** (`tcp` listeners and `auto` listeners' opaque connections): the IP and port are
//!   the address the proxy would connect to (the original destination, or the cluster's
//!   endpoint); the host is the SNI of the TLS ClientHello an `auto` listener sniffed (a
//!   `tcp` listener reads nothing before connecting, so there only `cidrs` entries match). A
//!   blocked connection is reset (RST, no upstream connect).
//!
//! Cloud metadata endpoints (169.254.169.254, 169.254.170.2 and AWS's fd00:ec2::254): under
//! `registry_only` a destination whose IP (or IP-literal authority) is one of them passes only
//! when an entry lists that very address (a bare address or a /32, /128): a wider block such
//! as `169.254.0.0/16`, `0.0.0.0/0`, or an allowed `Host` sent to that IP does not open it.
//!
//! Every block is logged (one rate-limited warn line with listener, peer, host, destination
//! and reason) and counted per shard as `shardcar_listener_egress_blocked{listener, protocol,
//! reason}` (`protocol`: `http` | `tcp`; `reason`: `not_registered` | `metadata`).
//!
//! Cost: one `Option` test per request or connection on listeners without a policy; with
//! one, a linear scan of the registry (a few entries, no allocation) — except for SNI taken
//! from a ClientHello split across TLS records, which is copied once.

pub mod sni;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::authz::matcher::Cidr;
use crate::ctx::{ConnCtx, UpstreamAddr};
use crate::http::RequestCtx;

/// The cloud metadata endpoints blocked under `registry_only` unless listed by address.
pub const METADATA_IPS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

/// The response flag of a blocked HTTP request.
pub const FLAG: &str = "EB";

/// A host pattern of the registry (lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host (only hosts the request names: an absent one never matches).
    Any,
    /// `api.example.com`.
    Exact(Box<str>),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Suffix(Box<str>),
}

impl HostPattern {
    pub fn parse(p: &str) -> Result<HostPattern, String> {
        let lower = p.to_ascii_lowercase();
        let bad = |why: &str| Err(format!("{p:?}: {why}"));
        if lower == "*" {
            return Ok(HostPattern::Any);
        }
        let (suffix, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.is_empty() {
            return bad("empty host");
        }
        if name.contains('*') {
            return bad("`*` may only stand alone or as a leading `*.`");
        }
        if name.contains(':') && name.parse::<IpAddr>().is_err() {
            return bad("a host has no port (use ports:)");
        }
        if name.contains('/') {
            return bad("a host is no CIDR block (use cidrs:)");
        }
        let name = name.trim_end_matches('.');
        Ok(if suffix {
            HostPattern::Suffix(format!(".{name}").into())
        } else {
            HostPattern::Exact(name.into())
        })
    }

    #[inline]
    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub hosts: Box<[HostPattern]>,
    pub cidrs: Box<[Cidr]>,
    /// Empty: any port.
    pub ports: Box<[u16]>,
}

impl Entry {
    #[inline]
    fn port_ok(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }

    fn allows(&self, d: &Destination<'_>) -> bool {
        self.port_ok(d.port)
            && (d
                .host
                .is_some_and(|h| self.hosts.iter().any(|p| p.matches(h)))
                || d.ip
                    .is_some_and(|ip| self.cidrs.iter().any(|c| c.contains(ip))))
    }

    /// Whether this entry names metadata address `ip` itself (not a wider block).
    fn lists(&self, ip: IpAddr, port: u16) -> bool {
        self.port_ok(port) && self.cidrs.iter().any(|c| c.single() == Some(ip))
    }
}

/// What a destination is, as far as the policy can tell.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// Host name (authority or SNI) without port or trailing dot.
    pub host: Option<&'a [u8]>,
    /// The IP the traffic goes to, when known.
    pub ip: Option<IpAddr>,
    pub port: u16,
}

/// Why a destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// No registry entry allows it.
    NotRegistered,
    /// A cloud metadata endpoint no entry lists by address.
    Metadata,
}

impl Blocked {
    pub fn label(self) -> &'static str {
        match self {
            Blocked::NotRegistered => "not_registered",
            Blocked::Metadata => "metadata",
        }
    }

    /// The body of the 502 a blocked HTTP request gets.
    pub fn body(self) -> &'static [u8] {
        match self {
            Blocked::NotRegistered => b"egress blocked: destination not in the registry\n",
            Blocked::Metadata => b"egress blocked: cloud metadata endpoint\n",
        }
    }
}

/// Which path a block was on (the metric's `protocol` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Http = 0,
    Tcp = 1,
}

/// A listener's `registry_only` policy (compiled from `outbound_traffic_policy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    pub registry: Box<[Entry]>,
}

fn is_metadata(ip: IpAddr) -> bool {
    METADATA_IPS.contains(&ip.to_canonical())
}

impl EgressPolicy {
    /// Whether some entry matches on host names (then `auto` listeners read the whole
    /// ClientHello of a TLS connection for its SNI).
    pub fn wants_sni(&self) -> bool {
        self.registry.iter().any(|e| !e.hosts.is_empty())
    }

    /// The verdict on `d`; `also` is a second IP the request names (an IP-literal authority
    /// besides the original destination), checked against the metadata rule only.
    pub fn check(&self, d: &Destination<'_>, also: Option<IpAddr>) -> Result<(), Blocked> {
        for ip in [d.ip, also].into_iter().flatten() {
            if is_metadata(ip) {
                let ip = ip.to_canonical();
                return if self.registry.iter().any(|e| e.lists(ip, d.port)) {
                    Ok(())
                } else {
                    Err(Blocked::Metadata)
                };
            }
        }
        if self.registry.iter().any(|e| e.allows(d)) {
            Ok(())
        } else {
            Err(Blocked::NotRegistered)
        }
    }

    /// Checks an HTTP request (see the module doc for what its destination is); logs a block.
    pub fn check_request(&self, req: &RequestCtx<'_>) -> Result<(), Blocked> {
        let conn = req.conn;
        let (host, authority_port) = split_authority(req.authority);
        let literal = host
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| h.parse::<IpAddr>().ok());
        let orig = conn.orig_dst.map(|d| d.0);
        let port = orig
            .map(|o| o.port())
            .or(authority_port)
            .unwrap_or(if conn.tls.is_some() { 443 } else { 80 });
        let d = Destination {
            host,
            ip: orig.map(|o| o.ip()).or(literal),
            port,
        };
        let also = literal.filter(|l| Some(*l) != d.ip);
        let verdict = self.check(&d, also);
        if let Err(b) = verdict {
            crate::warn_limited!(
                "egress blocked",
                listener = %conn.listener().name,
                peer = %conn.peer,
                protocol = %"http",
                host = %String::from_utf8_lossy(host.unwrap_or(b"-")),
                original_dst = %orig.map_or("-".to_string(), |o| o.to_string()),
                port,
                reason = %b.label(),
                "egress blocked"
            );
        }
        verdict
    }

    /// Checks a TCP connection about to go to `target` (`sni`: the server name of the
    /// ClientHello sniffed from it, if any); logs a block.
    pub fn check_tcp(
        &self,
        conn: &ConnCtx,
        target: UpstreamAddr,
        sni: Option<&[u8]>,
    ) -> Result<(), Blocked> {
        let d = Destination {
            host: sni,
            ip: Some(target.ip()),
            port: target.port(),
        };
        let verdict = self.check(&d, None);
        if let Err(b) = verdict {
            crate::warn_limited!(
                "egress blocked",
                listener = %conn.listener().name,
                peer = %conn.peer,
                protocol = %"tcp",
                sni = %String::from_utf8_lossy(sni.unwrap_or(b"-")),
                destination = %target,
                reason = %b.label(),
                "egress blocked; connection reset"
            );
        }
        verdict
    }
}

/// `host[:port]`, `[v6]:port`, `v6` → (host without brackets or trailing dot, port).
fn split_authority(a: &[u8]) -> (Option<&[u8]>, Option<u16>) {
    if a.is_empty() {
        return (None, None);
    }
    let port_of = |p: &[u8]| std::str::from_utf8(p).ok().and_then(|p| p.parse().ok());
    let (host, port) = if let Some(rest) = a.strip_prefix(b"[") {
        match rest.iter().position(|&b| b == b']') {
            Some(i) => (
                &rest[..i],
                rest[i + 1..].strip_prefix(b":").and_then(port_of),
            ),
            None => (a, None),
        }
    } else if a.iter().filter(|&&b| b == b':').count() == 1 {
        let i = a.iter().position(|&b| b == b':').unwrap_or(a.len());
        (&a[..i], port_of(&a[i + 1..]))
    } else {
        (a, None)
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    ((!host.is_empty()).then_some(host), port)
}

#[cfg(test)]
mod tests;
