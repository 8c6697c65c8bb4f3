//! [`CountingReads`]: a transport that counts the reads that brought bytes, and the room
//! each offered, so that tests can bound how many transport reads a transfer costs.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a [`CountingReads`] saw, shared so that it can be read while the stream owns the
/// transport.
#[derive(Debug, Default)]
pub struct ReadCounts {
    /// Reads that brought at least one byte.
    pub reads: AtomicUsize,
    /// Reads that brought bytes and offered fewer than 64 bytes of room.
    pub tiny_reads: AtomicUsize,
    /// Bytes read.
    pub bytes: AtomicUsize,
}

impl ReadCounts {
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    pub fn tiny_reads(&self) -> usize {
        self.tiny_reads.load(Ordering::SeqCst)
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

/// Forwards to `io`, counting reads into its [`ReadCounts`].
pub struct CountingReads<IO> {
    pub io: IO,
    pub counts: Arc<ReadCounts>,
}

impl<IO> CountingReads<IO> {
    pub fn new(io: IO) -> Self {
        CountingReads {
            io,
            counts: Arc::default(),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for CountingReads<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let room = buf.remaining();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if matches!(poll, Poll::Ready(Ok(()))) && n > 0 {
            self.counts.reads.fetch_add(1, Ordering::SeqCst);
            self.counts.bytes.fetch_add(n, Ordering::SeqCst);
            if room < 64 {
                self.counts.tiny_reads.fetch_add(1, Ordering::SeqCst);
            }
        }
        poll
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for CountingReads<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
