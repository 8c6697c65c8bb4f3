//! The server side: `TlsAcceptor`, with a fixed config or one chosen from the ClientHello,
//! and swappable while it runs.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::ClientHello;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::handshake::{ResolveFuture, Resolver};
use crate::info::RecordLayer;
use crate::options::Options;
use crate::stream::TlsStream;

#[derive(Clone)]
enum ConfigSource {
    Fixed(Arc<ServerConfig>),
    Resolver(Resolver),
}

/// Makes server [`TlsStream`]s. Cheap to clone; share one per configuration.
///
/// # Reloading the config
///
/// [`set_config`](Self::set_config) swaps the config of a running acceptor, for a renewed
/// certificate: connections accepted from then on use the new one, and established
/// connections (and handshakes already under way) keep theirs. Clones share the config, so
/// a swap through any clone reaches them all, the copy inside a [`TlsListener`] included:
/// keep a clone (`listener.acceptor().clone()`) before handing the listener to a server.
/// [`ServerCertificateFiles`](crate::ServerCertificateFiles) reloads a config from PEM
/// files.
///
/// [`TlsListener`]: crate::TlsListener
#[derive(Clone)]
pub struct TlsAcceptor {
    /// Shared by the clones; read once per accepted connection.
    source: Arc<RwLock<ConfigSource>>,
    options: Options,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &*self.source() {
            ConfigSource::Fixed(_) => "fixed",
            ConfigSource::Resolver(Resolver::Sync(_)) => "sync resolver",
            ConfigSource::Resolver(Resolver::Async(_)) => "async resolver",
        };
        f.debug_struct("TlsAcceptor")
            .field("config", &source)
            .field("options", &self.options)
            .finish()
    }
}

impl TlsAcceptor {
    /// An acceptor for this configuration, with no timeout and no token.
    ///
    /// The acceptor keeps a copy of `config` as [`Self::prepare_config`] makes it.
    /// [`Self::config`] returns that copy.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::from_source(ConfigSource::Fixed(Self::prepare_config(config)))
    }

    /// `config` set up as lazytls runs it: `enable_secret_extraction` on (it only allows
    /// handing the traffic keys to lazytls's record layer) and a `key_log` that wraps
    /// yours, forwarding every line to it and keeping the exporter secret for
    /// [`export_keying_material`](crate::ConnectionInfo::export_keying_material). Nothing
    /// else changes. A config that is set up already is returned as it is, so a resolver
    /// ([`Self::with_resolver`]) that returns prepared configs spares each connection a
    /// copy.
    pub fn prepare_config(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
        crate::engine::prepare_server_config(config)
    }

    fn from_source(source: ConfigSource) -> Self {
        TlsAcceptor {
            source: Arc::new(RwLock::new(source)),
            options: Options::default(),
        }
    }

    /// Replaces the config for connections accepted from now on, in this acceptor and
    /// every clone of it (see [Reloading the config](Self#reloading-the-config)). A
    /// resolver set by [`Self::with_resolver`] is replaced too. As in [`Self::new`], the
    /// config is [prepared](Self::prepare_config).
    pub fn set_config(&self, config: Arc<ServerConfig>) {
        let source = ConfigSource::Fixed(Self::prepare_config(config));
        *self.source.write().unwrap_or_else(PoisonError::into_inner) = source;
    }

    /// An acceptor that picks each connection's config from its ClientHello (SNI, ALPN,
    /// cipher suites, signature schemes), as rustls's `Acceptor` reads it.
    ///
    /// An `Err` sends the client a `handshake_failure` alert and fails the stream with that
    /// error. The handshake deadline covers reading the ClientHello and the resolver.
    /// Return configs made by [`Self::prepare_config`] to spare a per-connection copy.
    pub fn with_resolver<F>(resolve: F) -> Self
    where
        F: Fn(&ClientHello<'_>) -> Result<Arc<ServerConfig>, Error> + Send + Sync + 'static,
    {
        TlsAcceptor::from_source(ConfigSource::Resolver(Resolver::Sync(Arc::new(resolve))))
    }

    /// Like [`Self::with_resolver`], for a resolver that must wait (a certificate store, a
    /// database). It takes what it needs from the ClientHello and returns a `'static`
    /// future; the stream polls it in the connection's own task.
    pub fn with_async_resolver<F>(resolve: F) -> Self
    where
        F: Fn(&ClientHello<'_>) -> ResolveFuture + Send + Sync + 'static,
    {
        TlsAcceptor::from_source(ConfigSource::Resolver(Resolver::Async(Arc::new(resolve))))
    }

    /// Bounds each accepted stream's handshake, from its first poll; `None` (the default)
    /// sets no deadline. A slow or silent client then fails with
    /// [`Error::HandshakeTimeout`](crate::Error::HandshakeTimeout). As
    /// [`TlsConnector::handshake_timeout`](crate::TlsConnector::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.options.handshake_timeout = timeout.into();
        self
    }

    /// A fatal shutdown token: once it is cancelled, the handshakes still in progress on
    /// accepted streams fail with [`Error::Cancelled`](crate::Error::Cancelled);
    /// established connections go on. As
    /// [`TlsConnector::shutdown_token`](crate::TlsConnector::shutdown_token).
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.options.shutdown_token = Some(token);
        self
    }

    /// Accepts a client's EOF without close_notify, at a record boundary, as a clean end
    /// of stream. As [`TlsConnector::allow_truncation`](crate::TlsConnector::allow_truncation).
    pub fn allow_truncation(mut self, allow: bool) -> Self {
        self.options.allow_truncation = allow;
        self
    }

    /// Which record layer carries application data after the handshake. As
    /// [`TlsConnector::record_layer`](crate::TlsConnector::record_layer).
    pub fn record_layer(mut self, layer: RecordLayer) -> Self {
        self.options.record_layer = layer;
        self
    }

    /// Caps the handshakes in flight on accepted streams (for CPU and memory under a
    /// connection storm). As
    /// [`TlsConnector::handshake_permits`](crate::TlsConnector::handshake_permits).
    pub fn handshake_permits(mut self, permits: Arc<Semaphore>) -> Self {
        self.options.handshake_permits = Some(permits);
        self
    }

    /// Keeps each accepted connection's record buffers while it is idle. As
    /// [`TlsConnector::keep_idle_buffers`](crate::TlsConnector::keep_idle_buffers).
    pub fn keep_idle_buffers(mut self, keep: bool) -> Self {
        self.options.keep_idle_buffers = keep;
        self
    }

    /// Answers a plaintext HTTP request on the TLS port with `HTTP/1.0 400 Bad Request`
    /// naming https, then closes (as Go's net/http does). The stream fails with
    /// [`Error::PlaintextHttp`] either way. Without this option the client gets no answer
    /// from lazytls and the transport is left open, for the server to take back with
    /// [`TlsStream::into_plaintext`] and answer itself (a redirect to https, say).
    pub fn plaintext_http_response(mut self, answer: bool) -> Self {
        self.options.plaintext_http_response = answer;
        self
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    pub(crate) fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// The rustls configuration that new connections get, for an acceptor with a fixed one
    /// (the latest [`set_config`](Self::set_config)'s).
    pub fn config(&self) -> Option<Arc<ServerConfig>> {
        match &*self.source() {
            ConfigSource::Fixed(config) => Some(config.clone()),
            ConfigSource::Resolver(_) => None,
        }
    }

    /// The config source, read-locked. The lock is never held across anything that can
    /// panic, but a poisoned one is still usable: a swap is a single assignment.
    fn source(&self) -> std::sync::RwLockReadGuard<'_, ConfigSource> {
        self.source.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wraps `io` as the server end of a TLS connection. Does no I/O: the handshake runs
    /// on the first read, write or `handshake()`.
    pub fn accept<IO>(&self, io: IO) -> TlsStream<IO> {
        match &*self.source() {
            ConfigSource::Fixed(config) => {
                TlsStream::server(io, config.clone(), self.options.clone())
            }
            ConfigSource::Resolver(resolver) => {
                TlsStream::server_resolving(io, resolver.clone(), self.options.clone())
            }
        }
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::new(config)
    }
}
