//! [`ConnectError`]: why the connector could not make a connection.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

#[cfg(doc)]
use super::HttpsConnector;

/// Why [`HttpsConnector`] could not make a connection.
///
/// hyper-util's client wraps it: find it in the client error's source chain with
/// [`ConnectError::find`], then match on it. A handshake failure keeps lazytls's typed
/// [`Error`](crate::Error), and through it rustls's:
///
/// ```
/// use lazytls::hyper::ConnectError;
/// use lazytls::rustls::{CertificateError, Error as TlsError};
///
/// fn explain(err: &(dyn std::error::Error + 'static)) -> &'static str {
///     match ConnectError::find(err) {
///         Some(e) if e.is_timeout() => "timed out",
///         Some(e) => match e.certificate_error() {
///             Some(CertificateError::UnknownIssuer) => "untrusted certificate",
///             Some(CertificateError::NotValidForName)
///             | Some(CertificateError::NotValidForNameContext { .. }) => "wrong host",
///             Some(_) => "bad certificate",
///             None => "connect failed",
///         },
///         None => "not a connect error",
///     }
/// }
/// let e = ConnectError::Handshake(lazytls::Error::Tls(TlsError::InvalidCertificate(
///     CertificateError::UnknownIssuer,
/// )));
/// assert_eq!(explain(&e), "untrusted certificate");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connector is `https_only` and the URI's scheme is `http`.
    HttpsRequired,
    /// The URI has no scheme.
    MissingScheme,
    /// The URI's scheme is neither `https` nor `http`.
    UnsupportedScheme(String),
    /// The URI has no host, and no server name override gave a name.
    MissingHost,
    /// The URI's host is neither a valid DNS name nor an IP address.
    InvalidServerName(String),
    /// The inner connector did not finish within the connect timeout.
    ConnectTimeout(Duration),
    /// The inner connector failed (DNS, TCP).
    Connect(Box<dyn StdError + Send + Sync>),
    /// The TLS handshake failed: an untrusted certificate or wrong host
    /// ([`Error::Tls`](crate::Error::Tls) with rustls's `InvalidCertificate`), a timeout
    /// ([`Error::HandshakeTimeout`](crate::Error::HandshakeTimeout)), the server closing
    /// the connection ([`Error::HandshakeEof`](crate::Error::HandshakeEof)), …
    Handshake(crate::Error),
}

impl ConnectError {
    /// The first `ConnectError` in `err`'s source chain (including `err` itself), such as
    /// the source of a hyper-util client error.
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a ConnectError> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<ConnectError>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }

    /// Whether the connect timeout or the handshake timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ConnectError::ConnectTimeout(_)
                | ConnectError::Handshake(crate::Error::HandshakeTimeout)
        )
    }

    /// The handshake's error, if the handshake failed.
    pub fn tls_error(&self) -> Option<&crate::Error> {
        match self {
            ConnectError::Handshake(e) => Some(e),
            _ => None,
        }
    }

    /// The reason the server's certificate was rejected, if it was (for example
    /// `UnknownIssuer` for an untrusted certificate, `NotValidForName` or
    /// `NotValidForNameContext` for a wrong host).
    pub fn certificate_error(&self) -> Option<&rustls::CertificateError> {
        match self {
            ConnectError::Handshake(crate::Error::Tls(rustls::Error::InvalidCertificate(e))) => {
                Some(e)
            }
            _ => None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::HttpsRequired => {
                f.write_str("https required: the connector refuses http:// URIs")
            }
            ConnectError::MissingScheme => f.write_str("the URI has no scheme"),
            ConnectError::UnsupportedScheme(s) => write!(f, "unsupported URI scheme `{s}`"),
            ConnectError::MissingHost => f.write_str("the URI has no host"),
            ConnectError::InvalidServerName(h) => write!(f, "`{h}` is not a valid server name"),
            ConnectError::ConnectTimeout(d) => write!(f, "connect timed out after {d:?}"),
            ConnectError::Connect(e) => write!(f, "connect failed: {e}"),
            ConnectError::Handshake(e) => write!(f, "tls handshake failed: {e}"),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectError::Connect(e) => Some(&**e),
            ConnectError::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ConnectError> for io::Error {
    /// The kind follows the cause: `TimedOut`, `InvalidInput` for a bad URI, and the
    /// handshake error's own kind; the `ConnectError` stays inside.
    fn from(e: ConnectError) -> io::Error {
        let kind = match &e {
            ConnectError::HttpsRequired
            | ConnectError::MissingScheme
            | ConnectError::UnsupportedScheme(_)
            | ConnectError::MissingHost
            | ConnectError::InvalidServerName(_) => io::ErrorKind::InvalidInput,
            ConnectError::ConnectTimeout(_) => io::ErrorKind::TimedOut,
            ConnectError::Connect(inner) => match inner.downcast_ref::<io::Error>() {
                Some(io) => io.kind(),
                None => io::ErrorKind::Other,
            },
            ConnectError::Handshake(inner) => inner.kind(),
        };
        io::Error::new(kind, e)
    }
}
