//! Part of the API-level checker (see `checker` for what it does): our end's operations,
//! and the tasks that run them.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use lazytls::{Error, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::checker::{OUR_SEED, PEER_SEED, Wire, stream_byte, tracing};
use super::peers::Ledger;

// ---------------------------------------------------------------------------------------
// Our end: operations
// ---------------------------------------------------------------------------------------

/// One operation of ours.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// A read of up to this many bytes.
    Read(usize),
    /// `write_all` of this many bytes.
    Write(usize),
    /// One vectored write of this many bytes in three slices.
    WriteVectored(usize),
    /// `flush()`.
    Flush,
    /// `shutdown()`.
    Shutdown,
    /// `handshake()`.
    Handshake,
    /// `handshake().cancel_on(token)`, the token cancelled first or not.
    HandshakeCancelled(bool),
    /// A read, write or handshake future polled once, then dropped.
    DropRead,
    /// A write of this many bytes, polled once, then dropped.
    DropWrite(usize),
    /// A `handshake()` future polled once, then dropped.
    DropHandshake,
}

impl Op {
    pub(super) fn from_bytes(b: u8, size: u16) -> Op {
        let size = usize::from(size);
        match b % 12 {
            0..=2 => Op::Read(1 + size % 20_000),
            3 | 4 => Op::Write(size % 20_000),
            5 => Op::WriteVectored(size % 20_000),
            6 => Op::Flush,
            7 => Op::Handshake,
            8 => Op::HandshakeCancelled(size % 2 == 0),
            9 => Op::DropRead,
            10 => Op::DropWrite(1 + size % 5_000),
            _ if size % 8 == 0 => Op::Shutdown,
            _ => Op::DropHandshake,
        }
    }

    fn writes(&self) -> bool {
        matches!(self, Op::Write(_) | Op::WriteVectored(_) | Op::DropWrite(_))
    }
}

/// Checks bytes the peer read against our stream.
pub(super) fn check_ours(ledger: &RefCell<Ledger>, got: &[u8]) {
    let mut l = ledger.borrow_mut();
    for (i, &b) in got.iter().enumerate() {
        let at = l.peer_read + i;
        assert!(
            at < l.we_wrote,
            "the peer received byte {at}, which we never wrote"
        );
        assert_eq!(
            b,
            stream_byte(OUR_SEED, at),
            "byte {at} of ours, as the peer got it"
        );
    }
    l.peer_read += got.len();
}

/// Checks bytes we read against the peer's stream.
fn check_theirs(ledger: &RefCell<Ledger>, got: &[u8]) {
    let mut l = ledger.borrow_mut();
    for (i, &b) in got.iter().enumerate() {
        let at = l.we_read + i;
        assert!(
            at < l.peer_sent,
            "we read byte {at}, which the peer never sent"
        );
        assert_eq!(
            b,
            stream_byte(PEER_SEED, at),
            "byte {at} of the peer's, as we read it"
        );
    }
    l.we_read += got.len();
}

fn our_bytes(ledger: &RefCell<Ledger>, len: usize) -> Vec<u8> {
    let from = ledger.borrow().we_wrote;
    (from..from + len)
        .map(|i| stream_byte(OUR_SEED, i))
        .collect()
}

/// An error of ours must be typed, or the injected transport fault passed through.
fn check_error(what: &str, e: &io::Error, ledger: &RefCell<Ledger>) {
    let typed = Error::from_io(e).is_some();
    let injected = e.to_string().contains("injected");
    assert!(
        typed || injected,
        "{what}: error neither typed nor injected: {e:?}"
    );
    if !matches!(Error::from_io(e), Some(Error::Cancelled)) {
        ledger.borrow_mut().fatal = true;
    }
}

/// One of our ends (the stream or a half), shared between its task and the executor: each
/// poll borrows it for the poll alone, so that between polls the executor can look at its
/// buffers.
pub struct Shared<T>(pub(super) Rc<RefCell<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Shared<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Shared<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.borrow().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_shutdown(cx)
    }
}

/// Runs a read operation. Returns false when the task stops (end of stream or error).
async fn read_op<R: AsyncRead + Unpin>(
    r: &mut R,
    op: Op,
    ledger: &RefCell<Ledger>,
    in_read: &Cell<bool>,
) -> bool {
    let mut buf = vec![0u8; 20_000];
    match op {
        Op::Read(n) => {
            in_read.set(true);
            let got = r.read(&mut buf[..n]).await;
            in_read.set(false);
            match got {
                Ok(0) => {
                    let mut l = ledger.borrow_mut();
                    assert!(
                        l.peer_closed,
                        "a clean end of stream without the peer's close_notify"
                    );
                    l.we_saw_eof = true;
                    false
                }
                Ok(n) => {
                    check_theirs(ledger, &buf[..n]);
                    true
                }
                Err(e) => {
                    check_error("read", &e, ledger);
                    false
                }
            }
        }
        Op::DropRead => {
            std::future::poll_fn(|cx| {
                let mut rb = ReadBuf::new(&mut buf[..4096]);
                if let Poll::Ready(Ok(())) = Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    check_theirs(ledger, rb.filled());
                }
                Poll::Ready(())
            })
            .await;
            true
        }
        _ => true,
    }
}

fn wrote(ledger: &RefCell<Ledger>, k: usize) {
    if tracing() {
        eprintln!("we wrote {k}");
    }
    let mut l = ledger.borrow_mut();
    l.we_wrote += k;
    l.unflushed |= k > 0;
}

/// Runs a write operation. Returns false when the task stops writing.
async fn write_op<W: AsyncWrite + Unpin>(w: &mut W, op: Op, ledger: &RefCell<Ledger>) -> bool {
    let result = match op {
        Op::Write(n) => {
            let data = our_bytes(ledger, n);
            let mut off = 0;
            let mut result = Ok(());
            while off < n {
                match w.write(&data[off..]).await {
                    Ok(0) => {
                        result = Err(io::ErrorKind::WriteZero.into());
                        break;
                    }
                    Ok(k) => {
                        off += k;
                        wrote(ledger, k);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result
        }
        Op::WriteVectored(n) => {
            let data = our_bytes(ledger, n);
            let (a, b) = (n / 3, (n / 3 + 1).min(n));
            let slices = [
                IoSlice::new(&data[..a]),
                IoSlice::new(&data[a..b]),
                IoSlice::new(&data[b..]),
            ];
            w.write_vectored(&slices).await.map(|k| wrote(ledger, k))
        }
        Op::DropWrite(n) => {
            let data = our_bytes(ledger, n);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(Ok(k)) = Pin::new(&mut *w).poll_write(cx, &data) {
                    wrote(ledger, k);
                }
                Poll::Ready(())
            })
            .await;
            Ok(())
        }
        Op::Flush => w
            .flush()
            .await
            .map(|()| ledger.borrow_mut().unflushed = false),
        Op::Shutdown => match w.shutdown().await {
            Ok(()) => {
                ledger.borrow_mut().unflushed = false;
                return false;
            }
            Err(e) => Err(e),
        },
        _ => Ok(()),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            check_error("write", &e, ledger);
            false
        }
    }
}

/// Runs a handshake operation on the whole stream. Returns false when the task stops.
async fn handshake_op(s: &Shared<TlsStream<Wire>>, op: Op, ledger: &RefCell<Ledger>) -> bool {
    let result = match op {
        Op::Handshake | Op::HandshakeCancelled(false) => {
            let token = tokio_util::sync::CancellationToken::new();
            let cancelable = matches!(op, Op::HandshakeCancelled(_));
            std::future::poll_fn(|cx| {
                let mut stream = s.0.borrow_mut();
                if cancelable {
                    // A token that is never cancelled: the handshake runs as without it.
                    pin!(stream.handshake().cancel_on(&token)).poll(cx)
                } else {
                    stream.poll_handshake(cx)
                }
            })
            .await
        }
        Op::HandshakeCancelled(true) | Op::DropHandshake => {
            // One poll, then the future is dropped. A cancelled token makes it end at
            // once with a resumable `Cancelled`.
            let token = tokio_util::sync::CancellationToken::new();
            token.cancel();
            let cancel = matches!(op, Op::HandshakeCancelled(true));
            let polled = std::future::poll_fn(|cx| {
                let mut stream = s.0.borrow_mut();
                let poll = if cancel {
                    pin!(stream.handshake().cancel_on(&token)).poll(cx)
                } else {
                    pin!(stream.handshake()).poll(cx)
                };
                Poll::Ready(poll)
            })
            .await;
            match polled {
                Poll::Ready(Err(Error::Cancelled)) if cancel => return true,
                Poll::Ready(result) => result,
                Poll::Pending => return true,
            }
        }
        _ => return true,
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            check_error("handshake", &io::Error::from(e), ledger);
            false
        }
    }
}

/// What every read script ends with: reads to the end (the peer closes once its own script
/// is done).
fn reads_to_the_end() -> impl Iterator<Item = Op> {
    std::iter::repeat_n(Op::Read(20_000), 10_000)
}

/// The whole stream, running every operation in order, then reads to the end and a last
/// flush (a write that was never flushed need not reach the peer).
pub(super) async fn whole_task(
    s: Shared<TlsStream<Wire>>,
    ops: Vec<Op>,
    ledger: Rc<RefCell<Ledger>>,
    in_read: Rc<Cell<bool>>,
) {
    let mut io = s.clone();
    let mut writing = true;
    for op in ops.into_iter().chain(reads_to_the_end()) {
        let go_on = match op {
            Op::Read(_) | Op::DropRead => read_op(&mut io, op, &ledger, &in_read).await,
            Op::Handshake | Op::HandshakeCancelled(_) | Op::DropHandshake => {
                handshake_op(&s, op, &ledger).await
            }
            op if writing => {
                writing = write_op(&mut io, op, &ledger).await;
                // After a clean shutdown, reads go on.
                writing || !ledger.borrow().fatal
            }
            _ => true,
        };
        if !go_on {
            break;
        }
    }
    if writing && !ledger.borrow().fatal {
        write_op(&mut io, Op::Flush, &ledger).await;
    }
}

pub(super) async fn read_task<R: AsyncRead + Unpin>(
    mut r: R,
    ops: Vec<Op>,
    ledger: Rc<RefCell<Ledger>>,
    in_read: Rc<Cell<bool>>,
    done: Rc<ReaderDone>,
) {
    let reads = ops
        .into_iter()
        .filter(|op| matches!(op, Op::Read(_) | Op::DropRead));
    for op in reads.chain(reads_to_the_end()) {
        if !read_op(&mut r, op, &ledger, &in_read).await {
            break;
        }
    }
    done.set();
}

/// The write half's task. Its last flush waits until the reader is done: a writer that
/// wrote without flushing may sit idle while the reader waits (the reader must not depend
/// on it).
pub(super) async fn write_task<W: AsyncWrite + Unpin>(
    mut w: W,
    ops: Vec<Op>,
    ledger: Rc<RefCell<Ledger>>,
    reader: Rc<ReaderDone>,
) {
    let writes = ops
        .into_iter()
        .filter(|op| op.writes() || matches!(op, Op::Flush | Op::Shutdown));
    for op in writes {
        if !write_op(&mut w, op, &ledger).await {
            return;
        }
    }
    std::future::poll_fn(|cx| reader.poll_done(cx)).await;
    if !ledger.borrow().fatal {
        write_op(&mut w, Op::Flush, &ledger).await;
    }
}

/// Set when the read task ends; wakes the write task waiting for it.
#[derive(Default)]
pub(super) struct ReaderDone {
    done: Cell<bool>,
    waiting: RefCell<Option<Waker>>,
}

impl ReaderDone {
    fn set(&self) {
        self.done.set(true);
        if let Some(w) = self.waiting.borrow_mut().take() {
            w.wake();
        }
    }

    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done.get() {
            return Poll::Ready(());
        }
        *self.waiting.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
