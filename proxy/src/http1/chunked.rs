//! A validating scanner for chunked bodies. Bytes pass through unchanged (chunk sizes,
//! extensions and trailers reach the other side exactly as sent, so gRPC-style trailers
//! survive); the scanner only checks the syntax and finds where the body ends.

/// Longest chunk extension accepted per chunk (abuse defence).
pub const MAX_EXTENSION: usize = 1024;
/// Longest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    size: u64,
    digits: u8,
    ext: usize,
    trailers: usize,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: State::Size,
            size: 0,
            digits: 0,
            ext: 0,
            trailers: 0,
        }
    }
}

impl ChunkedScanner {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `bytes`; returns how many belong to the body (all of them unless the body ends
    /// inside `bytes`). An error names the syntax problem.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                State::Done => return Ok(i),
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits >= 15 {
                            return Err("chunk size too large");
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size * 16 + d;
                        self.digits += 1;
                    }
                    b';' if self.digits > 0 => self.state = State::Ext,
                    b'\r' if self.digits > 0 => self.state = State::SizeLf,
                    _ => return Err("invalid chunk size"),
                },
                State::Ext => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err("bare LF in chunk extension"),
                    _ => {
                        self.ext += 1;
                        if self.ext > MAX_EXTENSION {
                            return Err("chunk extension too long");
                        }
                    }
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err("invalid chunk size line ending");
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let take = (self.size as usize).min(bytes.len() - i);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err("chunk data longer than its size");
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err("invalid chunk data line ending");
                    }
                    self.state = State::Size;
                    self.digits = 0;
                    self.ext = 0;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::FinalLf
                    } else {
                        self.trailers += 1;
                        State::TrailerLine
                    };
                }
                State::TrailerLine => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err("trailer section too large");
                    }
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' => return Err("bare LF in trailer"),
                        _ => {}
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err("invalid trailer line ending");
                    }
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err("invalid final line ending");
                    }
                    self.state = State::Done;
                    return Ok(i + 1);
                }
            }
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(parts: &[&[u8]]) -> Result<(usize, bool), &'static str> {
        let mut s = ChunkedScanner::default();
        let mut n = 0;
        for p in parts {
            n += s.scan(p)?;
        }
        Ok((n, s.is_done()))
    }

    #[test]
    fn whole_body_with_trailers_and_extension() {
        let body = b"5;name=v\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\nNEXT";
        assert_eq!(scan_all(&[body]).unwrap(), (body.len() - 4, true));
    }

    #[test]
    fn split_at_every_byte() {
        let body = b"a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n";
        let parts: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan_all(&parts).unwrap(), (body.len(), true));
    }

    #[test]
    fn rejects_bad_syntax() {
        assert_eq!(scan_all(&[b"zz\r\n"]), Err("invalid chunk size"));
        assert_eq!(scan_all(&[b"\r\n"]), Err("invalid chunk size"));
        assert_eq!(scan_all(&[b"5\nhello"]), Err("invalid chunk size"));
        assert_eq!(
            scan_all(&[b"3\r\nabcd\r\n"]),
            Err("chunk data longer than its size")
        );
        assert_eq!(
            scan_all(&[b"1000000000000000\r\n"]),
            Err("chunk size too large")
        );
        let long_ext = [b"1;".as_slice(), &[b'x'; 2000]].concat();
        assert_eq!(scan_all(&[&long_ext]), Err("chunk extension too long"));
    }
}
