//! A full-duplex split: [`TlsStream::into_split`] gives a read half and a write half that
//! can live in different tasks, like Go's concurrent `Read` and `Write` on one `tls.Conn`.
//!
//! How the halves share the connection ([`hub`] has the protocol, loom-checked):
//!
//! - **Before the handshake completes** (and for good on the rustls record layer) the
//!   whole stream sits in the hub. A half checks it out for one poll, polls it, and checks
//!   it back in; the lock is held only to move it, never across I/O. So either half, or
//!   both, may drive the handshake: the one that holds it drives, the other waits with its
//!   waker registered and is woken by the check-in. The end of the handshake wakes both.
//! - **Once the native layer carries the records** the first check-in divides the stream:
//!   the transport is split (`TcpStream` and `UnixStream` into their owned halves, any
//!   other transport with `tokio::io::split`) and so is the engine. The read half then
//!   owns the receive side outright: its steady path is one atomic load, then records,
//!   with no lock. The write half checks the send side out of the hub for each call (an
//!   uncontended lock to move a pointer, twice) and does the sealing and the I/O with no
//!   lock held.
//! - **Control records.** What reading produces for the peer (a KeyUpdate answer, an
//!   alert) must go out promptly even if the write half is idle. The read half takes the
//!   send side for that moment, seals, writes what the transport takes and wakes the
//!   writer (it may have taken the transport's write waker). If the write half has the
//!   send side at that instant, the request waits in the hub and the write half applies
//!   it before its check-in completes.
//! - **Errors.** A failure of either half is stored once in the hub and returned by every
//!   later call of both halves; waiting halves are woken.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::engine::{ReadStatus, Requests};
use crate::engine_io::{EngineIo, FailurePolicy, ReadPolicy};
use crate::error::{Error, Invariant};
use crate::info::ConnectionInfo;
use crate::stream::{Parts, TlsStream};

mod hub;
mod transport;

use hub::{CheckOut, Half, Hub, Merge};
use transport::{ReadIo, WriteIo};

impl Merge for Requests {
    fn is_empty(&self) -> bool {
        Requests::is_empty(self)
    }

    fn merge(&mut self, other: Self) {
        Requests::merge(self, other)
    }
}

/// What the halves share: the hub, and what the handshake negotiated (set once, when
/// either half sees it complete).
struct Shared<IO> {
    hub: Hub<Core<IO>, Box<ReadSide<IO>>, Requests>,
    info: OnceLock<ConnectionInfo>,
}

impl<IO> std::ops::Deref for Shared<IO> {
    type Target = Hub<Core<IO>, Box<ReadSide<IO>>, Requests>;

    fn deref(&self) -> &Self::Target {
        &self.hub
    }
}

impl<IO> Shared<IO> {
    /// Keeps a copy of the stream's connection info once it has one.
    fn learn_info(&self, stream: &TlsStream<IO>) {
        if self.info.get().is_none() {
            if let Some(info) = stream.info() {
                let _ = self.info.set(info.clone());
            }
        }
    }
}

/// What the halves pass between them.
enum Core<IO> {
    /// The whole stream: before the split of the engine, or for good when it cannot be
    /// split (rustls record layer).
    Whole(Box<TlsStream<IO>>),
    /// The send side, once the engine is split.
    Send(Box<WriteSide<IO>>),
}

impl<IO> Core<IO> {
    fn buffered_capacity(&self) -> usize {
        match self {
            Core::Whole(stream) => stream.buffered_capacity(),
            Core::Send(send) => send.core.buffer_capacity(),
        }
    }
}

impl<IO> std::fmt::Debug for Core<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Core::Whole(_) => "Whole",
            Core::Send(_) => "Send",
        })
    }
}

/// The receive side, owned by the read half once the engine is split.
struct ReadSide<IO> {
    core: EngineIo<ReadIo<IO>>,
    allow_truncation: bool,
}

/// The send side, kept in the hub between the write half's calls.
struct WriteSide<IO> {
    core: EngineIo<WriteIo<IO>>,
    /// The rest of the stream (options, info, flags), for `unsplit`.
    parts: Parts,
}

/// The read half of a [`TlsStream`], from [`TlsStream::into_split`].
///
/// Implements `AsyncRead`. It may drive the handshake. After the handshake, reads touch
/// only the receive side: no lock, one atomic load per call.
pub struct TlsReadHalf<IO> {
    shared: Arc<Shared<IO>>,
    recv: Option<Box<ReadSide<IO>>>,
    /// The waker registered with the hub for a failure of the write half, cached so that
    /// a read that waits again with the same waker takes no lock.
    watching: Option<Waker>,
}

/// The write half of a [`TlsStream`], from [`TlsStream::into_split`].
///
/// Implements `AsyncWrite`. It may drive the handshake. `poll_shutdown` sends
/// close_notify and shuts the transport's write side down while the read half keeps
/// reading.
pub struct TlsWriteHalf<IO> {
    shared: Arc<Shared<IO>>,
}

impl<IO> std::fmt::Debug for TlsReadHalf<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReadHalf")
            .field("hub", &self.shared.hub)
            .field("owns_receive_side", &self.recv.is_some())
            .finish()
    }
}

impl<IO> std::fmt::Debug for TlsWriteHalf<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWriteHalf")
            .field("hub", &self.shared.hub)
            .finish()
    }
}

/// The halves given to [`TlsReadHalf::unsplit`] do not come from the same stream. Both
/// are given back.
pub struct ReuniteError<IO>(pub TlsReadHalf<IO>, pub TlsWriteHalf<IO>);

impl<IO> std::fmt::Debug for ReuniteError<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl<IO> std::fmt::Display for ReuniteError<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tried to unsplit halves that are not from the same TlsStream")
    }
}

impl<IO> std::error::Error for ReuniteError<IO> {}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> TlsStream<IO> {
    /// Splits the stream into a read half and a write half that can be used from
    /// different tasks at the same time, without one waiting for the other.
    ///
    /// Either half may drive the handshake (if it has not run yet), or both. `TcpStream`
    /// and `UnixStream` transports are split into their owned halves; any other transport
    /// with [`tokio::io::split`]. [`TlsReadHalf::unsplit`] joins the halves again.
    ///
    /// ```no_run
    /// # async fn f(tls: lazytls::TlsStream<tokio::net::TcpStream>) -> std::io::Result<()> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let (mut reader, mut writer) = tls.into_split();
    /// let echo = tokio::spawn(async move {
    ///     let mut buf = vec![0; 4096];
    ///     let n = reader.read(&mut buf).await?;
    ///     Ok::<_, std::io::Error>(buf[..n].to_vec())
    /// });
    /// writer.write_all(b"ping").await?;
    /// writer.flush().await?;
    /// let _answer = echo.await??;
    /// # Ok(()) }
    /// ```
    pub fn into_split(self) -> (TlsReadHalf<IO>, TlsWriteHalf<IO>) {
        let mut cx = Context::from_waker(Waker::noop());
        let info = OnceLock::new();
        if let Some(known) = self.info() {
            let _ = info.set(known.clone());
        }
        let (core, recv) = match divide(Box::new(self), &mut cx) {
            Ok((recv, send)) => (Core::Send(send), Some(recv)),
            Err(stream) => (Core::Whole(stream), None),
        };
        let owed = matches!(&core, Core::Send(send) if send.core.has_unsent());
        let shared = Arc::new(Shared {
            hub: Hub::new(core),
            info,
        });
        if recv.is_some() {
            shared.mark_split();
        }
        shared.set_owed(owed);
        let read = TlsReadHalf {
            shared: shared.clone(),
            recv,
            watching: None,
        };
        (read, TlsWriteHalf { shared })
    }
}

/// The halves of a divided stream.
type Sides<IO> = (Box<ReadSide<IO>>, Box<WriteSide<IO>>);

/// Divides a stream whose handshake completed on the native layer; gives it back
/// otherwise.
fn divide<IO: AsyncRead + AsyncWrite + Unpin + 'static>(
    stream: Box<TlsStream<IO>>,
    cx: &mut Context<'_>,
) -> Result<Sides<IO>, Box<TlsStream<IO>>> {
    if !stream.splittable() {
        return Err(stream);
    }
    let (core, parts) = (*stream).into_parts(cx);
    let (read, write) = match core.split(transport::split) {
        Ok(sides) => sides,
        Err(core) => return Err(Box::new(TlsStream::from_parts(core, parts, None))),
    };
    let read = ReadSide {
        core: read,
        allow_truncation: parts.options.allow_truncation,
    };
    Ok((Box::new(read), Box::new(WriteSide { core: write, parts })))
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> TlsReadHalf<IO> {
    /// Joins the halves into the stream again. Fails, giving both back, if they come from
    /// different streams.
    pub fn unsplit(self, write: TlsWriteHalf<IO>) -> Result<TlsStream<IO>, ReuniteError<IO>> {
        if !Arc::ptr_eq(&self.shared, &write.shared) || !self.shared.can_join(self.recv.is_some()) {
            return Err(ReuniteError(self, write));
        }
        let (core, recv, error) = self.shared.take_all();
        match (core, self.recv.or(recv)) {
            (Some(Core::Whole(stream)), _) => Ok(*stream),
            (Some(Core::Send(send)), Some(recv)) => {
                let core = EngineIo::join(recv.core, send.core, transport::join);
                Ok(TlsStream::from_parts(core, send.parts, error))
            }
            // `can_join` saw both parts under the lock, and no call can be in progress
            // while both halves are owned here.
            _ => unreachable!("the hub lost a part of the stream"),
        }
    }

    /// Before waiting on the transport, makes sure a failure of the write half wakes
    /// this task (the transport itself may never wake it).
    fn watch(&mut self, cx: &Context<'_>) {
        if self
            .watching
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return;
        }
        if !self.shared.watch(Half::Read, cx.waker()) {
            // Failed already: poll again to report it.
            cx.waker().wake_by_ref();
        }
        self.watching = Some(cx.waker().clone());
    }

    /// What the handshake negotiated; `None` until it has completed (driven by either
    /// half).
    pub fn info(&self) -> Option<&ConnectionInfo> {
        self.shared.info.get()
    }

    /// Keying material exported from the connection's secrets: see
    /// [`TlsStream::export_keying_material`]. Both halves give the same values.
    pub fn export_keying_material<T: AsMut<[u8]>>(
        &self,
        output: T,
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<T, Error> {
        crate::info::export_from(self.info(), output, label, context)
    }

    /// Heap bytes held by this half's own buffers (rustls's state not included): once
    /// the engine is split, the receive side's. Before that, the whole stream's, which
    /// both halves report; 0 while the write half is using the stream.
    pub fn buffered_capacity(&self) -> usize {
        if let Some(recv) = &self.recv {
            return recv.core.buffer_capacity();
        }
        self.shared.inspect(|core, recv| match (recv, core) {
            (Some(recv), _) => recv.core.buffer_capacity(),
            (None, Some(core)) => core.buffered_capacity(),
            (None, None) => 0,
        })
    }

    /// Whether this half and `other` come from the same stream.
    pub fn is_pair_of(&self, other: &TlsWriteHalf<IO>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    fn poll_read_inner(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(recv) = self.recv.as_mut() {
            let flags = self.shared.flags();
            if flags.quiet() {
                let poll = recv.poll_read(&self.shared, cx, buf);
                if poll.is_pending() {
                    self.watch(cx);
                }
                return poll;
            }
            if flags.failed() {
                let e = self.shared.error().unwrap_or(Error::Cancelled);
                return Poll::Ready(Err(e.into()));
            }
            // Bytes or requests of ours are still owed to the transport.
            send_requests(&self.shared, cx, Requests::default());
            return recv.poll_read(&self.shared, cx, buf);
        }
        match self.shared.check_out(Half::Read, cx.waker()) {
            CheckOut::Busy => Poll::Pending,
            CheckOut::Failed(e) => Poll::Ready(Err(e.into())),
            CheckOut::Recv(recv) => {
                self.recv = Some(recv);
                self.poll_read_inner(cx, buf)
            }
            CheckOut::Core(Core::Whole(mut stream)) => {
                let poll = Pin::new(&mut *stream).poll_read(cx, buf);
                self.recv = settle(&self.shared, Half::Read, stream, cx);
                poll
            }
            CheckOut::Core(core) => {
                put_back(&self.shared, Half::Read, core, None, false, cx);
                Poll::Ready(Err(Invariant::HubProtocol.into()))
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> TlsWriteHalf<IO> {
    /// What the handshake negotiated; `None` until it has completed (driven by either
    /// half).
    pub fn info(&self) -> Option<&ConnectionInfo> {
        self.shared.info.get()
    }

    /// Keying material exported from the connection's secrets: see
    /// [`TlsStream::export_keying_material`]. Both halves give the same values.
    pub fn export_keying_material<T: AsMut<[u8]>>(
        &self,
        output: T,
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<T, Error> {
        crate::info::export_from(self.info(), output, label, context)
    }

    /// Heap bytes held by this half's own buffers (rustls's state not included): once
    /// the engine is split, the send side's. Before that, the whole stream's, which both
    /// halves report; 0 while the read half is using the stream.
    pub fn buffered_capacity(&self) -> usize {
        self.shared
            .inspect(|core, _| core.map_or(0, Core::buffered_capacity))
    }

    /// Whether this half and `other` come from the same stream.
    pub fn is_pair_of(&self, other: &TlsReadHalf<IO>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Runs `op` on the whole stream or on the send side, whichever the hub holds.
    fn with_core<T>(
        &mut self,
        cx: &mut Context<'_>,
        whole: impl FnOnce(Pin<&mut TlsStream<IO>>, &mut Context<'_>) -> Poll<io::Result<T>>,
        send: impl FnOnce(&mut WriteSide<IO>, &Shared<IO>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.shared.check_out(Half::Write, cx.waker()) {
            CheckOut::Busy => Poll::Pending,
            CheckOut::Failed(e) => Poll::Ready(Err(e.into())),
            CheckOut::Core(Core::Whole(mut stream)) => {
                let poll = whole(Pin::new(&mut *stream), cx);
                settle(&self.shared, Half::Write, stream, cx);
                poll
            }
            CheckOut::Core(Core::Send(mut side)) => {
                let poll = send(&mut side, &self.shared, cx);
                if !side.core.has_unsent() {
                    self.shared.set_owed(false);
                }
                let park = poll.is_pending();
                put_back(&self.shared, Half::Write, Core::Send(side), None, park, cx);
                poll
            }
            CheckOut::Recv(recv) => {
                // Only the read half is handed the receive side; keep it for it.
                let _ = recv;
                Poll::Ready(Err(Invariant::HubProtocol.into()))
            }
        }
    }
}

/// Checks the whole stream back in after a turn, dividing it first if its handshake has
/// completed on the native layer. The read half gets its receive side back directly; the
/// write half leaves it in the hub.
fn settle<IO: AsyncRead + AsyncWrite + Unpin + 'static>(
    shared: &Shared<IO>,
    half: Half,
    stream: Box<TlsStream<IO>>,
    cx: &mut Context<'_>,
) -> Option<Box<ReadSide<IO>>> {
    shared.learn_info(&stream);
    if !stream.splittable() {
        put_back(shared, half, Core::Whole(stream), None, false, cx);
        return None;
    }
    let divided = divide(stream, cx);
    if let Ok((_, send)) = &divided {
        // Bytes the whole stream's read path queued (a KeyUpdate answer) are owed.
        shared.set_owed(send.core.has_unsent());
    }
    match divided {
        Ok((recv, send)) if half == Half::Read => {
            shared.mark_split();
            put_back(shared, half, Core::Send(send), None, false, cx);
            Some(recv)
        }
        Ok((recv, send)) => {
            put_back(shared, half, Core::Send(send), Some(recv), false, cx);
            None
        }
        Err(stream) => {
            put_back(shared, half, Core::Whole(stream), None, false, cx);
            None
        }
    }
}

/// How many times a check-in applies requests that arrived during the previous attempt
/// before it leaves the rest to the read half (`OWED`).
const CHECK_IN_ROUNDS: usize = 4;

/// Checks `core` in, first applying what the read half asked for meanwhile.
fn put_back<IO: AsyncRead + AsyncWrite + Unpin + 'static>(
    shared: &Shared<IO>,
    half: Half,
    mut core: Core<IO>,
    mut recv: Option<Box<ReadSide<IO>>>,
    park: bool,
    cx: &mut Context<'_>,
) {
    for round in 1..=CHECK_IN_ROUNDS {
        let park = park.then(|| cx.waker());
        match shared.check_in(half, core, recv.take(), park, round == CHECK_IN_ROUNDS) {
            Ok(()) => return,
            Err((back, requests)) => {
                core = back;
                if let Core::Send(side) = &mut core {
                    side.answer(shared, cx, requests);
                }
            }
        }
    }
}

/// The read half has something for the peer (or owes bytes from before): it sends it now
/// through the send side, unless the write half holds that, which then sends it.
fn send_requests<IO: AsyncRead + AsyncWrite + Unpin + 'static>(
    shared: &Shared<IO>,
    cx: &mut Context<'_>,
    requests: Requests,
) {
    let Some((mut core, all)) = shared.request(requests) else {
        return;
    };
    if let Core::Send(side) = &mut core {
        side.answer(shared, cx, all);
        shared.set_owed(side.core.owes_write());
    }
    put_back(shared, Half::Read, core, None, false, cx);
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> ReadSide<IO> {
    /// Reads after the split. What a read produces for the peer goes through the hub to
    /// the send side. Transport errors are returned as they are; TLS errors are sticky
    /// for both halves.
    fn poll_read(
        &mut self,
        shared: &Shared<IO>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut policy = HalfPolicy { shared };
        (self.core).poll_read_records(cx, buf, self.allow_truncation, &mut policy)
    }
}

/// A split stream's policy for each half's core: a failure is stored once in the hub for
/// both halves; control records the read half produces go to the send side through it.
struct HalfPolicy<'a, IO> {
    shared: &'a Shared<IO>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> FailurePolicy<ReadIo<IO>>
    for HalfPolicy<'_, IO>
{
    /// The read half's alert goes out through the send side (see `after_read_step`), so
    /// only the hub learns of the failure here. Returns the error stored first.
    fn fail(&mut self, _: &mut EngineIo<ReadIo<IO>>, _: &mut Context<'_>, e: Error) -> Error {
        self.shared.fail(e)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> ReadPolicy<ReadIo<IO>> for HalfPolicy<'_, IO> {
    fn after_read_step(
        &mut self,
        core: &mut EngineIo<ReadIo<IO>>,
        cx: &mut Context<'_>,
        _queued_before: usize,
        status: &Result<ReadStatus, Error>,
    ) -> Result<(), Error> {
        let requests = core.take_requests();
        // A failure, even one deferred behind the data delivered now, is stored before its
        // alert goes out: the alert closes the send side and shuts the transport's write
        // side, and the write half must find this error rather than seal after the alert
        // or meet its own broken pipe.
        let failure = match status {
            Err(e) => Some(e.duplicate()),
            Ok(_) => core.deferred_error(),
        };
        if let Some(e) = failure {
            self.shared.fail(e);
        }
        if !requests.is_empty() {
            send_requests(self.shared, cx, requests);
        }
        Ok(())
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> FailurePolicy<WriteIo<IO>>
    for HalfPolicy<'_, IO>
{
    /// Sticky for both halves first; then what was sealed (an alert) gets one write and
    /// the transport is shut down, as a whole stream does. Returns the error stored first.
    fn fail(&mut self, core: &mut EngineIo<WriteIo<IO>>, cx: &mut Context<'_>, e: Error) -> Error {
        let last_words = e.duplicate();
        let stored = self.shared.fail(e);
        core.send_last_words(cx, &last_words);
        stored
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> WriteSide<IO> {
    /// Seals what the read half asked for, writes what the transport takes now, and after
    /// a fatal alert shuts the transport's write side down. Never waits.
    fn answer(&mut self, shared: &Shared<IO>, cx: &mut Context<'_>, requests: Requests) {
        let fatal = requests.is_fatal();
        if let Err(e) = self.core.answer(requests) {
            shared.fail(e);
        }
        match self.core.try_write_control(cx) {
            Err(e) => {
                shared.fail(e);
            }
            Ok(_) if fatal => {
                let _ = self.core.poll_shutdown_transport(cx);
            }
            Ok(_) => {}
        }
    }

    fn poll_write(
        &mut self,
        shared: &Shared<IO>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.core.lifecycle().write_closed() {
            return Poll::Ready(Err(Error::WriteAfterShutdown.into()));
        }
        (self.core).poll_write_records(cx, bufs, &mut HalfPolicy { shared })
    }

    fn poll_flush(&mut self, shared: &Shared<IO>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core.poll_flush_records(cx, &mut HalfPolicy { shared })
    }

    fn poll_shutdown(&mut self, shared: &Shared<IO>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core
            .poll_shutdown_records(cx, &mut HalfPolicy { shared })
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> AsyncRead for TlsReadHalf<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_read_inner(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + 'static> AsyncWrite for TlsWriteHalf<IO> {
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
        self.get_mut().with_core(
            cx,
            |stream, cx| stream.poll_write_vectored(cx, bufs),
            |side, shared, cx| side.poll_write(shared, cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().with_core(
            cx,
            |stream, cx| stream.poll_flush(cx),
            |side, shared, cx| side.poll_flush(shared, cx),
        )
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().with_core(
            cx,
            |stream, cx| stream.poll_shutdown(cx),
            |side, shared, cx| side.poll_shutdown(shared, cx),
        )
    }
}
