//! `impl axum::serve::Listener for TlsListener` (the `axum` feature): `axum::serve`
//! over TLS, with every handshake in its connection's own task.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::listener::TlsListener;
use crate::stream::TlsStream;

/// How long to wait before retrying after the listening socket itself failed. axum's own
/// `TcpListener` impl waits as long.
const LISTENER_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// `axum::serve(listener, app)` serves HTTPS: axum's connection task reads at once, which
/// runs the handshake there, under the listener's deadline.
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
impl ::axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

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
