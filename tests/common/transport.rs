//! One configurable misbehaving transport, [`FaultyIo`], wrapped around any tokio IO.
//!
//! Built like a builder, each knob off by default (with none, the wrapper only forwards):
//!
//! - [`FaultyIo::pending_every_other`]: every other call to each of `poll_read`,
//!   `poll_write` and `poll_flush` returns `Pending` after waking the waker, as a
//!   transport that is "not ready yet" would;
//! - [`FaultyIo::pending_every_other_shared`]: the same, but with one alternation shared
//!   by the three (a write after a yielded read goes through);
//! - [`FaultyIo::max_read`], [`FaultyIo::max_write`]: at most this many bytes per call;
//! - [`FaultyIo::chaos`]: seeded randomness (the suites' one [`Rng`]): one call in four
//!   (read, write, flush and shutdown) wakes and returns `Pending`, one read or write in
//!   three is short;
//! - [`FaultyIo::record_calls`]: every trait method called is logged by name in a
//!   [`PollLog`];
//! - [`FaultyIo::with_stats`]: the [`IoStats`] (calls, injected `Pending`s, bytes written)
//!   go to a counter shared with other transports;
//! - [`Faults`], switched on and off while the stream runs: `Ok(0)` from writes, read
//!   errors, write errors, and a reset of the whole write side.
//!
//! The wrapper allocates nothing per call, and lazytls does not know its type, so the split
//! divides it with `tokio::io::split`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::rng::Rng;

/// Faults that a test switches on and off while the stream runs (shared through
/// [`FaultyIo::faults`]).
#[derive(Default)]
pub struct Faults {
    /// `poll_write` returns `Ok(0)`.
    pub write_zero: AtomicBool,
    /// `poll_read` fails with `ConnectionReset`.
    pub read_error: AtomicBool,
    /// `poll_write` fails with `BrokenPipe`.
    pub write_error: AtomicBool,
    /// `poll_write`, `poll_flush` and `poll_shutdown` fail with `ConnectionReset`.
    pub reset_writes: AtomicBool,
}

/// What a [`FaultyIo`] saw (shared through [`FaultyIo::stats`]).
#[derive(Default, Debug)]
pub struct IoStats {
    pub read_calls: AtomicUsize,
    pub write_calls: AtomicUsize,
    /// `Pending`s the wrapper made up (by [`FaultyIo::pending_every_other`],
    /// [`FaultyIo::pending_every_other_shared`] or [`FaultyIo::chaos`]).
    pub injected_pending: AtomicUsize,
    /// Bytes the inner transport took.
    pub bytes_written: AtomicUsize,
}

/// A log of every trait method called on a [`FaultyIo`] with [`FaultyIo::record_calls`].
#[derive(Clone, Default)]
pub struct PollLog(Arc<Mutex<Vec<&'static str>>>);

impl PollLog {
    fn push(&self, what: &'static str) {
        self.0.lock().unwrap().push(what);
    }

    pub fn calls(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

/// Which trait method a made-up `Pending` would answer.
#[derive(Clone, Copy)]
enum Call {
    Read,
    Write,
    Flush,
    Shutdown,
}

/// Which calls [`FaultyIo::pending_every_other`] and
/// [`FaultyIo::pending_every_other_shared`] alternate over.
#[derive(Clone, Copy)]
enum EveryOther {
    Off,
    /// Reads, writes and flushes each alternate on their own.
    EachKind,
    /// Reads, writes and flushes alternate together.
    Shared,
}

/// `IO` with the misbehaviour its knobs ask for; see the [module](self) documentation.
pub struct FaultyIo<IO> {
    inner: IO,
    every_other: EveryOther,
    max_read: usize,
    max_write: usize,
    chaos: Option<Rng>,
    log: Option<PollLog>,
    faults: Arc<Faults>,
    stats: Arc<IoStats>,
    skip_read: bool,
    skip_write: bool,
    skip_flush: bool,
    skip_any: bool,
}

impl<IO> FaultyIo<IO> {
    /// A wrapper that only forwards (and counts), until knobs are turned.
    pub fn new(inner: IO) -> Self {
        FaultyIo {
            inner,
            every_other: EveryOther::Off,
            max_read: 0,
            max_write: 0,
            chaos: None,
            log: None,
            faults: Arc::default(),
            stats: Arc::default(),
            skip_read: false,
            skip_write: false,
            skip_flush: false,
            skip_any: false,
        }
    }

    /// Every other call to each of `poll_read`, `poll_write` and `poll_flush`: wake, and
    /// return `Pending`.
    pub fn pending_every_other(mut self, on: bool) -> Self {
        self.every_other = if on {
            EveryOther::EachKind
        } else {
            EveryOther::Off
        };
        self
    }

    /// Every other call to any of `poll_read`, `poll_write` and `poll_flush`, counted
    /// together (one alternation for the three, not one each): wake, and return `Pending`.
    /// Replaces [`pending_every_other`](Self::pending_every_other) (the last one set wins).
    pub fn pending_every_other_shared(mut self, on: bool) -> Self {
        self.every_other = if on {
            EveryOther::Shared
        } else {
            EveryOther::Off
        };
        self
    }

    /// At most `n` bytes per read (0: no limit).
    pub fn max_read(mut self, n: usize) -> Self {
        self.max_read = n;
        self
    }

    /// At most `n` bytes per write (0: no limit).
    pub fn max_write(mut self, n: usize) -> Self {
        self.max_write = n;
        self
    }

    /// Seeded chaos: one call in four wakes and returns `Pending`; one read or write in
    /// three is short (1 to 699 bytes). The same seed replays the same choices.
    pub fn chaos(mut self, seed: u64) -> Self {
        self.chaos = Some(Rng::new(seed));
        self
    }

    /// Logs every trait method called, by name, in `log`.
    pub fn record_calls(mut self, log: PollLog) -> Self {
        self.log = Some(log);
        self
    }

    /// Counts into `stats` (shared with other transports) instead of a counter of its own.
    pub fn with_stats(mut self, stats: Arc<IoStats>) -> Self {
        self.stats = stats;
        self
    }

    /// The switches of this transport's [`Faults`].
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// This transport's counters.
    pub fn stats(&self) -> Arc<IoStats> {
        self.stats.clone()
    }

    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// The inner transport, to act on it directly (a shutdown that the wrapper does not
    /// see, say).
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.inner
    }

    fn log(&self, what: &'static str) {
        if let Some(log) = &self.log {
            log.push(what);
        }
    }

    fn fault(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }

    fn reset_writes(&self) -> io::Result<()> {
        if Self::fault(&self.faults.reset_writes) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected write failure",
            ));
        }
        Ok(())
    }

    /// A made-up `Pending` (after waking the waker): every other call of its kind under
    /// [`pending_every_other`](Self::pending_every_other), every other read, write or
    /// flush under [`pending_every_other_shared`](Self::pending_every_other_shared) (never
    /// a shutdown, under either), then one call in four under [`chaos`](Self::chaos).
    fn stall(&mut self, call: Call, cx: &Context<'_>) -> bool {
        let mut stall = false;
        let skip = match (self.every_other, call) {
            (EveryOther::Off, _) | (_, Call::Shutdown) => None,
            (EveryOther::Shared, _) => Some(&mut self.skip_any),
            (EveryOther::EachKind, Call::Read) => Some(&mut self.skip_read),
            (EveryOther::EachKind, Call::Write) => Some(&mut self.skip_write),
            (EveryOther::EachKind, Call::Flush) => Some(&mut self.skip_flush),
        };
        if let Some(skip) = skip {
            *skip = !*skip;
            stall = *skip;
        }
        if !stall {
            if let Some(rng) = &mut self.chaos {
                stall = rng.one_in(4);
            }
        }
        if stall {
            self.stats.injected_pending.fetch_add(1, Ordering::Relaxed);
            cx.waker().wake_by_ref();
        }
        stall
    }

    /// How many of `len` bytes this read may take, if fewer.
    fn read_limit(&mut self, len: usize) -> Option<usize> {
        if let Some(rng) = &mut self.chaos {
            if len > 1 && rng.one_in(3) {
                return Some(rng.below(1, 700).min(len));
            }
        }
        (self.max_read > 0 && self.max_read < len).then_some(self.max_read)
    }

    /// How many of `len` bytes this write may take.
    fn write_limit(&mut self, len: usize) -> usize {
        if let Some(rng) = &mut self.chaos {
            if len > 1 && rng.one_in(3) {
                return rng.below(1, len.min(700));
            }
        }
        match self.max_write {
            0 => len,
            n => n.min(len),
        }
    }

    /// The checks every write makes first: `Some` is the answer without writing.
    fn before_write(&mut self, cx: &Context<'_>) -> Option<Poll<io::Result<usize>>> {
        self.stats.write_calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.reset_writes() {
            return Some(Poll::Ready(Err(e)));
        }
        if Self::fault(&self.faults.write_error) {
            return Some(Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "injected write error",
            ))));
        }
        if Self::fault(&self.faults.write_zero) {
            return Some(Poll::Ready(Ok(0)));
        }
        if self.stall(Call::Write, cx) {
            return Some(Poll::Pending);
        }
        None
    }

    fn count_written(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled {
            self.stats.bytes_written.fetch_add(*n, Ordering::SeqCst);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FaultyIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.log("poll_read");
        this.stats.read_calls.fetch_add(1, Ordering::Relaxed);
        if Self::fault(&this.faults.read_error) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected read error",
            )));
        }
        if this.stall(Call::Read, cx) {
            return Poll::Pending;
        }
        let Some(limit) = this.read_limit(buf.remaining()) else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit));
        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        if let Poll::Ready(Ok(())) = polled {
            buf.advance(n);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FaultyIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.log("poll_write");
        if let Some(answer) = this.before_write(cx) {
            return answer;
        }
        let limit = this.write_limit(buf.len());
        let polled = Pin::new(&mut this.inner).poll_write(cx, &buf[..limit]);
        this.count_written(&polled);
        polled
    }

    /// The same rules as `poll_write`; without a limit, the slices go to the inner
    /// transport's own vectored write.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.log("poll_write_vectored");
        if let Some(answer) = this.before_write(cx) {
            return answer;
        }
        let polled = if this.max_write == 0 && this.chaos.is_none() {
            Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
        } else {
            let buf = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            let limit = this.write_limit(buf.len());
            Pin::new(&mut this.inner).poll_write(cx, &buf[..limit])
        };
        this.count_written(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.log("is_write_vectored");
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.log("poll_flush");
        this.reset_writes()?;
        if this.stall(Call::Flush, cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.log("poll_shutdown");
        this.reset_writes()?;
        if this.stall(Call::Shutdown, cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
