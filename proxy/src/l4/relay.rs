//! Copy mode between two plain sockets, with an idle phase that holds no transfer state.
//!
//! The two directions' transfer (reads, writes, their buffers and op futures: ~1 KiB) was the
//! largest part of an idle proxied connection, kept alive while it waited for bytes. Here it
//! lives in a box per *active phase*: once the sweeper has parked the connection and both
//! directions wait for bytes (or have finished), the phase ends, the box is freed, the split
//! halves are reunited and the connection waits for read readiness on its open sockets — two
//! poll ops, no buffer. The first readable byte starts a new phase (reads from the arena again).
//!
//! Each direction, when parked, reads with a [`PARKED_BUFFER`]-byte buffer as long as the
//! other one is still running (blocked in a write, say), so neither side ever stops reading
//! while the other waits: the phase ends only when both are at rest at the same time. The
//! direction that comes to rest second cancels the first one's small read; bytes that read
//! returned anyway are carried into the next phase and written first.

use std::cell::Cell;
use std::io;
use std::pin::pin;
use std::rc::Rc;

use futures_util::future::{select, try_join, Either};
use monoio::io::{
    AsyncWriteRent, CancelableAsyncReadRent, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;

use super::copy::{is_cancel, take_big, write_all, PARKED_BUFFER};
use crate::ctx::ConnWatch;
use crate::sys::BufArena;

/// A connection's two sockets: whole while idle, split for an active phase.
pub enum Pair {
    Whole(TcpStream, TcpStream),
    Split(Halves),
}

/// client read, client write, upstream read, upstream write.
pub type Halves = (
    OwnedReadHalf<TcpStream>,
    OwnedWriteHalf<TcpStream>,
    OwnedReadHalf<TcpStream>,
    OwnedWriteHalf<TcpStream>,
);

impl Pair {
    fn split(self) -> Pair {
        match self {
            Pair::Whole(c, u) => {
                let (cr, cw) = c.into_split();
                let (ur, uw) = u.into_split();
                Pair::Split((cr, cw, ur, uw))
            }
            split => split,
        }
    }

    /// `(client, upstream)`. Reunites split halves: dropping an `OwnedWriteHalf` sends a FIN.
    pub fn into_streams(self) -> (TcpStream, TcpStream) {
        match self {
            Pair::Whole(c, u) => (c, u),
            Pair::Split((cr, cw, ur, uw)) => {
                let (Ok(c), Ok(u)) = (cr.reunite(cw), ur.reunite(uw)) else {
                    unreachable!("halves come from the same stream");
                };
                (c, u)
            }
        }
    }
}

/// One direction's progress across phases.
#[derive(Default)]
struct Dir {
    total: u64,
    /// End of file seen and forwarded (FIN sent on).
    done: bool,
    /// Bytes read after the other direction came to rest: written first in the next phase.
    carry: Option<Vec<u8>>,
}

/// Where a direction is within an active phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rest {
    Running,
    /// Parked, in a small read the other direction may cancel.
    Waiting,
    /// Out of the phase: at rest, or finished.
    Out,
}

/// Moves bytes both ways until both directions have seen end of file (each forwarded as a
/// FIN); returns `(client → upstream, upstream → client)` byte counts. `pair` is left whole or
/// split for the caller to reunite, also when this future is dropped (idle timeout).
pub async fn run(
    pair: &mut Option<Pair>,
    watch: &ConnWatch,
    arena: &Rc<BufArena>,
) -> io::Result<(u64, u64)> {
    let (mut up, mut down) = (Dir::default(), Dir::default());
    loop {
        *pair = pair.take().map(Pair::split);
        let Some(Pair::Split(h)) = pair.as_mut() else {
            unreachable!("split just above");
        };
        Box::pin(phase(h, &mut up, &mut down, watch, arena)).await?;
        if up.done && down.done {
            return Ok((up.total, down.total));
        }
        if up.carry.is_some() || down.carry.is_some() {
            continue;
        }
        // Both at rest: no read is pending, so the canceller goes too.
        watch.cancel_reads();
        *pair = pair.take().map(|p| {
            let (c, u) = p.into_streams();
            Pair::Whole(c, u)
        });
        let Some(Pair::Whole(c, u)) = pair.as_ref() else {
            unreachable!("reunited just above");
        };
        readable(c, u, &up, &down).await?;
        watch.unpark();
    }
}

/// Waits until a socket whose direction is still open has bytes (or an error) to read.
async fn readable(c: &TcpStream, u: &TcpStream, up: &Dir, down: &Dir) -> io::Result<()> {
    match (up.done, down.done) {
        (false, false) => match select(pin!(c.readable(false)), pin!(u.readable(false))).await {
            Either::Left((r, _)) | Either::Right((r, _)) => r,
        },
        (false, true) => c.readable(false).await,
        (true, false) => u.readable(false).await,
        (true, true) => Ok(()),
    }
}

/// One active phase: both directions, until both are at rest or finished (or one fails).
async fn phase(
    h: &mut Halves,
    up: &mut Dir,
    down: &mut Dir,
    watch: &ConnWatch,
    arena: &Rc<BufArena>,
) -> io::Result<()> {
    #[cfg(test)]
    let _live = tests::LivePhase::new();
    let rest = [Cell::new(Rest::Running), Cell::new(Rest::Running)];
    let (cr, cw, ur, uw) = h;
    try_join(
        direction(cr, uw, up, [&rest[0], &rest[1]], watch, arena),
        direction(ur, cw, down, [&rest[1], &rest[0]], watch, arena),
    )
    .await
    .map(drop)
}

/// One direction of a phase. `rest`: this direction's state, then the other's.
async fn direction<R, W>(
    from: &mut R,
    to: &mut W,
    st: &mut Dir,
    rest: [&Cell<Rest>; 2],
    watch: &ConnWatch,
    arena: &Rc<BufArena>,
) -> io::Result<()>
where
    R: CancelableAsyncReadRent,
    W: AsyncWriteRent,
{
    let [me, other] = rest;
    if st.done {
        me.set(Rest::Out);
        return Ok(());
    }
    if let Some(carry) = st.carry.take() {
        watch.unpark();
        let n = carry.len();
        write_all(to, carry).await.0?;
        watch.touch();
        st.total += n as u64;
    }
    let mut big = None;
    loop {
        let n = if watch.parked() {
            big = None; // back to the arena while idle
            match other.get() {
                Rest::Running => {}
                waiting => {
                    // Both at rest: end the phase (the other's small read with it).
                    me.set(Rest::Out);
                    if waiting == Rest::Waiting {
                        watch.cancel_reads();
                    }
                    return Ok(());
                }
            }
            me.set(Rest::Waiting);
            let cancel = watch.cancel_handle();
            let (res, small) = from
                .cancelable_read(Vec::with_capacity(PARKED_BUFFER), cancel)
                .await;
            me.set(Rest::Running);
            match res {
                Ok(0) => 0,
                Ok(_) if other.get() == Rest::Out => {
                    // The other direction left the phase meanwhile: write these in the next.
                    st.carry = Some(small);
                    me.set(Rest::Out);
                    return Ok(());
                }
                Ok(n) => {
                    watch.unpark();
                    write_all(to, small).await.0?;
                    n
                }
                Err(e) if is_cancel(&e) => continue,
                Err(e) => return Err(e),
            }
        } else {
            let buf = take_big(&mut big, arena)?;
            let (res, buf) = from.cancelable_read(buf, watch.cancel_handle()).await;
            match res {
                Ok(0) => 0,
                Ok(n) => {
                    let (res, mut buf) = write_all(to, buf).await;
                    res?;
                    buf.clear();
                    big = Some(buf);
                    n
                }
                Err(e) if is_cancel(&e) => {
                    big = Some(buf);
                    continue; // parked by the sweeper: the next turn gives the slot back
                }
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            to.shutdown().await?;
            st.done = true;
            me.set(Rest::Out);
            return Ok(());
        }
        watch.touch();
        st.total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::Sweeper;
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    use std::time::Duration;

    thread_local! {
        static LIVE: Cell<u32> = const { Cell::new(0) };
    }

    /// Counts active phases (their boxes) on this thread.
    pub(super) struct LivePhase;

    impl LivePhase {
        pub(super) fn new() -> LivePhase {
            LIVE.with(|l| l.set(l.get() + 1));
            LivePhase
        }
    }

    impl Drop for LivePhase {
        fn drop(&mut self) {
            LIVE.with(|l| l.set(l.get() - 1));
        }
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let app = TcpStream::connect_addr(l.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, _) = l.accept().await.unwrap();
        (app, ours)
    }

    async fn read_some(s: &mut TcpStream) -> Vec<u8> {
        let (r, b) = s.read(Vec::with_capacity(64)).await;
        r.unwrap();
        b
    }

    async fn settle() {
        monoio::time::sleep(Duration::from_millis(30)).await;
    }

    #[test]
    fn an_idle_relay_holds_no_phase_and_resumes_both_ways() {
        let mut rt = wire::build_runtime(None).unwrap().0;
        rt.block_on(async {
            let (mut client, c) = pair().await;
            let (mut origin, u) = pair().await;
            let sweeper = Sweeper::new(None);
            let w = sweeper.register(None);
            let arena = super::super::copy::new_arena(4).unwrap();
            let mut p = Some(Pair::Whole(c, u));
            let relay = run(&mut p, &w, &arena);
            let test = async {
                client.write_all(b"hi".to_vec()).await.0.unwrap();
                assert_eq!(read_some(&mut origin).await, b"hi");
                client.shutdown().await.unwrap(); // half-close: FIN upstream
                assert!(read_some(&mut origin).await.is_empty());
                assert_eq!(LIVE.with(Cell::get), 1);
                for _ in 0..6 {
                    sweeper.sweep_once();
                }
                assert!(w.parked());
                settle().await;
                assert_eq!(LIVE.with(Cell::get), 0, "idle: the phase is freed");
                assert_eq!(arena.in_use(), 0);
                assert!(!w.has_canceller());
                origin.write_all(b"back".to_vec()).await.0.unwrap();
                assert_eq!(read_some(&mut client).await, b"back");
                assert!(!w.parked(), "bytes unpark");
                // Parked again with data arriving on the other side right away.
                for _ in 0..6 {
                    sweeper.sweep_once();
                }
                settle().await;
                assert_eq!(LIVE.with(Cell::get), 0);
                origin.write_all(b"more".to_vec()).await.0.unwrap();
                assert_eq!(read_some(&mut client).await, b"more");
                drop(origin);
            };
            let (totals, ()) = monoio::join!(relay, test);
            assert_eq!(totals.unwrap(), (2, 8));
            assert!(read_some(&mut client).await.is_empty(), "FIN forwarded");
            assert_eq!(LIVE.with(Cell::get), 0);
        });
    }

    #[test]
    fn both_directions_at_rest_end_the_phase() {
        let mut rt = wire::build_runtime(None).unwrap().0;
        rt.block_on(async {
            let (mut client, c) = pair().await;
            let (mut origin, u) = pair().await;
            let sweeper = Sweeper::new(None);
            let w = sweeper.register(None);
            let arena = super::super::copy::new_arena(4).unwrap();
            let mut p = Some(Pair::Whole(c, u));
            let relay = run(&mut p, &w, &arena);
            let test = async {
                client.write_all(b"ping".to_vec()).await.0.unwrap();
                assert_eq!(read_some(&mut origin).await, b"ping");
                for _ in 0..6 {
                    sweeper.sweep_once();
                }
                settle().await;
                // The first to rest waits in a small read; the second cancels it.
                assert_eq!(LIVE.with(Cell::get), 0, "both at rest: the phase is freed");
                assert!(!w.has_canceller());
                client.write_all(b"up".to_vec()).await.0.unwrap();
                assert_eq!(read_some(&mut origin).await, b"up");
                origin.write_all(b"down".to_vec()).await.0.unwrap();
                assert_eq!(read_some(&mut client).await, b"down");
                client.shutdown().await.unwrap();
                assert!(read_some(&mut origin).await.is_empty());
                drop(origin);
            };
            let (totals, ()) = monoio::join!(relay, test);
            assert_eq!(totals.unwrap(), (6, 4));
        });
    }
}
