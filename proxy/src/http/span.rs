//! Byte ranges into the buffer a head was parsed from: a parsed head is a few of these, so it
//! holds no copies and allocates nothing per header.

use std::ops::Range;

/// A byte range inside the buffer the head was parsed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The span of `part`, which must lie inside `buf`.
    pub fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
    /// The span of `part` if it lies inside `buf` (httparse hands back a `&'static str` instead
    /// of a slice of the input in some cases, e.g. a reason phrase with obs-text).
    pub fn within(buf: &[u8], part: &[u8]) -> Option<Span> {
        let (b, p) = (buf.as_ptr_range(), part.as_ptr_range());
        (b.start <= p.start && p.end <= b.end).then(|| Span::of(buf, part))
    }
    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}
