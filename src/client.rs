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

    option_methods!();

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
