//! Conversions from tokio-rustls's connector and acceptor (feature `tokio-rustls`), the
//! first step of a migration: the rustls config is kept, and everything lazytls adds
//! (timeouts, tokens, the record layer) starts at its default.

use crate::{TlsAcceptor, TlsConnector};

/// The connector's `ClientConfig` is kept; the result is [`TlsConnector::new`] of it.
/// tokio-rustls's own `early_data` flag cannot be read, and is not needed: lazytls sends
/// 0-RTT data whenever the config sets `enable_early_data`.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-rustls")))]
impl From<::tokio_rustls::TlsConnector> for TlsConnector {
    fn from(connector: ::tokio_rustls::TlsConnector) -> Self {
        TlsConnector::from(&connector)
    }
}

/// Like the conversion by value, for a connector that stays in use.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-rustls")))]
impl From<&::tokio_rustls::TlsConnector> for TlsConnector {
    fn from(connector: &::tokio_rustls::TlsConnector) -> Self {
        TlsConnector::new(connector.config().clone())
    }
}

/// The acceptor's `ServerConfig` is kept; the result is [`TlsAcceptor::new`] of it.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-rustls")))]
impl From<::tokio_rustls::TlsAcceptor> for TlsAcceptor {
    fn from(acceptor: ::tokio_rustls::TlsAcceptor) -> Self {
        TlsAcceptor::from(&acceptor)
    }
}

/// Like the conversion by value, for an acceptor that stays in use.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-rustls")))]
impl From<&::tokio_rustls::TlsAcceptor> for TlsAcceptor {
    fn from(acceptor: &::tokio_rustls::TlsAcceptor) -> Self {
        TlsAcceptor::new(acceptor.config().clone())
    }
}
