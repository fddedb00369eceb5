//! A compiled text format as [`Step`]s: each is a short literal ([`Lead`], the text before a
//! command, ≤ 16 bytes) and the command after it. A line of Envoy's default format is 16
//! commands and 16 literals of one to three bytes; as steps it is 17 dispatches instead of 32,
//! and each literal is one fixed-size 16-byte copy cut back to its length instead of a
//! `memcpy` call (callgrind figures in [`super::render`]'s doc). The request headers the
//! format names are listed once ([`TextFormat::req_headers`]) and each `%REQ(..)%` step knows
//! its slots, so a line looks them all up in one pass over the request's headers.

use super::format::{Op, Source};

/// A compiled text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFormat {
    pub steps: Vec<Step>,
    /// The distinct request headers `%REQ(..)%` steps read (at most [`MAX_SLOTS`]; a format
    /// naming more looks the rest up one by one).
    pub req_headers: Vec<Box<str>>,
}

/// Request headers looked up in one pass per line.
pub const MAX_SLOTS: usize = 8;
/// A step's slot when its source is not a slotted header.
pub const NO_SLOT: u8 = u8::MAX;

/// A literal of at most [`Lead::CAP`] bytes, stored inline and padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lead {
    bytes: [u8; Lead::CAP],
    len: u8,
}

impl Lead {
    pub const CAP: usize = 16;

    /// `None` when `s` is longer than [`Lead::CAP`].
    pub fn new(s: &[u8]) -> Option<Lead> {
        let mut bytes = [0u8; Lead::CAP];
        bytes.get_mut(..s.len())?.copy_from_slice(s);
        Some(Lead {
            bytes,
            len: s.len() as u8,
        })
    }

    /// Appends the literal: the whole padded array (a fixed-size copy), then the padding cut.
    #[inline]
    pub fn append(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        out.truncate(start + self.len as usize);
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// A literal lead and the command after it (`None` for a format's trailing literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub lead: Lead,
    pub op: Option<Op>,
    /// For `%REQ(first?alt)%`: the [`TextFormat::req_headers`] slot of each header source, else
    /// [`NO_SLOT`].
    pub slots: [u8; 2],
}

/// Folds each short literal into the step of the command after it; a longer literal stays an
/// [`Op::Literal`] step of its own.
pub fn steps(ops: Vec<Op>) -> TextFormat {
    let mut out = Vec::with_capacity(ops.len());
    let mut names: Vec<Box<str>> = Vec::new();
    let mut lead = Lead::default();
    for op in ops {
        match op {
            Op::Literal(s) if lead.len == 0 => match Lead::new(s.as_bytes()) {
                Some(l) => lead = l,
                None => out.push(Step {
                    lead: Lead::default(),
                    op: Some(Op::Literal(s)),
                    slots: [NO_SLOT; 2],
                }),
            },
            op => {
                let mut slots = [NO_SLOT; 2];
                if let Op::Req { first, alt, .. } = &op {
                    slots = [
                        slot(first, &mut names),
                        alt.as_ref().map_or(NO_SLOT, |a| slot(a, &mut names)),
                    ];
                }
                out.push(Step {
                    lead: std::mem::take(&mut lead),
                    op: Some(op),
                    slots,
                })
            }
        }
    }
    if lead.len > 0 {
        out.push(Step {
            lead,
            op: None,
            slots: [NO_SLOT; 2],
        });
    }
    TextFormat {
        steps: out,
        req_headers: names,
    }
}

/// The slot of a header source (added if new and there is room).
fn slot(s: &Source, names: &mut Vec<Box<str>>) -> u8 {
    let Source::Header(n) = s else {
        return NO_SLOT;
    };
    if let Some(i) = names.iter().position(|m| m == n) {
        return i as u8;
    }
    if names.len() == MAX_SLOTS {
        return NO_SLOT;
    }
    names.push(n.clone());
    (names.len() - 1) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::access_log::format::compile;

    fn leads(f: &str) -> Vec<(String, bool)> {
        steps(compile(f).unwrap())
            .steps
            .iter()
            .map(|s| {
                (
                    String::from_utf8(s.lead.as_bytes().to_vec()).unwrap(),
                    s.op.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn short_literals_lead_the_next_command_and_long_ones_stay_literal_ops() {
        assert_eq!(
            leads("[%START_TIME%] \"%PROTOCOL%\"\n"),
            [
                ("[".into(), true),
                ("] \"".into(), true),
                ("\"\n".into(), false)
            ]
        );
        let long = "x".repeat(17);
        let s = steps(compile(&format!("{long}%PROTOCOL%")).unwrap()).steps;
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].op, Some(Op::Literal(long.as_str().into())));
        assert_eq!(
            (s[1].lead.as_bytes(), &s[1].op),
            (&b""[..], &Some(Op::Protocol))
        );
        assert_eq!(
            leads("%PROTOCOL%%DURATION%"),
            [("".into(), true), ("".into(), true)]
        );
    }

    #[test]
    fn a_lead_appends_exactly_its_bytes() {
        let mut out = b"ab".to_vec();
        Lead::new(b"0123456789abcdef").unwrap().append(&mut out);
        Lead::new(b"").unwrap().append(&mut out);
        Lead::new(b"-").unwrap().append(&mut out);
        assert_eq!(out, b"ab0123456789abcdef-");
        assert!(Lead::new(&[b'x'; 17]).is_none());
    }

    #[test]
    fn request_headers_get_one_slot_each_up_to_the_limit() {
        let f = steps(compile("%REQ(A?B)% %REQ(:PATH)% %REQ(b?C)% %REQ(X?:METHOD)%").unwrap());
        let names: Vec<&str> = f.req_headers.iter().map(|n| &**n).collect();
        assert_eq!(names, ["a", "b", "c", "x"]);
        let slots: Vec<[u8; 2]> = f.steps.iter().map(|s| s.slots).collect();
        assert_eq!(slots, [[0, 1], [NO_SLOT, NO_SLOT], [1, 2], [3, NO_SLOT]]);
        let many: String = (0..10).map(|i| format!("%REQ(H{i})%")).collect();
        let f = steps(compile(&many).unwrap());
        assert_eq!(f.req_headers.len(), MAX_SLOTS);
        assert_eq!(f.steps[MAX_SLOTS].slots, [NO_SLOT; 2]);
    }
}
