//! The connector: a `tower_service::Service<Uri>` that connects with its inner connector,
//! then completes the handshake, and the future it returns.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, Write};
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use super::server_name::{ServerNameSource, server_name_from_uri};
use super::{ConnectError, HttpsConnectorBuilder, MaybeHttpsStream};
use crate::TlsConnector;

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
    pub(super) inner: C,
    pub(super) tls: TlsConnector,
    pub(super) https_only: bool,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) server_name: ServerNameSource,
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
