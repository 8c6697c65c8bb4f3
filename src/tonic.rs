//! gRPC with tonic (the `tonic` feature): serve a [`TlsListener`] with tonic's `Server`,
//! read the client's certificate in handlers, and make a tonic `Channel` over lazytls.
//!
//! **Serving.** tonic's `Server::serve_with_incoming` takes a stream of connections;
//! [`incoming`] turns a [`TlsListener`] into one. tonic spawns a task per connection and
//! reads at once, so each handshake runs in its connection's own task, under the
//! listener's deadline, and a slow client never holds up the accept loop.
//! [`TlsStream`] implements tonic's [`Connected`], whose info is a [`TlsConnectInfo`]:
//! handlers find it in the request's extensions ([`TlsConnectInfo::from_request`]), with
//! the peer's address and the connection's [`ConnectionInfo`] (the client's certificate
//! chain, SNI, ALPN, version, suite).
//!
//! **Connecting.** [`connect`] makes a `Channel` over lazytls's hyper connector
//! ([`HttpsConnector`]): HTTPS only, offering ALPN `h2` (unless the config sets its own
//! list), the server name taken from the endpoint's host. [`connector`] gives the same
//! connector's builder, for a handshake timeout or a server name of your own, to pass to
//! `Endpoint::connect_with_connector`. [`tls_error`] finds lazytls's typed error in a
//! failed call's `Status`.
//!
//! ```no_run
//! # async fn run(
//! #     server_config: std::sync::Arc<lazytls::rustls::ServerConfig>,
//! #     client_config: std::sync::Arc<lazytls::rustls::ClientConfig>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use lazytls::{CancellationToken, TlsAcceptor, TlsListener};
//! use tonic::transport::{Endpoint, Server};
//! use tonic_health::pb::HealthCheckRequest;
//! use tonic_health::pb::health_client::HealthClient;
//!
//! // Server: `server_config.alpn_protocols` should be `[b"h2"]` (gRPC clients ask for it).
//! let shutdown = CancellationToken::new();
//! let listener = TlsListener::bind("127.0.0.1:50051", TlsAcceptor::new(server_config))
//!     .await?
//!     .shutdown_token(shutdown.clone());
//! let (_reporter, health) = tonic_health::server::health_reporter();
//! let server = Server::builder().add_service(health).serve_with_incoming_shutdown(
//!     lazytls::tonic::incoming(listener),
//!     shutdown.clone().cancelled_owned(),
//! );
//! tokio::spawn(server);
//!
//! // Client
//! let endpoint = Endpoint::from_static("https://localhost:50051");
//! let channel = lazytls::tonic::connect(&endpoint, client_config).await?;
//! let mut client = HealthClient::new(channel);
//! match client.check(HealthCheckRequest::default()).await {
//!     Ok(reply) => println!("{:?}", reply.into_inner().status()),
//!     // An untrusted certificate, a refused client certificate, a timeout, ...
//!     Err(status) => eprintln!("{status}: {:?}", lazytls::tonic::tls_error(&status)),
//! }
//! shutdown.cancel(); // tonic stops accepting and drains its connections
//! # Ok(()) }
//! ```
//!
//! # Notes
//!
//! - tonic's own `Request::remote_addr()`, `local_addr()` and `peer_certs()` look for
//!   tonic's TLS info, not lazytls's, so they return `None` here; use
//!   [`TlsConnectInfo::from_request`] instead.
//! - tonic speaks HTTP/2 on every connection, whatever ALPN agreed. A client config with
//!   an `alpn_protocols` list of its own must offer `h2`.
//! - If tonic's own TLS features (`tls-ring`, `tls-aws-lc`, ...) are enabled anywhere in
//!   the build, tonic refuses an `https://` endpoint served by a custom connector
//!   ("Connecting to HTTPS without TLS enabled"), since it expects to run TLS itself.
//!   lazytls needs none of them.
//! - An `Endpoint`'s TCP settings (`tcp_nodelay`, `tcp_keepalive`) apply only to tonic's
//!   own connector; lazytls's sets `TCP_NODELAY`. `connect_timeout` and `timeout` apply.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tonic::transport::server::{Connected, TcpConnectInfo};
use ::tonic::transport::{Channel, Endpoint};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;

use crate::hyper::{HttpsConnector, HttpsConnectorBuilder};
use crate::info::{ConnectionInfo, ConnectionInfoHandle};
use crate::listener::{Incoming, TlsListener, TransportListener};
use crate::stream::TlsStream;

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// tonic asks for the connect info when it accepts the connection, before any TLS I/O, so
/// the info holds the stream's [`ConnectionInfoHandle`], which the handshake fills before
/// the client's first request arrives. The transport's own info (tonic's
/// [`TcpConnectInfo`] for TCP, `UdsConnectInfo` for a Unix socket) comes along.
impl<IO> Connected for TlsStream<IO>
where
    IO: Connected,
{
    type ConnectInfo = TlsConnectInfo<IO::ConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        TlsConnectInfo {
            transport: self.get_ref().connect_info(),
            tls: self.info_handle(),
        }
    }
}

/// tonic's per-connection info for a lazytls [`TlsStream`]: the transport's info (for
/// TCP, the local and the peer's address) and the connection's [`ConnectionInfo`]
/// (version, suite, ALPN, SNI, the client's certificate chain).
///
/// tonic puts it into every request's extensions. It is built when tonic accepts the
/// connection, before the handshake, so it holds a [`ConnectionInfoHandle`]; the
/// handshake completes before the client's first request, so [`tls`](Self::tls) is
/// `Some` in every handler.
///
/// ```
/// use lazytls::tonic::TlsConnectInfo;
/// use tonic::{Request, Status};
///
/// /// The DER of the client's certificate, or the call fails as unauthenticated.
/// fn client_certificate<T>(request: &Request<T>) -> Result<Vec<u8>, Status> {
///     let conn = TlsConnectInfo::from_request(request)
///         .ok_or_else(|| Status::internal("not served over a lazytls TCP listener"))?;
///     match conn.peer_certificates() {
///         Some([end_entity, ..]) => Ok(end_entity.to_vec()),
///         _ => Err(Status::unauthenticated("no client certificate")),
///     }
/// }
/// # assert!(client_certificate(&Request::new(())).is_err());
/// ```
///
/// Over a Unix socket ([`TlsListener::bind_unix`]) the type is
/// `TlsConnectInfo<tonic::transport::server::UdsConnectInfo>`: read it with
/// `request.extensions().get::<TlsConnectInfo<UdsConnectInfo>>()`.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo<T = TcpConnectInfo> {
    transport: T,
    tls: ConnectionInfoHandle,
}

impl<T> TlsConnectInfo<T> {
    /// The transport's own connect info (tonic's [`TcpConnectInfo`] for TCP).
    pub fn get_ref(&self) -> &T {
        &self.transport
    }

    /// What the handshake negotiated; `None` only before it has completed, which a
    /// handler never sees.
    pub fn tls(&self) -> Option<&ConnectionInfo> {
        self.tls.get()
    }

    /// The handle itself, to pass on.
    pub fn tls_handle(&self) -> &ConnectionInfoHandle {
        &self.tls
    }

    /// The client's certificate chain, end entity first, as DER; `None` if it sent none
    /// (a server that allows unauthenticated clients). Parse it with a crate such as
    /// x509-parser for the subject.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.tls()?.peer_certificates.as_deref()
    }
}

impl TlsConnectInfo<TcpConnectInfo> {
    /// The info of a request served over TCP by lazytls: the request extension tonic
    /// inserts. `None` for a request that came another way.
    pub fn from_request<M>(request: &::tonic::Request<M>) -> Option<&Self> {
        request.extensions().get::<Self>()
    }

    /// The peer's address, as tonic's [`TcpConnectInfo`] read it at accept.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.transport.remote_addr()
    }

    /// The local address the connection was accepted on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.transport.local_addr()
    }
}

/// A [`TlsListener`]'s connections as the stream tonic's
/// `Server::serve_with_incoming` (or `serve_with_incoming_shutdown`) takes.
///
/// Pass the listener's [`shutdown_token`](TlsListener::shutdown_token) to
/// `serve_with_incoming_shutdown` as its signal (`token.cancelled_owned()`): tonic then
/// stops accepting, drains its connections and returns, and the handshakes in flight
/// fail. Without a signal, the stream ends when the token is cancelled and
/// `serve_with_incoming` returns, leaving established connections to finish on their own.
pub fn incoming<L>(listener: TlsListener<L>) -> TlsIncoming<L>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: Send + 'static,
    L::Addr: Send + 'static,
{
    TlsIncoming {
        inner: Incoming::new(listener),
    }
}

/// The connections of a [`TlsListener`], as a `futures_core::Stream` of
/// `io::Result<TlsStream<_>>`, for tonic's `serve_with_incoming`; from [`incoming`].
///
/// Each item is what [`TlsListener::accept`] gives, without the address (tonic reads it
/// from the stream, through [`Connected`]); no item waits for a handshake. The stream
/// ends once the listener's shutdown token is cancelled. An error of the listening socket
/// itself is an item (tonic logs it and polls again); the next accept then waits a
/// second first, so a socket that keeps failing is not polled in a busy loop.
///
/// # Cancellation safety
///
/// Dropping it loses no connection, as [`TlsListener::accept`] is cancel-safe.
#[must_use = "streams do nothing unless polled"]
pub struct TlsIncoming<L: TransportListener = TcpListener> {
    inner: Incoming<L>,
}

impl<L: TransportListener> fmt::Debug for TlsIncoming<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TlsIncoming").field(&self.inner).finish()
    }
}

impl<L> futures_core::Stream for TlsIncoming<L>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: Send + 'static,
    L::Addr: Send + 'static,
{
    type Item = io::Result<TlsStream<L::Io>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let accepted = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        Poll::Ready(accepted.map(|item| item.map(|(tls, _addr)| tls)))
    }
}

impl<L> futures_core::FusedStream for TlsIncoming<L>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: Send + 'static,
    L::Addr: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// A builder of lazytls's [`HttpsConnector`] set up for gRPC: `https://` only, and ALPN
/// `[h2]` when the config sets no list of its own. Add what you need (a handshake
/// timeout, a server name other than the endpoint's host, a cancellation token), then
/// pass the built connector to `Endpoint::connect_with_connector` (or
/// `connect_with_connector_lazy`):
///
/// ```no_run
/// # async fn run(config: std::sync::Arc<lazytls::rustls::ClientConfig>)
/// #     -> Result<(), tonic::transport::Error> {
/// use std::time::Duration;
/// use lazytls::rustls::pki_types::ServerName;
/// use tonic::transport::Endpoint;
///
/// let connector = lazytls::tonic::connector(config)
///     .handshake_timeout(Duration::from_secs(5))
///     .server_name(ServerName::try_from("grpc.internal").unwrap())
///     .build();
/// let channel = Endpoint::from_static("https://10.0.0.7:50051")
///     .connect_with_connector(connector)
///     .await?;
/// # drop(channel);
/// # Ok(()) }
/// ```
///
/// The connector completes each handshake before tonic starts HTTP/2 on the
/// connection, so a handshake failure fails the connect (or the first call, for a lazy
/// channel) rather than a later request.
pub fn connector(config: impl Into<Arc<ClientConfig>>) -> HttpsConnectorBuilder {
    HttpsConnector::builder(config).https_only().enable_http2()
}

/// Connects a tonic `Channel` to an `https://` endpoint over lazytls: the connector of
/// [`connector`] with its defaults (a 10 s handshake timeout, the server name from the
/// endpoint's host).
///
/// Fails as tonic's `connect` does, with the cause in the error's source chain: a
/// [`ConnectError`](crate::hyper::ConnectError), and for a failed handshake lazytls's
/// [`Error`](crate::Error) (see [`tls_error`]).
///
/// With TLS 1.3, a server that refuses the client's certificate says so only after the
/// client's handshake has completed, so `connect` succeeds and the first call fails (see
/// [`tls_error`] for what that call's `Status` carries).
pub async fn connect(
    endpoint: &Endpoint,
    config: impl Into<Arc<ClientConfig>>,
) -> Result<Channel, ::tonic::transport::Error> {
    endpoint
        .connect_with_connector(connector(config).build())
        .await
}

/// A tonic `Channel` to an `https://` endpoint over lazytls that connects on first use,
/// as [`connect`] does; a connect failure fails that call.
pub fn connect_lazy(endpoint: &Endpoint, config: impl Into<Arc<ClientConfig>>) -> Channel {
    endpoint.connect_with_connector_lazy(connector(config).build())
}

/// The lazytls [`Error`](crate::Error) in `err`'s source chain (including `err` itself),
/// such as a failed call's `Status` or a `tonic::transport::Error` from [`connect`]:
/// why the TLS connection failed.
///
/// It finds every failure of the handshake as the client runs it, in the connector: an
/// untrusted or wrong-host certificate, a handshake timeout, a client certificate the
/// server refused under TLS 1.2. A failure after the client's handshake (the server's
/// refusal of a client certificate under TLS 1.3, or a record error later on) reaches
/// tonic through HTTP/2, and h2 keeps only an `io::Error`'s kind and message: then this
/// returns `None`, and the status's source chain has an `io::Error` with lazytls's kind
/// (`InvalidData` for a TLS error) and message (`tls: received fatal alert: UnknownCA`).
///
/// ```
/// use lazytls::rustls::{AlertDescription, CertificateError, Error as TlsError};
///
/// fn explain(status: &tonic::Status) -> &'static str {
///     match lazytls::tonic::tls_error(status) {
///         Some(lazytls::Error::Tls(TlsError::InvalidCertificate(
///             CertificateError::UnknownIssuer,
///         ))) => "the server's certificate is not trusted",
///         // TLS 1.2 only; see above.
///         Some(lazytls::Error::Tls(TlsError::AlertReceived(
///             AlertDescription::UnknownCA | AlertDescription::CertificateRequired,
///         ))) => "the server refused our client certificate",
///         Some(lazytls::Error::HandshakeTimeout) => "the handshake timed out",
///         Some(_) => "another TLS failure",
///         None => "not a TLS failure",
///     }
/// }
/// assert_eq!(explain(&tonic::Status::unavailable("no TLS here")), "not a TLS failure");
/// ```
pub fn tls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a crate::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<crate::Error>() {
            return Some(found);
        }
        next = match e.downcast_ref::<io::Error>() {
            // An io::Error's `source()` skips the error it wraps, which may be ours.
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_error_looks_inside_io_errors_and_connect_errors() {
        let io_err: io::Error = crate::Error::HandshakeTimeout.into();
        let status = ::tonic::Status::from_error(Box::new(io_err));
        assert!(matches!(
            tls_error(&status),
            Some(crate::Error::HandshakeTimeout)
        ));

        let connect = crate::hyper::ConnectError::Handshake(crate::Error::HandshakeEof);
        let wrapped = io::Error::other(connect);
        assert!(matches!(
            tls_error(&wrapped),
            Some(crate::Error::HandshakeEof)
        ));

        let plain = io::Error::other("no tls here");
        assert!(tls_error(&plain).is_none());
    }

    #[test]
    fn types_fit_tonic() {
        fn send_sync_unpin<T: Send + Sync + Unpin + 'static>() {}
        fn send_unpin<T: Send + Unpin + 'static>() {}
        send_sync_unpin::<TlsConnectInfo>();
        send_unpin::<TlsIncoming>();
        send_unpin::<TlsStream<tokio::net::TcpStream>>();
    }
}
