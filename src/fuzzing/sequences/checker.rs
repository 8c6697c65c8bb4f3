//! The API-level checker (target `api_sequences`): random sequences of public-API
//! operations on one lazytls connection, from one or two tasks, against a peer whose every
//! action the input chooses, over an in-memory transport that misbehaves as the input says.
//! Invariants are checked after every step.
//!
//! - Configurations: our client or our server; TLS 1.3 or 1.2; the native record layer,
//!   rustls's (unbuffered) one, or, for a client with early data, rustls's buffered one;
//!   early data with a ticket; long ALPN lists and a large certificate chain (handshake
//!   flights of several records); `keep_idle_buffers`; the whole stream, `into_split`
//!   halves, or `tokio::io::split` halves.
//! - The peer is a rustls `Connection` driven by hand (the same connection tokio-rustls
//!   wraps, with control over which bytes leave together), or a lazytls stream with a
//!   reader task and a writer task of its own. Its actions: deliver what it wrote (all of
//!   it, or holding back the tail of a record), send data, KeyUpdate with a request (TLS
//!   1.3; with rustls also right behind its last handshake message), close_notify, a TCP
//!   close.
//! - Our operations: reads of random sizes, writes and vectored writes, flush, shutdown,
//!   `handshake()` with and without `cancel_on` (cancelled or not), a read, write or
//!   handshake future dropped after one poll, idle waits, and `unsplit` at the end.
//! - The transport returns `Pending` at random (after a wake-up, as a busy transport
//!   would), reads and writes short, keeps one waker per direction as a socket does, and
//!   has a bounded capacity towards the peer.
//! - The executor polls a task only when its waker fired. When every task waits and the
//!   peer has nothing left to do, it polls each task once more without a wake-up: a task
//!   that makes progress then had lost a wake-up. Polls without progress are bounded (a
//!   busy loop fails).
//! - Invariants: every byte either way arrives exactly once and in order (checked as it
//!   arrives), and all of it when nothing fatal was injected; an error is typed, or the
//!   injected transport error; transport reads stay within a constant of the deliveries
//!   plus the bytes over one record's room; a connection idle after its handshake (every
//!   task waiting in a read, nothing written since the last flush) holds at most one
//!   record's room; the peer (rustls) accepts every record we send, and nothing arrives
//!   after our close_notify or fatal alert.

//!
//! This module holds what the other parts share: the streams' contents (`stream_byte`),
//! `tracing`, and the transport (`Wire` for our end, `PeerWire` for a lazytls peer's).
//! The configurations and the peers are in `peers`, our end's operations in `ours`, the
//! executor and the entry points in `run`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::fuzzing::targets::Fault;

/// A record's largest size with its header and the most overhead rustls accepts: what a
/// connection waiting for the rest of one record may hold.
pub const ONE_RECORD_ROOM: usize = 16_384 + 2_048 + 5;

/// What goes the peer's way at most before our writes wait.
const TO_PEER_CAP: usize = 96 * 1024;

/// `SEQ_TRACE=1` prints each run's configuration, operations and the peer's actions.
pub(super) fn tracing() -> bool {
    std::env::var_os("SEQ_TRACE").is_some()
}

/// Byte `i` of the stream the peer sends (and of ours, with another seed), so that every
/// byte can be checked where it arrives.
pub(super) fn stream_byte(seed: u8, i: usize) -> u8 {
    (i as u8)
        .wrapping_mul(31)
        .wrapping_add((i >> 8) as u8)
        .wrapping_add(seed)
}

pub(super) const PEER_SEED: u8 = 7;
pub(super) const OUR_SEED: u8 = 101;

// ---------------------------------------------------------------------------------------
// The transport
// ---------------------------------------------------------------------------------------

/// One direction of the wire.
#[derive(Default)]
pub(super) struct Lane {
    pub(super) bytes: VecDeque<u8>,
    /// The last bytes that the peer holds back (the tail of a record) until it releases
    /// them: a reader sees `bytes.len() - held`.
    pub(super) held: usize,
    /// The writer closed this lane (EOF after the bytes).
    pub(super) closed: bool,
    /// The one task waiting on this lane, as a socket keeps one per direction.
    waker: Option<Waker>,
}

impl Lane {
    /// Moves the first `n` bytes into `buf`.
    fn take_into(&mut self, buf: &mut ReadBuf<'_>, n: usize) {
        let (front, back) = self.bytes.as_slices();
        let from_front = n.min(front.len());
        buf.put_slice(&front[..from_front]);
        buf.put_slice(&back[..n - from_front]);
        self.bytes.drain(..n);
    }

    pub(super) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// What the transport saw, for the invariants.
#[derive(Default, Debug, Clone, Copy)]
pub struct WireStats {
    /// Reads that brought bytes.
    pub reads: usize,
    /// The bytes they brought.
    pub bytes_read: usize,
    /// Short reads the schedule injected.
    pub short_reads: usize,
    /// Times the peer made more bytes readable.
    pub deliveries: usize,
    /// Anything moved or was injected: the executor's measure of progress.
    pub progress: usize,
    /// A transport error or a TCP close was injected.
    pub fatal: bool,
}

#[derive(Default)]
pub(super) struct WireState {
    pub(super) to_us: Lane,
    pub(super) to_peer: Lane,
    /// A lazytls peer's reader waiting for our bytes (`to_peer`'s own waker is our
    /// writer's, waiting for room).
    peer_reader: Option<Waker>,
    /// The peer reset the connection: our writes fail.
    pub(super) reset: bool,
    faults: Vec<u8>,
    pos: usize,
    pub(super) stats: WireStats,
}

impl WireState {
    /// The most bytes this call may move, from the schedule; `None` when it yields
    /// instead (after waking the task, as a busy transport would).
    fn limit(&mut self, cx: &Context<'_>) -> Option<usize> {
        match self.fault() {
            Fault::Pending => {
                self.stats.progress += 1;
                cx.waker().wake_by_ref();
                None
            }
            Fault::Short(n) => Some(n),
            Fault::OneByte => Some(1),
            _ => Some(usize::MAX),
        }
    }

    fn fault(&mut self) -> Fault {
        let Some(&b) = self.faults.get(self.pos) else {
            return Fault::None;
        };
        self.pos += 1;
        // Only yields and short transfers: errors and EOF come from the peer's actions.
        match Fault::from_byte(b) {
            Fault::Error | Fault::Eof => Fault::None,
            f => f,
        }
    }
}

/// Our end of the wire. One `Mutex` because `into_split` wants a `Send` transport; it is
/// never contended (one thread).
#[derive(Clone)]
pub struct Wire(Arc<Mutex<WireState>>);

impl Wire {
    /// A fresh wire whose transport follows the fault schedule `faults`.
    pub(super) fn new(faults: Vec<u8>) -> Wire {
        Wire(Arc::new(Mutex::new(WireState {
            faults,
            ..WireState::default()
        })))
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, WireState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn stats(&self) -> WireStats {
        self.state().stats
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut w = self.state();
        let Some(limit) = w.limit(cx) else {
            return Poll::Pending;
        };
        let lane = &mut w.to_us;
        let readable = lane.bytes.len() - lane.held;
        if readable == 0 {
            if lane.closed && lane.held == 0 {
                return Poll::Ready(Ok(()));
            }
            lane.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let wanted = readable.min(buf.remaining());
        let n = wanted.min(limit);
        lane.take_into(buf, n);
        w.stats.reads += 1;
        w.stats.bytes_read += n;
        w.stats.progress += 1;
        if n < wanted {
            w.stats.short_reads += 1;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut w = self.state();
        if w.reset || w.to_peer.closed {
            // As a socket does after the peer's reset, or after our own shutdown.
            w.stats.fatal = true;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "injected transport fault: the connection is closed for writing",
            )));
        }
        let Some(limit) = w.limit(cx) else {
            return Poll::Pending;
        };
        let room = TO_PEER_CAP.saturating_sub(w.to_peer.bytes.len());
        if room == 0 {
            w.to_peer.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(room).min(limit);
        w.to_peer.bytes.extend(&buf[..n]);
        w.stats.progress += 1;
        if let Some(waker) = w.peer_reader.take() {
            waker.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.state();
        if w.fault() == Fault::Pending {
            w.stats.progress += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.state();
        w.to_peer.closed = true;
        w.stats.progress += 1;
        if let Some(waker) = w.peer_reader.take() {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
}

/// A lazytls peer's end of the wire: it reads what we write and writes what we read,
/// without faults of its own.
pub struct PeerWire(pub(super) Wire);

impl AsyncRead for PeerWire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut w = self.0.state();
        let lane = &mut w.to_peer;
        if lane.bytes.is_empty() {
            if lane.closed {
                return Poll::Ready(Ok(()));
            }
            w.peer_reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = lane.bytes.len().min(buf.remaining());
        lane.take_into(buf, n);
        lane.wake();
        w.stats.progress += 1;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PeerWire {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut w = self.0.state();
        if w.reset || w.to_us.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "injected transport fault: the connection is closed for writing",
            )));
        }
        w.to_us.bytes.extend(buf);
        w.to_us.wake();
        w.stats.deliveries += 1;
        w.stats.progress += 1;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.0.state();
        w.to_us.closed = true;
        w.to_us.wake();
        w.stats.progress += 1;
        Poll::Ready(Ok(()))
    }
}
