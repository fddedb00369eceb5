//! Compiling Envoy's access-log format language (`%START_TIME%`, `%REQ(X?Y):Z%`, …) into a flat
//! list of [`Op`]s at config load. A text format compiles to one list; a JSON format (key →
//! format) to one list per key. Unknown commands are errors naming the command and its offset.

use super::steps::{steps, TextFormat};

/// Envoy's default text format, used when a log gives none.
pub const ENVOY_DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Where a `%REQ(..)%` / `%RESP(..)%` value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Method,
    Path,
    Authority,
    Scheme,
    /// A regular header, by lower-case name.
    Header(Box<str>),
}

/// One step of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Literal(Box<str>),
    StartTime,
    /// `%REQ(X?Y):Z%`: `X`, else `Y`, at most `Z` bytes.
    Req {
        first: Source,
        alt: Option<Source>,
        max: Option<usize>,
    },
    /// `%RESP(X?Y):Z%`.
    Resp {
        first: Source,
        alt: Option<Source>,
        max: Option<usize>,
    },
    ResponseCode,
    ResponseFlags,
    BytesReceived,
    BytesSent,
    Duration,
    RequestDuration,
    ResponseDuration,
    UpstreamHost,
    UpstreamCluster,
    DownstreamRemoteAddress,
    DownstreamPeerUriSan,
    Protocol,
    UpstreamTransportFailureReason,
    ConnectionTerminationDetails,
}

impl Op {
    /// Whether this op renders a number (so a JSON format emits it unquoted when alone).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Op::ResponseCode
                | Op::BytesReceived
                | Op::BytesSent
                | Op::Duration
                | Op::RequestDuration
                | Op::ResponseDuration
        )
    }
}

/// A compiled access-log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Text(TextFormat),
    /// Keys in the order written; each value a compiled format.
    Json(Vec<(Box<str>, Vec<Op>)>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access log format: {what} at offset {offset}")]
pub struct FormatError {
    pub offset: usize,
    pub what: String,
}

impl Format {
    pub fn text(s: &str) -> Result<Format, FormatError> {
        compile(s).map(|ops| Format::Text(steps(ops)))
    }
    pub fn json(fields: &[(String, String)]) -> Result<Format, FormatError> {
        let mut out = Vec::with_capacity(fields.len());
        for (k, v) in fields {
            let ops = compile(v).map_err(|e| FormatError {
                offset: e.offset,
                what: format!("key {k:?}: {}", e.what),
            })?;
            out.push((k.as_str().into(), ops));
        }
        Ok(Format::Json(out))
    }
}

/// Compile one format string. `%%` is a literal `%`.
pub fn compile(s: &str) -> Result<Vec<Op>, FormatError> {
    let mut ops = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(i) = rest.find('%') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('%') {
            lit.push('%');
            offset += i + 2;
            rest = stripped;
            continue;
        }
        let Some(end) = after.find('%') else {
            return Err(FormatError {
                offset: offset + i,
                what: "unterminated '%' command".into(),
            });
        };
        let cmd = &after[..end];
        let op = command(cmd).map_err(|what| FormatError {
            offset: offset + i,
            what,
        })?;
        if !lit.is_empty() {
            ops.push(Op::Literal(std::mem::take(&mut lit).into()));
        }
        ops.push(op);
        offset += i + 1 + end + 1;
        rest = &after[end + 1..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        ops.push(Op::Literal(lit.into()));
    }
    Ok(ops)
}

fn command(cmd: &str) -> Result<Op, String> {
    let simple = match cmd {
        "START_TIME" => Some(Op::StartTime),
        "RESPONSE_CODE" => Some(Op::ResponseCode),
        "RESPONSE_FLAGS" => Some(Op::ResponseFlags),
        "BYTES_RECEIVED" => Some(Op::BytesReceived),
        "BYTES_SENT" => Some(Op::BytesSent),
        "DURATION" => Some(Op::Duration),
        "REQUEST_DURATION" => Some(Op::RequestDuration),
        "RESPONSE_DURATION" => Some(Op::ResponseDuration),
        "UPSTREAM_HOST" => Some(Op::UpstreamHost),
        "UPSTREAM_CLUSTER" => Some(Op::UpstreamCluster),
        "DOWNSTREAM_REMOTE_ADDRESS" => Some(Op::DownstreamRemoteAddress),
        "DOWNSTREAM_PEER_URI_SAN" => Some(Op::DownstreamPeerUriSan),
        "PROTOCOL" => Some(Op::Protocol),
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => Some(Op::UpstreamTransportFailureReason),
        "CONNECTION_TERMINATION_DETAILS" => Some(Op::ConnectionTerminationDetails),
        _ => None,
    };
    if let Some(op) = simple {
        return Ok(op);
    }
    let (is_req, inner) = if let Some(r) = cmd.strip_prefix("REQ(") {
        (true, r)
    } else if let Some(r) = cmd.strip_prefix("RESP(") {
        (false, r)
    } else {
        return Err(format!("unknown command %{cmd}%"));
    };
    let Some(close) = inner.find(')') else {
        return Err(format!("missing ')' in %{cmd}%"));
    };
    let (names, tail) = (&inner[..close], &inner[close + 1..]);
    let max = match tail {
        "" => None,
        t => match t.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => return Err(format!("bad length {t:?} in %{cmd}% (want :N)")),
        },
    };
    let (a, b) = match names.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (names, None),
    };
    let first = source(a).ok_or_else(|| format!("empty header name in %{cmd}%"))?;
    let alt = match b {
        Some(b) => Some(source(b).ok_or_else(|| format!("empty header name in %{cmd}%"))?),
        None => None,
    };
    Ok(if is_req {
        Op::Req { first, alt, max }
    } else {
        Op::Resp { first, alt, max }
    })
}

fn source(name: &str) -> Option<Source> {
    if name.is_empty() {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        ":method" => Source::Method,
        ":path" => Source::Path,
        ":authority" | "host" => Source::Authority,
        ":scheme" => Source::Scheme,
        _ => Source::Header(lower.into()),
    })
}
