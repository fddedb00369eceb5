//! HTTP/2 settings: the `http2:` block of an `http`/`http2` listener (downstream limits, flood
//! guards) and of a cluster (upstream connections), raw and typed. Each value maps to one knob
//! of the `h2` crate; see `crate::http2` for what each guard defends against.

use std::time::Duration;

use serde::Deserialize;

use super::scalar::{duration_field, parse_size, Scalar};
use super::ConfigError;

/// The HTTP/2 frame size range allowed by RFC 9113 §6.5.2.
const MIN_FRAME: usize = 16 * 1024;
const MAX_FRAME: usize = (1 << 24) - 1;
/// Largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: usize = (1 << 31) - 1;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawH2 {
    pub max_concurrent_streams: Option<u32>,
    pub initial_stream_window: Option<Scalar>,
    pub initial_connection_window: Option<Scalar>,
    pub max_frame_size: Option<Scalar>,
    pub max_header_list_size: Option<Scalar>,
    pub stream_idle_timeout: Option<Scalar>,
    pub max_pending_accept_reset_streams: Option<usize>,
    pub max_local_error_reset_streams: Option<usize>,
    pub max_send_buffer_size: Option<Scalar>,
    pub max_control_frames_per_second: Option<u32>,
    pub max_resets_per_second: Option<u32>,
    /// Clusters only: PING an idle-or-busy upstream connection this often (Envoy's
    /// `connection_keepalive.interval`); no PONG within `keepalive_timeout` (default 5s) and
    /// the connection is closed and replaced.
    pub keepalive_interval: Option<Scalar>,
    pub keepalive_timeout: Option<Scalar>,
}

/// HTTP/2 limits of one side of the proxy (a listener's downstream or a cluster's upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Settings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we announce (default 100). Upstream: the most streams
    /// opened on one connection before another connection is made (the peer's own limit, if
    /// lower, wins).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE (default 1 MiB).
    pub initial_stream_window: u32,
    /// The connection-level receive window (default 4 MiB).
    pub initial_connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE (default 16 KiB, 16 KiB to 16 MiB − 1).
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (default 16 KiB): a larger header block is refused
    /// before it is decoded (CONTINUATION flood, HPACK bomb).
    pub max_header_list_size: u32,
    /// A stream with no DATA either way for this long is reset (default 5m; zero-window
    /// stalls). `None` with `0`.
    pub stream_idle_timeout: Option<Duration>,
    /// Streams reset by the client before the proxy accepted them, kept at once; more and the
    /// connection gets GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487; default 20).
    pub max_pending_accept_reset_streams: usize,
    /// Streams the proxy had to reset for the peer's protocol errors before the connection is
    /// closed with ENHANCE_YOUR_CALM (default 128).
    pub max_local_error_reset_streams: usize,
    /// Bytes buffered per stream for sending (default 400 KiB).
    pub max_send_buffer_size: u32,
    /// PING, SETTINGS, PRIORITY, WINDOW_UPDATE and empty DATA frames a client may send per
    /// second (default 1000; 0 = no limit); beyond it GOAWAY ENHANCE_YOUR_CALM.
    pub max_control_frames_per_second: u32,
    /// RST_STREAM frames a client may send per second (default 200; 0 = no limit): rapid
    /// reset beyond it gets GOAWAY ENHANCE_YOUR_CALM.
    pub max_resets_per_second: u32,
    /// Upstream PING keepalive: (interval, timeout); `None` when off (the default).
    pub keepalive: Option<(Duration, Duration)>,
}

impl Default for H2Settings {
    fn default() -> H2Settings {
        H2Settings {
            max_concurrent_streams: 100,
            initial_stream_window: 1 << 20,
            initial_connection_window: 4 << 20,
            max_frame_size: 16 * 1024,
            max_header_list_size: 16 * 1024,
            stream_idle_timeout: Some(Duration::from_secs(300)),
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 128,
            max_send_buffer_size: 400 * 1024,
            max_control_frames_per_second: 1000,
            max_resets_per_second: 200,
            keepalive: None,
        }
    }
}

fn sized(
    at: &str,
    name: &str,
    v: &Option<Scalar>,
    default: u32,
    min: usize,
    max: usize,
) -> Result<u32, ConfigError> {
    let path = format!("{at}.{name}");
    let n = match v {
        None => return Ok(default),
        Some(s) => parse_size(s).map_err(|m| ConfigError::new(path.clone(), m))?,
    };
    if n < min || n > max {
        return Err(ConfigError::new(
            path,
            format!("{n} is outside {min}..={max} bytes"),
        ));
    }
    Ok(n as u32)
}

/// PING keepalive settings: an interval above 0 switches it on.
fn keepalive(at: &str, raw: &RawH2) -> Result<Option<(Duration, Duration)>, ConfigError> {
    let interval = duration_field(
        format!("{at}.keepalive_interval"),
        &raw.keepalive_interval,
        Duration::ZERO,
    )?;
    let timeout = duration_field(
        format!("{at}.keepalive_timeout"),
        &raw.keepalive_timeout,
        Duration::from_secs(5),
    )?;
    if interval.is_zero() {
        if raw.keepalive_timeout.is_some() {
            return Err(ConfigError::new(
                format!("{at}.keepalive_timeout"),
                "has no effect without keepalive_interval",
            ));
        }
        return Ok(None);
    }
    if timeout.is_zero() {
        return Err(ConfigError::new(
            format!("{at}.keepalive_timeout"),
            "must be above 0",
        ));
    }
    Ok(Some((interval, timeout)))
}

/// The typed settings of the `http2` block at `at` (e.g. `listeners[0].http2`).
pub(super) fn build_h2(at: &str, raw: Option<&RawH2>) -> Result<H2Settings, ConfigError> {
    let d = H2Settings::default();
    let Some(raw) = raw else {
        return Ok(d);
    };
    let streams = raw
        .max_concurrent_streams
        .unwrap_or(d.max_concurrent_streams);
    if streams == 0 {
        return Err(ConfigError::new(
            format!("{at}.max_concurrent_streams"),
            "must be at least 1",
        ));
    }
    let keepalive = keepalive(at, raw)?;
    let idle = duration_field(
        format!("{at}.stream_idle_timeout"),
        &raw.stream_idle_timeout,
        Duration::from_secs(300),
    )?;
    Ok(H2Settings {
        max_concurrent_streams: streams,
        initial_stream_window: sized(
            at,
            "initial_stream_window",
            &raw.initial_stream_window,
            d.initial_stream_window,
            1,
            MAX_WINDOW,
        )?,
        initial_connection_window: sized(
            at,
            "initial_connection_window",
            &raw.initial_connection_window,
            d.initial_connection_window,
            65_535,
            MAX_WINDOW,
        )?,
        max_frame_size: sized(
            at,
            "max_frame_size",
            &raw.max_frame_size,
            d.max_frame_size,
            MIN_FRAME,
            MAX_FRAME,
        )?,
        max_header_list_size: sized(
            at,
            "max_header_list_size",
            &raw.max_header_list_size,
            d.max_header_list_size,
            1024,
            16 << 20,
        )?,
        stream_idle_timeout: (!idle.is_zero()).then_some(idle),
        max_pending_accept_reset_streams: raw
            .max_pending_accept_reset_streams
            .unwrap_or(d.max_pending_accept_reset_streams),
        max_local_error_reset_streams: raw
            .max_local_error_reset_streams
            .unwrap_or(d.max_local_error_reset_streams),
        max_send_buffer_size: sized(
            at,
            "max_send_buffer_size",
            &raw.max_send_buffer_size,
            d.max_send_buffer_size,
            16 * 1024,
            64 << 20,
        )?,
        max_control_frames_per_second: raw
            .max_control_frames_per_second
            .unwrap_or(d.max_control_frames_per_second),
        max_resets_per_second: raw.max_resets_per_second.unwrap_or(d.max_resets_per_second),
        keepalive,
    })
}
