//! Virtual host selection by the request's Host: exact name first, then the longest matching
//! `*.suffix` wildcard, then `*`. Case-insensitive; a `:port` is ignored. The index is built once
//! per config; a lookup lower-cases the host into a stack buffer and never allocates.

use std::collections::HashMap;

/// DNS names are at most 253 bytes; a longer Host can only match `*`.
const MAX_HOST: usize = 255;

#[derive(Debug, Clone, Default)]
pub struct HostIndex {
    /// Lower-case exact name → virtual host index.
    exact: HashMap<Box<[u8]>, usize>,
    /// (`.suffix` lower-case, virtual host index), longest suffix first.
    suffixes: Vec<(Box<[u8]>, usize)>,
    /// The virtual host with `*`.
    any: Option<usize>,
}

impl HostIndex {
    /// Indexes lower-case domain patterns per virtual host. On a duplicate pattern the first
    /// virtual host keeps it (config validation rejects duplicates before this).
    pub fn build<'a>(vhosts: impl Iterator<Item = &'a [String]>) -> HostIndex {
        let mut idx = HostIndex::default();
        for (i, domains) in vhosts.enumerate() {
            for d in domains {
                if d == "*" {
                    idx.any.get_or_insert(i);
                } else if let Some(suffix) = d.strip_prefix('*') {
                    if !idx.suffixes.iter().any(|(s, _)| &**s == suffix.as_bytes()) {
                        idx.suffixes.push((suffix.as_bytes().into(), i));
                    }
                } else {
                    idx.exact.entry(d.as_bytes().into()).or_insert(i);
                }
            }
        }
        // Stable: equal lengths keep config order (they cannot both match one host anyway).
        idx.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        idx
    }

    /// The virtual host index for a raw Host value (any case, optional `:port`).
    pub fn lookup(&self, host: &[u8]) -> Option<usize> {
        let host = strip_port(host);
        let host = host.strip_suffix(b".").unwrap_or(host);
        if host.is_empty() || host.len() > MAX_HOST {
            return self.any;
        }
        let mut buf = [0u8; MAX_HOST];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host);
        lower.make_ascii_lowercase();
        let lower = &*lower;
        if let Some(&i) = self.exact.get(lower) {
            return Some(i);
        }
        for (suffix, i) in &self.suffixes {
            // `*.example.com` needs at least one byte before `.example.com`.
            if lower.len() > suffix.len() && lower.ends_with(suffix) {
                return Some(*i);
            }
        }
        self.any
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`; a bare IPv6 address is left alone.
pub fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        // More than one colon: an unbracketed IPv6 address, not host:port.
        Some(i) if !host[..i].contains(&b':') => &host[..i],
        _ => host,
    }
}
