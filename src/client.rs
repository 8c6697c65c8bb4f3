//! The client side: `TlsConnector`.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::options::{Options, option_methods};
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
    /// The native record layer needs rustls's secret extraction, so if `config` does not
    /// enable it, the connector keeps a copy of it that does (`enable_secret_extraction`
    /// only allows handing the traffic keys to lazytls's record layer; nothing else
    /// changes). [`Self::config`] returns that copy.
    pub fn new(config: Arc<ClientConfig>) -> Self {
        let config = if config.enable_secret_extraction {
            config
        } else {
            let mut copy = ClientConfig::clone(&config);
            copy.enable_secret_extraction = true;
            Arc::new(copy)
        };
        TlsConnector {
            config,
            options: Options::default(),
        }
    }

    option_methods!();

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
