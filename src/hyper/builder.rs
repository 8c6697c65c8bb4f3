//! [`HttpsConnectorBuilder`]: the connector's options.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
#[cfg(doc)]
use hyper_util::client::legacy::connect::{Connected, Connection};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

#[cfg(doc)]
use super::ConnectError;
use super::server_name::ServerNameSource;
use super::{ALPN_H2, ALPN_HTTP11, DEFAULT_HANDSHAKE_TIMEOUT, HttpsConnector};
use crate::options::Options;
use crate::{RecordLayer, TlsConnector};

/// Builds an [`HttpsConnector`]. From [`HttpsConnector::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until .build() or .wrap_connector()"]
pub struct HttpsConnectorBuilder {
    config: Arc<ClientConfig>,
    https_only: bool,
    http1: bool,
    http2: bool,
    connect_timeout: Option<Duration>,
    server_name: ServerNameSource,
    /// What the [`TlsConnector`] gets.
    options: Options,
}

impl HttpsConnectorBuilder {
    pub(super) fn new(config: Arc<ClientConfig>) -> Self {
        HttpsConnectorBuilder {
            config,
            https_only: false,
            http1: false,
            http2: false,
            connect_timeout: None,
            server_name: ServerNameSource::Uri,
            options: Options {
                handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
                ..Options::default()
            },
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
        self.options.handshake_timeout = timeout.into();
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
    /// [`Error::Cancelled`](crate::Error::Cancelled). See [`TlsConnector::shutdown_token`].
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.options.shutdown_token = Some(token);
        self
    }

    /// Accepts an EOF without close_notify at a record boundary as a clean end of stream
    /// (Go's behaviour). See [`TlsConnector::allow_truncation`].
    pub fn allow_truncation(mut self, allow: bool) -> Self {
        self.options.allow_truncation = allow;
        self
    }

    /// The record layer after the handshake. See [`TlsConnector::record_layer`].
    pub fn record_layer(mut self, layer: RecordLayer) -> Self {
        self.options.record_layer = layer;
        self
    }

    /// Caps handshakes in flight with a shared semaphore. See
    /// [`TlsConnector::handshake_permits`].
    pub fn handshake_permits(mut self, permits: Arc<Semaphore>) -> Self {
        self.options.handshake_permits = Some(permits);
        self
    }

    /// Keeps each connection's record buffers while it is idle in the pool. See
    /// [`TlsConnector::keep_idle_buffers`].
    pub fn keep_idle_buffers(mut self, keep: bool) -> Self {
        self.options.keep_idle_buffers = keep;
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
            Arc::make_mut(&mut config).alpn_protocols = alpn;
        }
        let tls = TlsConnector::new(config).with_options(self.options);
        HttpsConnector {
            inner,
            tls,
            https_only: self.https_only,
            connect_timeout: self.connect_timeout,
            server_name: self.server_name,
        }
    }
}
