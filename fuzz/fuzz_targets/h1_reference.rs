//! An independent HTTP/1.1 request framer written from RFC 9112's ABNF (not from Shardcar's
//! parser), for the `h1_framing` differential target. It decides, for one request at the start
//! of a buffer, whether the message is complete and where its head and body end, or why it is
//! refused. Refusals are classed:
//! - `Framing`: anything that could move a message boundary (CL/TE rules, line endings,
//!   obs-fold, whitespace before a colon, chunk syntax). Shardcar must refuse these too.
//! - `Syntax`: a character-set nicety (obs-text in a value, a non-VCHAR target byte) that
//!   cannot move a boundary; Shardcar may be more lenient.
//! - `Limit`: one of the size limits mirrored from Shardcar's configuration.
//!
//! Policy choices where the RFC leaves room, each also Shardcar's documented behaviour:
//! leading empty lines (CRLF only) are skipped (§2.2); only HTTP/1.0 and HTTP/1.1; a
//! Content-Length list of one repeated value is accepted, empty list elements are not;
//! Transfer-Encoding must be exactly `chunked` (anything else is refused, §6.1); TE in an
//! HTTP/1.0 request, TE with CL, a missing or duplicate Host in HTTP/1.1 are refused.

/// What the reference decided about the request at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Head ends at `head`, the whole message at `end` (both offsets into the buffer).
    Complete { head: usize, end: usize },
    /// More bytes are needed.
    Incomplete,
    Refused(Class, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Framing,
    Syntax,
    Limit,
}

/// Limits mirrored from the fuzz target's `Limits` and the chunked scanner's constants.
pub struct RefLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_request_line: usize,
    pub max_chunk_ext: usize,
    pub max_chunk_size_digits: usize,
}

/// Facts about a complete request the differential target needs besides its boundaries.
#[derive(Debug, Default, Clone, Copy)]
pub struct Facts {
    /// CONNECT, or an Upgrade header: what follows may not be HTTP.
    pub switches_protocol: bool,
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn vchar(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

fn ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn refused(c: Class, why: &'static str) -> Verdict {
    Verdict::Refused(c, why)
}

/// A cursor over the buffer; `None` from a reader means "ran out of bytes".
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cur<'_> {
    /// The next line without its CRLF. `Err` names a bare CR/LF; `Ok(None)`: incomplete.
    fn line(&mut self) -> Result<Option<&[u8]>, &'static str> {
        let rest = &self.b[self.at..];
        for (i, &c) in rest.iter().enumerate() {
            if c == b'\n' {
                return Err("bare LF");
            }
            if c == b'\r' {
                match rest.get(i + 1) {
                    None => return Ok(None),
                    Some(b'\n') => {
                        self.at += i + 2;
                        return Ok(Some(&rest[..i]));
                    }
                    Some(_) => return Err("bare CR"),
                }
            }
        }
        Ok(None)
    }
}

/// One field line (header or trailer): `token ":" OWS value OWS`.
fn field<'a>(line: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), Verdict> {
    if line.first().is_some_and(|b| ows(*b)) {
        return Err(refused(Class::Framing, "obs-fold"));
    }
    let colon = line
        .iter()
        .position(|b| *b == b':')
        .ok_or(refused(Class::Framing, "field line without colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|b| tchar(*b)) {
        return Err(refused(Class::Framing, "field name not a token"));
    }
    let mut value = &line[colon + 1..];
    while value.first().is_some_and(|b| ows(*b)) {
        value = &value[1..];
    }
    while value.last().is_some_and(|b| ows(*b)) {
        value = &value[..value.len() - 1];
    }
    for &c in value {
        if c == 0 || c == b'\r' || c == b'\n' {
            return Err(refused(Class::Framing, "NUL/CR/LF in field value"));
        }
        if !(vchar(c) || ows(c)) {
            return Err(refused(Class::Syntax, "non-VCHAR in field value"));
        }
    }
    Ok((name, value))
}

/// `1*DIGIT`, or a list of one repeated `1*DIGIT` with OWS around the commas.
fn content_length(v: &[u8]) -> Option<u64> {
    let mut seen: Option<u64> = None;
    for part in v.split(|b| *b == b',') {
        let mut p = part;
        while p.first().is_some_and(|b| ows(*b)) {
            p = &p[1..];
        }
        while p.last().is_some_and(|b| ows(*b)) {
            p = &p[..p.len() - 1];
        }
        if p.is_empty() || p.len() > 19 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = p.iter().fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
        if seen.is_some_and(|s| s != n) {
            return None;
        }
        seen = Some(n);
    }
    seen
}

/// Frames the request at the start of `buf`.
pub fn frame(buf: &[u8], lim: &RefLimits, facts: &mut Facts) -> Verdict {
    let mut c = Cur { b: buf, at: 0 };
    // §2.2: empty lines before the request line are ignored.
    while buf[c.at..].starts_with(b"\r\n") {
        c.at += 2;
    }
    if c.at == buf.len() || &buf[c.at..] == b"\r" {
        return Verdict::Incomplete;
    }
    let line_start = c.at;
    let line = match c.line() {
        Ok(Some(l)) => l,
        Ok(None) if buf.len() - line_start > lim.max_request_line => {
            return refused(Class::Limit, "request line too long")
        }
        Ok(None) => return Verdict::Incomplete,
        Err(e) => return refused(Class::Framing, e),
    };
    if line.len() > lim.max_request_line {
        return refused(Class::Limit, "request line too long");
    }
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return refused(Class::Framing, "request line is not method SP target SP version");
    };
    if method.is_empty() || !method.iter().all(|b| tchar(*b)) {
        return refused(Class::Framing, "method not a token");
    }
    if target.is_empty() {
        return refused(Class::Framing, "empty request target");
    }
    if !target.iter().all(|b| vchar(*b)) {
        return refused(Class::Syntax, "non-VCHAR in request target");
    }
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return refused(Class::Framing, "not HTTP/1.0 or HTTP/1.1"),
    };
    facts.switches_protocol = method == b"CONNECT";

    let mut headers = 0usize;
    let mut cl: Option<u64> = None;
    let mut te = false;
    let mut chunked = false;
    let mut host = false;
    let head_end;
    loop {
        let line = match c.line() {
            Ok(Some(l)) => l,
            Ok(None) if buf.len() > lim.max_head_bytes => {
                return refused(Class::Limit, "head too large")
            }
            Ok(None) => return Verdict::Incomplete,
            Err(e) => return refused(Class::Framing, e),
        };
        if line.is_empty() {
            head_end = c.at;
            break;
        }
        headers += 1;
        let (name, value) = match field(line) {
            Ok(f) => f,
            Err(v) => return v,
        };
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = content_length(value) else {
                return refused(Class::Framing, "invalid Content-Length");
            };
            if cl.is_some_and(|p| p != n) {
                return refused(Class::Framing, "conflicting Content-Length");
            }
            cl = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if minor == 0 {
                return refused(Class::Framing, "Transfer-Encoding in HTTP/1.0");
            }
            te = true;
            for coding in value.split(|b| *b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return refused(Class::Framing, "Transfer-Encoding other than chunked");
                }
                chunked = true;
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            if host {
                return refused(Class::Framing, "duplicate Host");
            }
            host = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            facts.switches_protocol = true;
        }
    }
    if head_end > lim.max_head_bytes {
        return refused(Class::Limit, "head too large");
    }
    if headers > lim.max_headers {
        return refused(Class::Limit, "too many headers");
    }
    if te && cl.is_some() {
        return refused(Class::Framing, "both Content-Length and Transfer-Encoding");
    }
    if te && !chunked {
        return refused(Class::Framing, "Transfer-Encoding without chunked");
    }
    if minor == 1 && !host {
        return refused(Class::Framing, "HTTP/1.1 without Host");
    }
    if chunked {
        return match chunked_body(&buf[head_end..], lim) {
            Ok(Some(n)) => Verdict::Complete {
                head: head_end,
                end: head_end + n,
            },
            Ok(None) => Verdict::Incomplete,
            Err(v) => v,
        };
    }
    let n = cl.unwrap_or(0);
    let have = (buf.len() - head_end) as u64;
    if have < n {
        return Verdict::Incomplete;
    }
    Verdict::Complete {
        head: head_end,
        end: head_end + n as usize,
    }
}

/// `chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, the whole of `ext`.
fn chunk_ext(ext: &[u8]) -> bool {
    let mut i = 0;
    let skip_bws = |i: &mut usize| {
        while ext.get(*i).is_some_and(|b| ows(*b)) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let s = *i;
        while ext.get(*i).is_some_and(|b| tchar(*b)) {
            *i += 1;
        }
        *i > s
    };
    while i < ext.len() {
        skip_bws(&mut i);
        if ext.get(i) != Some(&b';') {
            return false;
        }
        i += 1;
        skip_bws(&mut i);
        if !token(&mut i) {
            return false;
        }
        let save = i;
        skip_bws(&mut i);
        if ext.get(i) == Some(&b'=') {
            i += 1;
            skip_bws(&mut i);
            if ext.get(i) == Some(&b'"') {
                // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
                i += 1;
                loop {
                    match ext.get(i) {
                        None => return false,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                        Some(b'\\') => match ext.get(i + 1) {
                            Some(&q) if q == b'\t' || q == b' ' || vchar(q) || q >= 0x80 => {
                                i += 2
                            }
                            _ => return false,
                        },
                        // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                        Some(&q) if q == b'\t' || q == b' ' || vchar(q) || q >= 0x80 => i += 1,
                        Some(_) => return false,
                    }
                }
            } else if !token(&mut i) {
                return false;
            }
        } else {
            i = save;
        }
    }
    true
}

/// Length of a complete chunked body at the start of `b` (`Ok(None)`: incomplete).
fn chunked_body(b: &[u8], lim: &RefLimits) -> Result<Option<usize>, Verdict> {
    let mut c = Cur { b, at: 0 };
    loop {
        let line = match c.line() {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(e) => return Err(refused(Class::Framing, e)),
        };
        let digits = line.iter().take_while(|d| d.is_ascii_hexdigit()).count();
        if digits == 0 {
            return Err(refused(Class::Framing, "chunk size not hex"));
        }
        if digits > lim.max_chunk_size_digits {
            return Err(refused(Class::Limit, "chunk size too long"));
        }
        let ext = &line[digits..];
        if ext.len() > lim.max_chunk_ext {
            return Err(refused(Class::Limit, "chunk extension too long"));
        }
        if !chunk_ext(ext) {
            return Err(refused(Class::Framing, "chunk extension syntax"));
        }
        let size = line[..digits].iter().fold(0u64, |a, d| {
            a * 16 + u64::from((*d as char).to_digit(16).unwrap_or(0))
        });
        if size == 0 {
            break;
        }
        let rest = (b.len() - c.at) as u64;
        if rest < size {
            return Ok(None);
        }
        c.at += size as usize;
        match (c.b.get(c.at), c.b.get(c.at + 1)) {
            (None, _) | (Some(b'\r'), None) => return Ok(None),
            (Some(b'\r'), Some(b'\n')) => c.at += 2,
            _ => return Err(refused(Class::Framing, "chunk data not followed by CRLF")),
        }
    }
    // trailer-section = *( field-line CRLF ), then CRLF.
    loop {
        let line = match c.line() {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(e) => return Err(refused(Class::Framing, e)),
        };
        if line.is_empty() {
            return Ok(Some(c.at));
        }
        if let Err(v) = field(line) {
            return Err(v);
        }
    }
}
