//! `SpiffeId` and `TrustDomain`: identities parsed and validated as the SPIFFE ID spec says
//! (`spiffe://trust-domain/path`). The trust domain is lowercase letters, digits, `.`, `-`
//! and `_`; the path is empty or `/`-separated segments of letters, digits, `.`, `-`, `_`,
//! with no empty, `.` or `..` segment and no trailing `/`. No port, user info, query,
//! fragment or percent-encoding. At most 2048 bytes in all, 255 for the trust domain.

use std::fmt;
use std::str::FromStr;

const SCHEME: &str = "spiffe://";
const MAX_ID_LEN: usize = 2048;
const MAX_TD_LEN: usize = 255;

/// Why a string is not a SPIFFE ID (or trust domain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("scheme is not spiffe://")]
    WrongScheme,
    #[error("trust domain is empty")]
    EmptyTrustDomain,
    #[error("trust domain has a character other than a-z 0-9 . - _ (at byte {0})")]
    BadTrustDomainChar(usize),
    #[error("trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    #[error("path has an empty segment")]
    EmptySegment,
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    #[error("path ends with '/'")]
    TrailingSlash,
    #[error("path has a character other than A-Z a-z 0-9 . - _ (at byte {0})")]
    BadPathChar(usize),
    #[error("longer than 2048 bytes")]
    TooLong,
}

/// A SPIFFE trust domain, e.g. `cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (`example.org`) or a `spiffe://example.org` URI.
    pub fn new(s: &str) -> Result<TrustDomain, SpiffeIdError> {
        let name = s.strip_prefix(SCHEME).unwrap_or(s);
        check_trust_domain(name, 0)?;
        Ok(TrustDomain(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `spiffe://<td>`, the trust domain's own ID.
    pub fn id_string(&self) -> String {
        format!("{SCHEME}{}", self.0)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustDomain::new(s)
    }
}

/// A validated SPIFFE ID. Stored as its URI string plus the end of the trust domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    uri: String,
    td_end: usize,
}

impl SpiffeId {
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        if s.len() > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::WrongScheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        check_trust_domain(&rest[..td_len], SCHEME.len())?;
        check_path(&rest[td_len..], SCHEME.len() + td_len)?;
        Ok(SpiffeId {
            uri: s.to_string(),
            td_end: SCHEME.len() + td_len,
        })
    }

    /// The trust domain name, without scheme: `example.org`.
    pub fn trust_domain_str(&self) -> &str {
        &self.uri[SCHEME.len()..self.td_end]
    }

    pub fn trust_domain(&self) -> TrustDomain {
        TrustDomain(self.trust_domain_str().to_string())
    }

    /// The path, empty or starting with `/`: `/ns/default/sa/web`.
    pub fn path(&self) -> &str {
        &self.uri[self.td_end..]
    }

    /// The whole URI: `spiffe://example.org/ns/default/sa/web`.
    pub fn as_str(&self) -> &str {
        &self.uri
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

fn check_trust_domain(td: &str, offset: usize) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if td.len() > MAX_TD_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    match td
        .bytes()
        .position(|b| !matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'))
    {
        Some(i) => Err(SpiffeIdError::BadTrustDomainChar(offset + i)),
        None => Ok(()),
    }
}

fn check_path(path: &str, offset: usize) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(SpiffeIdError::TrailingSlash);
    }
    // `path` starts with '/', so the first split item is the empty string before it.
    let mut at = offset + 1;
    for seg in path[1..].split('/') {
        match seg {
            "" => return Err(SpiffeIdError::EmptySegment),
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {}
        }
        if let Some(i) = seg
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
        {
            return Err(SpiffeIdError::BadPathChar(at + i));
        }
        at += seg.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use SpiffeIdError::*;

    #[test]
    fn valid_ids() {
        let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web").unwrap();
        assert_eq!(id.trust_domain_str(), "cluster.local");
        assert_eq!(id.path(), "/ns/default/sa/web");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/web");
        let td = SpiffeId::parse("spiffe://example.org").unwrap();
        assert_eq!(td.path(), "");
        assert!(SpiffeId::parse("spiffe://a_b-c.9/A.b-C_9/x").is_ok());
        assert!(
            SpiffeId::parse("spiffe://td/...").is_ok(),
            "three dots are a name"
        );
    }

    #[test]
    fn invalid_ids_name_the_reason() {
        let cases: &[(&str, SpiffeIdError)] = &[
            ("http://td/x", WrongScheme),
            ("SPIFFE://td/x", WrongScheme),
            ("spiffe:/td/x", WrongScheme),
            ("spiffe:///x", EmptyTrustDomain),
            ("spiffe://", EmptyTrustDomain),
            ("spiffe://Example.org/x", BadTrustDomainChar(9)),
            ("spiffe://td:8080/x", BadTrustDomainChar(11)),
            ("spiffe://user@td/x", BadTrustDomainChar(13)),
            ("spiffe://td/x//y", EmptySegment),
            ("spiffe://td//", TrailingSlash),
            ("spiffe://td/", TrailingSlash),
            ("spiffe://td/x/", TrailingSlash),
            ("spiffe://td/./x", DotSegment),
            ("spiffe://td/x/..", DotSegment),
            ("spiffe://td/x?q=1", BadPathChar(13)),
            ("spiffe://td/x#f", BadPathChar(13)),
            ("spiffe://td/a%20b", BadPathChar(13)),
            ("spiffe://td/ns/ü", BadPathChar(15)),
        ];
        for (s, want) in cases {
            assert_eq!(SpiffeId::parse(s).as_ref(), Err(want), "{s}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(2040));
        assert_eq!(SpiffeId::parse(&long), Err(TooLong));
        let long_td = format!("spiffe://{}/x", "a".repeat(256));
        assert_eq!(SpiffeId::parse(&long_td), Err(TrustDomainTooLong));
    }

    #[test]
    fn trust_domains() {
        assert_eq!(
            TrustDomain::new("example.org").unwrap().as_str(),
            "example.org"
        );
        assert_eq!(
            TrustDomain::new("spiffe://example.org").unwrap().as_str(),
            "example.org"
        );
        assert!(TrustDomain::new("Example.org").is_err());
        assert!(TrustDomain::new("").is_err());
        assert_eq!(
            SpiffeId::parse("spiffe://td/x").unwrap().trust_domain(),
            TrustDomain::new("td").unwrap()
        );
    }
}
