//! What a completed handshake negotiated.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::{NamedGroup, ProtocolVersion, SupportedCipherSuite};

use crate::engine::Exporter;
use crate::error::{Error, ExportError};

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
/// It is built once, when the handshake completes; reading it costs nothing. Like Go's
/// `tls.ConnectionState`, it also exports keying material
/// ([`export_keying_material`](Self::export_keying_material)), so a handler that holds
/// only this (from a [`ConnectionInfoHandle`]) can derive channel bindings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// The negotiated protocol version.
    pub protocol_version: Option<ProtocolVersion>,
    /// The negotiated cipher suite.
    pub cipher_suite: Option<SupportedCipherSuite>,
    /// The group of the handshake's key exchange: `X25519MLKEM768` when the post-quantum
    /// hybrid was negotiated, `X25519` or `secp256r1` for a classical one. On a resumed
    /// TLS 1.2 session (which runs no key exchange), the original's if rustls kept it.
    pub key_exchange_group: Option<NamedGroup>,
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
    /// The secret behind `export_keying_material`; its `Debug` shows no secret.
    pub(crate) exporter: Exporter,
}

impl ConnectionInfo {
    pub(crate) fn empty(handshake_duration: Duration) -> Self {
        ConnectionInfo {
            alpn: None,
            protocol_version: None,
            cipher_suite: None,
            key_exchange_group: None,
            sni: None,
            peer_certificates: None,
            resumed: false,
            handshake_duration,
            record_layer: RecordLayer::Rustls,
            early_data: EarlyDataStatus::NotSent,
            exporter: Exporter::Unavailable(ExportError::SecretUnavailable),
        }
    }

    /// Fills `output` with keying material exported from the connection's secrets (RFC
    /// 5705 on TLS 1.2, RFC 8446 §7.5 on TLS 1.3) for `label` and `context`, as rustls's
    /// `export_keying_material` does. TLS 1.2 treats no context and an empty one
    /// differently; TLS 1.3 does not. The value does not change over the connection's
    /// life (a KeyUpdate leaves it as it is).
    ///
    /// It works on every record layer. rustls 0.23 gives no exporter to the connections
    /// lazytls drives, so lazytls takes the exporter secret from rustls's key log while
    /// this connection's handshake runs (its config copy wraps your `key_log`, which still
    /// gets every line), and derives the output with the negotiated suite's own HKDF or
    /// PRF, from your crypto provider. The secret is zeroized on drop.
    ///
    /// A TLS 1.2 connection exports only if it negotiated the extended master secret (RFC
    /// 7627), which rustls offers and asks for by default: without it the master secret is
    /// not bound to one session, so channel bindings built on it would not be either.
    /// Every refusal is an [`Error::Export`].
    pub fn export_keying_material<T: AsMut<[u8]>>(
        &self,
        mut output: T,
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<T, Error> {
        self.exporter.export(output.as_mut(), label, context)?;
        Ok(output)
    }
}

/// `export_keying_material` of a stream or half whose info is `info`.
pub(crate) fn export_from<T: AsMut<[u8]>>(
    info: Option<&ConnectionInfo>,
    output: T,
    label: &[u8],
    context: Option<&[u8]>,
) -> Result<T, Error> {
    let info = info.ok_or(ExportError::HandshakeNotComplete)?;
    info.export_keying_material(output, label, context)
}

/// A connection's [`ConnectionInfo`], readable once its handshake has completed: from
/// [`TlsStream::info_handle`](crate::TlsStream::info_handle), for code that has to take
/// it before the handshake has run.
///
/// A server's accept loop is that code: it gets the stream before any TLS I/O, while its
/// per-connection values (axum's `ConnectInfo`, a request extension) are built. The
/// handshake completes before the client can send its first request, so by the time a
/// request reaches a handler, [`get`](Self::get) returns the connection's info. It stays
/// `None` for good if the handshake fails.
///
/// Clones share one slot, so a clone per request costs a reference count.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfoHandle(Arc<OnceLock<ConnectionInfo>>);

impl ConnectionInfoHandle {
    /// What the handshake negotiated; `None` until it has completed.
    pub fn get(&self) -> Option<&ConnectionInfo> {
        self.0.get()
    }

    /// Fills the slot; the first value stays.
    pub(crate) fn publish(&self, info: ConnectionInfo) {
        let _ = self.0.set(info);
    }

    /// A handle whose slot holds `info` already (or stays empty).
    pub(crate) fn with(info: Option<ConnectionInfo>) -> Self {
        let handle = ConnectionInfoHandle::default();
        if let Some(info) = info {
            handle.publish(info);
        }
        handle
    }
}
