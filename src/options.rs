//! Options shared by the connector and the acceptor. Each is set by a method of the same
//! name and signature on `TlsConnector`, `TlsAcceptor`, `TlsListener` and the hyper
//! connector's builder, wherever it applies (CHANGELOG.md lists the renames).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Per-stream settings copied from the connector or acceptor. Cloning costs one reference
/// count increment for the token, if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Fatal bound on the whole handshake, counted from its first poll.
    pub(crate) handshake_timeout: Option<Duration>,
    /// Fatal shutdown token: once cancelled, a handshake in progress fails for good.
    pub(crate) shutdown_token: Option<CancellationToken>,
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
