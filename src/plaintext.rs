//! `PlaintextStream`: a server's transport taken back after a plaintext first record,
//! with the bytes already read put back in front.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose client spoke plaintext HTTP to the TLS port, from
/// [`TlsStream::into_plaintext`](crate::TlsStream::into_plaintext): the transport, never
/// shut down, with the bytes the TLS stream had read from it.
///
/// Reads return those bytes first, then read the transport, so an HTTP server (hyper's
/// `http1` builder, say) can serve the request as if it had read it itself: answer with a
/// redirect to `https://`, or serve plain HTTP. Writes go straight to the transport.
#[derive(Debug)]
pub struct PlaintextStream<IO> {
    io: IO,
    received: Vec<u8>,
    /// How much of `received` reads have returned.
    taken: usize,
}

impl<IO> PlaintextStream<IO> {
    pub(crate) fn new(io: IO, received: Vec<u8>) -> Self {
        PlaintextStream {
            io,
            received,
            taken: 0,
        }
    }

    /// The bytes read from the transport before it was taken back that no read has
    /// returned yet.
    pub fn received(&self) -> &[u8] {
        &self.received[self.taken..]
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The transport, mutably; reading it directly skips [`received`](Self::received).
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The transport and the bytes of [`received`](Self::received).
    pub fn into_parts(mut self) -> (IO, Vec<u8>) {
        self.received.drain(..self.taken);
        (self.io, self.received)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for PlaintextStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = &this.received[this.taken..];
        if rest.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.taken += n;
        if this.taken == this.received.len() {
            this.received = Vec::new();
            this.taken = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for PlaintextStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
