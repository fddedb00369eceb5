//! Tap (like `linkerd tap`): which requests a tap wants ([`TapFilter`]: authority, path
//! prefix, method, status, peer identity), a per-tap rate cap ([`RateCap`], a token bucket
//! refilled from the caller's clock), and the JSON line each matching request becomes
//! ([`TapEvent::write_json`]). Pure and allocation-free per request; `tap_live` runs them on
//! a shard, `admin::tap` streams them (`GET /tap`) and `admin::tap_client` prints them
//! (`shardcar tap`).

use std::time::{Duration, Instant};

use super::access_log::render::json_str;

/// What a tap selects; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapFilter {
    /// Exact authority (host, with port if the request carried one), case-insensitive.
    pub authority: Option<String>,
    pub path_prefix: Option<String>,
    pub method: Option<String>,
    pub status: Option<u16>,
    /// Exact peer identity (SPIFFE ID).
    pub identity: Option<String>,
}

/// One finished request, as a tap reports it.
#[derive(Debug, Clone, Copy)]
pub struct TapEvent<'a> {
    pub method: &'a [u8],
    pub authority: &'a [u8],
    pub path: &'a [u8],
    pub status: u16,
    pub flags: &'a str,
    pub duration: Duration,
    pub upstream: Option<std::net::SocketAddr>,
    pub peer_identity: Option<&'a str>,
    pub local_identity: Option<&'a str>,
    /// Selected headers, (lower-case name, value).
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl TapFilter {
    pub fn matches(&self, e: &TapEvent<'_>) -> bool {
        self.authority
            .as_deref()
            .is_none_or(|a| a.as_bytes().eq_ignore_ascii_case(e.authority))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| e.path.starts_with(p.as_bytes()))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.as_bytes() == e.method)
            && self.status.is_none_or(|s| s == e.status)
            && self
                .identity
                .as_deref()
                .is_none_or(|i| e.peer_identity == Some(i))
    }
}

/// At most `per_second` events a second, bursts up to one second's worth; the excess is
/// counted as dropped rather than queued.
#[derive(Debug, Clone)]
pub struct RateCap {
    per_second: u32,
    tokens: f64,
    last: Instant,
    pub dropped: u64,
}

impl RateCap {
    pub fn new(per_second: u32, now: Instant) -> RateCap {
        RateCap {
            per_second,
            tokens: per_second as f64,
            last: now,
            dropped: 0,
        }
    }
    /// Take one token if there is one.
    pub fn admit(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let cap = self.per_second as f64;
        self.tokens = (self.tokens + dt * cap).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

impl TapEvent<'_> {
    /// One JSON object and a newline.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.extend_from_slice(b"{\"method\":");
        json_str(self.method, out);
        out.extend_from_slice(b",\"authority\":");
        json_str(self.authority, out);
        out.extend_from_slice(b",\"path\":");
        json_str(self.path, out);
        let _ = write!(out, ",\"status\":{},\"flags\":", self.status);
        json_str(self.flags.as_bytes(), out);
        let _ = write!(
            out,
            ",\"duration_us\":{},\"upstream\":",
            self.duration.as_micros()
        );
        match self.upstream {
            Some(a) => json_str(a.to_string().as_bytes(), out),
            None => out.extend_from_slice(b"null"),
        }
        for (k, v) in [
            ("peer_identity", self.peer_identity),
            ("local_identity", self.local_identity),
        ] {
            let _ = write!(out, ",\"{k}\":");
            match v {
                Some(v) => json_str(v.as_bytes(), out),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b",\"headers\":{");
        for (i, (k, v)) in self.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(k.as_bytes(), out);
            out.push(b':');
            json_str(v, out);
        }
        out.extend_from_slice(b"}}\n");
    }
}

#[cfg(test)]
#[path = "tap_tests.rs"]
mod tests;
