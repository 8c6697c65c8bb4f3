//! `TlsStream`: the fast path (one atomic load, then records), the slow path (the lazy
//! handshake), and the `AsyncRead`/`AsyncWrite` glue. This module moves bytes between the
//! engine's buffers and the transport; it never calls rustls itself.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::engine::{Engine, HandshakeStatus, MAX_PLAINTEXT, ReadStatus, TX_BATCH};
use crate::error::Error;
use crate::handshake::{Driver, Handshake};
use crate::info::ConnectionInfo;
use crate::options::Options;
use crate::server::{ResolveFuture, Resolver};
use crate::state::{HandshakeState, State};
use crate::trace::HandshakeSpan;

/// How many records' worth of work one read poll does before it yields, so that a peer
/// flooding tiny records cannot hold the executor thread.
pub(crate) const READ_STEPS_PER_POLL: usize = 64;

/// The answer to a plaintext HTTP request on the TLS port.
const PLAINTEXT_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// How the read side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// close_notify, or an accepted truncation: reads return `Ok(0)`.
    Clean,
    /// EOF without close_notify: reads return [`Error::Truncated`].
    Truncated,
}

/// A TLS connection over `IO`, client or server, like Go's `tls.Conn`.
///
/// Made by [`TlsConnector::connect`](crate::TlsConnector::connect) or
/// [`TlsAcceptor::accept`](crate::TlsAcceptor::accept) without any I/O. The handshake runs
/// on the first read, write or flush, or explicitly through [`TlsStream::handshake`].
/// Once it has completed, every `poll_read` and `poll_write` starts with one atomic load
/// and goes straight to the records.
pub struct TlsStream<IO> {
    io: IO,
    engine: Engine,
    state: State,
    /// The sticky error; set once, right before `state` becomes `Failed`.
    error: Option<Error>,
    /// Fatal bounds of a handshake in progress (token, deadline); dropped when it ends.
    driver: Option<Pin<Box<Driver>>>,
    options: Options,
    info: Option<ConnectionInfo>,
    started: Option<Instant>,
    read_end: Option<ReadEnd>,
    /// Bytes were written to `io` since its last flush.
    io_dirty: bool,
    close_notify_queued: bool,
    /// The tasks last parked in a read, and in a write/flush/shutdown. With
    /// `tokio::io::split`, a reader and a writer share this stream but the transport keeps
    /// only one waker per direction, so whoever takes the other's turn wakes it: the end of
    /// the handshake wakes both, and a read that writes (a KeyUpdate answer, an alert)
    /// wakes the writer.
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// The read path queued bytes (a KeyUpdate answer) that the transport has not taken.
    read_owes_write: bool,
    /// Server: picks the config from the ClientHello; `resolving` is its pending answer.
    resolver: Option<Resolver>,
    /// In a `Mutex` only so the stream stays `Sync` with a future that is merely `Send`;
    /// it is reached through `get_mut`, never locked.
    resolving: Option<std::sync::Mutex<ResolveFuture>>,
    /// The handshake's tracing span (empty without the `tracing` feature).
    span: Option<HandshakeSpan>,
}

/// What a [`TlsStream`] is besides its transport and engine, kept by a split stream for
/// `unsplit`.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) options: Options,
    pub(crate) info: Option<ConnectionInfo>,
    started: Option<Instant>,
    pub(crate) read_end: Option<ReadEnd>,
    pub(crate) write_closed: bool,
    pub(crate) io_dirty: bool,
    pub(crate) close_notify_queued: bool,
}

impl<IO> std::fmt::Debug for TlsStream<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("state", &self.state.get())
            .field("engine", &self.engine)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<IO> TlsStream<IO> {
    pub(crate) fn new(io: IO, engine: Result<Engine, Error>, options: Options) -> Self {
        let mut stream = TlsStream {
            io,
            engine: Engine::unusable(false),
            state: State::new(),
            error: None,
            driver: None,
            options,
            info: None,
            started: None,
            read_end: None,
            io_dirty: false,
            close_notify_queued: false,
            read_waker: None,
            write_waker: None,
            read_owes_write: false,
            resolver: None,
            resolving: None,
            span: None,
        };
        match engine {
            Ok(engine) => stream.engine = engine,
            Err(e) => stream.store_error(e),
        }
        stream
    }

    /// Where the handshake stands. Lock-free; usable through `&self` from any thread.
    pub fn state(&self) -> HandshakeState {
        self.state.get()
    }

    /// Whether this is the client end.
    pub fn is_client(&self) -> bool {
        self.engine.is_client()
    }

    /// What the handshake negotiated; `None` until it has completed.
    pub fn info(&self) -> Option<&ConnectionInfo> {
        self.info.as_ref()
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The transport, mutably. Reading or writing it directly corrupts the TLS stream.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// Gives the transport back, dropping all TLS state (nothing is flushed or sent).
    pub fn into_inner(self) -> IO {
        self.io
    }

    /// Heap bytes held by this stream's own buffers (rustls's state not included).
    pub fn buffered_capacity(&self) -> usize {
        self.engine.buffer_capacity()
    }

    pub(crate) fn set_resolver(&mut self, resolver: Resolver) {
        self.resolver = Some(resolver);
    }

    /// Whether [`TlsStream::into_parts`] can hand the engine to a split stream's halves:
    /// the handshake completed and the native layer carries the records.
    pub(crate) fn splittable(&self) -> bool {
        self.state.get() == HandshakeState::Ready && self.engine.can_split()
    }

    /// Takes the stream apart for a split stream. Tasks parked in it are woken: from now
    /// on they wait on the halves.
    pub(crate) fn into_parts(mut self, cx: &Context<'_>) -> (IO, Engine, Parts) {
        wake_others([self.read_waker.take(), self.write_waker.take()], cx);
        let this = self;
        let parts = Parts {
            options: this.options,
            info: this.info,
            started: this.started,
            read_end: this.read_end,
            write_closed: this.state.write_closed(),
            io_dirty: this.io_dirty,
            close_notify_queued: this.close_notify_queued,
        };
        (this.io, this.engine, parts)
    }

    /// Puts a stream together again from what [`TlsStream::into_parts`] gave, with the
    /// halves' sticky error if there is one.
    pub(crate) fn from_parts(io: IO, engine: Engine, parts: Parts, error: Option<Error>) -> Self {
        let mut stream = TlsStream::new(io, Ok(engine), parts.options);
        stream.state.begin_handshake();
        stream.state.complete_handshake();
        stream.info = parts.info;
        stream.started = parts.started;
        stream.read_end = parts.read_end;
        if parts.read_end.is_some() {
            stream.state.close_read();
        }
        if parts.write_closed {
            stream.state.close_write();
        }
        stream.io_dirty = parts.io_dirty;
        stream.close_notify_queued = parts.close_notify_queued;
        if let Some(e) = error {
            stream.store_error(e);
        }
        stream
    }

    fn sticky(&self) -> Error {
        debug_assert_eq!(self.state.get(), HandshakeState::Failed);
        self.error
            .as_ref()
            .map_or(Error::Cancelled, Error::duplicate)
    }

    fn store_error(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.driver = None;
        self.state.fail();
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    /// Completes the handshake, or returns at once if it already has.
    ///
    /// Idempotent: after completion it is ready on its first poll and allocates nothing.
    /// After a failure it returns the same error every time. Bound it per call with
    /// [`Handshake::cancel_on`]; the connector's or acceptor's timeout and token apply too.
    pub fn handshake(&mut self) -> Handshake<'_, IO> {
        Handshake::new(self)
    }

    /// Starts a TLS 1.3 key update: sends a KeyUpdate that also asks the peer to update,
    /// and moves our sending key forward. The message goes out with the next write or
    /// flush. Fails before the handshake has completed and on TLS 1.2.
    pub fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        if self.state.get() != HandshakeState::Ready || self.state.write_closed() {
            return Err(rustls::Error::HandshakeNotComplete.into());
        }
        self.engine.refresh_traffic_keys()
    }

    /// Drives the handshake; `Ready(Ok(()))` once it is complete.
    pub fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.state.get() {
            HandshakeState::Ready => return Poll::Ready(Ok(())),
            HandshakeState::Failed => return Poll::Ready(Err(self.sticky())),
            HandshakeState::Idle => self.begin(),
            HandshakeState::Handshaking => {}
        }
        if let Some(driver) = self.driver.as_mut() {
            let bound = match driver.as_mut().poll(cx) {
                Poll::Ready(e) => Err(e),
                Poll::Pending => ready!(driver.as_mut().poll_permit(cx)),
            };
            if let Err(e) = bound {
                return Poll::Ready(Err(self.fail(cx, e)));
            }
        }
        if let Err(e) = ready!(self.poll_handshake_io(cx)) {
            return Poll::Ready(Err(self.fail(cx, e)));
        }
        self.complete();
        self.wake_parked(cx);
        Poll::Ready(Ok(()))
    }

    /// Wakes the tasks parked in this stream, except the one polling now.
    fn wake_parked(&mut self, cx: &Context<'_>) {
        wake_others([self.read_waker.take(), self.write_waker.take()], cx);
    }

    fn begin(&mut self) {
        self.state.begin_handshake();
        self.started = Some(Instant::now());
        self.driver = Driver::new(&self.options);
        self.span = Some(HandshakeSpan::start(self.engine.is_client()));
    }

    fn complete(&mut self) {
        debug_assert!(self.error.is_none(), "Ready implies no stored error");
        let took = self.started.map_or_else(Default::default, |t| t.elapsed());
        let mut info = self
            .engine
            .take_info()
            .unwrap_or_else(|| ConnectionInfo::empty(took));
        info.handshake_duration = took;
        if let Some(span) = self.span.take() {
            span.completed(&info);
        }
        self.info = Some(info);
        self.driver = None;
        self.engine.trim_after_handshake();
        self.state.complete_handshake();
    }

    /// The handshake's I/O loop. Each turn writes, reads or returns, so it cannot spin.
    fn poll_handshake_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            // Flush handshake bytes in the same poll that produced them.
            ready!(self.poll_write_tx(cx))?;
            match self.engine.drive_handshake()? {
                HandshakeStatus::Done if self.engine.tx().is_empty() => {
                    ready!(self.poll_flush_io(cx))?;
                    return Poll::Ready(Ok(()));
                }
                HandshakeStatus::Done => continue,
                HandshakeStatus::NeedConfig => ready!(self.poll_resolve(cx))?,
                HandshakeStatus::NeedInput if !self.engine.tx().is_empty() => continue,
                HandshakeStatus::NeedInput => {
                    ready!(self.poll_flush_io(cx))?;
                    if ready!(self.poll_fill_rx(cx))? == 0 {
                        return Poll::Ready(Err(Error::HandshakeEof));
                    }
                }
            }
        }
    }

    /// Asks the resolver for the config of the ClientHello the engine holds, and hands it
    /// over. An async resolver's future is kept across polls.
    fn poll_resolve(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let chosen = if let Some(pending) = self.resolving.as_mut() {
            let pending = pending
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let chosen = ready!(pending.as_mut().poll(cx));
            self.resolving = None;
            chosen
        } else {
            let hello = self.engine.client_hello();
            match (&self.resolver, hello) {
                (Some(Resolver::Sync(resolve)), Some(hello)) => resolve(&hello),
                (Some(Resolver::Async(resolve)), Some(hello)) => {
                    let mut pending = resolve(&hello);
                    match pending.as_mut().poll(cx) {
                        Poll::Ready(chosen) => chosen,
                        Poll::Pending => {
                            self.resolving = Some(std::sync::Mutex::new(pending));
                            return Poll::Pending;
                        }
                    }
                }
                _ => Err(Error::NoServerConfig("no resolver for this stream".into())),
            }
        };
        match chosen {
            Ok(config) => Poll::Ready(self.engine.set_server_config(config)),
            Err(e) => {
                self.engine.reject_client_hello();
                Poll::Ready(Err(e))
            }
        }
    }

    /// Makes a failure sticky: one best-effort alert write, then the transport is shut
    /// down. Neither can replace `e`, which is returned.
    fn fail(&mut self, cx: &mut Context<'_>, e: Error) -> Error {
        if let Some(span) = self.span.take() {
            let took = self.started.map_or_else(Default::default, |t| t.elapsed());
            span.failed(&e, took);
        }
        if matches!(e, Error::Tls(_)) {
            self.engine.collect_alert();
        }
        if matches!(e, Error::PlaintextHttp) && self.options.plaintext_http_response {
            self.engine.tx().extend(PLAINTEXT_HTTP_ANSWER);
        }
        self.resolving = None;
        if !self.engine.tx().is_empty() {
            // One write; a transport that is not ready just misses the alert.
            let _ = Pin::new(&mut self.io).poll_write(cx, self.engine.tx().data());
            let _ = Pin::new(&mut self.io).poll_flush(cx);
        }
        if !matches!(e, Error::Io(_)) {
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
        }
        let out = e.duplicate();
        self.store_error(e);
        // A task parked in the other direction must see the failure too.
        self.wake_parked(cx);
        out
    }

    /// Writes the outgoing buffer until it is empty.
    fn poll_write_tx(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        poll_write_tx(&mut self.io, &mut self.engine, &mut self.io_dirty, cx)
    }

    fn poll_write_tx_once(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        poll_write_tx_once(&mut self.io, &mut self.engine, &mut self.io_dirty, cx)
    }

    /// Writes what the transport takes now, without waiting. A `Pending` leaves the rest
    /// buffered for the next write or flush (its waker registration is harmless).
    fn try_write_tx(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        try_write_tx(&mut self.io, &mut self.engine, &mut self.io_dirty, cx)
    }

    fn poll_flush_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.io_dirty {
            ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(Error::Io)?;
            self.io_dirty = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads once from the transport into the engine; returns the byte count (0 is EOF).
    fn poll_fill_rx(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Error>> {
        let mut buf = ReadBuf::new(self.engine.rx_spare());
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).map_err(Error::Io)?;
        let n = buf.filled().len();
        self.engine.rx_commit(n);
        Poll::Ready(Ok(n))
    }

    /// Reads after the handshake. Errors from the transport are returned as they are and
    /// are not sticky; TLS errors are.
    fn poll_read_ready(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..READ_STEPS_PER_POLL {
            let queued = self.engine.tx().len();
            let status = self.engine.read(buf.initialize_unfilled());
            // A KeyUpdate answer or an alert may have been queued: send it now. Data the
            // writer left buffered is the writer's to flush.
            let flushed = if self.read_owes_write || self.engine.tx().len() > queued {
                self.write_from_read(cx)
            } else {
                Ok(())
            };
            match (status, flushed) {
                (Err(e), _) => return Poll::Ready(Err(self.fail(cx, e).into())),
                (Ok(ReadStatus::Data(n)), flushed) => {
                    buf.advance(n);
                    if let Err(e) = flushed {
                        // The data goes first; the failure is sticky, so the next call
                        // returns it.
                        self.fail(cx, e);
                    }
                    return Poll::Ready(Ok(()));
                }
                (Ok(_), Err(e)) => return Poll::Ready(Err(self.fail(cx, e).into())),
                (Ok(ReadStatus::PeerClosed), Ok(())) => {
                    return Poll::Ready(self.end_read(ReadEnd::Clean));
                }
                (Ok(ReadStatus::NeedInput), Ok(())) => {}
            }
            match ready!(self.poll_fill_rx(cx)) {
                Ok(0) => {
                    let end = if self.options.allow_truncation && !self.engine.rx_partial() {
                        ReadEnd::Clean
                    } else {
                        ReadEnd::Truncated
                    };
                    return Poll::Ready(self.end_read(end));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        // The budget of steps is spent and bytes are still coming: yield, and ask to be
        // polled again since no I/O registered the waker.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes from the read path without waiting. If that took the transport's write
    /// readiness, the parked writer is woken, since its waker may have been replaced.
    fn write_from_read(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let before = self.engine.tx().len();
        let result = match self.poll_write_tx(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(()),
        };
        self.read_owes_write = !self.engine.tx().is_empty();
        if self.engine.tx().len() < before {
            if let Some(waker) = self.write_waker.take() {
                waker.wake();
            }
        }
        result
    }

    fn end_read(&mut self, end: ReadEnd) -> io::Result<()> {
        self.read_end = Some(end);
        self.state.close_read();
        self.read_ended()
    }

    fn read_ended(&self) -> io::Result<()> {
        match self.read_end {
            Some(ReadEnd::Truncated) => Err(Error::Truncated.into()),
            _ => Ok(()),
        }
    }

    /// The read path when the fast check failed: handshake first, or report how reads
    /// ended.
    #[cold]
    fn poll_read_slow(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_handshake(cx))?;
        if self.state.read_closed() {
            return Poll::Ready(self.read_ended());
        }
        self.poll_read_ready(cx, buf)
    }

    fn poll_write_ready(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        // Keep at most one batch of ciphertext buffered: push it out until a whole record
        // fits, so a slow transport never makes us seal tiny records.
        while self.engine.tx().len() + MAX_PLAINTEXT > TX_BATCH {
            if let Err(e) = ready!(self.poll_write_tx_once(cx)) {
                return Poll::Ready(Err(self.fail(cx, e).into()));
            }
        }
        let written = self.engine.write(&bufs[first..]).and_then(|n| {
            self.try_write_tx(cx)?;
            Ok(n)
        });
        match written {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) => Poll::Ready(Err(self.fail(cx, e).into())),
        }
    }

    #[cold]
    fn poll_write_slow(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.state.write_closed() {
            return Poll::Ready(Err(Error::WriteAfterShutdown.into()));
        }
        ready!(self.poll_handshake(cx))?;
        self.poll_write_ready(cx, bufs)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = if this.state.read_ready() {
            this.poll_read_ready(cx, buf)
        } else {
            this.poll_read_slow(cx, buf)
        };
        if poll.is_pending() {
            park(&mut this.read_waker, cx);
        }
        poll
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = if this.state.write_ready() {
            this.poll_write_ready(cx, bufs)
        } else {
            this.poll_write_slow(cx, bufs)
        };
        if poll.is_pending() {
            park(&mut this.write_waker, cx);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Before the handshake has started there is nothing to flush. During it, flushing
    /// completes it. After it, the buffered records are written and the transport flushed.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = this.poll_flush_inner(cx);
        if poll.is_pending() {
            park(&mut this.write_waker, cx);
        }
        poll
    }

    /// Sends close_notify if the handshake completed, flushes, then shuts down the
    /// transport's write side. Reads keep working afterwards. After a failure it returns
    /// the sticky error (the failure already shut the transport down).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = this.poll_shutdown_inner(cx);
        if poll.is_pending() {
            park(&mut this.write_waker, cx);
        }
        poll
    }
}

/// Writes `engine`'s outgoing buffer to `io` until it is empty; `dirty` records that
/// `io` has bytes to flush. Shared by the stream and the split stream's write half.
pub(crate) fn poll_write_tx<W: AsyncWrite + Unpin>(
    io: &mut W,
    engine: &mut Engine,
    dirty: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    while !engine.tx().is_empty() {
        ready!(poll_write_tx_once(io, engine, dirty, cx))?;
    }
    Poll::Ready(Ok(()))
}

/// One transport write of the outgoing buffer.
pub(crate) fn poll_write_tx_once<W: AsyncWrite + Unpin>(
    io: &mut W,
    engine: &mut Engine,
    dirty: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    let tx = engine.tx();
    match ready!(Pin::new(io).poll_write(cx, tx.data())) {
        Ok(0) => Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into()))),
        Ok(n) => {
            tx.consume(n);
            *dirty = true;
            Poll::Ready(Ok(()))
        }
        Err(e) => Poll::Ready(Err(Error::Io(e))),
    }
}

/// [`poll_write_tx`] without waiting: what the transport does not take now stays
/// buffered.
pub(crate) fn try_write_tx<W: AsyncWrite + Unpin>(
    io: &mut W,
    engine: &mut Engine,
    dirty: &mut bool,
    cx: &mut Context<'_>,
) -> Result<(), Error> {
    match poll_write_tx(io, engine, dirty, cx) {
        Poll::Ready(r) => r,
        Poll::Pending => Ok(()),
    }
}

/// Wakes these tasks, except the one polling now.
fn wake_others(wakers: [Option<Waker>; 2], cx: &Context<'_>) {
    for waker in wakers.into_iter().flatten() {
        if !waker.will_wake(cx.waker()) {
            waker.wake();
        }
    }
}

/// Remembers the waker of a task that is about to wait (cloned only when it changed).
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self;
        match this.state.get() {
            HandshakeState::Idle => {}
            HandshakeState::Handshaking | HandshakeState::Failed => {
                ready!(this.poll_handshake(cx))?
            }
            HandshakeState::Ready => {
                if let Err(e) = ready!(this.poll_write_tx(cx)) {
                    return Poll::Ready(Err(this.fail(cx, e).into()));
                }
                this.engine.trim_tx();
            }
        }
        this.io_dirty = false;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self;
        if this.state.get() == HandshakeState::Failed {
            // Sticky, like every other call; the failure already shut the transport down
            // (and a split stream's write half answers the same).
            return Poll::Ready(Err(this.sticky().into()));
        }
        if this.state.get() == HandshakeState::Ready {
            if !this.close_notify_queued {
                this.close_notify_queued = true;
                this.state.close_write();
                if let Err(e) = this.engine.close_notify() {
                    return Poll::Ready(Err(this.fail(cx, e).into()));
                }
            }
            if let Err(e) = ready!(this.poll_write_tx(cx)) {
                return Poll::Ready(Err(this.fail(cx, e).into()));
            }
        } else {
            // No handshake: nothing to close at the TLS level. Later writes are refused.
            this.state.close_write();
        }
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
