//! [`TlsInfo`]: what a response's TLS connection negotiated.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::{ProtocolVersion, SupportedCipherSuite};

use crate::ConnectionInfo;

/// What a response's TLS connection negotiated, like Go's `Response.TLS`.
///
/// hyper-util's client puts it in each response's extensions:
/// `res.extensions().get::<TlsInfo>()`. Cloning it is cheap (the certificate chain is
/// shared).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The negotiated protocol version.
    pub version: Option<ProtocolVersion>,
    /// The negotiated cipher suite.
    pub suite: Option<SupportedCipherSuite>,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// The server's certificate chain, end entity first.
    pub peer_certificates: Option<Arc<[CertificateDer<'static>]>>,
    /// The DNS name sent as SNI; `None` when the server name was an IP address.
    pub sni: Option<String>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// How long the handshake took.
    pub handshake_duration: Duration,
}

impl From<&ConnectionInfo> for TlsInfo {
    fn from(info: &ConnectionInfo) -> Self {
        TlsInfo {
            version: info.protocol_version,
            suite: info.cipher_suite,
            alpn: info.alpn.clone(),
            peer_certificates: info.peer_certificates.as_deref().map(Arc::from),
            sni: info.sni.clone(),
            resumed: info.resumed,
            handshake_duration: info.handshake_duration,
        }
    }
}
