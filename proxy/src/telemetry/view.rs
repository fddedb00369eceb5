//! What access logs and tap read of a finished request besides its [`Record`](super::Record):
//! the request head, as each codec keeps it ([`RequestView`]: spans into the HTTP/1 read
//! buffer, the HTTP/2 header list), read only when a log or tap wants it.

/// A finished request's head.
pub trait RequestView {
    fn method(&self) -> &[u8];
    fn path(&self) -> &[u8];
    /// `Host` / `:authority`; empty when absent.
    fn authority(&self) -> &[u8];
    /// The first value of a regular header; `name` is lower case.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The first value of each of `names` (lower case) into `out` (same length): one pass over
    /// the head where the codec overrides it, one lookup per name by default.
    fn headers<'s>(&'s self, names: &[Box<str>], out: &mut [Option<&'s [u8]>]) {
        for (n, o) in names.iter().zip(out) {
            *o = self.header(n);
        }
    }
}

/// Response flags rendered on the stack (`UH,UF`), empty when none.
pub struct FlagStr {
    buf: [u8; 128],
    len: usize,
}

impl FlagStr {
    pub fn of(flags: super::Flags) -> FlagStr {
        let mut s = FlagStr {
            buf: [0; 128],
            len: 0,
        };
        if !flags.is_empty() {
            let _ = flags.write_to(&mut s);
        }
        s
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for FlagStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
