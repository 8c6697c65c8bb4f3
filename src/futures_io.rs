//! futures-io interop (feature `futures-io`): the `futures_io` traits for the stream and its
//! halves, for async libraries written against them, and the connections a
//! [`TlsListener`](crate::TlsListener) accepts as a `futures_core::Stream`
//! ([`Incoming`](crate::Incoming)). Each trait method delegates to the tokio impl; nothing
//! is allocated per call. `poll_close` is tokio's `poll_shutdown`: it sends close_notify.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{TlsReadHalf, TlsStream, TlsWriteHalf};

/// tokio's `poll_read` over the caller's buffer.
fn read_into<R: AsyncRead + ?Sized>(
    reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let mut buf = ReadBuf::new(buf);
    ready!(reader.poll_read(cx, &mut buf))?;
    Poll::Ready(Ok(buf.filled().len()))
}

/// The futures-io `AsyncRead` of a type whose tokio `AsyncRead` does the work.
macro_rules! futures_read {
    ($ty:ident, $($bound:tt)+) => {
        #[cfg_attr(docsrs, doc(cfg(feature = "futures-io")))]
        impl<IO: $($bound)+> futures_io::AsyncRead for $ty<IO> {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                read_into(self, cx, buf)
            }
        }
    };
}

futures_read!(TlsStream, AsyncRead + AsyncWrite + Unpin);
futures_read!(TlsReadHalf, AsyncRead + AsyncWrite + Unpin + 'static);

/// The futures-io `AsyncWrite` of a type whose tokio `AsyncWrite` does the work.
macro_rules! futures_write {
    ($ty:ident, $($bound:tt)+) => {
        #[cfg_attr(docsrs, doc(cfg(feature = "futures-io")))]
        impl<IO: $($bound)+> futures_io::AsyncWrite for $ty<IO> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write_vectored(self, cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_flush(self, cx)
            }

            /// Sends close_notify, flushes, and shuts the transport's write side down, as
            /// tokio's `poll_shutdown` does.
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_shutdown(self, cx)
            }
        }
    };
}

futures_write!(TlsStream, AsyncRead + AsyncWrite + Unpin);
futures_write!(TlsWriteHalf, AsyncRead + AsyncWrite + Unpin + 'static);
