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
    ///
    /// The native record layer needs rustls's secret extraction, so if `config` does not
    /// enable it, the connector keeps a copy of it that does (`enable_secret_extraction`
    /// only allows handing the traffic keys to lazytls's record layer; nothing else
    /// changes). [`Self::config`] returns that copy.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        let config = if config.enable_secret_extraction {
            config
        } else {
            let mut copy = ServerConfig::clone(&config);
            copy.enable_secret_extraction = true;
            Arc::new(copy)
        };
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
    /// on the first read, write or `handshake()`.
    pub fn accept<IO>(&self, io: IO) -> TlsStream<IO> {
        TlsStream::new(
            io,
            Engine::server(self.config.clone(), self.options.record_layer),
            self.options.clone(),
        )
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::new(config)
    }
}
