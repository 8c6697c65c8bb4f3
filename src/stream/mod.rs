//! `TlsStream`: the fast path (one atomic load, then records), the slow path (the lazy
//! handshake), and the `AsyncRead`/`AsyncWrite` glue. The I/O itself is the core's
//! ([`EngineIo`]); what is the stream's own is its handshake state, its two wakers, and its
//! failure policy: a failure is stored once, sent to the peer, and returned by every later
//! call.

mod handshake_future;
mod parked;
mod shared_waker;

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::engine::Engine;
use crate::engine::ReadStatus;
use crate::engine_io::{EngineIo, FailurePolicy, ReadPolicy, keeps_transport};
use crate::error::Error;
use crate::handshake::{HandshakeContext, Resolver};
use crate::info::{ConnectionInfo, ConnectionInfoHandle};
use crate::options::Options;
use crate::state::{HandshakeState, State};

pub use handshake_future::Handshake;
use parked::{Parked, ParkedTasks};

/// A TLS connection over `IO`, client or server, like Go's `tls.Conn`.
///
/// Made by [`TlsConnector::connect`](crate::TlsConnector::connect) or
/// [`TlsAcceptor::accept`](crate::TlsAcceptor::accept) without any I/O. The handshake runs
/// on the first read, write or flush, or explicitly through [`TlsStream::handshake`].
/// Once it has completed, every `poll_read` and `poll_write` starts with one atomic load
/// and goes straight to the records.
pub struct TlsStream<IO> {
    core: EngineIo<IO>,
    /// The mirror of the core's lifecycle that the fast path loads; written only by
    /// [`TlsStream::park`], at the end of a call that changed the lifecycle.
    state: State,
    options: Options,
    /// What the handshake negotiated, unless an [`info_handle`](Self::info_handle) was
    /// taken before it completed: then the handle's slot holds it.
    info: Option<ConnectionInfo>,
    /// Set by the first `info_handle()`; through `&self`, as axum's `ConnectInfo` sees
    /// only a shared reference to the stream.
    info_handle: OnceLock<ConnectionInfoHandle>,
    /// What only the handshake needs; `None` before a resolving server's first poll and
    /// after the handshake.
    handshake: Option<HandshakeContext>,
    /// The tasks last parked in a read, in a write/flush/shutdown, and in `handshake()`.
    parked: ParkedTasks,
}

/// What a [`TlsStream`] is besides its I/O core, kept by a split stream for `unsplit`.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) options: Options,
    pub(crate) info: Option<ConnectionInfo>,
}

impl<IO> std::fmt::Debug for TlsStream<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("state", &self.core.lifecycle().phase())
            .field("buffered", &self.core.buffer_capacity())
            .field("error", &self.core.lifecycle().error())
            .finish_non_exhaustive()
    }
}

impl<IO> TlsStream<IO> {
    /// A client stream to `name`; see [`TlsConnector::connect`](crate::TlsConnector::connect).
    pub(crate) fn client(
        io: IO,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        options: Options,
    ) -> Self {
        let engine = Engine::client(config, name, options.record_layer);
        TlsStream::new(io, engine, options)
    }

    /// A server stream with a fixed config.
    pub(crate) fn server(io: IO, config: Arc<ServerConfig>, options: Options) -> Self {
        let answer = options.plaintext_http_response;
        let engine = Engine::server(config, options.record_layer);
        TlsStream::new(io, engine.map(|e| e.answer_plaintext_http(answer)), options)
    }

    /// A server stream that asks `resolver` for its config once the ClientHello is here.
    pub(crate) fn server_resolving(io: IO, resolver: Resolver, options: Options) -> Self {
        let engine = Engine::server_resolving(options.record_layer)
            .answer_plaintext_http(options.plaintext_http_response);
        let mut stream = TlsStream::new(io, Ok(engine), options);
        stream.handshake = Some(HandshakeContext::resolving_with(resolver));
        stream
    }

    fn new(io: IO, engine: Result<Engine, Error>, options: Options) -> Self {
        let client = engine.as_ref().is_ok_and(Engine::is_client);
        let (engine, error) = match engine {
            Ok(engine) => (engine, None),
            Err(e) => (Engine::unusable(client), Some(e)),
        };
        let core = EngineIo::new(io, engine).keep_idle_buffers(options.keep_idle_buffers);
        TlsStream::assemble(core, options, None, error)
    }

    /// A stream from its pieces; `error`, if any, is made sticky at once.
    fn assemble(
        mut core: EngineIo<IO>,
        options: Options,
        info: Option<ConnectionInfo>,
        error: Option<Error>,
    ) -> Self {
        if let Some(e) = error {
            core.lifecycle_mut().fail(e);
        }
        core.lifecycle_mut().take_changed();
        TlsStream {
            state: State::of(core.lifecycle()),
            core,
            options,
            info,
            info_handle: OnceLock::new(),
            handshake: None,
            parked: ParkedTasks::default(),
        }
    }

    /// Where the handshake stands. Lock-free; usable through `&self` from any thread.
    pub fn state(&self) -> HandshakeState {
        self.state.get()
    }

    /// Whether this is the client end.
    pub fn is_client(&self) -> bool {
        self.core.is_client()
    }

    /// What the handshake negotiated; `None` until it has completed.
    pub fn info(&self) -> Option<&ConnectionInfo> {
        (self.info.as_ref()).or_else(|| self.info_handle.get()?.get())
    }

    /// Keying material exported from the connection's secrets, as rustls's
    /// `export_keying_material`: see [`ConnectionInfo::export_keying_material`]. Before the
    /// handshake has completed it is
    /// [`ExportError::HandshakeNotComplete`](crate::ExportError::HandshakeNotComplete).
    pub fn export_keying_material<T: AsMut<[u8]>>(
        &self,
        output: T,
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<T, Error> {
        crate::info::export_from(self.info(), output, label, context)
    }

    /// A handle on [`info`](Self::info) that can be taken before the handshake and read
    /// once it has completed: for a server's accept loop, which gets the stream before
    /// any TLS I/O (see [`ConnectionInfoHandle`]). Every call returns a clone of the same
    /// handle; the first allocates it.
    pub fn info_handle(&self) -> ConnectionInfoHandle {
        (self.info_handle)
            .get_or_init(|| ConnectionInfoHandle::with(self.info.clone()))
            .clone()
    }

    /// Server: takes the 0-RTT early data the client sent, once the handshake has
    /// completed (all of it arrives before the handshake completes); empty if there was
    /// none or it was taken already.
    ///
    /// Early data is replayable (RFC 8446 §8): an attacker who recorded it can deliver
    /// it again, on another connection, so act only on requests that are safe to repeat.
    /// That is why ordinary reads never return it. A server receives early data only if
    /// its config sets `max_early_data_size`.
    pub fn take_early_data(&mut self) -> Vec<u8> {
        self.core.take_early_data()
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        self.core.io()
    }

    /// The transport, mutably. Reading or writing it directly corrupts the TLS stream.
    pub fn get_mut(&mut self) -> &mut IO {
        self.core.io_mut()
    }

    /// Gives the transport back, dropping all TLS state (nothing is flushed or sent).
    pub fn into_inner(self) -> IO {
        self.core.into_io()
    }

    /// Takes the transport back after a client spoke plaintext HTTP to the TLS port: when
    /// the handshake failed with [`Error::PlaintextHttp`] and the acceptor does not answer
    /// such clients itself ([`plaintext_http_response`](crate::TlsAcceptor::plaintext_http_response)
    /// is off). The transport is as the client left it, never shut down, and the
    /// [`PlaintextStream`](crate::PlaintextStream) replays the bytes already read from it,
    /// so the server can answer in plaintext (a redirect to `https://`) or serve it another
    /// way.
    ///
    /// Any other stream is given back as `Err`: one still handshaking, one that
    /// completed, and one that failed otherwise, whose transport was shut down.
    // The stream comes back by value, as from `into_split`'s `reunite`: a caller that gets
    // it back goes on with it, and a box would only move it to the heap for that.
    #[allow(clippy::result_large_err)]
    pub fn into_plaintext(mut self) -> Result<crate::PlaintextStream<IO>, Self> {
        // The acceptor's answer, when it gives one, is what `keeps_transport` calls answered.
        let answered = self.options.plaintext_http_response;
        let error = self.core.lifecycle().error();
        let kept = matches!(error, Some(e @ Error::PlaintextHttp) if keeps_transport(e, answered));
        if !kept {
            return Err(self);
        }
        let received = self.core.take_received();
        Ok(crate::PlaintextStream::new(self.core.into_io(), received))
    }

    /// Heap bytes held by this stream's own buffers (rustls's state not included).
    pub fn buffered_capacity(&self) -> usize {
        self.core.buffer_capacity()
    }

    /// Whether [`TlsStream::into_parts`] can hand the engine to a split stream's halves:
    /// the handshake completed and the native layer carries the records.
    pub(crate) fn splittable(&self) -> bool {
        self.core.lifecycle().phase() == HandshakeState::Ready && self.core.can_split()
    }

    /// Takes a completed stream apart for a split stream. Tasks parked in it are woken:
    /// from now on they wait on the halves.
    pub(crate) fn into_parts(mut self, cx: &Context<'_>) -> (EngineIo<IO>, Parts) {
        self.parked.wake_all(cx);
        let info = (self.info.take()).or_else(|| self.info_handle.get()?.get().cloned());
        let parts = Parts {
            options: self.options,
            info,
        };
        (self.core, parts)
    }

    /// Puts a completed stream together again from what [`TlsStream::into_parts`] gave,
    /// with the halves' sticky error if there is one.
    pub(crate) fn from_parts(core: EngineIo<IO>, parts: Parts, error: Option<Error>) -> Self {
        TlsStream::assemble(core, parts.options, parts.info, error)
    }

    fn sticky(&self) -> Error {
        let lifecycle = self.core.lifecycle();
        debug_assert_eq!(lifecycle.phase(), HandshakeState::Failed);
        lifecycle.error().map_or(Error::Cancelled, Error::duplicate)
    }

    /// The core, and the stream's policy over it: a borrowed view of the rest of the
    /// stream, rebuilt for each call.
    fn core_and_policy(&mut self) -> (&mut EngineIo<IO>, StreamPolicy<'_>) {
        let policy = StreamPolicy {
            handshake: &mut self.handshake,
            parked: &mut self.parked,
        };
        (&mut self.core, policy)
    }
}

impl<IO: AsyncWrite + Unpin> TlsStream<IO> {
    /// Makes a failure sticky (see [`StreamPolicy`]); returns `e`.
    fn fail(&mut self, cx: &mut Context<'_>, e: Error) -> Error {
        let (core, mut policy) = self.core_and_policy();
        policy.fail(core, cx, e)
    }
}

/// The stream's policy for its I/O core: a failure is stored once, sent to the peer, and
/// returned by every later call; control records a read produces go out at once on the
/// same transport.
struct StreamPolicy<'a> {
    handshake: &'a mut Option<HandshakeContext>,
    parked: &'a mut ParkedTasks,
}

impl<IO: AsyncWrite + Unpin> FailurePolicy<IO> for StreamPolicy<'_> {
    /// One best-effort alert write, then the transport is shut down; neither can replace
    /// `e`, which is returned. Every parked task is woken to see the failure.
    fn fail(&mut self, core: &mut EngineIo<IO>, cx: &mut Context<'_>, e: Error) -> Error {
        if let Some(handshake) = self.handshake.take() {
            handshake.failed(&e);
        }
        core.send_last_words(cx, &e);
        let out = e.duplicate();
        core.lifecycle_mut().fail(e);
        self.parked.wake_all(cx);
        out
    }
}

impl<IO: AsyncWrite + Unpin> ReadPolicy<IO> for StreamPolicy<'_> {
    /// Writes what the step sealed for the peer without waiting. If that took the
    /// transport's write readiness, the parked writer is woken, since its waker may have
    /// been replaced; data the writer left buffered is the writer's to flush.
    fn after_read_step(
        &mut self,
        core: &mut EngineIo<IO>,
        cx: &mut Context<'_>,
        queued_before: usize,
        _status: &Result<ReadStatus, Error>,
    ) -> Result<(), Error> {
        if core.write_control_after_read(cx, queued_before)? {
            self.parked.wake_writer();
        }
        Ok(())
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
        let lifecycle = self.core.lifecycle();
        if lifecycle.phase() != HandshakeState::Ready || lifecycle.write_closed() {
            return Err(rustls::Error::HandshakeNotComplete.into());
        }
        self.core.refresh_traffic_keys()
    }

    /// Drives the handshake; `Ready(Ok(()))` once it is complete.
    pub fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let poll = self.drive_handshake(cx, Parked::Handshake);
        self.park(Parked::Handshake, cx, poll)
    }

    /// [`Self::poll_handshake`] for the stream's own calls, which park in their own slot
    /// (`caller`).
    fn drive_handshake(&mut self, cx: &mut Context<'_>, caller: Parked) -> Poll<Result<(), Error>> {
        match self.core.lifecycle().phase() {
            HandshakeState::Ready => return Poll::Ready(Ok(())),
            HandshakeState::Failed => return Poll::Ready(Err(self.sticky())),
            HandshakeState::Idle => {
                self.core.lifecycle_mut().begin_handshake();
                let client = self.core.is_client();
                (self.handshake.get_or_insert_with(Default::default)).begin(&self.options, client);
            }
            HandshakeState::Handshaking => {}
        }
        let handshake = self.handshake.get_or_insert_with(Default::default);
        // The tasks parked in the other slots wait on this handshake too: the transport's
        // slot is theirs as well.
        let shared = shared_waker::for_handshake(cx.waker(), self.parked.others(caller));
        let polled = match &shared {
            Some(waker) => {
                handshake.poll_handshake(&mut self.core, &mut Context::from_waker(waker))
            }
            None => handshake.poll_handshake(&mut self.core, cx),
        };
        if let Err(e) = ready!(polled) {
            return Poll::Ready(Err(self.fail(cx, e)));
        }
        self.complete();
        self.parked.wake_all(cx);
        Poll::Ready(Ok(()))
    }

    fn complete(&mut self) {
        debug_assert!(
            self.core.lifecycle().error().is_none(),
            "Ready implies no error"
        );
        let mut info =
            (self.core.take_info()).unwrap_or_else(|| ConnectionInfo::empty(Default::default()));
        if let Some(handshake) = self.handshake.take() {
            handshake.completed(&mut info);
        }
        match self.info_handle.get() {
            Some(handle) => handle.publish(info),
            None => self.info = Some(info),
        }
        self.core.trim_after_handshake();
        self.core.lifecycle_mut().complete_handshake();
    }

    /// Reads after the handshake.
    fn poll_read_ready(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let allow_truncation = self.options.allow_truncation;
        let (core, mut policy) = self.core_and_policy();
        core.poll_read_records(cx, buf, allow_truncation, &mut policy)
    }

    /// The read path when the fast check failed: handshake first, or report how reads
    /// ended.
    #[cold]
    fn poll_read_slow(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.drive_handshake(cx, Parked::Reader))?;
        self.poll_read_ready(cx, buf)
    }

    fn poll_write_ready(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let (core, mut policy) = self.core_and_policy();
        core.poll_write_records(cx, bufs, &mut policy)
    }

    #[cold]
    fn poll_write_slow(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.core.lifecycle().write_closed() {
            return Poll::Ready(Err(Error::WriteAfterShutdown.into()));
        }
        self.poll_write_early(cx, bufs)
    }

    /// A write before the handshake has completed. On a client whose config enables early
    /// data, what 0-RTT allows goes out at once as early data (the core's
    /// [`EngineIo::offer_early`]). Otherwise the write waits for the handshake.
    fn poll_write_early(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let started = matches!(
            self.core.lifecycle().phase(),
            HandshakeState::Idle | HandshakeState::Handshaking
        );
        let taken_now = match started.then(|| self.core.offer_early(bufs)) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(e)) => return Poll::Ready(Err(self.fail(cx, e).into())),
        };
        let handshake = self.drive_handshake(cx, Parked::Writer);
        if let Poll::Ready(Err(e)) = handshake {
            return Poll::Ready(Err(e.into()));
        }
        match self.core.finish_early(cx, taken_now) {
            None => {
                ready!(handshake)?;
                self.poll_write_ready(cx, bufs)
            }
            Some(Ok(written)) => Poll::Ready(Ok(written)),
            Some(Err(e)) => Poll::Ready(Err(self.fail(cx, e).into())),
        }
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.core.lifecycle().phase() {
            HandshakeState::Idle => self.core.poll_flush_transport(cx),
            HandshakeState::Handshaking | HandshakeState::Failed => {
                ready!(self.drive_handshake(cx, Parked::Writer))?;
                self.core.poll_flush_transport(cx)
            }
            HandshakeState::Ready => {
                let (core, mut policy) = self.core_and_policy();
                core.poll_flush_records(cx, &mut policy)
            }
        }
    }

    fn poll_shutdown_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.core.lifecycle().phase() == HandshakeState::Failed {
            // Sticky, like every other call; the failure already shut the transport down
            // (and a split stream's write half answers the same).
            return Poll::Ready(Err(self.sticky().into()));
        }
        if self.core.early_data_pending() {
            // Early data the server may refuse must be sent again before close_notify.
            ready!(self.drive_handshake(cx, Parked::Writer))?;
        }
        if self.core.lifecycle().phase() == HandshakeState::Ready {
            let (core, mut policy) = self.core_and_policy();
            core.poll_shutdown_records(cx, &mut policy)
        } else {
            // No handshake: nothing to close at the TLS level. Later writes are refused.
            self.core.poll_close_transport(cx)
        }
    }
}

impl<IO> TlsStream<IO> {
    /// The end of every call: publishes the lifecycle to the fast path's `State` if the
    /// call changed it (the one place that writes it), then passes `poll` on through
    /// [`ParkedTasks::park`], with what the core saw.
    fn park<T>(&mut self, parked: Parked, cx: &Context<'_>, poll: Poll<T>) -> Poll<T> {
        if self.core.lifecycle_mut().take_changed() {
            self.state.publish(self.core.lifecycle());
        }
        let held = self.core.take_waker_held();
        self.parked.park(parked, cx, held, poll)
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
        this.park(Parked::Reader, cx, poll)
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
        this.park(Parked::Writer, cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Before the handshake has started there is nothing to flush. During it, flushing
    /// completes it. After it, the buffered records are written and the transport flushed.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = this.poll_flush_inner(cx);
        this.park(Parked::Writer, cx, poll)
    }

    /// Sends close_notify if the handshake completed, flushes, then shuts down the
    /// transport's write side. Reads keep working afterwards. After a failure it returns
    /// the sticky error (the failure already shut the transport down).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = this.poll_shutdown_inner(cx);
        this.park(Parked::Writer, cx, poll)
    }
}
