//! `TlsListener`: an accept loop (TCP, Unix, or any [`TransportListener`]) that never
//! waits for a TLS handshake.

#[cfg(any(feature = "futures-io", feature = "tonic"))]
mod incoming;
mod transport;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::server::TlsAcceptor;
use crate::stream::TlsStream;

/// How long an accept loop waits before accepting again after the listening socket
/// itself failed (EMFILE aside, which `accept` backs off from itself): axum's own
/// `TcpListener` loop waits as long, and a socket that keeps failing is not polled in a
/// busy loop.
#[cfg(any(feature = "axum", feature = "futures-io", feature = "tonic"))]
pub(crate) const LISTENER_ERROR_PAUSE: Duration = Duration::from_secs(1);

// Public with `futures-io`; with `tonic` alone only `lazytls::tonic::TlsIncoming` uses it.
#[cfg(any(feature = "futures-io", feature = "tonic"))]
#[cfg_attr(not(feature = "futures-io"), allow(unreachable_pub))]
pub use incoming::Incoming;
pub use transport::TransportListener;

/// The first pause after a resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM) from accept.
const BACKOFF_START: Duration = Duration::from_millis(5);
/// The longest pause; the pause doubles from [`BACKOFF_START`] up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A TLS server socket: a [`TcpListener`] (or a Unix listener, or any
/// [`TransportListener`]) plus a [`TlsAcceptor`], like Go's `tls.NewListener`.
///
/// [`accept`](Self::accept) returns a [`TlsStream`] as soon as the transport accepts a
/// connection. It does no TLS I/O, so a slow or silent client can never hold up the
/// accept loop; the
/// handshake runs lazily in the connection's own task (on its first read or write, or an
/// explicit [`TlsStream::handshake`]), bounded by the handshake deadline.
///
/// ```no_run
/// # async fn run(config: std::sync::Arc<lazytls::rustls::ServerConfig>) -> std::io::Result<()> {
/// use lazytls::{CancellationToken, TlsAcceptor, TlsListener};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio::sync::Semaphore;
///
/// let shutdown = CancellationToken::new();
/// let listener = TlsListener::bind("127.0.0.1:8443", TlsAcceptor::new(config))
///     .await?
///     .handshake_permits(std::sync::Arc::new(Semaphore::new(1024)))
///     .shutdown_token(shutdown.clone());
/// // `None` once `shutdown` is cancelled; handshakes still in flight then fail.
/// while let Some((mut tls, _peer)) = listener.accept_until_shutdown().await? {
///     tokio::spawn(async move {
///         let mut buf = [0u8; 1024];
///         let n = tls.read(&mut buf).await?; // the handshake runs here, under its deadline
///         tls.write_all(&buf[..n]).await?;
///         tls.shutdown().await
///     });
/// }
/// # Ok(()) }
/// ```
///
/// # Settings it puts on the acceptor
///
/// Each accepted stream gets the acceptor's options, with these listener settings on top:
///
/// - **Handshake deadline**: [`DEFAULT_HANDSHAKE_TIMEOUT`](Self::DEFAULT_HANDSHAKE_TIMEOUT)
///   (10 s, as in Go's net/http) unless the acceptor has its own
///   [`handshake_timeout`](TlsAcceptor::handshake_timeout);
///   [`handshake_timeout`](Self::handshake_timeout) overrides both.
/// - **Handshake cap**: [`handshake_permits`](Self::handshake_permits) sets the
///   acceptor's [`handshake_permits`](TlsAcceptor::handshake_permits).
/// - **Shutdown**: [`shutdown_token`](Self::shutdown_token) sets the acceptor's
///   [`shutdown_token`](TlsAcceptor::shutdown_token), so cancelling it fails the
///   handshakes in flight; established connections are not affected.
///
/// The deadline counts from the handshake's first poll, so serve each stream right away
/// (hyper and axum do): a stream nobody reads or writes never starts its handshake.
///
/// # Other transports
///
/// [`bind_unix`](Self::bind_unix) serves a Unix domain socket, and
/// [`from_listener`](Self::from_listener) any [`TransportListener`], with the same
/// settings and the same `accept`.
#[derive(Debug)]
pub struct TlsListener<L = TcpListener> {
    transport: L,
    /// The acceptor as given.
    base: TlsAcceptor,
    /// `base` with the listener's settings on top; it makes the streams.
    acceptor: TlsAcceptor,
    /// `None`: the listener's default. `Some(None)`: no deadline from the listener.
    timeout: Option<Option<Duration>>,
    permits: Option<Arc<Semaphore>>,
    shutdown: Option<CancellationToken>,
    nodelay: bool,
}

impl TlsListener<TcpListener> {
    /// The handshake deadline a listener sets when neither it nor its acceptor has one.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Binds a TCP listener to `addr` and serves TLS on it with `acceptor`.
    pub async fn bind<A: ToSocketAddrs>(addr: A, acceptor: TlsAcceptor) -> io::Result<Self> {
        Ok(Self::from_listener(
            TcpListener::bind(addr).await?,
            acceptor,
        ))
    }
}

#[cfg(unix)]
impl TlsListener<tokio::net::UnixListener> {
    /// Binds a Unix domain socket at `path` and serves TLS on it with `acceptor`.
    ///
    /// If `path` exists (a socket left by an earlier run, or any other file), binding
    /// fails with an error of kind `AddrInUse` that names it: the listener never removes a
    /// file it did not create. Nor does it remove the socket when dropped, as with tokio's
    /// own `UnixListener`.
    pub fn bind_unix(path: impl AsRef<std::path::Path>, acceptor: TlsAcceptor) -> io::Result<Self> {
        Ok(Self::from_listener(
            transport::bind_unix(path.as_ref())?,
            acceptor,
        ))
    }
}

impl<L: TransportListener> TlsListener<L> {
    /// Serves TLS with `acceptor` on a bound listener: a TCP listener made with
    /// `tokio::net::TcpSocket`, `TcpListener::from_std` or socket activation, a Unix
    /// listener, or any other [`TransportListener`].
    pub fn from_listener(transport: L, acceptor: TlsAcceptor) -> Self {
        let mut listener = TlsListener {
            transport,
            acceptor: acceptor.clone(),
            base: acceptor,
            timeout: None,
            permits: None,
            shutdown: None,
            nodelay: false,
        };
        listener.rebuild();
        listener
    }

    /// The handshake deadline of accepted streams, counted from the handshake's first
    /// poll; it replaces the acceptor's own and the listener's default of 10 s.
    ///
    /// `None` means no deadline at all, even if the acceptor had one. Without this call,
    /// the acceptor's own [`handshake_timeout`](TlsAcceptor::handshake_timeout) applies,
    /// or 10 s if it has none.
    pub fn handshake_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = Some(timeout.into());
        self.rebuild();
        self
    }

    /// Caps handshakes in flight: each handshake holds one permit of `permits` from its
    /// first poll to its end (for CPU and memory; idle clients are bounded by the
    /// deadline). Over the cap, a new connection is still accepted, and its handshake waits
    /// for a permit; the wait counts against its deadline. This replaces the acceptor's own
    /// [`handshake_permits`](TlsAcceptor::handshake_permits). Keep the `Arc` to watch the
    /// free slots (`available_permits`), raise the cap (`add_permits`) or fail the waiting
    /// handshakes (`close`); share it to cap several listeners together.
    pub fn handshake_permits(mut self, permits: Arc<Semaphore>) -> Self {
        self.permits = Some(permits);
        self.rebuild();
        self
    }

    /// A graceful-shutdown token. Once it is cancelled:
    ///
    /// - [`accept`](Self::accept) returns an error of kind `ConnectionAborted` (and
    ///   [`accept_until_shutdown`](Self::accept_until_shutdown) returns `Ok(None)`), at
    ///   once and on every later call, even if it was waiting;
    /// - every handshake still in flight on a stream from this listener fails with
    ///   [`Error::Cancelled`](crate::Error::Cancelled), including one waiting for a permit;
    /// - established connections are not touched: let them finish (with hyper-util's
    ///   `GracefulShutdown`, for instance).
    ///
    /// Drop the listener to refuse new connections: until its socket is closed, the
    /// kernel keeps completing TCP handshakes into its backlog.
    ///
    /// The token becomes the acceptor's [`shutdown_token`](TlsAcceptor::shutdown_token),
    /// replacing one the acceptor may have. To keep both, pass a child of it
    /// ([`CancellationToken::child_token`]).
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self.rebuild();
        self
    }

    /// Sets `TCP_NODELAY` on each accepted socket (off by default, as in tokio). An error
    /// setting it is ignored: it only means that the peer is already gone. Transports
    /// without Nagle's algorithm (Unix sockets) ignore it.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Accepts the next connection and wraps it as the server end of a TLS
    /// connection, without any TLS I/O: the handshake runs on the stream's first read,
    /// write or [`handshake()`](TlsStream::handshake), in the caller's connection task.
    ///
    /// Errors of one connection are skipped: `ECONNABORTED`, `ECONNRESET`,
    /// `ECONNREFUSED`, `EPERM` (a firewall rule), `EINTR`, `ETIMEDOUT`, and on Linux the
    /// network errors that `accept(2)` passes on from the new socket (`ENETDOWN`,
    /// `EPROTO`, `ENOPROTOOPT`, `EHOSTDOWN`, `ENONET`, `EHOSTUNREACH`, `EOPNOTSUPP`,
    /// `ENETUNREACH`). Resource exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`)
    /// pauses accepting, 5 ms at first and doubling up to 1 s, then retries, as hyper and
    /// axum do; it is never returned. The same holds for a Unix or another transport's
    /// errors of these kinds. TLS errors belong to their streams and never reach
    /// here.
    ///
    /// So `accept` returns an error only when the listener cannot go on:
    ///
    /// - kind `ConnectionAborted`: the [`shutdown_token`](Self::shutdown_token) was
    ///   cancelled (no other error of that kind is returned);
    /// - any other kind: the listening socket itself failed (`EBADF`, `EINVAL`,
    ///   `ENOTSOCK`, ...) and later calls will most likely fail the same way.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: dropping the future loses no connection.
    pub async fn accept(&self) -> io::Result<(TlsStream<L::Io>, L::Addr)> {
        let mut backoff = BACKOFF_START;
        loop {
            let accepted = match self
                .until_shutdown(poll_fn(|cx| self.transport.poll_accept(cx)))
                .await
            {
                Some(accepted) => accepted,
                None => return Err(shut_down()),
            };
            match accepted {
                Ok((io, peer)) => {
                    if self.nodelay {
                        let _ = L::set_nodelay(&io, true);
                    }
                    return Ok((self.acceptor.accept(io), peer));
                }
                Err(e) => match classify(&e) {
                    AcceptError::Connection => {
                        crate::trace::accept_error(&e, None);
                        continue;
                    }
                    AcceptError::Resources => {
                        crate::trace::accept_error(&e, Some(backoff));
                        let pause = tokio::time::sleep(backoff);
                        if self.until_shutdown(pause).await.is_none() {
                            return Err(shut_down());
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    AcceptError::Listener => return Err(e),
                },
            }
        }
    }

    /// [`accept`](Self::accept), with the shutdown as `Ok(None)`, for a loop like
    /// `while let Some((tls, peer)) = listener.accept_until_shutdown().await? { .. }`.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe, as [`accept`](Self::accept).
    pub async fn accept_until_shutdown(&self) -> io::Result<Option<(TlsStream<L::Io>, L::Addr)>> {
        match self.accept().await {
            Ok(accepted) => Ok(Some(accepted)),
            Err(_) if self.is_shut_down() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The accepted connections as a `futures_core::Stream` (feature `futures-io`): each
    /// item is what [`accept`](Self::accept) returns, and the stream ends once the
    /// [`shutdown_token`](Self::shutdown_token) is cancelled. An error of the listening
    /// socket is an item; the next accept waits a second first.
    #[cfg(feature = "futures-io")]
    #[cfg_attr(docsrs, doc(cfg(feature = "futures-io")))]
    pub fn incoming(self) -> Incoming<L>
    where
        L: Send + Sync + 'static,
        L::Io: Send + 'static,
        L::Addr: Send + 'static,
    {
        Incoming::new(self)
    }

    /// Whether the [`shutdown_token`](Self::shutdown_token) was cancelled.
    pub fn is_shut_down(&self) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<L::Addr> {
        self.transport.local_addr()
    }

    /// The acceptor that makes the streams: the one given, with the listener's deadline,
    /// cap and shutdown token on top.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Replaces the config for connections accepted from now on; established connections
    /// keep theirs. The same as [`TlsAcceptor::set_config`] on [`acceptor`](Self::acceptor)
    /// or on any clone of the acceptor given, which share the config: keep a clone to
    /// reload a listener that a server (`axum::serve`) owns.
    pub fn set_config(&self, config: Arc<rustls::ServerConfig>) {
        self.acceptor.set_config(config);
    }

    /// The transport listener.
    pub fn get_ref(&self) -> &L {
        &self.transport
    }

    /// Gives the transport listener back.
    pub fn into_inner(self) -> L {
        self.transport
    }

    /// Rebuilds the effective acceptor from the given one and the listener's settings.
    fn rebuild(&mut self) {
        let mut acceptor = self.base.clone();
        let own = self.base.options().handshake_timeout;
        acceptor.options_mut().handshake_timeout = match self.timeout {
            Some(timeout) => timeout,
            None => own.or(Some(TlsListener::<TcpListener>::DEFAULT_HANDSHAKE_TIMEOUT)),
        };
        if let Some(permits) = &self.permits {
            acceptor = acceptor.handshake_permits(permits.clone());
        }
        if let Some(token) = &self.shutdown {
            acceptor = acceptor.shutdown_token(token.clone());
        }
        self.acceptor = acceptor;
    }

    /// Runs `fut` until it completes (`Some`) or the shutdown token fires (`None`).
    async fn until_shutdown<F: Future>(&self, fut: F) -> Option<F::Output> {
        let Some(token) = &self.shutdown else {
            return Some(fut.await);
        };
        let mut fut = pin!(fut);
        let mut cancelled = pin!(token.cancelled());
        poll_fn(|cx| {
            // The token first: once it fires, nothing more is accepted.
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            fut.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

/// The error `accept` returns once the shutdown token has fired.
fn shut_down() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "tls listener shut down")
}

/// What to do about an error from TCP accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptError {
    /// It belongs to one connection, which is gone: accept the next one at once.
    Connection,
    /// The process or system is out of descriptors or memory: pause, then retry.
    Resources,
    /// The listening socket failed: return it.
    Listener,
}

fn classify(e: &io::Error) -> AcceptError {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionAborted
        | K::ConnectionReset
        | K::ConnectionRefused
        | K::Interrupted
        | K::WouldBlock
        | K::PermissionDenied
        | K::TimedOut
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown => return AcceptError::Connection,
        K::OutOfMemory => return AcceptError::Resources,
        _ => {}
    }
    match e.raw_os_error() {
        Some(code) if errno::RESOURCES.contains(&code) => AcceptError::Resources,
        Some(code) if errno::CONNECTION.contains(&code) => AcceptError::Connection,
        _ => AcceptError::Listener,
    }
}

/// The raw error codes `io::ErrorKind` does not name (the crate has no libc dependency).
mod errno {
    /// ENFILE, EMFILE, ENOBUFS.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const RESOURCES: &[i32] = &[23, 24, 105];
    /// EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EOPNOTSUPP: network errors of the new
    /// socket that Linux's accept(2) passes on (its man page says to retry on them).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const CONNECTION: &[i32] = &[71, 92, 112, 64, 95];

    /// ENFILE, EMFILE, ENOBUFS.
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    pub(super) const RESOURCES: &[i32] = &[23, 24, 55];

    /// ENFILE, EMFILE (the same on every Unix).
    #[cfg(all(
        unix,
        not(any(
            target_os = "linux",
            target_os = "android",
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        ))
    ))]
    pub(super) const RESOURCES: &[i32] = &[23, 24];

    /// WSAEMFILE, WSAENOBUFS.
    #[cfg(windows)]
    pub(super) const RESOURCES: &[i32] = &[10024, 10055];

    #[cfg(not(any(unix, windows)))]
    pub(super) const RESOURCES: &[i32] = &[];

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const CONNECTION: &[i32] = &[];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn acceptor() -> TlsAcceptor {
        TlsAcceptor::with_resolver(|_| Err(Error::NoServerConfig("test".into())))
    }

    #[tokio::test]
    async fn the_deadline_defaults_to_10s_unless_the_acceptor_or_the_listener_sets_one() {
        let bind = |acceptor| TlsListener::bind("127.0.0.1:0", acceptor);
        let timeout = |l: &TlsListener| l.acceptor().options().handshake_timeout;

        let l = bind(acceptor()).await.unwrap();
        assert_eq!(timeout(&l), Some(Duration::from_secs(10)));

        let own = acceptor().handshake_timeout(Duration::from_secs(3));
        let l = bind(own.clone()).await.unwrap();
        assert_eq!(timeout(&l), Some(Duration::from_secs(3)));

        let l = bind(own.clone())
            .await
            .unwrap()
            .handshake_timeout(Duration::from_millis(300));
        assert_eq!(timeout(&l), Some(Duration::from_millis(300)));

        // None removes every deadline, the acceptor's own included.
        let permits = Arc::new(Semaphore::new(4));
        let l = bind(own)
            .await
            .unwrap()
            .handshake_timeout(None)
            .handshake_permits(permits.clone())
            .shutdown_token(CancellationToken::new());
        assert_eq!(timeout(&l), None);
        let options = l.acceptor().options();
        assert!(options.shutdown_token.is_some());
        assert!(Arc::ptr_eq(
            options.handshake_permits.as_ref().unwrap(),
            &permits
        ));
    }

    #[test]
    fn accept_errors_are_classified() {
        use io::ErrorKind as K;
        for kind in [
            K::ConnectionAborted,
            K::ConnectionReset,
            K::PermissionDenied,
        ] {
            assert_eq!(classify(&kind.into()), AcceptError::Connection, "{kind:?}");
        }
        assert_eq!(classify(&K::OutOfMemory.into()), AcceptError::Resources);
        assert_eq!(classify(&K::InvalidInput.into()), AcceptError::Listener);
        for code in errno::RESOURCES {
            let e = io::Error::from_raw_os_error(*code);
            assert_eq!(classify(&e), AcceptError::Resources, "{e}");
        }
    }

    /// The raw codes mean what the tables say (their messages come from the platform).
    #[cfg(target_os = "linux")]
    #[test]
    fn errno_tables_match_the_platform() {
        let text = |code| io::Error::from_raw_os_error(code).to_string();
        assert!(text(23).contains("Too many open files in system"));
        assert!(text(24).contains("Too many open files"));
        assert!(text(105).contains("No buffer space"));
        assert!(text(71).contains("Protocol error"));
        assert!(text(92).contains("Protocol not available"));
        assert!(text(112).contains("Host is down"));
        assert!(text(64).contains("Machine is not on the network"));
        assert!(text(95).contains("not supported"));
        assert_eq!(
            classify(&io::Error::from_raw_os_error(9)),
            AcceptError::Listener
        ); // EBADF
        assert_eq!(
            classify(&io::Error::from_raw_os_error(1)),
            AcceptError::Connection
        ); // EPERM
    }
}
