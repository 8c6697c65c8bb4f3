//! The client side: `TlsConnector`.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::info::RecordLayer;
use crate::options::Options;
use crate::stream::TlsStream;

/// Makes client [`TlsStream`]s. Cheap to clone; share one per configuration.
#[derive(Clone, Debug)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    options: Options,
}

impl TlsConnector {
    /// A connector for this configuration, with no timeout and no token.
    ///
    /// The connector keeps a copy of `config` set up as lazytls runs it, unless `config`
    /// came from [`Self::config`] already: `enable_secret_extraction` on (it only allows
    /// handing the traffic keys to lazytls's record layer) and a `key_log` that wraps
    /// yours, forwarding every line to it and keeping the exporter secret for
    /// [`export_keying_material`](crate::ConnectionInfo::export_keying_material). Nothing
    /// else changes. [`Self::config`] returns that copy.
    pub fn new(config: Arc<ClientConfig>) -> Self {
        TlsConnector {
            config: crate::engine::prepare_client_config(config),
            options: Options::default(),
        }
    }

    /// Bounds the whole handshake, counted from its first poll (the first read, write or
    /// `handshake()` call). When it passes, the stream fails for good with
    /// [`Error::HandshakeTimeout`](crate::Error::HandshakeTimeout) and the transport is shut
    /// down. `None` (the default) sets no deadline. Needs a tokio runtime with the time
    /// driver enabled.
    pub fn handshake_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.options.handshake_timeout = timeout.into();
        self
    }

    /// A fatal shutdown token. Once it is cancelled, every handshake still in progress on
    /// a stream from this value fails for good with
    /// [`Error::Cancelled`](crate::Error::Cancelled) and the transport is shut down.
    /// Completed connections are not affected. For a cancellation that can be resumed,
    /// use [`Handshake::cancel_on`](crate::Handshake::cancel_on) instead.
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.options.shutdown_token = Some(token);
        self
    }

    /// Accepts a transport EOF without the peer's close_notify as a clean end of stream,
    /// provided it falls on a record boundary (Go's behaviour). By default it is an
    /// [`Error::Truncated`](crate::Error::Truncated) after all data is delivered. An EOF in
    /// the middle of a record is always an error.
    pub fn allow_truncation(mut self, allow: bool) -> Self {
        self.options.allow_truncation = allow;
        self
    }

    /// Which record layer carries application data after the handshake:
    /// [`RecordLayer::Native`] (the default) or [`RecordLayer::Rustls`]. The native layer
    /// falls back to rustls by itself for a suite it does not carry, and a TLS 1.3 client
    /// whose config enables early data runs on rustls; `info().record_layer` says which
    /// one a connection uses.
    pub fn record_layer(mut self, layer: RecordLayer) -> Self {
        self.options.record_layer = layer;
        self
    }

    /// Caps handshakes in flight: each handshake holds one permit of `permits` from its
    /// first poll to its end (success or failure). Over the cap, a handshake waits for a
    /// permit, and the wait counts against its deadline. Share one semaphore to cap
    /// several connectors, acceptors or listeners together; adding permits raises the cap,
    /// and closing the semaphore fails the handshakes still waiting with
    /// [`Error::Cancelled`](crate::Error::Cancelled).
    pub fn handshake_permits(mut self, permits: Arc<Semaphore>) -> Self {
        self.options.handshake_permits = Some(permits);
        self
    }

    /// Keeps each connection's record buffers while it is idle. By default a connection
    /// that waits in a read with nothing buffered (or a write half that flushed) gives its
    /// buffers to a small per-thread list of spares, as OpenSSL's
    /// `SSL_MODE_RELEASE_BUFFERS` does, so that idle connections cost almost no memory; the
    /// next read starts on the stack and takes a spare when bytes come. That costs a little
    /// on every wait, which request/response traffic with small messages can measure
    /// (BENCHMARKS.md). With `true`, a connection keeps up to one receive and one send
    /// buffer, about a record each, for its life.
    pub fn keep_idle_buffers(mut self, keep: bool) -> Self {
        self.options.keep_idle_buffers = keep;
        self
    }

    /// The connector with all of `options` at once (the hyper connector's builder
    /// collects them).
    #[cfg(feature = "hyper")]
    pub(crate) fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Whether this connector sends TLS 1.3 0-RTT early data: what a stream writes before
    /// its handshake completes goes out with the ClientHello when a resumption ticket
    /// allows it (and is sent again after the handshake if the server refuses it). The
    /// default is the config's `enable_early_data`, except for a connector converted from
    /// tokio-rustls's, which sends none until asked here (tokio-rustls's own
    /// `early_data(true)` cannot be read). Early data is replayable (RFC 8446 §8): enable
    /// it only for requests that are safe to repeat.
    pub fn early_data(mut self, enable: bool) -> Self {
        if self.config.enable_early_data != enable {
            let mut copy = ClientConfig::clone(&self.config);
            copy.enable_early_data = enable;
            self.config = Arc::new(copy);
        }
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Wraps `io` as the client end of a TLS connection to `name`. Does no I/O: the
    /// handshake runs on the first read, write or `handshake()`. Even the ClientHello is
    /// built then, so `connect` costs no CPU either.
    ///
    /// If rustls refuses the configuration, the stream is returned failed and every call
    /// on it reports that error.
    pub fn connect<IO>(&self, name: ServerName<'static>, io: IO) -> TlsStream<IO> {
        TlsStream::client(io, self.config.clone(), name, self.options.clone())
    }
}

impl From<Arc<ClientConfig>> for TlsConnector {
    fn from(config: Arc<ClientConfig>) -> Self {
        TlsConnector::new(config)
    }
}
