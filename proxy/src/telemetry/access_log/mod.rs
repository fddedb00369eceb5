//! Access logs: Envoy's format language compiled once into a list of [`Op`]s ([`format`], text
//! formats folded into [`steps`]), and
//! rendered per request from an [`Entry`] into a reusable byte buffer ([`render`]), so a shard
//! formats a line without parsing or allocating per request.

pub mod format;
pub mod render;
pub mod sink;
pub mod steps;
#[cfg(test)]
mod tests;
pub mod writer;

pub use format::{Format, FormatError, Op, ENVOY_DEFAULT_FORMAT};
pub use render::{Entry, HeaderLookup};
