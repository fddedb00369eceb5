//! Finding the end of a request head as bytes arrive, resuming where the last read's scan
//! stopped: each byte is looked at once however the head is split across reads (the previous
//! code re-parsed from byte 0 on every read, quadratic in the number of reads). httparse then
//! parses the head once, when it is complete. The size limits are checked on the way, so an
//! oversized head is refused before it is buffered in full.

use super::head::{Limits, Reject};

/// Scan state for one request head.
#[derive(Debug, Default)]
pub struct HeadScan {
    /// Bytes of the buffer already looked at.
    pos: usize,
    /// The end of the request line was seen.
    line_done: bool,
}

impl HeadScan {
    /// Looks at the bytes of `buf` not seen yet. `Ok(true)`: the head is complete (an empty
    /// line ends it; bare-LF endings are refused later by the parser, but found here too).
    pub fn advance(&mut self, buf: &[u8], limits: &Limits) -> Result<bool, Reject> {
        // Re-examine up to two bytes before `pos`: the end marker may straddle reads.
        let from = self.pos.saturating_sub(2);
        let mut i = from;
        while let Some(off) = memchr::memchr(b'\n', &buf[i..]) {
            let nl = i + off;
            if !self.line_done {
                if nl > limits.max_request_line {
                    return Err(Reject::UriTooLong);
                }
                self.line_done = true;
            }
            let next = &buf[nl + 1..];
            if next.first() == Some(&b'\n') || next.starts_with(b"\r\n") {
                return Ok(true);
            }
            if next.len() < 2 {
                break; // cannot tell yet
            }
            i = nl + 1;
        }
        self.pos = buf.len();
        if !self.line_done && buf.len() > limits.max_request_line {
            return Err(Reject::UriTooLong);
        }
        if buf.len() > limits.max_head_bytes {
            return Err(Reject::HeadersTooLarge("request header section too large"));
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head_bytes: 256,
        max_headers: 10,
        max_request_line: 64,
    };

    fn complete_after(parts: &[&[u8]]) -> Vec<bool> {
        let mut s = HeadScan::default();
        let mut buf = Vec::new();
        parts
            .iter()
            .map(|p| {
                buf.extend_from_slice(p);
                s.advance(&buf, &LIMITS).unwrap()
            })
            .collect()
    }

    #[test]
    fn finds_the_end_across_every_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        for cut in 1..head.len() {
            let got = complete_after(&[&head[..cut], &head[cut..]]);
            assert!(got[1], "cut at {cut}");
            assert_eq!(got[0], cut >= 27, "cut at {cut}");
        }
        assert_eq!(complete_after(&[b"GET / HTTP/1.1\n\n"]), [true]);
    }

    #[test]
    fn byte_at_a_time_is_linear_and_limits_apply_early() {
        let mut s = HeadScan::default();
        let mut buf = b"GET /".to_vec();
        buf.extend(std::iter::repeat_n(b'a', 70));
        assert_eq!(s.advance(&buf, &LIMITS), Err(Reject::UriTooLong));
        let mut s = HeadScan::default();
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..30 {
            buf.extend_from_slice(b"x-a: 1234567\r\n");
            if let Err(r) = s.advance(&buf, &LIMITS) {
                assert_eq!(r.status(), 431);
                return;
            }
        }
        panic!("oversized head accepted");
    }
}
