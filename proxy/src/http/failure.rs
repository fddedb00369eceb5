//! Why an upstream attempt failed, and what the client is told (Envoy's response flags).

/// Set on a local answer with flag `UO` or `OM` (Envoy's `x-envoy-overloaded`): the proxy shed
/// the request (circuit breaker full, or the overload manager), the upstream never saw it.
pub const OVERLOADED_HEADER: &str = "x-shardcar-overloaded";

/// Whether a local answer with `flag` carries [`OVERLOADED_HEADER`].
pub fn is_overload(flag: &str) -> bool {
    flag == "UO" || flag == crate::overload::FLAG
}

/// An attempt's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Every endpoint is ejected: 503 `UH`.
    NoHealthy,
    /// The cluster's circuit breaker is full: 503 `UO` with [`OVERLOADED_HEADER`] (never retried).
    Overflow,
    /// Connect refused, unreachable or timed out: 503 `UF`.
    Connect,
    /// A reused pooled connection failed while the request was being written: the upstream
    /// never had the whole request, so it cannot have acted on it (retried once transparently
    /// when the request can be replayed).
    Stale,
    /// A reused pooled connection closed after the whole request was written but before any
    /// response byte: the upstream may have executed it, so only idempotent requests (or routes
    /// with `retry_non_idempotent`) are sent again.
    StaleAfterSend,
    /// An HTTP/2 upstream refused the stream unprocessed (REFUSED_STREAM, or above a GOAWAY's
    /// last stream id): safe to send again, after a short pause. 503 `UR` if it persists.
    Refused,
    /// Reset/closed before a complete response head: 502 `UR`.
    Reset,
    /// No response head within the per-try or route timeout: 504 `UT`.
    Timeout,
    /// Malformed response head: 502 `UPE`.
    Protocol,
    /// More response headers than the cluster's `max_response_headers`: 502 `UPE`.
    TooManyHeaders,
    /// The client went away or sent a malformed body while we streamed it.
    Client,
}

impl Failure {
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`: what went wrong with the upstream connection,
    /// for failures of the connection itself (not of the response).
    pub fn transport_failure(self) -> Option<&'static str> {
        match self {
            Failure::Connect => Some("connection_failure"),
            Failure::Stale | Failure::StaleAfterSend | Failure::Reset => {
                Some("connection_termination")
            }
            Failure::Refused => Some("stream_refused"),
            Failure::Protocol | Failure::TooManyHeaders => Some("protocol_error"),
            Failure::NoHealthy | Failure::Overflow | Failure::Timeout | Failure::Client => None,
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Failure::NoHealthy | Failure::Overflow | Failure::Connect | Failure::Refused => 503,
            Failure::Stale
            | Failure::StaleAfterSend
            | Failure::Reset
            | Failure::Protocol
            | Failure::TooManyHeaders => 502,
            Failure::Timeout => 504,
            Failure::Client => 400,
        }
    }
    pub fn flag(self) -> &'static str {
        match self {
            Failure::NoHealthy => "UH",
            Failure::Overflow => "UO",
            Failure::Connect => "UF",
            Failure::Stale | Failure::StaleAfterSend | Failure::Reset | Failure::Refused => "UR",
            Failure::Timeout => "UT",
            Failure::Protocol | Failure::TooManyHeaders => "UPE",
            Failure::Client => "DPE",
        }
    }
    pub fn body(self) -> &'static [u8] {
        match self {
            Failure::NoHealthy => b"no healthy upstream\n",
            Failure::Overflow => b"upstream overflow: circuit breaker open\n",
            Failure::Connect => b"upstream connect error\n",
            Failure::Stale | Failure::StaleAfterSend | Failure::Reset => {
                b"upstream reset before response\n"
            }
            Failure::Refused => b"upstream refused the stream\n",
            Failure::Timeout => b"upstream request timeout\n",
            Failure::Protocol => b"upstream protocol error\n",
            Failure::TooManyHeaders => b"upstream response headers exceed max_response_headers\n",
            Failure::Client => b"bad request body\n",
        }
    }
}
