//! The I/O core: an engine bound to its transport ([`EngineIo`]). It moves bytes between
//! the engine's buffers and the transport, and after the handshake it holds every rule of
//! reading and writing records: the read loop and its per-poll budget, the truncation
//! rule, the write batching, flushing, close_notify, the control bytes a read leaves owed
//! to the transport, early data, and the last words after a failure.
//!
//! `TlsStream` owns one `EngineIo` over the whole transport; a split stream's halves own
//! one each, over the transport's read half and write half. What differs between them is
//! their policy, which they pass in ([`FailurePolicy`], [`ReadPolicy`]): how a failure is
//! made sticky and told to the other tasks (the stream's own error, or the hub's), and
//! where the control records a read produces go (at once on the same transport, or
//! through the split's hub).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::engine::{
    Buffers, Engine, HandshakeStatus, MAX_PLAINTEXT, MAX_RECORD, READ_MIN, RX_CAP, ReadStatus,
    Requests, TX_BATCH, TX_KEEP, Window,
};
use crate::error::Error;
use crate::state::{Lifecycle, ReadEnd};

/// How many records' worth of work one read poll does before it yields, so that a peer
/// flooding tiny records cannot hold the executor thread.
const READ_STEPS_PER_POLL: usize = 64;

/// What every read returns once reading has ended.
fn read_end_outcome(end: ReadEnd) -> Result<(), Fault> {
    match end {
        ReadEnd::Clean => Ok(()),
        ReadEnd::Truncated => Err(Fault::Passing(Error::Truncated)),
    }
}

/// How a call on the I/O core went wrong. The core decides which it is;
/// [`EngineIo::conclude`] carries it out with the owner's [`FailurePolicy`].
#[derive(Debug)]
enum Fault {
    /// The connection failed: sticky, and published (the alert, the transport shut down).
    Fatal(Error),
    /// Data was delivered to the caller's buffer and the connection failed after it: the
    /// data is returned now and the failure is sticky for the next call.
    AfterData(Error),
    /// Returned as it is and not sticky: a transport error, or a truncated read side.
    Passing(Error),
}

/// What the owner of an I/O core does with a failure. The stream implements it, and so
/// does each half of a split stream; the core calls it wherever a failure is decided.
pub(crate) trait FailurePolicy<IO> {
    /// Makes `e` the connection's sticky failure: stored unless one is stored already,
    /// told to the peer where this owner can (an alert, the transport shut down), and to
    /// the tasks waiting on the connection. Returns the error this call reports.
    fn fail(&mut self, core: &mut EngineIo<IO>, cx: &mut Context<'_>, e: Error) -> Error;
}

/// What the owner of a reading core does with the control records a read produces (a
/// KeyUpdate answer, an alert): the stream sends them at once on its own transport, and
/// a split stream's read half hands them to the send side through the hub.
pub(crate) trait ReadPolicy<IO>: FailurePolicy<IO> {
    /// Runs after each engine step of a read, with the step's outcome. `queued_before` is
    /// the outgoing buffer's length before the step. An error is the connection's
    /// failure, reported after the step's data if it delivered any.
    fn after_read_step(
        &mut self,
        core: &mut EngineIo<IO>,
        cx: &mut Context<'_>,
        queued_before: usize,
        status: &Result<ReadStatus, Error>,
    ) -> Result<(), Error>;
}

/// An engine and the transport it carries records over.
#[derive(Debug)]
pub(crate) struct EngineIo<IO> {
    io: IO,
    engine: Engine,
    /// The buffers every engine call works in; see "The buffer policy" below.
    bufs: Buffers,
    /// Keep the buffers while idle (the connector's or acceptor's `keep_idle_buffers`).
    keep_idle_buffers: bool,
    /// The last transport read filled all the room it was given: the transport may hold
    /// more, so the incoming buffer grows toward [`RX_CAP`] for the next one.
    rx_read_filled: bool,
    /// Bytes were written to `io` since its last flush.
    dirty: bool,
    /// Where the connection stands; every layer asks it.
    lifecycle: Lifecycle,
    /// Our close_notify was sealed.
    close_notify_queued: bool,
    /// A read left control bytes (a KeyUpdate answer, an alert) that the transport did not
    /// take: the next read writes them again, since the writer may be idle.
    owes_write: bool,
    /// Since [`EngineIo::take_waker_held`] was last asked, a poll here returned `Pending`:
    /// the transport (or a timer) holds the waker of the task that polled, in place of
    /// whatever task it held before. See [`EngineIo::take_waker_held`].
    waker_held: bool,
}

/// Notes in `held` that `poll` left the caller's waker with whatever returned it.
fn note<T>(held: &mut bool, poll: Poll<T>) -> Poll<T> {
    *held |= poll.is_pending();
    poll
}

impl<IO> EngineIo<IO> {
    pub(crate) fn new(io: IO, engine: Engine) -> Self {
        EngineIo {
            io,
            engine,
            bufs: Buffers::default(),
            keep_idle_buffers: false,
            rx_read_filled: false,
            dirty: false,
            lifecycle: Lifecycle::new(),
            close_notify_queued: false,
            owes_write: false,
            waker_held: false,
        }
    }

    /// Keeps the record buffers while the connection is idle, instead of giving them to
    /// the thread's spares (see [`EngineIo::wait_for_input`]).
    pub(crate) fn keep_idle_buffers(mut self, keep: bool) -> Self {
        self.keep_idle_buffers = keep;
        self
    }

    pub(crate) fn io(&self) -> &IO {
        &self.io
    }

    pub(crate) fn io_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    pub(crate) fn into_io(self) -> IO {
        self.io
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub(crate) fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    /// Whether sealed bytes wait for the transport.
    pub(crate) fn has_unsent(&self) -> bool {
        !self.bufs.tx.is_empty()
    }

    /// Whether a read left control bytes that the transport has not taken yet.
    pub(crate) fn owes_write(&self) -> bool {
        self.owes_write && self.has_unsent()
    }

    /// Whether a poll since the last call left the calling task's waker with the
    /// transport (or the handshake's timer), and forgets it.
    ///
    /// The rule this serves: a transport keeps one waker per direction, so a task that
    /// polls it takes that slot from any task waiting there. If the call then returns
    /// `Pending`, the caller waits and the slot is rightly its own. If it returns `Ready`,
    /// no one is waiting on that slot any more: the tasks parked on this connection must
    /// be woken to poll again, or they sleep through the event they were waiting for.
    /// (An early write that drove the handshake used to leave a reader that waited in the
    /// handshake asleep.) The stream applies it on every call. Once a stream is split,
    /// each half polls only its own direction, and the hub wakes a half whose transport
    /// slot the other half took (`split/hub.rs`).
    pub(crate) fn take_waker_held(&mut self) -> bool {
        std::mem::take(&mut self.waker_held)
    }

    /// Notes that a poll outside the core (the handshake's bounds, its resolver) left the
    /// caller's waker behind; see [`EngineIo::take_waker_held`].
    pub(crate) fn note_waker_held(&mut self) {
        self.waker_held = true;
    }

    /// Carries out a fault with the owner's policy: fatal ones become sticky, one after
    /// data is sticky for the next call, and a passing one is returned as it is.
    fn conclude<P: FailurePolicy<IO>>(
        &mut self,
        policy: &mut P,
        cx: &mut Context<'_>,
        result: Result<(), Fault>,
    ) -> io::Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(Fault::Fatal(e)) => Err(policy.fail(self, cx, e).into()),
            Err(Fault::AfterData(e)) => {
                // The data goes first; the failure is sticky, so the next call returns it.
                policy.fail(self, cx, e);
                Ok(())
            }
            Err(Fault::Passing(e)) => Err(e.into()),
        }
    }
}

impl<IO> EngineIo<IO> {
    /// Takes the core apart for a split stream: the engine into its receive and send
    /// sides, the transport with `split_io`. Gives the core back unchanged if the engine
    /// cannot be split.
    #[allow(
        clippy::result_large_err,
        reason = "called once per split stream; the core given back is moved, not copied twice"
    )]
    pub(crate) fn split<R, W>(
        mut self,
        split_io: impl FnOnce(IO) -> (R, W),
    ) -> Result<(EngineIo<R>, EngineIo<W>), Self> {
        if !self.can_split() {
            return Err(self);
        }
        let Some(send) = self.engine.split_off_send() else {
            return Err(self);
        };
        let send_bufs = self.bufs.split_off_send();
        let (read_io, write_io) = split_io(self.io);
        let (read_lifecycle, write_lifecycle) = self.lifecycle.split();
        let read = EngineIo {
            bufs: self.bufs,
            keep_idle_buffers: self.keep_idle_buffers,
            rx_read_filled: self.rx_read_filled,
            lifecycle: read_lifecycle,
            ..EngineIo::new(read_io, self.engine)
        };
        let write = EngineIo {
            bufs: send_bufs,
            keep_idle_buffers: self.keep_idle_buffers,
            lifecycle: write_lifecycle,
            dirty: self.dirty,
            close_notify_queued: self.close_notify_queued,
            owes_write: self.owes_write,
            ..EngineIo::new(write_io, send)
        };
        Ok((read, write))
    }

    /// Joins what [`EngineIo::split`] took apart.
    pub(crate) fn join<R, W>(
        read: EngineIo<R>,
        write: EngineIo<W>,
        join_io: impl FnOnce(R, W) -> IO,
    ) -> Self {
        EngineIo {
            io: join_io(read.io, write.io),
            engine: Engine::join(read.engine, write.engine),
            bufs: Buffers::join(read.bufs, write.bufs),
            keep_idle_buffers: read.keep_idle_buffers,
            rx_read_filled: read.rx_read_filled,
            dirty: write.dirty,
            lifecycle: Lifecycle::join(&read.lifecycle, &write.lifecycle),
            close_notify_queued: write.close_notify_queued,
            owes_write: write.owes_write,
            waker_held: false,
        }
    }
}

/// The engine's calls that need no transport, with the core's buffers where they take
/// them. Nothing outside this file and `engine/` reaches into the engine.
impl<IO> EngineIo<IO> {
    pub(crate) fn is_client(&self) -> bool {
        self.engine.is_client()
    }

    /// The ClientHello, once the handshake asked for a config.
    pub(crate) fn client_hello(&self) -> Option<rustls::server::ClientHello<'_>> {
        self.engine.client_hello()
    }

    /// Continues a resolving server's handshake with the chosen config.
    pub(crate) fn set_server_config(
        &mut self,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> Result<(), Error> {
        self.engine.set_server_config(config)
    }

    /// What the handshake negotiated, once it has completed.
    pub(crate) fn take_info(&mut self) -> Option<crate::info::ConnectionInfo> {
        self.engine.take_info()
    }

    /// Client: whether early data was written and the handshake has not said yet what
    /// became of it.
    pub(crate) fn early_data_pending(&self) -> bool {
        self.engine.early_data_pending()
    }

    /// A receive side: what it asks its send side to send.
    pub(crate) fn take_requests(&mut self) -> Requests {
        self.engine.take_requests()
    }

    /// The error a read deferred behind the data it delivered.
    pub(crate) fn deferred_error(&self) -> Option<Error> {
        self.engine.deferred_error()
    }

    /// Moves the handshake forward as far as the buffered input allows.
    pub(crate) fn drive_handshake(&mut self) -> Result<HandshakeStatus, Error> {
        self.engine.drive_handshake(&mut self.bufs)
    }

    /// Answers a ClientHello for which no config could be chosen.
    pub(crate) fn reject_client_hello(&mut self) {
        self.engine.reject_client_hello(&mut self.bufs);
    }

    /// Starts a TLS 1.3 key update; the KeyUpdate goes out with the next write or flush.
    pub(crate) fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        self.engine.refresh_traffic_keys(&mut self.bufs)
    }

    /// A send side seals what its receive side asked for.
    pub(crate) fn answer(&mut self, requests: Requests) -> Result<(), Error> {
        self.engine.answer(&mut self.bufs, requests)
    }

    /// Whether [`EngineIo::split`] can divide this core: a whole native engine with no
    /// decrypted bytes left over.
    pub(crate) fn can_split(&self) -> bool {
        self.engine.can_split() && self.bufs.plain.is_empty()
    }

    /// Server: takes the 0-RTT early data received so far.
    pub(crate) fn take_early_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bufs.early).into_vec()
    }

    /// Takes the incoming bytes not yet consumed: after a plaintext first record, the
    /// client's bytes as it sent them (nothing of them was consumed).
    pub(crate) fn take_received(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bufs.rx).into_vec()
    }
}

/// The buffer policy: when the core's buffers are released, grown and shrunk.
impl<IO> EngineIo<IO> {
    /// Heap bytes held by the connection's buffers (not rustls's).
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.bufs.capacity()
    }

    /// After the handshake: its buffers, sized for its flights, go (see
    /// [`Window::release`]); the first read and write after it take a buffer each.
    pub(crate) fn trim_after_handshake(&mut self) {
        self.wait_for_input();
    }

    /// The connection waits for its peer. Every buffer with nothing in it goes back to the
    /// thread's spares, and after the handshake an incoming buffer that holds part of a
    /// record keeps one record's room, no more (a bulk transfer may have grown it to three
    /// records: the larger buffer is lent back to the thread, see
    /// [`Window::shed_to_one_record`]). During the handshake rustls may hold a message that
    /// spans records in it, bounded by rustls's own limit, so it stays.
    fn wait_for_input(&mut self) {
        if self.keep_idle_buffers {
            return;
        }
        if self.bufs.rx.is_empty() {
            self.bufs.rx.release();
        } else if self.engine.in_traffic() {
            self.bufs.rx.shed_to_one_record();
        }
        self.bufs.plain.release();
        self.release_tx();
    }

    /// After a read that delivered data: the receive buffers that it left empty go back
    /// to the spares, as OpenSSL's `SSL_MODE_RELEASE_BUFFERS` does, so that a connection
    /// its application holds without reading (a pooled client, a server awaiting
    /// something else) holds nothing either. Streaming pays a spare's round trip per
    /// read: the next read takes the same buffer back ([`Window::adopt_spare`]).
    fn release_read_buffers(&mut self) {
        if self.keep_idle_buffers {
            return;
        }
        self.bufs.rx.release();
        self.bufs.plain.release();
    }

    /// After a write or a flush that left nothing unsent: the send buffers go back to the
    /// spares (see [`Window::release`]); a batch-sized one is cut to one record first.
    fn release_tx(&mut self) {
        self.bufs.tx.shrink_to_if_idle(TX_KEEP);
        if self.keep_idle_buffers {
            return;
        }
        self.bufs.tx.release();
        self.bufs.gather.release();
    }
}

/// Room in `rx` for the next transport read: `want` (the rest of the record being
/// received, or [`READ_MIN`]), and more when the last read filled all its room (`grow`):
/// the buffer then doubles, up to [`RX_CAP`], so that a transport with records queued
/// gives several per read.
fn rx_room(rx: &mut Window, want: usize, grow: bool) -> &mut [u8] {
    rx.reserve_capped(want, MAX_RECORD);
    if grow {
        rx.grow_toward(RX_CAP);
    }
    rx.spare()
}

impl<IO: AsyncRead + Unpin> EngineIo<IO> {
    /// Reads once from the transport into the engine; returns the byte count (0 is EOF).
    ///
    /// A connection that waits for its peer holds no buffers: when the transport has
    /// nothing and nothing is buffered, the engine gives its buffers back to the spares.
    /// The next read adopts a spare if one is there (the same buffer, when streaming), or
    /// reads to the stack and takes a buffer only if bytes came.
    pub(crate) fn poll_fill_rx(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Error>> {
        if self.bufs.rx.is_released() && !self.bufs.rx.adopt_spare(self.rx_read_filled) {
            // No spare to read into, and the transport may well have nothing: read to the
            // stack, and take a buffer only if bytes came. Uninitialized: zeroing it would
            // cost a 4 KiB memset on every poll of an idle connection.
            let mut first = [std::mem::MaybeUninit::<u8>::uninit(); READ_MIN];
            let mut buf = ReadBuf::uninit(&mut first);
            let read = Pin::new(&mut self.io).poll_read(cx, &mut buf);
            ready!(note(&mut self.waker_held, read)).map_err(Error::Io)?;
            self.bufs.rx.extend(buf.filled());
            return Poll::Ready(Ok(buf.filled().len()));
        }
        let want = self.engine.read_room(&self.bufs);
        let grow = std::mem::take(&mut self.rx_read_filled);
        let mut buf = ReadBuf::new(rx_room(&mut self.bufs.rx, want, grow));
        let read = Pin::new(&mut self.io).poll_read(cx, &mut buf);
        let Poll::Ready(read) = note(&mut self.waker_held, read) else {
            self.wait_for_input();
            return Poll::Pending;
        };
        read.map_err(Error::Io)?;
        let n = buf.filled().len();
        self.rx_read_filled = n > 0 && n == self.bufs.rx.spare().len();
        self.bufs.rx.commit(n);
        Poll::Ready(Ok(n))
    }

    /// Reads application data after the handshake into `buf`. After each step of the
    /// engine, `policy` sends what the step produced for the peer; a failure is the
    /// connection's, reported after the data of that step if there was any.
    pub(crate) fn poll_read_records<P: ReadPolicy<IO>>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        allow_truncation: bool,
        policy: &mut P,
    ) -> Poll<io::Result<()>> {
        let read = ready!(self.poll_read_steps(cx, buf, allow_truncation, policy));
        Poll::Ready(self.conclude(policy, cx, read))
    }

    fn poll_read_steps<P: ReadPolicy<IO>>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        allow_truncation: bool,
        policy: &mut P,
    ) -> Poll<Result<(), Fault>> {
        if let Some(end) = self.lifecycle.read_end() {
            return Poll::Ready(read_end_outcome(end));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..READ_STEPS_PER_POLL {
            let queued = self.bufs.tx.len();
            let status = self.engine.read(&mut self.bufs, buf.initialize_unfilled());
            let sent = policy.after_read_step(self, cx, queued, &status);
            match (status, sent) {
                (Err(e), _) | (Ok(ReadStatus::NeedInput | ReadStatus::PeerClosed), Err(e)) => {
                    return Poll::Ready(Err(Fault::Fatal(e)));
                }
                (Ok(ReadStatus::Data(n)), sent) => {
                    buf.advance(n);
                    self.release_read_buffers();
                    return Poll::Ready(sent.map_err(Fault::AfterData));
                }
                (Ok(ReadStatus::PeerClosed), Ok(())) => {
                    return Poll::Ready(self.end_read(ReadEnd::Clean));
                }
                (Ok(ReadStatus::NeedInput), Ok(())) => {}
            }
            match ready!(self.poll_fill_rx(cx)) {
                Ok(0) => {
                    // The peer closed the transport without close_notify. At a record
                    // boundary the user may accept that as a clean end.
                    let end = if allow_truncation && self.bufs.rx.is_empty() {
                        ReadEnd::Clean
                    } else {
                        ReadEnd::Truncated
                    };
                    return Poll::Ready(self.end_read(end));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(Fault::Passing(e))),
            }
        }
        // The budget of steps is spent and bytes are still coming: yield, and ask to be
        // polled again since no I/O registered the waker.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn end_read(&mut self, end: ReadEnd) -> Result<(), Fault> {
        self.lifecycle.end_read(end);
        read_end_outcome(end)
    }
}

impl<IO: AsyncWrite + Unpin> EngineIo<IO> {
    /// Writes the outgoing buffer until it is empty.
    pub(crate) fn poll_write_tx(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while !self.bufs.tx.is_empty() {
            ready!(self.poll_write_tx_once(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// One transport write of the outgoing buffer.
    fn poll_write_tx_once(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let written = Pin::new(&mut self.io).poll_write(cx, self.bufs.tx.data());
        match ready!(note(&mut self.waker_held, written)) {
            Ok(0) => Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into()))),
            Ok(n) => {
                self.bufs.tx.consume(n);
                self.dirty = true;
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(Error::Io(e))),
        }
    }

    /// Writes what the transport takes now, without waiting. A `Pending` leaves the rest
    /// buffered for the next write or flush (its waker registration is harmless).
    pub(crate) fn try_write_tx(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        match self.poll_write_tx(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(()),
        }
    }

    /// Writes what the transport takes now of records sealed outside the writer's own
    /// calls (a KeyUpdate answer or an alert that a read produced, on the stream or for a
    /// split stream's read half), and notes what it leaves owed. A send buffer that this
    /// leaves empty goes back to the spares at once: the writer may be idle, and its next
    /// flush is the only other place that would release it (a stream divided later hands
    /// it to its write half). Returns whether the transport took bytes: it then holds the
    /// caller's waker, in place of a writer that may be parked on it.
    pub(crate) fn try_write_control(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let before = self.bufs.tx.len();
        let written = self.try_write_tx(cx);
        self.owes_write = !self.bufs.tx.is_empty();
        if !self.owes_write {
            self.release_tx();
        }
        written.map(|()| self.bufs.tx.len() < before)
    }

    /// The read-owes-write rule, on a core that both reads and writes: after a read step,
    /// writes what the step sealed for the peer and what an earlier step left owed. See
    /// [`EngineIo::try_write_control`] for what it returns.
    pub(crate) fn write_control_after_read(
        &mut self,
        cx: &mut Context<'_>,
        queued_before: usize,
    ) -> Result<bool, Error> {
        if !self.owes_write() && self.bufs.tx.len() <= queued_before {
            return Ok(false);
        }
        self.try_write_control(cx)
    }

    /// Flushes the transport if bytes went to it since its last flush.
    pub(crate) fn poll_flush_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.dirty {
            let flushed = Pin::new(&mut self.io).poll_flush(cx);
            ready!(note(&mut self.waker_held, flushed)).map_err(Error::Io)?;
            self.dirty = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Flushes the transport whether or not we wrote to it. Its errors are not sticky.
    pub(crate) fn poll_flush_transport(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.dirty = false;
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        note(&mut self.waker_held, flushed)
    }

    /// Seals application data from `bufs` (at most one batch) and writes what the
    /// transport takes now. Returns the plaintext bytes taken.
    pub(crate) fn poll_write_records<P: FailurePolicy<IO>>(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        policy: &mut P,
    ) -> Poll<io::Result<usize>> {
        match ready!(self.poll_seal_and_write(cx, bufs)) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) => Poll::Ready(Err(policy.fail(self, cx, e).into())),
        }
    }

    fn poll_seal_and_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<Result<usize, Error>> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        // Keep at most one batch of ciphertext buffered: push it out until a whole record
        // fits, so a slow transport never makes us seal tiny records.
        while self.bufs.tx.len() + MAX_PLAINTEXT > TX_BATCH {
            ready!(self.poll_write_tx_once(cx))?;
        }
        let n = self.engine.write(&mut self.bufs, &bufs[first..])?;
        self.try_write_tx(cx)?;
        // A write the transport took whole leaves nothing buffered: the send buffers go,
        // unless the write was a batch (the writer is streaming, and its flush cuts and
        // releases the batch-sized buffer; releasing it per write would cut and regrow it).
        if self.bufs.tx.is_empty() && self.bufs.tx.capacity() <= TX_KEEP {
            self.release_tx();
        }
        Poll::Ready(Ok(n))
    }

    /// A client's write before the handshake has completed, first half: offers `bufs` as
    /// early data before the caller drives the handshake, so that what 0-RTT allows leaves
    /// in the ClientHello's flight (a fast server answers before our first read returns,
    /// and with its answer the chance is gone). Returns what the engine took now.
    pub(crate) fn offer_early(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Error> {
        self.engine.write_early(&mut self.bufs, bufs)
    }

    /// The second half of [`EngineIo::offer_early`], after the caller drove the
    /// handshake once: how much of the offer went out as early data (`taken_now` and what
    /// the handshake took of the rest; the rest is dropped, as this write reports only
    /// what it took), written now if the transport takes it. Otherwise the handshake,
    /// which the next read, write or flush polls, writes it before it waits for the
    /// server. `None`: nothing went as early data, and the write waits for the handshake.
    pub(crate) fn finish_early(
        &mut self,
        cx: &mut Context<'_>,
        taken_now: usize,
    ) -> Option<Result<usize, Error>> {
        let written = taken_now + self.engine.take_early_offer();
        if written == 0 {
            return None;
        }
        Some(self.try_write_tx(cx).map(|()| written))
    }

    /// Writes every buffered record, gives back send-buffer memory above one record, and
    /// flushes the transport.
    pub(crate) fn poll_flush_records<P: FailurePolicy<IO>>(
        &mut self,
        cx: &mut Context<'_>,
        policy: &mut P,
    ) -> Poll<io::Result<()>> {
        let flushed = ready!(self.poll_flush_steps(cx));
        Poll::Ready(self.conclude(policy, cx, flushed))
    }

    fn poll_flush_steps(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Fault>> {
        ready!(self.poll_write_tx(cx)).map_err(Fault::Fatal)?;
        self.release_tx();
        let flushed = ready!(self.poll_flush_transport(cx));
        Poll::Ready(flushed.map_err(|e| Fault::Passing(Error::Io(e))))
    }

    /// Seals our close_notify (once), writes and flushes it, then shuts the transport's
    /// write side down.
    pub(crate) fn poll_shutdown_records<P: FailurePolicy<IO>>(
        &mut self,
        cx: &mut Context<'_>,
        policy: &mut P,
    ) -> Poll<io::Result<()>> {
        self.lifecycle.close_write();
        if !self.close_notify_queued {
            self.close_notify_queued = true;
            if let Err(e) = self.engine.close_notify(&mut self.bufs) {
                return Poll::Ready(Err(policy.fail(self, cx, e).into()));
            }
        }
        ready!(self.poll_flush_records(cx, policy))?;
        self.poll_shutdown_transport(cx)
    }

    /// Flushes and shuts the transport's write side down, with no TLS-level close (a
    /// stream whose handshake never ran). Its errors are not sticky.
    pub(crate) fn poll_close_transport(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lifecycle.close_write();
        ready!(self.poll_flush_transport(cx))?;
        self.poll_shutdown_transport(cx)
    }

    /// Shuts the transport's write side down. Its errors are not sticky.
    pub(crate) fn poll_shutdown_transport(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shut = Pin::new(&mut self.io).poll_shutdown(cx);
        note(&mut self.waker_held, shut)
    }

    /// After a failure: the alert rustls queued for a TLS error is collected, one
    /// best-effort write of what is buffered, then the transport is shut down, unless it
    /// is the transport that failed. Neither can fail the caller: the failure is already
    /// decided.
    pub(crate) fn send_last_words(&mut self, cx: &mut Context<'_>, failure: &Error) {
        if matches!(failure, Error::Tls(_)) {
            self.engine.collect_alert(&mut self.bufs);
        }
        let answered = !self.bufs.tx.is_empty();
        if answered {
            // One write; a transport that is not ready just misses the alert.
            let _ = Pin::new(&mut self.io).poll_write(cx, self.bufs.tx.data());
            let _ = Pin::new(&mut self.io).poll_flush(cx);
        }
        if !keeps_transport(failure, answered) {
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
        }
    }
}

/// Whether a failure leaves the transport as it is: a failed transport has nothing left
/// to shut down, and a plaintext client that got no answer keeps its transport for the
/// server to take back ([`TlsStream::into_plaintext`](crate::TlsStream::into_plaintext)).
pub(crate) fn keeps_transport(failure: &Error, answered: bool) -> bool {
    match failure {
        Error::Io(_) => true,
        Error::PlaintextHttp => !answered,
        _ => false,
    }
}
