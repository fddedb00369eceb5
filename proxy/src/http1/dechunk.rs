//! Chunked → DATA: extracts chunk data and the trailer section from an HTTP/1 chunked body.
//! It only runs over bytes that `http1::chunked::ChunkedScanner` already accepted, so the
//! strict grammar (and its smuggling defences) lives in one place; this only needs to find the
//! data ranges and the trailer lines.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Reading the hex size (and skipping any extension) up to LF.
    #[default]
    Size,
    Ext,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd(u8),
    /// After the last chunk: trailer lines up to the empty line.
    Trailers,
    Done,
}

/// What one `feed` found.
#[derive(Debug, Default)]
pub struct Pieces {
    /// Ranges of chunk data inside the fed slice, in order.
    pub data: Vec<Range<usize>>,
}

#[derive(Debug, Default)]
pub struct Dechunker {
    state: State,
    size: u64,
    /// The trailer section as sent (lines with CRLF, without the final empty line).
    pub trailers: Vec<u8>,
}

impl Dechunker {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Walks `bytes` (validated by the scanner) and records the data ranges in `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Pieces) {
        out.data.clear();
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Size => {
                    let b = bytes[i];
                    match b {
                        b'0'..=b'9' => self.size = self.size * 16 + u64::from(b - b'0'),
                        b'a'..=b'f' => self.size = self.size * 16 + u64::from(b - b'a' + 10),
                        b'A'..=b'F' => self.size = self.size * 16 + u64::from(b - b'A' + 10),
                        b'\n' => self.end_size_line(),
                        _ => self.state = State::Ext,
                    }
                    i += 1;
                }
                State::Ext => {
                    if bytes[i] == b'\n' {
                        self.end_size_line();
                    }
                    i += 1;
                }
                State::Data(left) => {
                    let n = (left as usize).min(bytes.len() - i);
                    out.data.push(i..i + n);
                    i += n;
                    self.state = if left as usize == n {
                        State::DataEnd(2)
                    } else {
                        State::Data(left - n as u64)
                    };
                }
                State::DataEnd(k) => {
                    i += 1;
                    self.state = if k == 1 {
                        State::Size
                    } else {
                        State::DataEnd(k - 1)
                    };
                }
                State::Trailers => {
                    self.trailers.push(bytes[i]);
                    i += 1;
                    let t = &self.trailers;
                    if t == b"\r\n" {
                        self.trailers.clear();
                        self.state = State::Done;
                    } else if t.ends_with(b"\r\n\r\n") {
                        let n = t.len() - 2;
                        self.trailers.truncate(n);
                        self.state = State::Done;
                    }
                }
                State::Done => return,
            }
        }
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 {
            State::Trailers
        } else {
            State::Data(self.size)
        };
        self.size = 0;
    }

    /// The trailer fields, parsed (names and values as sent).
    pub fn trailer_fields(&self) -> Vec<(&[u8], &[u8])> {
        self.trailers
            .split(|b| *b == b'\n')
            .filter_map(|line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let colon = line.iter().position(|b| *b == b':')?;
                let v = &line[colon + 1..];
                let start = v
                    .iter()
                    .position(|b| !b" \t".contains(b))
                    .unwrap_or(v.len());
                let end = v
                    .iter()
                    .rposition(|b| !b" \t".contains(b))
                    .map_or(start, |e| e + 1);
                Some((&line[..colon], &v[start..end]))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> (Vec<u8>, Dechunker) {
        let mut d = Dechunker::default();
        let mut p = Pieces::default();
        let mut data = Vec::new();
        for part in parts {
            d.feed(part, &mut p);
            for r in &p.data {
                data.extend_from_slice(&part[r.clone()]);
            }
        }
        (data, d)
    }

    #[test]
    fn data_and_trailers_across_any_split() {
        let body: &[u8] =
            b"5;x=1\r\nhello\r\na\r\n0123456789\r\n0\r\ngrpc-status: 0\r\nx-t:  v \r\n\r\n";
        for cut in 0..body.len() {
            let (data, d) = decode(&[&body[..cut], &body[cut..]]);
            assert_eq!(data, b"hello0123456789", "cut at {cut}");
            assert!(d.is_done(), "cut at {cut}");
            assert_eq!(
                d.trailer_fields(),
                vec![(&b"grpc-status"[..], &b"0"[..]), (&b"x-t"[..], &b"v"[..])]
            );
        }
    }

    #[test]
    fn no_trailers() {
        let (data, d) = decode(&[b"3\r\nabc\r\n0\r\n\r\n"]);
        assert_eq!(data, b"abc");
        assert!(d.is_done());
        assert!(d.trailer_fields().is_empty());
    }
}
