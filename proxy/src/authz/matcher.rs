//! The leaf matchers policies are compiled into: Istio's string match (exact, `prefix*`,
//! `*suffix`, `*` for "present"), CIDR blocks and port lists. All compare borrowed bytes; none
//! allocates.

use std::net::IpAddr;

/// Istio's string match: `abc` exact, `abc*` prefix, `*abc` suffix, `*` any present value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrMatch {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Present,
}

impl StrMatch {
    /// Compiles one pattern. A `*` anywhere but at one end is an error (Istio's rule).
    pub fn parse(p: &str) -> Result<StrMatch, String> {
        if p == "*" {
            return Ok(StrMatch::Present);
        }
        let m = if let Some(rest) = p.strip_suffix('*') {
            StrMatch::Prefix(rest.into())
        } else if let Some(rest) = p.strip_prefix('*') {
            StrMatch::Suffix(rest.into())
        } else {
            StrMatch::Exact(p.into())
        };
        let inner = match &m {
            StrMatch::Exact(s) | StrMatch::Prefix(s) | StrMatch::Suffix(s) => s,
            StrMatch::Present => unreachable!(),
        };
        if inner.contains('*') {
            return Err(format!(
                "{p:?}: `*` may only stand alone or at the start or end"
            ));
        }
        Ok(m)
    }

    /// Whether `v` (case-sensitive) matches. An absent value never matches, not even `*`.
    #[inline]
    pub fn matches(&self, v: Option<&[u8]>) -> bool {
        let Some(v) = v else { return false };
        match self {
            StrMatch::Exact(s) => v == s.as_bytes(),
            StrMatch::Prefix(s) => v.starts_with(s.as_bytes()),
            StrMatch::Suffix(s) => v.ends_with(s.as_bytes()),
            StrMatch::Present => true,
        }
    }

    /// Like [`matches`](Self::matches), ASCII case-insensitively (hosts).
    #[inline]
    pub fn matches_ci(&self, v: &[u8]) -> bool {
        let eq = |a: &[u8], b: &str| a.eq_ignore_ascii_case(b.as_bytes());
        match self {
            StrMatch::Exact(s) => eq(v, s),
            StrMatch::Prefix(s) => v.len() >= s.len() && eq(&v[..s.len()], s),
            StrMatch::Suffix(s) => v.len() >= s.len() && eq(&v[v.len() - s.len()..], s),
            StrMatch::Present => true,
        }
    }
}

/// Whether any of `ms` matches `v`.
#[inline]
pub fn any_str(ms: &[StrMatch], v: Option<&[u8]>) -> bool {
    ms.iter().any(|m| m.matches(v))
}

/// An address block: `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr {
            net: net.to_canonical(),
            len,
        })
    }

    /// The one address this block is (a bare address, /32 or /128), if it is a single one.
    pub fn single(&self) -> Option<IpAddr> {
        let max = if self.net.is_ipv4() { 32 } else { 128 };
        (self.len == max).then_some(self.net)
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.len as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.len as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[inline]
pub fn any_cidr(bs: &[Cidr], ip: IpAddr) -> bool {
    bs.iter().any(|b| b.contains(ip))
}

/// Parses a port written as a number or a string (`8080`, `"8080"`).
pub fn parse_port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{s:?} is not a port (1..=65535)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_patterns() {
        let m = |p: &str, v: &str| StrMatch::parse(p).unwrap().matches(Some(v.as_bytes()));
        assert!(m("/a", "/a") && !m("/a", "/ab"));
        assert!(m("/api/*", "/api/x") && !m("/api/*", "/apix"));
        assert!(m("*.png", "/x.png") && !m("*.png", "/x.jpg"));
        assert!(m("*", "anything"));
        assert!(!StrMatch::Present.matches(None), "absent never matches");
        assert!(StrMatch::parse("a*b").is_err());
        assert!(StrMatch::parse("Example.COM")
            .unwrap()
            .matches_ci(b"example.com"));
        assert!(StrMatch::parse("*.Example.com")
            .unwrap()
            .matches_ci(b"a.example.COM"));
    }

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()), "v4-mapped");
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        assert!(parse_port("0").is_err() && parse_port("8080") == Ok(8080));
    }
}
