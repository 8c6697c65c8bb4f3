//! Options shared by the connector and the acceptor.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Per-stream settings copied from the connector or acceptor. Cloning costs one reference
/// count increment for the token, if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Fatal bound on the whole handshake, counted from its first poll.
    pub(crate) handshake_timeout: Option<Duration>,
    /// Fatal shutdown token: once cancelled, a handshake in progress fails for good.
    pub(crate) cancel: Option<CancellationToken>,
    /// Accept a transport EOF at a record boundary without close_notify as a clean end.
    pub(crate) allow_truncation: bool,
    /// The record layer after the handshake.
    pub(crate) record_layer: crate::RecordLayer,
    /// Server: answer a plaintext HTTP request with a 400 before closing.
    pub(crate) plaintext_http_response: bool,
    /// A cap on handshakes in flight: each holds a permit from start to end.
    pub(crate) handshake_permits: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    /// Keep the record buffers while a connection is idle.
    pub(crate) keep_idle_buffers: bool,
}

/// Generates the builder methods that the connector and the acceptor share.
macro_rules! option_methods {
    () => {
        /// Bounds the whole handshake, counted from its first poll (the first read, write
        /// or `handshake()` call). When it passes, the stream fails for good with
        /// [`Error::HandshakeTimeout`](crate::Error::HandshakeTimeout) and the transport is
        /// shut down. Needs a tokio runtime with the time driver enabled.
        pub fn handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.handshake_timeout = Some(timeout);
            self
        }

        /// A fatal shutdown token. Once it is cancelled, every handshake still in
        /// progress on a stream from this value fails for good with
        /// [`Error::Cancelled`](crate::Error::Cancelled) and the transport is shut down.
        /// Completed connections are not affected. For a cancellation that can be
        /// resumed, use [`Handshake::cancel_on`](crate::Handshake::cancel_on) instead.
        pub fn cancel_on(mut self, token: tokio_util::sync::CancellationToken) -> Self {
            self.options.cancel = Some(token);
            self
        }

        /// Accepts a transport EOF without the peer's close_notify as a clean end of
        /// stream, provided it falls on a record boundary (Go's behaviour). By default it
        /// is an [`Error::Truncated`](crate::Error::Truncated) after all data is delivered.
        /// An EOF in the middle of a record is always an error.
        pub fn allow_truncation(mut self, allow: bool) -> Self {
            self.options.allow_truncation = allow;
            self
        }

        /// Which record layer carries application data after the handshake:
        /// [`RecordLayer::Native`](crate::RecordLayer::Native) (the default) or
        /// [`RecordLayer::Rustls`](crate::RecordLayer::Rustls). The native layer falls back
        /// to rustls by itself for a suite it does not carry, and a TLS 1.3 client whose
        /// config enables early data runs on rustls; `info().record_layer` says which one
        /// a connection uses.
        pub fn record_layer(mut self, layer: crate::RecordLayer) -> Self {
            self.options.record_layer = layer;
            self
        }

        /// Caps handshakes in flight: each handshake holds one permit of `permits` from its
        /// first poll to its end (success or failure). Over the cap, a handshake waits for
        /// a permit, and the wait counts against its deadline. Closing the semaphore fails
        /// the handshakes still waiting with [`Error::Cancelled`](crate::Error::Cancelled).
        pub fn handshake_permits(
            mut self,
            permits: std::sync::Arc<tokio::sync::Semaphore>,
        ) -> Self {
            self.options.handshake_permits = Some(permits);
            self
        }

        /// Keeps each connection's record buffers while it is idle. By default a
        /// connection that waits in a read with nothing buffered (or a write half that
        /// flushed) gives its buffers to a small per-thread list of spares, as OpenSSL's
        /// `SSL_MODE_RELEASE_BUFFERS` does, so that idle connections cost almost no memory;
        /// the next read starts on the stack and takes a spare when bytes come. That costs
        /// a little on every wait, which request/response traffic with small messages can
        /// measure (BENCHMARKS.md). With `true`, a connection keeps up to one receive and
        /// one send buffer, about a record each, for its life.
        pub fn keep_idle_buffers(mut self, keep: bool) -> Self {
            self.options.keep_idle_buffers = keep;
            self
        }
    };
}
pub(crate) use option_methods;
