//! What a completed handshake negotiated.

use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::{ProtocolVersion, SupportedCipherSuite};

/// Which code seals and opens application records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RecordLayer {
    /// lazytls's own record layer: records are sealed and opened in place in the stream's
    /// buffers with the provider crate's AEAD, with no allocation per record. rustls still
    /// handles KeyUpdate secrets and session tickets. The default.
    #[default]
    Native,
    /// rustls's own record layer, through its unbuffered API (two allocations per record).
    Rustls,
}

/// What became of 0-RTT early data on a connection, from [`ConnectionInfo::early_data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EarlyDataStatus {
    /// None was sent (client) or received (server).
    #[default]
    NotSent,
    /// Client: the server accepted the early data. Server: early data arrived; take it
    /// with [`TlsStream::take_early_data`](crate::TlsStream::take_early_data).
    Accepted,
    /// Client: the server refused the early data, so lazytls sent the same bytes again
    /// after the handshake, as ordinary data.
    Rejected,
}

/// The parameters of a completed handshake, from [`TlsStream::info`](crate::TlsStream::info).
///
/// It is built once, when the handshake completes; reading it costs nothing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// The negotiated protocol version.
    pub protocol_version: Option<ProtocolVersion>,
    /// The negotiated cipher suite.
    pub cipher_suite: Option<SupportedCipherSuite>,
    /// The server name: on a client, the DNS name it asked for (none for an IP address);
    /// on a server, the name the client sent.
    pub sni: Option<String>,
    /// The peer's certificate chain, end entity first, if it sent one.
    pub peer_certificates: Option<Vec<CertificateDer<'static>>>,
    /// Whether the session was resumed from a ticket or session id.
    pub resumed: bool,
    /// From the handshake's first poll to its completion (final flight written).
    pub handshake_duration: Duration,
    /// Which code carries application records.
    pub record_layer: RecordLayer,
    /// What became of 0-RTT early data.
    pub early_data: EarlyDataStatus,
}

impl ConnectionInfo {
    pub(crate) fn empty(handshake_duration: Duration) -> Self {
        ConnectionInfo {
            alpn: None,
            protocol_version: None,
            cipher_suite: None,
            sni: None,
            peer_certificates: None,
            resumed: false,
            handshake_duration,
            record_layer: RecordLayer::Rustls,
            early_data: EarlyDataStatus::NotSent,
        }
    }
}
