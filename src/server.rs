//! The server side: `TlsAcceptor`.

use std::sync::Arc;

use rustls::ServerConfig;

use crate::engine::Engine;
use crate::options::{Options, option_methods};
use crate::stream::TlsStream;

/// Makes server [`TlsStream`]s. Cheap to clone; share one per configuration.
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    options: Options,
}

impl TlsAcceptor {
    /// An acceptor for this configuration, with no timeout and no token.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            config,
            options: Options::default(),
        }
    }

    option_methods!();

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Wraps `io` as the server end of a TLS connection. Does no I/O: the handshake runs
    /// on the first read, write, flush or `handshake()`.
    pub fn accept<IO>(&self, io: IO) -> TlsStream<IO> {
        TlsStream::new(
            io,
            Engine::server(self.config.clone()),
            self.options.clone(),
        )
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::new(config)
    }
}
