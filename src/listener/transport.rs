//! `TransportListener`: what a [`TlsListener`](super::TlsListener) accepts connections
//! from. TCP and Unix listeners come with it; any other source implements the trait.

use std::io;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};

/// A source of accepted transports for a [`TlsListener`](super::TlsListener).
///
/// tokio's [`TcpListener`] and, on Unix, [`UnixListener`](tokio::net::UnixListener)
/// implement it. For another source (a listener from a socket-activation crate, a VSOCK
/// listener, a channel of connections), implement [`poll_accept`](Self::poll_accept) and
/// [`local_addr`](Self::local_addr); the `TlsListener` on top keeps its lazy accept,
/// handshake deadline and cap, back-off on resource errors, and shutdown token.
///
/// `poll_accept` takes `&self`, as tokio's listeners do, so that one listener can be
/// shared by several accept loops (the `TlsListener`'s `accept` takes `&self` too).
pub trait TransportListener {
    /// An accepted connection.
    type Io;
    /// The peer's address.
    type Addr;

    /// Polls for the next connection. Errors are classified by the `TlsListener` as
    /// those of one connection (skipped), resource exhaustion (paused on), and failures of
    /// the listening socket (returned); see [`TlsListener::accept`](super::TlsListener::accept).
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Io, Self::Addr)>>;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// Applies [`TlsListener::nodelay`](super::TlsListener::nodelay) to an accepted
    /// connection. Transports without Nagle's algorithm keep this default, which does
    /// nothing.
    fn set_nodelay(_io: &Self::Io, _nodelay: bool) -> io::Result<()> {
        Ok(())
    }
}

impl TransportListener for TcpListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, Self::Addr)>> {
        TcpListener::poll_accept(self, cx)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        TcpListener::local_addr(self)
    }

    fn set_nodelay(io: &TcpStream, nodelay: bool) -> io::Result<()> {
        io.set_nodelay(nodelay)
    }
}

#[cfg(unix)]
impl TransportListener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Io, Self::Addr)>> {
        tokio::net::UnixListener::poll_accept(self, cx)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        tokio::net::UnixListener::local_addr(self)
    }
}

/// Binds a Unix listener at `path`, with an error that names the path, and says what to do
/// when it exists already (a stale socket of an earlier run, or another server's).
#[cfg(unix)]
pub(super) fn bind_unix(path: &std::path::Path) -> io::Result<tokio::net::UnixListener> {
    tokio::net::UnixListener::bind(path).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::AddrInUse => {
                "; the path exists already: remove it if it is a stale socket of an earlier run"
            }
            _ => "",
        };
        io::Error::new(
            e.kind(),
            format!("cannot bind a Unix socket at {}: {e}{hint}", path.display()),
        )
    })
}
