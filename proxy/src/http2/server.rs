//! One HTTP/2 client connection: the handshake with the listener's limits (they double as
//! flood guards, see the module doc of [`super`]), then every accepted stream runs as a future
//! of this connection's task (no spawn per stream; they borrow the connection's context),
//! polled together with the connection itself. The connection's watch carries its idle
//! timeout; a drain or idle abort sends GOAWAY and lets open streams finish.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::coalesce::Coalesce;
use super::guard::{Guard, Limits, Metered};
use super::stream::{self, StreamEnv};
use super::H2State;
use crate::config::H2Settings;
use crate::ctx::{ConnCtx, Services};
use crate::http1::H1State;
use crate::io::Stream;

/// How long a connection closed by a guard may take to flush its GOAWAY.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Bytes the tokio-IO adapter buffers per direction.
const ADAPTER_BUFFER: usize = 16 * 1024;

fn builder(s: &H2Settings) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(s.max_concurrent_streams)
        .initial_window_size(s.initial_stream_window)
        .initial_connection_window_size(s.initial_connection_window)
        .max_frame_size(s.max_frame_size)
        .max_header_list_size(s.max_header_list_size)
        .max_pending_accept_reset_streams(s.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(s.max_local_error_reset_streams))
        .max_send_buffer_size(s.max_send_buffer_size as usize);
    b
}

/// Serves one HTTP/2 connection (the client preface is still unread on `stream`, or replayed
/// by it) until it closes.
pub async fn serve<S: Stream + Unpin>(
    ctx: ConnCtx,
    stream: S,
    svc: &Services,
    h1: &H1State,
    h2s: &H2State,
) {
    let listener = ctx.listener();
    let Some(settings) = listener.http.clone() else {
        return;
    };
    let watch = svc.sweeper.register(listener.idle_timeout);
    let io =
        monoio_compat::StreamWrapper::new_with_buffer_size(stream, ADAPTER_BUFFER, ADAPTER_BUFFER);
    let guard = Guard::new(Limits {
        control_frames: settings.h2.max_control_frames_per_second,
        resets: settings.h2.max_resets_per_second,
    });
    let io = Metered::new(Coalesce::new(io, ADAPTER_BUFFER), guard.clone());
    let handshake = builder(&settings.h2).handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout(settings.first_byte_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(peer = %ctx.peer, error = %e, "h2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    H2State::bump(&h2s.connections);
    let peer_ip = ctx.peer.0.ip().to_string();
    let env = StreamEnv {
        svc,
        h1,
        ctx: &ctx,
        settings: &settings,
        watch: &watch,
        peer_ip: peer_ip.as_bytes(),
    };
    let mut streams = FuturesUnordered::new();
    let mut closing = false;
    loop {
        if svc.draining.get() && !closing {
            closing = true;
            conn.graceful_shutdown();
        }
        let aborted = pin!(watch.aborted());
        monoio::select! {
            accepted = conn.accept() => match accepted {
                Some(Ok((req, respond))) => {
                    watch.touch();
                    H2State::bump(&h2s.streams);
                    streams.push(stream::handle(req, respond, env));
                }
                Some(Err(e)) => {
                    if guard_tripped(&ctx, &e) {
                        H2State::bump(&h2s.guard_closes);
                    }
                    break;
                }
                None => break,
            },
            _ = finished(&mut streams), if !streams.is_empty() => {}
            _ = aborted, if !closing => {
                closing = true;
                conn.graceful_shutdown();
            }
            flood = guard.tripped(), if !closing => {
                H2State::bump(&h2s.guard_closes);
                crate::warn_limited!(
                    "h2 flood",
                    listener = %ctx.listener().name,
                    peer = %ctx.peer,
                    flood = ?flood,
                    "h2 flood guard: GOAWAY ENHANCE_YOUR_CALM"
                );
                conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                // Let the GOAWAY go out, but not for long.
                let _ = monoio::time::timeout(CLOSE_GRACE, poll_fn(|cx| conn.poll_closed(cx))).await;
                break;
            }
        }
    }
}

/// Waits for a stream to finish and collects every other one finished by then, so that their
/// responses leave in one flush of the connection (the next turn of the loop), not one each.
fn finished<F: Future<Output = ()>>(
    streams: &mut FuturesUnordered<F>,
) -> impl Future<Output = ()> + '_ {
    poll_fn(move |cx| {
        let mut any = false;
        while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {
            any = true;
        }
        if any {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// A connection-level error: the peer broke the protocol or tripped a flood guard (h2 sends
/// GOAWAY with the reason, ENHANCE_YOUR_CALM for the reset and error-reset floods).
fn guard_tripped(ctx: &ConnCtx, e: &h2::Error) -> bool {
    let ours = e.is_go_away() && e.is_library();
    if ours {
        crate::warn_limited!(
            "h2 connection closed",
            listener = %ctx.listener().name,
            peer = %ctx.peer,
            reason = ?e.reason(),
            "h2 connection closed by a guard"
        );
    } else {
        tracing::debug!(peer = %ctx.peer, error = %e, "h2 connection ended");
    }
    ours
}
