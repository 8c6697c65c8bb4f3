//! An HTTPS connector for hyper-util's legacy `Client` (the `hyper` feature).
//!
//! [`HttpsConnector`] wraps a TCP connector (by default hyper-util's [`HttpConnector`]) and
//! runs a lazytls handshake over each connection it makes. Unlike the rest of the crate,
//! the handshake here is **eager**: it completes inside the connector's future, because
//! hyper asks the connection for its negotiated ALPN protocol (through
//! [`Connection::connected`]) as soon as that future resolves.
//!
//! What it adds to hyper-rustls's feature set:
//!
//! - a handshake timeout (10 s by default), separate from the TCP connect timeout;
//! - the user's `alpn_protocols` is respected as given; ALPN is filled in only when the
//!   configuration has none, and nothing here panics;
//! - each response carries the connection's [`TlsInfo`] in its extensions (Go's
//!   `Response.TLS`);
//! - typed errors ([`ConnectError`]) that say why a connection failed: an untrusted
//!   certificate, a wrong host, a timeout.
//!
//! ```no_run
//! # async fn run(config: std::sync::Arc<lazytls::rustls::ClientConfig>)
//! #     -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use lazytls::hyper::{ConnectError, HttpsConnector, TlsInfo};
//!
//! let connector = HttpsConnector::builder(config)
//!     .https_only()
//!     .enable_all_versions() // offers ALPN [h2, http/1.1] unless the config sets its own
//!     .handshake_timeout(Duration::from_secs(5))
//!     .build();
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, Empty<::hyper::body::Bytes>>(connector);
//!
//! match client.get("https://example.com/".parse()?).await {
//!     Ok(res) => {
//!         if let Some(tls) = res.extensions().get::<TlsInfo>() {
//!             println!("{:?} {:?} alpn={:?}", tls.version, tls.suite, tls.alpn);
//!         }
//!         let body = res.into_body().collect().await?.to_bytes();
//!         println!("{} bytes", body.len());
//!     }
//!     Err(e) => match ConnectError::find(&e) {
//!         Some(ce) if ce.is_timeout() => eprintln!("timed out: {ce}"),
//!         Some(ce) => eprintln!("could not connect: {ce}"),
//!         None => eprintln!("request failed: {e}"),
//!     },
//! }
//! # Ok(()) }
//! ```
//!
//! Trust roots for the configuration come from your own `RootCertStore`, or from the
//! [`ConfigBuilderExt`] helpers behind the `webpki-roots`, `native-roots` and
//! `platform-verifier` features.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, SupportedCipherSuite};
use tokio_util::sync::CancellationToken;

use crate::{ConnectionInfo, RecordLayer, TlsConnector, TlsStream};

/// The default bound on a connection's TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Picks the TLS server name for a request URI. `None` falls back to the URI's host.
type ResolveFn = dyn Fn(&Uri) -> Option<ServerName<'static>> + Send + Sync;

/// Where the server name (SNI and the name the certificate is checked against) comes from.
#[derive(Clone)]
enum ServerNameSource {
    /// The URI's host: a DNS name, or an IP address (brackets stripped; no SNI is sent).
    Uri,
    /// The same name for every connection.
    Fixed(ServerName<'static>),
    /// A closure; `None` falls back to the URI's host.
    Resolver(Arc<ResolveFn>),
}

impl fmt::Debug for ServerNameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerNameSource::Uri => f.write_str("FromUri"),
            ServerNameSource::Fixed(name) => f.debug_tuple("Fixed").field(name).finish(),
            ServerNameSource::Resolver(_) => f.write_str("Resolver(..)"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The connector and its builder
// ---------------------------------------------------------------------------------------

/// An HTTPS connector for hyper-util's legacy `Client`: a `tower_service::Service<Uri>`
/// that connects with the inner connector `C`, then completes a lazytls handshake before
/// its future resolves.
///
/// Made by [`HttpsConnector::builder`] (or [`HttpsConnector::new`] for the defaults).
/// Cheap to clone; the client clones it for each new connection.
///
/// - `https://` URIs get TLS, with the server name taken from the URI's host unless it is
///   overridden ([`HttpsConnectorBuilder::server_name`],
///   [`HttpsConnectorBuilder::server_name_resolver`]).
/// - `http://` URIs are passed through in plain text unless the connector is
///   [`https_only`](HttpsConnectorBuilder::https_only).
/// - Other schemes, and URIs without one, are refused with [`ConnectError`].
#[derive(Clone)]
pub struct HttpsConnector<C = HttpConnector> {
    inner: C,
    tls: TlsConnector,
    https_only: bool,
    connect_timeout: Option<Duration>,
    server_name: ServerNameSource,
}

impl<C> fmt::Debug for HttpsConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsConnector")
            .field("tls", &self.tls)
            .field("https_only", &self.https_only)
            .field("connect_timeout", &self.connect_timeout)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl HttpsConnector<HttpConnector> {
    /// A connector with the defaults: HTTP/1.1 only (ALPN `http/1.1` if the configuration
    /// sets none), `http://` passed through, a 10 s handshake timeout, no connect timeout,
    /// over an [`HttpConnector`] with `enforce_http(false)` and `TCP_NODELAY`.
    pub fn new(config: impl Into<Arc<ClientConfig>>) -> Self {
        Self::builder(config).build()
    }

    /// Starts a builder from a client configuration (an `Arc<ClientConfig>` or a
    /// `ClientConfig`).
    pub fn builder(config: impl Into<Arc<ClientConfig>>) -> HttpsConnectorBuilder {
        HttpsConnectorBuilder::new(config.into())
    }
}

impl<C> HttpsConnector<C> {
    /// The TLS connector used for each connection (its configuration includes the ALPN
    /// list that is offered).
    pub fn tls_connector(&self) -> &TlsConnector {
        &self.tls
    }

    /// The inner (TCP) connector.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The inner (TCP) connector, mutably.
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Whether `http://` URIs are refused.
    pub fn is_https_only(&self) -> bool {
        self.https_only
    }

    /// What to do with `dst`: `Ok(None)` for plain text, `Ok(Some(name))` for TLS to `name`.
    fn plan(&self, dst: &Uri) -> Result<Option<ServerName<'static>>, ConnectError> {
        match dst.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => {}
            Some(s) if s.eq_ignore_ascii_case("http") => {
                return if self.https_only {
                    Err(ConnectError::HttpsRequired)
                } else {
                    Ok(None)
                };
            }
            Some(s) => return Err(ConnectError::UnsupportedScheme(s.to_owned())),
            None => return Err(ConnectError::MissingScheme),
        }
        let name = match &self.server_name {
            ServerNameSource::Uri => server_name_from_uri(dst)?,
            ServerNameSource::Fixed(name) => name.clone(),
            ServerNameSource::Resolver(resolve) => match resolve(dst) {
                Some(name) => name,
                None => server_name_from_uri(dst)?,
            },
        };
        Ok(Some(name))
    }
}

/// The server name for a URI's host: IPv6 brackets are stripped, and an IP literal becomes
/// [`ServerName::IpAddress`] (rustls sends no SNI for it and checks the certificate's IP
/// addresses).
fn server_name_from_uri(uri: &Uri) -> Result<ServerName<'static>, ConnectError> {
    let host = uri.host().ok_or(ConnectError::MissingHost)?;
    server_name_from_host(host)
}

fn server_name_from_host(host: &str) -> Result<ServerName<'static>, ConnectError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut ip_text = bare;
    if bare.contains(':') {
        // An IPv6 zone (`%eth0`, `%25eth0` in a URI) routes locally; the certificate names
        // the address alone.
        ip_text = bare.split('%').next().unwrap_or(bare);
    }
    if let Ok(ip) = ip_text.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare)
        .map(|name| name.to_owned())
        .map_err(|_| ConnectError::InvalidServerName(host.to_owned()))
}

/// Builds an [`HttpsConnector`]. From [`HttpsConnector::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until .build() or .wrap_connector()"]
pub struct HttpsConnectorBuilder {
    config: Arc<ClientConfig>,
    https_only: bool,
    http1: bool,
    http2: bool,
    handshake_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    server_name: ServerNameSource,
    cancel: Option<CancellationToken>,
    allow_truncation: bool,
    record_layer: RecordLayer,
}

impl HttpsConnectorBuilder {
    fn new(config: Arc<ClientConfig>) -> Self {
        HttpsConnectorBuilder {
            config,
            https_only: false,
            http1: false,
            http2: false,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            connect_timeout: None,
            server_name: ServerNameSource::Uri,
            cancel: None,
            allow_truncation: false,
            record_layer: RecordLayer::default(),
        }
    }

    /// Refuses `http://` URIs with [`ConnectError::HttpsRequired`].
    pub fn https_only(mut self) -> Self {
        self.https_only = true;
        self
    }

    /// Passes `http://` URIs through in plain text (the default).
    pub fn https_or_http(mut self) -> Self {
        self.https_only = false;
        self
    }

    /// Offers HTTP/1.1 in ALPN (when the configuration sets no ALPN list of its own).
    ///
    /// If neither this nor [`enable_http2`](Self::enable_http2) is called, HTTP/1.1 alone
    /// is offered.
    pub fn enable_http1(mut self) -> Self {
        self.http1 = true;
        self
    }

    /// Offers HTTP/2 in ALPN (when the configuration sets no ALPN list of its own). When
    /// the server agrees on `h2`, the connection reports
    /// [`Connected::negotiated_h2`] and the client speaks HTTP/2 on it.
    ///
    /// Together with [`enable_http1`](Self::enable_http1) the offer is `[h2, http/1.1]`;
    /// alone it is `[h2]`.
    pub fn enable_http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// Both HTTP/1.1 and HTTP/2: offers `[h2, http/1.1]` when the configuration sets no
    /// ALPN list of its own.
    pub fn enable_all_versions(self) -> Self {
        self.enable_http1().enable_http2()
    }

    /// Bounds each TLS handshake, counted from its start (after the TCP connection is up).
    /// When it passes, the connection fails with
    /// [`ConnectError::Handshake`]`(`[`Error::HandshakeTimeout`](crate::Error::HandshakeTimeout)`)`
    /// and the transport is shut down. `None` removes the bound. Default: 10 s.
    pub fn handshake_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.handshake_timeout = timeout.into();
        self
    }

    /// Bounds the inner connector (DNS and TCP connect), separately from the handshake.
    /// When it passes, the connection fails with [`ConnectError::ConnectTimeout`]. `None`
    /// (the default) leaves it to the inner connector.
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = timeout.into();
        self
    }

    /// Uses `name` as the server name (SNI and certificate check) of every connection,
    /// whatever the URI's host. An IP address sends no SNI.
    pub fn server_name(mut self, name: ServerName<'static>) -> Self {
        self.server_name = ServerNameSource::Fixed(name);
        self
    }

    /// Picks the server name from the URI the connector is called with; a `None` from
    /// `resolve` falls back to the URI's host. hyper-util's client calls the connector
    /// with the scheme and authority only (connections are pooled per host), so decide
    /// on those, not on the path.
    pub fn server_name_resolver<F>(mut self, resolve: F) -> Self
    where
        F: Fn(&Uri) -> Option<ServerName<'static>> + Send + Sync + 'static,
    {
        self.server_name = ServerNameSource::Resolver(Arc::new(resolve));
        self
    }

    /// A fatal shutdown token: once cancelled, handshakes in progress fail with
    /// [`Error::Cancelled`](crate::Error::Cancelled). See [`TlsConnector::cancel_on`].
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Accepts an EOF without close_notify at a record boundary as a clean end of stream
    /// (Go's behaviour). See [`TlsConnector::allow_truncation`].
    pub fn allow_truncation(mut self, allow: bool) -> Self {
        self.allow_truncation = allow;
        self
    }

    /// The record layer after the handshake. See [`TlsConnector::record_layer`].
    pub fn record_layer(mut self, layer: RecordLayer) -> Self {
        self.record_layer = layer;
        self
    }

    /// Builds the connector over an [`HttpConnector`] with `enforce_http(false)` (so it
    /// accepts `https://` URIs) and `TCP_NODELAY` (the handshake's small flights should
    /// not wait for Nagle).
    pub fn build(self) -> HttpsConnector<HttpConnector> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        self.wrap_connector(http)
    }

    /// Builds the connector over any inner connector: a `tower_service::Service<Uri>`
    /// whose response implements hyper's `rt::Read + rt::Write` and hyper-util's
    /// [`Connection`]. An [`HttpConnector`] must have `enforce_http(false)`.
    pub fn wrap_connector<C>(self, inner: C) -> HttpsConnector<C> {
        let mut config = self.config;
        if config.alpn_protocols.is_empty() {
            let mut alpn = Vec::new();
            if self.http2 {
                alpn.push(ALPN_H2.to_vec());
            }
            if self.http1 || !self.http2 {
                alpn.push(ALPN_HTTP11.to_vec());
            }
            let copy = Arc::make_mut(&mut config);
            copy.alpn_protocols = alpn;
            // Saves TlsConnector::new a second copy: the native record layer needs it.
            copy.enable_secret_extraction = true;
        }
        let mut tls = TlsConnector::new(config)
            .allow_truncation(self.allow_truncation)
            .record_layer(self.record_layer);
        if let Some(timeout) = self.handshake_timeout {
            tls = tls.handshake_timeout(timeout);
        }
        if let Some(token) = self.cancel {
            tls = tls.cancel_on(token);
        }
        HttpsConnector {
            inner,
            tls,
            https_only: self.https_only,
            connect_timeout: self.connect_timeout,
            server_name: self.server_name,
        }
    }
}

impl<C> tower_service::Service<Uri> for HttpsConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Response = MaybeHttpsStream<C::Response>;
    type Error = ConnectError;
    type Future = Connecting<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| ConnectError::Connect(e.into()))
    }

    fn call(&mut self, dst: Uri) -> Connecting<C::Response> {
        let name = match self.plan(&dst) {
            Ok(name) => name,
            Err(e) => return Connecting::new(std::future::ready(Err(e))),
        };
        let connect_timeout = self.connect_timeout;
        let connecting = self.inner.call(dst);
        let tls = name.map(|name| (self.tls.clone(), name));
        Connecting::new(async move {
            let io = match connect_timeout {
                Some(limit) => tokio::time::timeout(limit, connecting)
                    .await
                    .map_err(|_| ConnectError::ConnectTimeout(limit))?,
                None => connecting.await,
            }
            .map_err(|e| ConnectError::Connect(e.into()))?;
            let Some((tls, name)) = tls else {
                return Ok(MaybeHttpsStream::Http(io));
            };
            // Eager: hyper reads ALPN from `connected()` as soon as this future resolves.
            let mut stream = tls.connect(name, TokioIo::new(io));
            stream.handshake().await.map_err(ConnectError::Handshake)?;
            Ok(MaybeHttpsStream::Https(TokioIo::new(stream)))
        })
    }
}

type BoxedConnect<T> =
    Pin<Box<dyn Future<Output = Result<MaybeHttpsStream<T>, ConnectError>> + Send>>;

/// Future returned by [`HttpsConnector`]'s `Service::call`: connects, then completes the
/// TLS handshake (for `https://`).
///
/// `Send + Unpin + 'static`, as hyper-util's client requires.
///
/// # Cancellation safety
///
/// Dropping it drops the connection being made, TCP and TLS alike; nothing is left behind.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Connecting<T> {
    inner: BoxedConnect<T>,
}

impl<T> Connecting<T> {
    fn new<F>(fut: F) -> Self
    where
        F: Future<Output = Result<MaybeHttpsStream<T>, ConnectError>> + Send + 'static,
    {
        Connecting {
            inner: Box::pin(fut),
        }
    }
}

impl<T> Future for Connecting<T> {
    type Output = Result<MaybeHttpsStream<T>, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for Connecting<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------

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

/// What a response's TLS connection negotiated, like Go's `Response.TLS`.
///
/// hyper-util's client puts it in each response's extensions:
/// `res.extensions().get::<TlsInfo>()`. Cloning it is cheap (the certificate chain is
/// shared).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The negotiated protocol version.
    pub version: Option<ProtocolVersion>,
    /// The negotiated cipher suite.
    pub suite: Option<SupportedCipherSuite>,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// The server's certificate chain, end entity first.
    pub peer_certificates: Option<Arc<[CertificateDer<'static>]>>,
    /// The DNS name sent as SNI; `None` when the server name was an IP address.
    pub sni: Option<String>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// How long the handshake took.
    pub handshake_duration: Duration,
}

impl From<&ConnectionInfo> for TlsInfo {
    fn from(info: &ConnectionInfo) -> Self {
        TlsInfo {
            version: info.protocol_version,
            suite: info.cipher_suite,
            alpn: info.alpn.clone(),
            peer_certificates: info.peer_certificates.as_deref().map(Arc::from),
            sni: info.sni.clone(),
            resumed: info.resumed,
            handshake_duration: info.handshake_duration,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why [`HttpsConnector`] could not make a connection.
///
/// hyper-util's client wraps it: find it in the client error's source chain with
/// [`ConnectError::find`], then match on it. A handshake failure keeps lazytls's typed
/// [`Error`](crate::Error), and through it rustls's:
///
/// ```
/// use lazytls::hyper::ConnectError;
/// use lazytls::rustls::{CertificateError, Error as TlsError};
///
/// fn explain(err: &(dyn std::error::Error + 'static)) -> &'static str {
///     match ConnectError::find(err) {
///         Some(e) if e.is_timeout() => "timed out",
///         Some(e) => match e.certificate_error() {
///             Some(CertificateError::UnknownIssuer) => "untrusted certificate",
///             Some(CertificateError::NotValidForName)
///             | Some(CertificateError::NotValidForNameContext { .. }) => "wrong host",
///             Some(_) => "bad certificate",
///             None => "connect failed",
///         },
///         None => "not a connect error",
///     }
/// }
/// let e = ConnectError::Handshake(lazytls::Error::Tls(TlsError::InvalidCertificate(
///     CertificateError::UnknownIssuer,
/// )));
/// assert_eq!(explain(&e), "untrusted certificate");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connector is `https_only` and the URI's scheme is `http`.
    HttpsRequired,
    /// The URI has no scheme.
    MissingScheme,
    /// The URI's scheme is neither `https` nor `http`.
    UnsupportedScheme(String),
    /// The URI has no host, and no server name override gave a name.
    MissingHost,
    /// The URI's host is neither a valid DNS name nor an IP address.
    InvalidServerName(String),
    /// The inner connector did not finish within the connect timeout.
    ConnectTimeout(Duration),
    /// The inner connector failed (DNS, TCP).
    Connect(Box<dyn StdError + Send + Sync>),
    /// The TLS handshake failed: an untrusted certificate or wrong host
    /// ([`Error::Tls`](crate::Error::Tls) with rustls's `InvalidCertificate`), a timeout
    /// ([`Error::HandshakeTimeout`](crate::Error::HandshakeTimeout)), the server closing
    /// the connection ([`Error::HandshakeEof`](crate::Error::HandshakeEof)), …
    Handshake(crate::Error),
}

impl ConnectError {
    /// The first `ConnectError` in `err`'s source chain (including `err` itself), such as
    /// the source of a hyper-util client error.
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a ConnectError> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<ConnectError>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }

    /// Whether the connect timeout or the handshake timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ConnectError::ConnectTimeout(_)
                | ConnectError::Handshake(crate::Error::HandshakeTimeout)
        )
    }

    /// The handshake's error, if the handshake failed.
    pub fn tls_error(&self) -> Option<&crate::Error> {
        match self {
            ConnectError::Handshake(e) => Some(e),
            _ => None,
        }
    }

    /// The reason the server's certificate was rejected, if it was (for example
    /// `UnknownIssuer` for an untrusted certificate, `NotValidForName` or
    /// `NotValidForNameContext` for a wrong host).
    pub fn certificate_error(&self) -> Option<&rustls::CertificateError> {
        match self {
            ConnectError::Handshake(crate::Error::Tls(rustls::Error::InvalidCertificate(e))) => {
                Some(e)
            }
            _ => None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::HttpsRequired => {
                f.write_str("https required: the connector refuses http:// URIs")
            }
            ConnectError::MissingScheme => f.write_str("the URI has no scheme"),
            ConnectError::UnsupportedScheme(s) => write!(f, "unsupported URI scheme `{s}`"),
            ConnectError::MissingHost => f.write_str("the URI has no host"),
            ConnectError::InvalidServerName(h) => write!(f, "`{h}` is not a valid server name"),
            ConnectError::ConnectTimeout(d) => write!(f, "connect timed out after {d:?}"),
            ConnectError::Connect(e) => write!(f, "connect failed: {e}"),
            ConnectError::Handshake(e) => write!(f, "tls handshake failed: {e}"),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectError::Connect(e) => Some(&**e),
            ConnectError::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConnectError> for io::Error {
    /// The kind follows the cause: `TimedOut`, `InvalidInput` for a bad URI, and the
    /// handshake error's own kind; the `ConnectError` stays inside.
    fn from(e: ConnectError) -> io::Error {
        let kind = match &e {
            ConnectError::HttpsRequired
            | ConnectError::MissingScheme
            | ConnectError::UnsupportedScheme(_)
            | ConnectError::MissingHost
            | ConnectError::InvalidServerName(_) => io::ErrorKind::InvalidInput,
            ConnectError::ConnectTimeout(_) => io::ErrorKind::TimedOut,
            ConnectError::Connect(inner) => match inner.downcast_ref::<io::Error>() {
                Some(io) => io.kind(),
                None => io::ErrorKind::Other,
            },
            ConnectError::Handshake(inner) => inner.kind(),
        };
        io::Error::new(kind, e)
    }
}

// ---------------------------------------------------------------------------------------
// Trust roots
// ---------------------------------------------------------------------------------------

#[cfg(any(
    feature = "webpki-roots",
    feature = "native-roots",
    feature = "platform-verifier"
))]
pub use crate::roots::ConfigBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;

    fn name(host: &str) -> ServerName<'static> {
        server_name_from_host(host).unwrap()
    }

    #[test]
    fn server_names_from_hosts() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(name("127.0.0.1"), ServerName::IpAddress(v4.into()));
        assert_eq!(name("[::1]"), ServerName::IpAddress(v6.into()));
        assert_eq!(name("[fe80::1%25eth0]"), {
            let ip: IpAddr = "fe80::1".parse().unwrap();
            ServerName::IpAddress(ip.into())
        });
        assert_eq!(
            name("localhost"),
            ServerName::try_from("localhost").unwrap()
        );
        assert!(matches!(
            server_name_from_host("bad name"),
            Err(ConnectError::InvalidServerName(_))
        ));
        assert!(matches!(
            server_name_from_host("[::1"),
            Err(ConnectError::InvalidServerName(_))
        ));
    }

    #[test]
    fn server_names_from_uris() {
        let v6: IpAddr = "::1".parse().unwrap();
        let uri: Uri = "https://[::1]:8443/x".parse().unwrap();
        assert_eq!(
            server_name_from_uri(&uri).unwrap(),
            ServerName::IpAddress(v6.into())
        );
        let uri: Uri = "/relative".parse().unwrap();
        assert!(matches!(
            server_name_from_uri(&uri),
            Err(ConnectError::MissingHost)
        ));
    }

    #[test]
    fn types_fit_hyper_util() {
        fn send_unpin<T: Send + Unpin + 'static>() {}
        fn send_sync<T: Send + Sync + 'static>() {}
        send_unpin::<Connecting<TokioIo<tokio::net::TcpStream>>>();
        send_unpin::<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>();
        send_sync::<HttpsConnector>();
        send_sync::<TlsInfo>();
        send_sync::<ConnectError>();
    }
}
