//! The crate's typed error and its mapping onto `io::Error`.

use std::{fmt, io};

/// Everything that can go wrong on a [`TlsStream`](crate::TlsStream).
///
/// At the API edge (`handshake()`, the connector and the acceptor) errors are this type.
/// At the trait edge (`AsyncRead`/`AsyncWrite`) they are `io::Error`s built by the
/// deliberate mapping in `From<Error> for io::Error`. The typed error stays inside, so it
/// can be recovered:
///
/// ```
/// # use std::io;
/// let io_err: io::Error = lazytls::Error::HandshakeTimeout.into();
/// assert_eq!(io_err.kind(), io::ErrorKind::TimedOut);
/// let typed = lazytls::Error::from_io(&io_err).unwrap();
/// assert!(matches!(typed, lazytls::Error::HandshakeTimeout));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// rustls rejected the peer or the peer's bytes (certificate, protocol, decryption, or a
    /// fatal alert the peer sent). Maps to `InvalidData`.
    Tls(rustls::Error),
    /// The transport failed. Maps to the inner error's kind.
    Io(io::Error),
    /// The handshake deadline passed. Fatal and sticky. Maps to `TimedOut`.
    HandshakeTimeout,
    /// The handshake was cancelled by a token. Maps to `ConnectionAborted`.
    ///
    /// From a per-call [`Handshake::cancel_on`](crate::Handshake::cancel_on) it is not fatal:
    /// the handshake can be resumed. From the connector's or acceptor's token it is sticky.
    Cancelled,
    /// The transport reached EOF before the handshake completed. Maps to `UnexpectedEof`.
    HandshakeEof,
    /// The transport reached EOF after the handshake without the peer's close_notify, so
    /// the data may have been truncated. Maps to `UnexpectedEof`. Delivered only after all
    /// data received before it.
    Truncated,
    /// A server got a plaintext HTTP request instead of a TLS ClientHello (someone used
    /// `http://` on the TLS port). Maps to `InvalidData`. With
    /// [`TlsAcceptor::plaintext_http_response`](crate::TlsAcceptor::plaintext_http_response)
    /// the client gets an `HTTP/1.0 400` answer naming https first. Without it the
    /// transport is left as it is, for
    /// [`TlsStream::into_plaintext`](crate::TlsStream::into_plaintext).
    PlaintextHttp,
    /// The acceptor's resolver chose no config for the ClientHello (its message is
    /// kept). The client gets a `handshake_failure` alert. Maps to `InvalidData`.
    NoServerConfig(String),
    /// A write was attempted after `poll_shutdown`. Maps to `BrokenPipe`. (A flush after
    /// shutdown succeeds: there is nothing left to flush.)
    WriteAfterShutdown,
    /// `export_keying_material` gave no keying material. Maps to `InvalidInput`. Not
    /// sticky: the connection is unaffected.
    Export(ExportError),
}

/// Why `export_keying_material` (on [`ConnectionInfo`](crate::ConnectionInfo),
/// [`TlsStream`](crate::TlsStream) and its halves) gave no keying material. A connection
/// that cannot export says so with one of these; it never returns a value it cannot vouch
/// for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExportError {
    /// The handshake has not completed (or failed before it did).
    HandshakeNotComplete,
    /// A TLS 1.2 connection without the extended master secret (RFC 7627): its master
    /// secret is not bound to one session, so exporters from it cannot serve as channel
    /// bindings (RFC 7627 §5.4 and RFC 5705 §3 as updated).
    NoExtendedMasterSecret,
    /// The handshake left nothing to export from: the exporter secret was not logged to
    /// this connection (a connection made outside [`TlsConnector`](crate::TlsConnector)
    /// and [`TlsAcceptor`](crate::TlsAcceptor)), or a TLS 1.2 ServerHello was fragmented.
    SecretUnavailable,
    /// The output buffer is empty.
    EmptyOutput,
    /// More output than the exporter gives (TLS 1.3: 255 hash lengths, and at most
    /// 65,535 bytes).
    OutputTooLong,
    /// TLS 1.3: a label longer than 249 bytes (RFC 8446 §7.1's `HkdfLabel`).
    LabelTooLong,
    /// TLS 1.2: a context longer than 65,535 bytes.
    ContextTooLong,
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportError::HandshakeNotComplete => "the handshake has not completed",
            ExportError::NoExtendedMasterSecret => {
                "a tls 1.2 connection without the extended master secret cannot export"
            }
            ExportError::SecretUnavailable => "this connection has no exporter secret",
            ExportError::EmptyOutput => "zero-length output",
            ExportError::OutputTooLong => "more output than the exporter gives",
            ExportError::LabelTooLong => "label too long",
            ExportError::ContextTooLong => "context too long",
        })
    }
}

impl std::error::Error for ExportError {}

impl Error {
    /// Recovers the typed error from an `io::Error` produced by this crate.
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref()?.downcast_ref::<Error>()
    }

    /// The `io::ErrorKind` this error maps to.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Tls(_) | Error::PlaintextHttp | Error::NoServerConfig(_) => {
                io::ErrorKind::InvalidData
            }
            Error::Io(e) => e.kind(),
            Error::HandshakeTimeout => io::ErrorKind::TimedOut,
            // Not `Interrupted`: many read loops retry on it, which would spin on a sticky error.
            Error::Cancelled => io::ErrorKind::ConnectionAborted,
            Error::HandshakeEof | Error::Truncated => io::ErrorKind::UnexpectedEof,
            Error::WriteAfterShutdown => io::ErrorKind::BrokenPipe,
            Error::Export(_) => io::ErrorKind::InvalidInput,
        }
    }

    /// A copy with the same variant, kind and message, used to hand out sticky errors.
    /// `io::Error` is not `Clone`, so an `Io` error is rebuilt from its kind and text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Tls(e) => Error::Tls(e.clone()),
            Error::Io(e) => Error::Io(io::Error::new(e.kind(), e.to_string())),
            Error::HandshakeTimeout => Error::HandshakeTimeout,
            Error::Cancelled => Error::Cancelled,
            Error::HandshakeEof => Error::HandshakeEof,
            Error::Truncated => Error::Truncated,
            Error::WriteAfterShutdown => Error::WriteAfterShutdown,
            Error::PlaintextHttp => Error::PlaintextHttp,
            Error::NoServerConfig(m) => Error::NoServerConfig(m.clone()),
            Error::Export(e) => Error::Export(*e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tls(e) => write!(f, "tls: {e}"),
            Error::Io(e) => write!(f, "io: {e}"),
            Error::HandshakeTimeout => f.write_str("tls handshake timed out"),
            Error::Cancelled => f.write_str("tls handshake cancelled"),
            Error::HandshakeEof => f.write_str("tls handshake eof: peer closed the transport"),
            Error::Truncated => {
                f.write_str("peer closed the transport without close_notify (possible truncation)")
            }
            Error::WriteAfterShutdown => f.write_str("write after tls shutdown"),
            Error::PlaintextHttp => f.write_str("plaintext http request on a tls port"),
            Error::NoServerConfig(m) => write!(f, "no tls config for this client hello: {m}"),
            Error::Export(e) => write!(f, "keying material exporter: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Tls(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Export(e) => Some(e),
            _ => None,
        }
    }
}

/// A state the crate's own logic rules out. Reaching one is a bug in lazytls; it is
/// reported as an error rather than a panic, as `Error::Tls(General(..))` (or, from a
/// split stream's hub, an `io::Error` of kind `Other`) with this message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invariant {
    /// The engine has no connection: rustls refused to create one, or a conversion to
    /// the native layer failed midway.
    NoConnection,
    /// A call for a direction this engine does not carry (the other half's).
    WrongDirection,
    /// rustls returned a connection state we do not know (`ConnectionState` is
    /// non-exhaustive).
    UnknownRustlsState,
    /// rustls would not send after a completed handshake.
    CannotSendNow,
    /// The native layer was handed a suite or version it does not implement.
    UnsupportedSuite,
    /// A key update gave secrets for an algorithm we do not have.
    UnsupportedKeyUpdate,
    /// A split stream's hub handed a half a part that is not its to have.
    HubProtocol,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::NoConnection => "tls connection was never created",
            Invariant::WrongDirection => "tls engine does not carry this direction",
            Invariant::UnknownRustlsState => "unsupported rustls connection state",
            Invariant::CannotSendNow => "connection cannot send data now",
            Invariant::UnsupportedSuite => "native record layer: unsupported suite",
            Invariant::UnsupportedKeyUpdate => "native record layer: unsupported key update",
            Invariant::HubProtocol => "split stream protocol error",
        })
    }
}

impl From<Invariant> for rustls::Error {
    fn from(broken: Invariant) -> Self {
        rustls::Error::General(broken.to_string())
    }
}

impl From<Invariant> for Error {
    fn from(broken: Invariant) -> Self {
        Error::Tls(broken.into())
    }
}

impl From<Invariant> for io::Error {
    fn from(broken: Invariant) -> Self {
        io::Error::other(broken.to_string())
    }
}

impl From<ExportError> for Error {
    fn from(e: ExportError) -> Self {
        Error::Export(e)
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Error::Tls(e)
    }
}

impl From<io::Error> for Error {
    /// An `io::Error` that already carries a typed [`Error`] is unwrapped, so the mapping
    /// round-trips.
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(e.kind(), e)
    }
}
