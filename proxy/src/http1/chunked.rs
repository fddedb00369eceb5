//! A validating scanner for chunked bodies. Bytes pass through unchanged (chunk sizes,
//! extensions and trailers reach the other side exactly as sent, so gRPC-style trailers
//! survive); the scanner only checks the syntax and finds where the body ends.
//!
//! The grammar is RFC 9112 §7.1, applied strictly so that no two parsers can disagree on where
//! a body ends (request smuggling):
//! ```text
//! chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF      chunk-size = 1*HEXDIG
//! chunk-ext  = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )  ext-val = token / quoted-string
//! trailers   = *( field-name ":" OWS field-value OWS CRLF ) CRLF
//! ```
//! Every line ends in CRLF exactly (a bare LF or CR is an error), field names are tokens with
//! nothing between the name and the colon, field values hold no control character but HTAB,
//! and a line starting with whitespace (obs-fold) is refused.

/// Longest chunk extension accepted per chunk (abuse defence).
pub const MAX_EXTENSION: usize = 1024;
/// Longest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size")]
    Size,
    #[error("chunk size too large")]
    SizeTooLarge,
    #[error("invalid chunk extension")]
    Extension,
    #[error("chunk extension too long")]
    ExtensionTooLong,
    #[error("chunk line not ended by CRLF")]
    LineEnding,
    #[error("chunk data longer than its size")]
    DataTooLong,
    #[error("invalid trailer field name")]
    TrailerName,
    #[error("invalid trailer field value")]
    TrailerValue,
    #[error("trailer section too large")]
    TrailersTooLarge,
}

/// Where inside a chunk extension the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After `;`: BWS, then the first name character.
    BeforeName,
    Name,
    /// BWS after a name: `=` or `;` may follow.
    AfterName,
    /// After `=`: BWS, then a token or a quoted string.
    BeforeValue,
    Token,
    Quoted,
    QuotedPair,
    /// Straight after a quoted value's closing quote: `;`, BWS or CR may follow.
    Closed,
    /// BWS after a value: `;` may follow.
    AfterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    /// BWS between the size and `;`.
    SizeBws,
    Ext(Ext),
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer line, or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
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

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `field-vchar` or whitespace inside a field value: VCHAR, obs-text, SP, HTAB.
fn is_value_byte(b: u8) -> bool {
    is_ws(b) || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// `qdtext`: HTAB, SP, VCHAR except `"` and `\`, obs-text.
fn is_qdtext(b: u8) -> bool {
    is_value_byte(b) && b != b'"' && b != b'\\'
}

/// One byte of a chunk extension (after the chunk size). CR ends the size line.
fn ext_step(e: Ext, b: u8) -> Result<State, ChunkError> {
    use Ext::*;
    let next = match (e, b) {
        (Quoted, b'"') => Closed,
        (Quoted, b'\\') => QuotedPair,
        (Quoted, b) if is_qdtext(b) => Quoted,
        (QuotedPair, b) if is_value_byte(b) => Quoted,
        (Quoted | QuotedPair, _) => return Err(ChunkError::Extension),
        // The grammar has no BWS before the line's CRLF (only before `;` and around `=`); the
        // h1_framing differential fuzzer found we took it, so a whitespace-ended extension is
        // refused like llhttp's strict mode does.
        (Name | Token | Closed, b'\r') => return Ok(State::SizeLf),
        (Name | AfterName | Token | Closed | AfterValue, b';') => BeforeName,
        (BeforeName | BeforeValue, b) if is_ws(b) => e,
        (Name | AfterName, b) if is_ws(b) => AfterName,
        (Token | Closed | AfterValue, b) if is_ws(b) => AfterValue,
        (BeforeName | Name, b) if is_tchar(b) => Name,
        (Name | AfterName, b'=') => BeforeValue,
        (BeforeValue, b'"') => Quoted,
        (BeforeValue | Token, b) if is_tchar(b) => Token,
        _ => return Err(ChunkError::Extension),
    };
    Ok(State::Ext(next))
}

impl ChunkedScanner {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Counts one byte of the trailer section against [`MAX_TRAILERS`].
    fn trailer_byte(&mut self) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(ChunkError::TrailersTooLarge);
        }
        Ok(())
    }

    /// Scans `bytes`; returns how many belong to the body (all of them unless the body ends
    /// inside `bytes`). An error names the syntax problem.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<usize, ChunkError> {
        self.scan_data(bytes, |_| {})
    }

    /// Like [`scan`](Self::scan), and reports each range of `bytes` that is chunk data (the
    /// body without its framing), for de-chunking.
    pub fn scan_data(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits >= 15 {
                            return Err(ChunkError::SizeTooLarge);
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size * 16 + d;
                        self.digits += 1;
                        State::Size
                    }
                    _ if self.digits == 0 => return Err(ChunkError::Size),
                    b';' => State::Ext(Ext::BeforeName),
                    b'\r' => State::SizeLf,
                    b if is_ws(b) => State::SizeBws,
                    _ => return Err(ChunkError::Size),
                },
                State::SizeBws => match b {
                    b';' => State::Ext(Ext::BeforeName),
                    b if is_ws(b) => State::SizeBws,
                    _ => return Err(ChunkError::Extension),
                },
                State::Ext(e) => {
                    self.ext += 1;
                    if self.ext > MAX_EXTENSION {
                        return Err(ChunkError::ExtensionTooLong);
                    }
                    ext_step(e, b)?
                }
                State::SizeLf => match b {
                    b'\n' if self.size == 0 => State::TrailerStart,
                    b'\n' => State::Data,
                    _ => return Err(ChunkError::LineEnding),
                },
                State::Data => {
                    let take = (self.size as usize).min(bytes.len() - i);
                    data(i..i + take);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataCr => return Err(ChunkError::DataTooLong),
                State::DataLf if b == b'\n' => {
                    self.digits = 0;
                    self.ext = 0;
                    State::Size
                }
                State::DataLf => return Err(ChunkError::LineEnding),
                State::TrailerStart => match b {
                    b'\r' => State::FinalLf,
                    b if is_tchar(b) => {
                        self.trailer_byte()?;
                        State::TrailerName
                    }
                    _ => return Err(ChunkError::TrailerName),
                },
                State::TrailerName => {
                    self.trailer_byte()?;
                    match b {
                        b':' => State::TrailerValue,
                        b if is_tchar(b) => State::TrailerName,
                        _ => return Err(ChunkError::TrailerName),
                    }
                }
                State::TrailerValue => {
                    self.trailer_byte()?;
                    match b {
                        b'\r' => State::TrailerLf,
                        b if is_value_byte(b) => State::TrailerValue,
                        _ => return Err(ChunkError::TrailerValue),
                    }
                }
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::TrailerLf => return Err(ChunkError::LineEnding),
                State::FinalLf if b == b'\n' => {
                    self.state = State::Done;
                    return Ok(i + 1);
                }
                State::FinalLf => return Err(ChunkError::LineEnding),
            };
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
