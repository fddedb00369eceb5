//! Protocol-neutral HTTP: what every HTTP codec (HTTP/1.1 today, HTTP/2 next) shares above its
//! wire format — the request context routing, filters, retries and telemetry see
//! ([`request`]), byte spans into a codec's buffer ([`span`]), upstream failures and their
//! Envoy-style flags ([`failure`]), retry decisions ([`retry`]), header classes shared by
//! every codec ([`header`]), the extra headers of an HTTP/2 upstream request ([`h2_request`])
//! and gRPC statuses and deadlines ([`grpc`]).
//!
//! A codec fills a [`request::RequestCtx`] from its own parse (HTTP/1 from spans into its read
//! buffer, with no allocation per header; HTTP/2 from its frames), then hands it to the shared
//! route → filters → cluster steps.

pub mod admit;
pub mod failure;
pub mod fault;
pub mod grpc;
pub mod h2_request;
pub mod header;
pub mod request;
pub mod retry;
pub mod span;

pub use failure::Failure;
pub use request::{Headers, Method, RequestCtx};
pub use span::{HeaderSpan, Span};
