//! `impl axum::serve::Listener for TlsListener` (the `axum` feature): `axum::serve`
//! over TLS, with every handshake in its connection's own task; and [`TlsConnectInfo`],
//! which gives handlers their connection's TLS parameters.

use std::io;

use ::axum::extract::connect_info::Connected;
use ::axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::info::{ConnectionInfo, ConnectionInfoHandle};
use crate::listener::{LISTENER_ERROR_PAUSE, TlsListener, TransportListener};
use crate::stream::TlsStream;

/// `axum::serve(listener, app)` serves HTTPS, over TCP, a Unix socket
/// ([`TlsListener::bind_unix`]) or any [`TransportListener`]: axum's connection task reads
/// at once, which runs the handshake there, under the listener's deadline.
///
/// `accept` never returns an error, as the trait asks: per-connection errors are skipped
/// and resource errors back off (see [`TlsListener::accept`]); an error of the listening
/// socket itself is retried every second, as axum does for its own `TcpListener`.
///
/// Once the listener's [`shutdown_token`](TlsListener::shutdown_token) is cancelled,
/// `accept` never completes. Pass the same token to axum so that it stops calling it and
/// drains the established connections:
///
/// ```no_run
/// # async fn run(listener: lazytls::TlsListener, app: axum::Router) -> std::io::Result<()> {
/// let shutdown = lazytls::CancellationToken::new();
/// let listener = listener.shutdown_token(shutdown.clone());
/// axum::serve(listener, app)
///     .with_graceful_shutdown(shutdown.cancelled_owned())
///     .await
/// # }
/// ```
///
/// Handlers get their connection's TLS parameters through [`TlsConnectInfo`].
impl<L> ::axum::serve::Listener for TlsListener<L>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    L::Addr: Send,
{
    type Io = TlsStream<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match TlsListener::accept(self).await {
                Ok(accepted) => return accepted,
                // axum stops accepting when its own shutdown signal fires; nothing more
                // comes from this listener.
                Err(_) if self.is_shut_down() => std::future::pending::<()>().await,
                Err(_) => tokio::time::sleep(LISTENER_ERROR_PAUSE).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        TlsListener::local_addr(self)
    }
}

/// axum's per-connection info for a [`TlsListener`]: the peer's address and the
/// connection's [`ConnectionInfo`] (version, suite, ALPN, SNI, the client's certificate
/// chain).
///
/// axum builds it when it accepts the connection, before any TLS I/O, so it holds a
/// [`ConnectionInfoHandle`]; the handshake completes before the client's first request, so
/// [`tls`](Self::tls) is `Some` in every handler.
///
/// ```no_run
/// use axum::extract::ConnectInfo;
/// use axum::routing::get;
/// use lazytls::axum::TlsConnectInfo;
///
/// async fn whoami(ConnectInfo(conn): ConnectInfo<TlsConnectInfo>) -> String {
///     let tls = conn.tls().expect("the handshake completes before a request");
///     let has_cert = tls.peer_certificates.is_some();
///     format!("{} sni={:?} client certificate: {has_cert}\n", conn.remote_addr(), tls.sni)
/// }
///
/// # async fn run(listener: lazytls::TlsListener) -> std::io::Result<()> {
/// let app = axum::Router::new().route("/whoami", get(whoami));
/// axum::serve(listener, app.into_make_service_with_connect_info::<TlsConnectInfo>()).await
/// # }
/// ```
///
/// Over a Unix socket the address type is tokio's `unix::SocketAddr`:
/// `TlsConnectInfo<tokio::net::unix::SocketAddr>`.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo<A = std::net::SocketAddr> {
    remote_addr: A,
    tls: ConnectionInfoHandle,
}

impl<A> TlsConnectInfo<A> {
    /// The peer's address.
    pub fn remote_addr(&self) -> &A {
        &self.remote_addr
    }

    /// What the handshake negotiated; `None` only before it has completed, which a
    /// handler never sees.
    pub fn tls(&self) -> Option<&ConnectionInfo> {
        self.tls.get()
    }

    /// The handle itself, to pass on (into a request extension, say).
    pub fn tls_handle(&self) -> &ConnectionInfoHandle {
        &self.tls
    }
}

impl<L> Connected<IncomingStream<'_, TlsListener<L>>> for TlsConnectInfo<L::Addr>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    L::Addr: Clone + Send + Sync + 'static,
{
    fn connect_info(stream: IncomingStream<'_, TlsListener<L>>) -> Self {
        TlsConnectInfo {
            remote_addr: stream.remote_addr().clone(),
            tls: stream.io().info_handle(),
        }
    }
}
