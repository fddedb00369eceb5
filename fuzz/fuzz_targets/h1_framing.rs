//! Differential: Shardcar's HTTP/1.1 request framing (head parser + chunked scanner) against
//! an independent RFC 9112 framer (`h1_reference.rs`), over up to 8 pipelined requests. For
//! each request both must agree on where the head and the body end; Shardcar must refuse
//! whatever the reference refuses for a framing reason, and must accept what the reference
//! accepts. Tolerated: the reference refusing for a character-set or size-limit reason (it is
//! stricter there by design), and one side stopping as "needs more bytes" where the other
//! refuses (both stop reading that connection).
#![no_main]

#[path = "h1_reference.rs"]
mod h1_reference;

use h1_reference::{Class, Facts, RefLimits, Verdict};
use libfuzzer_sys::fuzz_target;
use shardcar::http1::chunked::{ChunkedScanner, MAX_EXTENSION};
use shardcar::http1::head::{parse_request, Framing, Limits, RequestHead};

const LIMITS: Limits = Limits {
    max_head_bytes: 8 << 10,
    max_headers: 100,
    max_request_line: 4 << 10,
};

const REF_LIMITS: RefLimits = RefLimits {
    max_head_bytes: LIMITS.max_head_bytes,
    max_headers: LIMITS.max_headers,
    max_request_line: LIMITS.max_request_line,
    max_chunk_ext: MAX_EXTENSION,
    max_chunk_size_digits: 15,
};

/// Inputs stay below every head limit so that limits are only reached on purpose.
const MAX_INPUT: usize = 4000;

#[derive(Debug, PartialEq, Eq)]
enum Ours {
    Complete { head: usize, end: usize },
    Incomplete,
    Refused(String),
}

fn ours(buf: &[u8], head: &mut RequestHead) -> Ours {
    match parse_request(buf, &LIMITS, head) {
        Err(r) => Ours::Refused(r.reason().into()),
        Ok(false) => Ours::Incomplete,
        Ok(true) => {
            let h = head.len;
            match head.framing {
                Framing::None => Ours::Complete { head: h, end: h },
                Framing::Length(n) if ((buf.len() - h) as u64) < n => Ours::Incomplete,
                Framing::Length(n) => Ours::Complete {
                    head: h,
                    end: h + n as usize,
                },
                Framing::Chunked => {
                    let mut s = ChunkedScanner::default();
                    match s.scan_data(&buf[h..], |_| {}) {
                        Err(e) => Ours::Refused(format!("{e}")),
                        Ok(n) if s.is_done() => Ours::Complete { head: h, end: h + n },
                        Ok(_) => Ours::Incomplete,
                    }
                }
                Framing::UntilClose => Ours::Refused("request framed until close".into()),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_INPUT)];
    let mut head = RequestHead::default();
    let mut at = 0;
    for _ in 0..8 {
        let buf = &data[at..];
        if buf.is_empty() {
            return;
        }
        let mut facts = Facts::default();
        let theirs = h1_reference::frame(buf, &REF_LIMITS, &mut facts);
        let mine = ours(buf, &mut head);
        match (&theirs, &mine) {
            (Verdict::Complete { head: rh, end: re }, Ours::Complete { head: oh, end: oe }) => {
                assert_eq!(
                    (rh, re),
                    (oh, oe),
                    "boundaries differ at offset {at}: reference head/end {rh}/{re}, ours {oh}/{oe}"
                );
                if facts.switches_protocol {
                    return;
                }
                at += re;
            }
            (Verdict::Refused(Class::Framing, why), Ours::Complete { .. }) => {
                panic!("at offset {at} the reference refuses ({why}) what Shardcar accepts")
            }
            (Verdict::Complete { .. }, Ours::Refused(why)) => {
                panic!("at offset {at} Shardcar refuses ({why}) what the reference accepts")
            }
            (Verdict::Complete { .. }, Ours::Incomplete) | (Verdict::Incomplete, Ours::Complete { .. }) => {
                panic!("at offset {at} one side sees a complete message, the other wants more: reference {theirs:?}, ours {mine:?}")
            }
            // Both stop, or the reference is stricter by design (Syntax, Limit).
            _ => return,
        }
    }
});
