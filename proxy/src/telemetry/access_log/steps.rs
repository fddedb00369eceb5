//! A compiled text format as [`Step`]s: each is a short literal ([`Lead`], the text before a
//! command, ≤ 16 bytes) and the command after it. A line of Envoy's default format is 16
//! commands and 16 literals of one to three bytes; as steps it is 17 dispatches instead of 32,
//! and each literal is one fixed-size 16-byte copy cut back to its length instead of a
//! `memcpy` call (callgrind figures in [`super::render`]'s doc).

use super::format::Op;

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
}

/// Folds each short literal into the step of the command after it; a longer literal stays an
/// [`Op::Literal`] step of its own.
pub fn steps(ops: Vec<Op>) -> Vec<Step> {
    let mut out = Vec::with_capacity(ops.len());
    let mut lead = Lead::default();
    for op in ops {
        match op {
            Op::Literal(s) if lead.len == 0 => match Lead::new(s.as_bytes()) {
                Some(l) => lead = l,
                None => out.push(Step {
                    lead: Lead::default(),
                    op: Some(Op::Literal(s)),
                }),
            },
            op => out.push(Step {
                lead: std::mem::take(&mut lead),
                op: Some(op),
            }),
        }
    }
    if lead.len > 0 {
        out.push(Step { lead, op: None });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::access_log::format::compile;

    fn leads(f: &str) -> Vec<(String, bool)> {
        steps(compile(f).unwrap())
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
        let s = steps(compile(&format!("{long}%PROTOCOL%")).unwrap());
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
}
