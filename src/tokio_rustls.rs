//! Conversions from tokio-rustls's connector and acceptor (feature `tokio-rustls`), the
//! first step of a migration: the rustls config is kept, and everything lazytls adds
//! (timeouts, tokens, the record layer) starts at its default.

use crate::{TlsAcceptor, TlsConnector};

/// The connector's `ClientConfig` is kept; the result is [`TlsConnector::new`] of it, with
/// 0-RTT early data off. tokio-rustls sends early data only when its own `early_data(true)`
/// was called, whatever the config says, and that flag is private: so the converted
/// connector sends none, even if the config sets `enable_early_data`, until
/// [`TlsConnector::early_data`] asks for it.
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
        TlsConnector::new(connector.config().clone()).early_data(false)
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
