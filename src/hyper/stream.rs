//! [`MaybeHttpsStream`]: the connection the connector hands out, plain text or TLS.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

#[cfg(doc)]
use super::HttpsConnector;
use super::{ALPN_H2, TlsInfo};
use crate::{ConnectionInfo, TlsStream};

/// A connection made by [`HttpsConnector`]: plain text for `http://`, TLS for `https://`.
///
/// Implements hyper's `rt::Read`/`rt::Write` and hyper-util's [`Connection`]. For TLS,
/// [`Connection::connected`] reports the inner connection's metadata, plus
/// [`Connected::negotiated_h2`] when ALPN agreed on `h2` and a [`TlsInfo`] extra, which
/// hyper-util's client copies into every response's extensions.
// The TLS variant is much larger, but each connection holds exactly one of these and it is
// moved only while the connection is set up; boxing would cost a pointer chase per poll.
#[allow(clippy::large_enum_variant)]
pub enum MaybeHttpsStream<T> {
    /// A plain-text connection (`http://`).
    Http(T),
    /// A TLS connection whose handshake has completed. The outer `TokioIo` adapts the
    /// stream to hyper's traits; the inner one adapts `T` to tokio's.
    Https(TokioIo<TlsStream<TokioIo<T>>>),
}

impl<T> MaybeHttpsStream<T> {
    /// Whether this is a TLS connection.
    pub fn is_https(&self) -> bool {
        matches!(self, MaybeHttpsStream::Https(_))
    }

    /// What the handshake negotiated, for a TLS connection.
    pub fn tls_info(&self) -> Option<&ConnectionInfo> {
        match self {
            MaybeHttpsStream::Http(_) => None,
            MaybeHttpsStream::Https(tls) => tls.inner().info(),
        }
    }

    /// The TLS stream, for a TLS connection.
    pub fn tls_stream(&self) -> Option<&TlsStream<TokioIo<T>>> {
        match self {
            MaybeHttpsStream::Http(_) => None,
            MaybeHttpsStream::Https(tls) => Some(tls.inner()),
        }
    }

    /// The inner connection (under TLS, for a TLS connection).
    pub fn inner(&self) -> &T {
        match self {
            MaybeHttpsStream::Http(io) => io,
            MaybeHttpsStream::Https(tls) => tls.inner().get_ref().inner(),
        }
    }
}

impl<T> fmt::Debug for MaybeHttpsStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaybeHttpsStream::Http(_) => f.write_str("MaybeHttpsStream::Http(..)"),
            MaybeHttpsStream::Https(tls) => f
                .debug_tuple("MaybeHttpsStream::Https")
                .field(tls.inner())
                .finish(),
        }
    }
}

impl<T> From<T> for MaybeHttpsStream<T> {
    fn from(io: T) -> Self {
        MaybeHttpsStream::Http(io)
    }
}

impl<T> Connection for MaybeHttpsStream<T>
where
    T: Connection,
{
    fn connected(&self) -> Connected {
        match self {
            MaybeHttpsStream::Http(io) => io.connected(),
            MaybeHttpsStream::Https(tls) => {
                let stream = tls.inner();
                let connected = stream.get_ref().inner().connected();
                let Some(info) = stream.info() else {
                    // Not reached: the connector completes the handshake before it
                    // hands the stream out.
                    return connected;
                };
                let connected = if info.alpn.as_deref() == Some(ALPN_H2) {
                    connected.negotiated_h2()
                } else {
                    connected
                };
                connected.extra(TlsInfo::from(info))
            }
        }
    }
}

impl<T> Read for MaybeHttpsStream<T>
where
    T: Read + Write + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeHttpsStream::Http(io) => Pin::new(io).poll_read(cx, buf),
            MaybeHttpsStream::Https(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl<T> Write for MaybeHttpsStream<T>
where
    T: Read + Write + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeHttpsStream::Http(io) => Pin::new(io).poll_write(cx, buf),
            MaybeHttpsStream::Https(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeHttpsStream::Http(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            MaybeHttpsStream::Https(tls) => Pin::new(tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeHttpsStream::Http(io) => io.is_write_vectored(),
            MaybeHttpsStream::Https(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeHttpsStream::Http(io) => Pin::new(io).poll_flush(cx),
            MaybeHttpsStream::Https(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeHttpsStream::Http(io) => Pin::new(io).poll_shutdown(cx),
            MaybeHttpsStream::Https(tls) => Pin::new(tls).poll_shutdown(cx),
        }
    }
}
