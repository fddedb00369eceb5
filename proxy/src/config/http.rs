//! Stage two, HTTP part: what a listener's `protocol` allows (`tcp` fields vs `http` fields),
//! [`HttpSettings`] of an `http` listener, and a cluster's upstream [`PoolSettings`].

use std::sync::Arc;

use super::h2::build_h2;
use super::raw::{RawListener, RawPool};
use super::routes::build_table;
use super::scalar::{duration_field, parse_size, Scalar};
use super::{Cluster, ConfigError, HttpSettings, PoolSettings, MAX_HEADER_COUNT};
use crate::route::normalize::{EscapedSlashes, PathOptions};

/// The first `http`-only field set on a `tcp` listener, if any.
pub(super) fn http_only_field(raw: &RawListener) -> Option<&'static str> {
    [
        ("virtual_hosts", raw.virtual_hosts.is_some()),
        (
            "request_headers_timeout",
            raw.request_headers_timeout.is_some(),
        ),
        ("first_byte_timeout", raw.first_byte_timeout.is_some()),
        (
            "max_request_headers_size",
            raw.max_request_headers_size.is_some(),
        ),
        ("max_request_headers", raw.max_request_headers.is_some()),
        ("max_request_line_size", raw.max_request_line_size.is_some()),
        ("retry_buffer_size", raw.retry_buffer_size.is_some()),
        ("normalize_path", raw.normalize_path.is_some()),
        ("merge_slashes", raw.merge_slashes.is_some()),
        (
            "path_with_escaped_slashes",
            raw.path_with_escaped_slashes.is_some(),
        ),
        ("http2", raw.http2.is_some()),
    ]
    .into_iter()
    .find_map(|(f, set)| set.then_some(f))
}

/// The first `tcp`-only field set on an `http` listener, if any.
pub(super) fn tcp_only_field(raw: &RawListener) -> Option<&'static str> {
    [
        ("cluster", raw.cluster.is_some()),
        ("l4_mode", raw.l4_mode.is_some()),
        ("original_dst", raw.original_dst),
        ("transparent", raw.transparent),
    ]
    .into_iter()
    .find_map(|(f, set)| set.then_some(f))
}

fn size_field(path: String, v: &Option<Scalar>, default: usize) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_size(s).map_err(|m| ConfigError::new(path, m)),
    }
}

/// A header-count limit: 1 to [`MAX_HEADER_COUNT`], `default` when absent. A value above the
/// maximum is an error, never a clamp.
pub(super) fn header_count_field(
    path: String,
    v: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    match v.unwrap_or(default) {
        0 => Err(ConfigError::new(path, "must be at least 1")),
        n if n > MAX_HEADER_COUNT => Err(ConfigError::new(
            path,
            format!("{n} is above the supported maximum of {MAX_HEADER_COUNT}"),
        )),
        n => Ok(n),
    }
}

/// `normalize_path`, `merge_slashes` and `path_with_escaped_slashes` of listener `at`. An
/// escaped-slash action other than `keep_unchanged` with neither of the others on would do
/// nothing (see [`PathOptions::is_active`]), so it is an error rather than silently ignored.
fn path_options(at: &str, raw: &RawListener) -> Result<PathOptions, ConfigError> {
    let field = || format!("{at}.path_with_escaped_slashes");
    let escaped_slashes = match raw.path_with_escaped_slashes.as_deref() {
        None | Some("reject_request") => EscapedSlashes::RejectRequest,
        Some("keep_unchanged") => EscapedSlashes::KeepUnchanged,
        Some("unescape_and_forward") => EscapedSlashes::UnescapeAndForward,
        Some(o) => {
            return Err(ConfigError::new(
                field(),
                format!(
                    "unknown value {o:?} (expected keep_unchanged, reject_request or unescape_and_forward)"
                ),
            ))
        }
    };
    let opts = PathOptions {
        normalize: raw.normalize_path.unwrap_or(false),
        merge_slashes: raw.merge_slashes.unwrap_or(false),
        escaped_slashes,
    };
    if raw.path_with_escaped_slashes.is_some()
        && escaped_slashes != EscapedSlashes::KeepUnchanged
        && !opts.is_active()
    {
        return Err(ConfigError::new(
            field(),
            "has no effect unless normalize_path or merge_slashes is true",
        ));
    }
    Ok(opts)
}

/// Settings of `http` listener `at` (`listeners[i]`).
pub(super) fn build_http(
    at: &str,
    raw: &RawListener,
    clusters: &[Arc<Cluster>],
) -> Result<HttpSettings, ConfigError> {
    let f = |name: &str| format!("{at}.{name}");
    let d = HttpSettings::default();
    let Some(vhosts) = &raw.virtual_hosts else {
        return Err(ConfigError::new(
            f("virtual_hosts"),
            "an http listener needs virtual_hosts",
        ));
    };
    let s = HttpSettings {
        routes: build_table(at, vhosts, clusters)?,
        request_headers_timeout: duration_field(
            f("request_headers_timeout"),
            &raw.request_headers_timeout,
            d.request_headers_timeout,
        )?,
        first_byte_timeout: duration_field(
            f("first_byte_timeout"),
            &raw.first_byte_timeout,
            d.first_byte_timeout,
        )?,
        max_request_headers_bytes: size_field(
            f("max_request_headers_size"),
            &raw.max_request_headers_size,
            d.max_request_headers_bytes,
        )?,
        max_request_headers: header_count_field(
            f("max_request_headers"),
            raw.max_request_headers,
            d.max_request_headers,
        )?,
        max_request_line_bytes: size_field(
            f("max_request_line_size"),
            &raw.max_request_line_size,
            d.max_request_line_bytes,
        )?,
        retry_buffer_bytes: size_field(
            f("retry_buffer_size"),
            &raw.retry_buffer_size,
            d.retry_buffer_bytes,
        )?,
        path: path_options(at, raw)?,
        h2: build_h2(&f("http2"), raw.http2.as_ref())?,
    };
    if let Some(h2) = &raw.http2 {
        if h2.keepalive_interval.is_some() || h2.keepalive_timeout.is_some() {
            return Err(ConfigError::new(
                f("http2.keepalive_interval"),
                "only a cluster's http2 block takes keepalive_interval/keepalive_timeout (upstream PING)",
            ));
        }
    }
    if s.request_headers_timeout.is_zero() {
        return Err(ConfigError::new(
            f("request_headers_timeout"),
            "must be above 0",
        ));
    }
    if s.first_byte_timeout.is_zero() {
        return Err(ConfigError::new(f("first_byte_timeout"), "must be above 0"));
    }
    if s.max_request_line_bytes < 16 {
        return Err(ConfigError::new(
            f("max_request_line_size"),
            "must be at least 16 bytes",
        ));
    }
    if s.max_request_headers_bytes < s.max_request_line_bytes {
        return Err(ConfigError::new(
            f("max_request_headers_size"),
            format!(
                "must be at least max_request_line_size ({} bytes): the request line is part of the head",
                s.max_request_line_bytes
            ),
        ));
    }
    Ok(s)
}

/// The pool settings of cluster `at` (`clusters[i]`).
pub(super) fn build_pool(at: &str, raw: &Option<RawPool>) -> Result<PoolSettings, ConfigError> {
    let d = PoolSettings::default();
    let Some(raw) = raw else {
        return Ok(d);
    };
    let idle_timeout = duration_field(
        format!("{at}.pool.idle_timeout"),
        &raw.idle_timeout,
        d.idle_timeout,
    )?;
    if idle_timeout.is_zero() {
        return Err(ConfigError::new(
            format!("{at}.pool.idle_timeout"),
            "must be above 0 (max_idle_per_endpoint: 0 disables pooling)",
        ));
    }
    if raw.max_requests_per_connection == Some(0) {
        return Err(ConfigError::new(
            format!("{at}.pool.max_requests_per_connection"),
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    Ok(PoolSettings {
        max_idle_per_endpoint: raw.max_idle_per_endpoint.unwrap_or(d.max_idle_per_endpoint),
        idle_timeout,
        max_requests_per_connection: raw.max_requests_per_connection,
    })
}
