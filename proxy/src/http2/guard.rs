//! Flood guards the `h2` crate has no knob for: a meter on the connection's IO that walks the
//! HTTP/2 frame headers as bytes pass (9 bytes per frame, payloads skipped, no copy) and
//! counts, per one-second window, the frames that cost the proxy work but carry no request:
//! PING, SETTINGS, PRIORITY and empty non-final DATA (`max_control_frames_per_second`), and
//! RST_STREAM from the client (`max_resets_per_second`: rapid reset, CVE-2023-44487).
//! WINDOW_UPDATE is legitimately sent once per DATA frame received (a gRPC ping-pong sends a
//! thousand a second), so it is bounded by what we send instead, as Envoy does: at most
//! [`WINDOW_UPDATES_PER_DATA_FRAME`] per DATA frame written, plus [`WINDOW_UPDATE_SLACK`]. Past a limit the meter stops
//! reading and wakes the connection, which sends GOAWAY ENHANCE_YOUR_CALM and closes; other
//! connections are untouched. Cost: one branch per frame header on the read path, and a clock
//! read per counted frame.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::detect::PREFACE;

/// Which flood tripped the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// PING / SETTINGS / PRIORITY / WINDOW_UPDATE / empty DATA beyond the rate.
    ControlFrames,
    /// RST_STREAM beyond the rate.
    Resets,
    /// WINDOW_UPDATE out of proportion to the DATA frames sent.
    WindowUpdates,
}

/// WINDOW_UPDATE frames allowed per DATA frame the proxy wrote on the connection.
pub const WINDOW_UPDATES_PER_DATA_FRAME: u64 = 10;
/// WINDOW_UPDATE frames allowed regardless of DATA sent.
pub const WINDOW_UPDATE_SLACK: u64 = 100;

/// Limits per one-second window (0 disables one).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub control_frames: u32,
    pub resets: u32,
}

const WINDOW: Duration = Duration::from_secs(1);

/// Shared by the meter (reading) and the connection loop (acting).
pub struct Guard {
    limits: Limits,
    window_start: Cell<Instant>,
    control: Cell<u32>,
    resets: Cell<u32>,
    /// Over the connection's life: DATA frames written, WINDOW_UPDATE frames read.
    data_out: Cell<u64>,
    window_updates: Cell<u64>,
    tripped: Cell<Option<Flood>>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("tripped", &self.tripped.get())
            .finish()
    }
}

impl Guard {
    pub fn new(limits: Limits) -> Rc<Guard> {
        Rc::new(Guard {
            limits,
            window_start: Cell::new(Instant::now()),
            control: Cell::new(0),
            resets: Cell::new(0),
            data_out: Cell::new(0),
            window_updates: Cell::new(0),
            tripped: Cell::new(None),
            waker: Cell::new(None),
        })
    }

    fn count(&self, c: &Cell<u32>, limit: u32, flood: Flood) {
        if limit == 0 {
            return;
        }
        if self.window_start.get().elapsed() >= WINDOW {
            self.window_start.set(Instant::now());
            self.control.set(0);
            self.resets.set(0);
        }
        c.set(c.get() + 1);
        if c.get() > limit {
            self.trip(flood);
        }
    }

    fn trip(&self, flood: Flood) {
        if self.tripped.get().is_none() {
            self.tripped.set(Some(flood));
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    fn window_update(&self) {
        let n = self.window_updates.get() + 1;
        self.window_updates.set(n);
        if n > WINDOW_UPDATE_SLACK + WINDOW_UPDATES_PER_DATA_FRAME * self.data_out.get() {
            self.trip(Flood::WindowUpdates);
        }
    }

    /// Resolves once a limit was exceeded.
    pub async fn tripped(&self) -> Flood {
        poll_fn(|cx| match self.tripped.get() {
            Some(f) => Poll::Ready(f),
            None => {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// Walks frame headers across reads (or writes, `outbound`).
#[derive(Debug)]
struct FrameWalk {
    outbound: bool,
    preface_left: usize,
    header: [u8; 9],
    have: usize,
    payload_left: usize,
}

impl FrameWalk {
    fn feed(&mut self, mut bytes: &[u8], g: &Guard) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = (9 - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have == 9 {
                    self.have = 0;
                    self.frame(g);
                }
            }
        }
    }

    fn frame(&mut self, g: &Guard) {
        let h = &self.header;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        self.payload_left = len;
        if self.outbound {
            if kind == 0x0 {
                g.data_out.set(g.data_out.get() + 1);
            }
            return;
        }
        let ack = flags & 0x1 != 0;
        let control = match kind {
            0x0 => len == 0 && flags & 0x1 == 0, // empty DATA without END_STREAM
            0x2 => true,                         // PRIORITY
            0x8 => {
                g.window_update();
                false
            }
            0x4 | 0x6 => !ack, // SETTINGS, PING (ACKs answer ours)
            0x3 => {
                g.count(&g.resets, g.limits.resets, Flood::Resets);
                false
            }
            _ => false,
        };
        if control {
            g.count(&g.control, g.limits.control_frames, Flood::ControlFrames);
        }
    }
}

/// The connection's IO with the meter on its read side.
pub struct Metered<T> {
    inner: T,
    guard: Rc<Guard>,
    walk: FrameWalk,
    out: FrameWalk,
}

impl FrameWalk {
    fn new(outbound: bool, preface_left: usize) -> FrameWalk {
        FrameWalk {
            outbound,
            preface_left,
            header: [0; 9],
            have: 0,
            payload_left: 0,
        }
    }
}

impl<T> Metered<T> {
    /// Server side: the client preface is still to come through `inner` and is skipped.
    pub fn new(inner: T, guard: Rc<Guard>) -> Metered<T> {
        Metered {
            inner,
            guard,
            walk: FrameWalk::new(false, PREFACE.len()),
            out: FrameWalk::new(true, 0),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.guard.tripped.get().is_some() {
            // Read nothing more from an abuser; the connection is closing.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.walk.feed(&buf.filled()[before..], &this.guard);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.out.feed(&buf[..n], &this.guard);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.resize(9 + len, 0xaa);
        f
    }

    #[test]
    fn counts_pings_across_split_reads_and_trips_past_the_limit() {
        let g = Guard::new(Limits {
            control_frames: 10,
            resets: 0,
        });
        let mut w = FrameWalk::new(false, PREFACE.len());
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 6)); // SETTINGS
        bytes.extend(frame(0x1, 0x4, 20)); // HEADERS: not counted
        for _ in 0..9 {
            bytes.extend(frame(0x6, 0, 8)); // PING
        }
        bytes.extend(frame(0x6, 0x1, 8)); // PING ACK: not counted
        for chunk in bytes.chunks(5) {
            w.feed(chunk, &g);
        }
        assert_eq!(g.tripped.get(), None, "10 control frames is the limit");
        w.feed(&frame(0x0, 0, 0), &g); // empty DATA
        assert_eq!(g.tripped.get(), Some(Flood::ControlFrames));
    }

    #[test]
    fn resets_have_their_own_limit() {
        let g = Guard::new(Limits {
            control_frames: 0,
            resets: 3,
        });
        let mut w = FrameWalk::new(false, 0);
        for _ in 0..3 {
            w.feed(&frame(0x3, 0, 4), &g);
            w.feed(&frame(0x0, 0, 0), &g); // control limit disabled
        }
        assert_eq!(g.tripped.get(), None);
        w.feed(&frame(0x3, 0, 4), &g);
        assert_eq!(g.tripped.get(), Some(Flood::Resets));
    }

    #[test]
    fn window_updates_are_bounded_by_the_data_frames_sent() {
        let g = Guard::new(Limits {
            control_frames: 0,
            resets: 0,
        });
        let mut inbound = FrameWalk::new(false, 0);
        let mut outbound = FrameWalk::new(true, 0);
        for _ in 0..50 {
            outbound.feed(&frame(0x0, 0, 100), &g);
        }
        let allowed = WINDOW_UPDATE_SLACK + WINDOW_UPDATES_PER_DATA_FRAME * 50;
        for _ in 0..allowed {
            inbound.feed(&frame(0x8, 0, 4), &g);
        }
        assert_eq!(g.tripped.get(), None);
        inbound.feed(&frame(0x8, 0, 4), &g);
        assert_eq!(g.tripped.get(), Some(Flood::WindowUpdates));
    }
}
