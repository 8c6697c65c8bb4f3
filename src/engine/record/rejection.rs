//! Why the native layer refuses what the peer sent, and the one table that maps each
//! refusal to the alert we send and the error the caller gets. The pairs are rustls's for
//! the same input, so both record layers fail alike (the differential fuzz target
//! `record_diff` checks it; where we differ on purpose, RELIABILITY.md lists it).

use rustls::{
    AlertDescription, ContentType, Error as TlsError, HandshakeType, InvalidMessage, PeerMisbehaved,
};

use super::Requests;
use crate::error::Error;

/// One reason to refuse incoming records. Every variant is fatal.
#[derive(Debug)]
pub(super) enum Rejection {
    /// A content type this record may not have (an unknown outer type, a TLS 1.3 record
    /// not disguised as application data, a change_cipher_spec after the handshake).
    UnexpectedType(ContentType),
    /// The header's major version is not 3.
    UnknownVersion,
    /// A header announcing an empty record that is not application data.
    EmptyRecord,
    /// A record, or its plaintext, larger than the peer may send.
    Oversized,
    /// The AEAD tag did not verify.
    BadMac,
    /// The receive sequence number would wrap: no alert, as in rustls.
    SequenceExhausted,
    /// A TLS 1.3 inner plaintext that is all padding.
    NoInnerType,
    /// A TLS 1.3 inner content type nobody defined.
    UnknownInnerType,
    /// A protected change_cipher_spec (RFC 8446, 5).
    ProtectedChangeCipherSpec,
    /// An empty TLS 1.3 inner plaintext that is not application data.
    EmptyInnerPlaintext,
    /// Another record between the fragments of a handshake message.
    InterleavedHandshake,
    /// Too many empty application records in a row.
    TooManyEmptyRecords,
    /// A post-handshake message over the reassembly bound.
    HandshakeTooLarge,
    /// An alert with a field missing (`AlertLevel` or `AlertDescription`).
    AlertMissing(&'static str),
    /// An alert with bytes after it.
    AlertTrailing,
    /// An alert whose level is neither warning nor fatal.
    AlertLevel(AlertDescription),
    /// A TLS 1.3 warning alert other than user_canceled.
    Tls13Warning(AlertDescription),
    /// The peer's fatal alert: nothing is sent back.
    AlertReceived(AlertDescription),
    TooManyWarningAlerts,
    /// A KeyUpdate without its one byte.
    KeyUpdateMissing,
    /// A KeyUpdate with bytes after its one byte.
    KeyUpdateTrailing,
    /// A KeyUpdate value other than 0 and 1.
    KeyUpdateValue,
    /// A KeyUpdate followed by more in its record.
    KeyEpochWithPendingFragment,
    TooManyKeyUpdates,
    TooManyRenegotiations,
    /// A handshake message of a type that may not come now (TLS 1.3); `client` is the
    /// side that received it.
    UnexpectedHandshake {
        got: HandshakeType,
        client: bool,
    },
    /// rustls refused a NewSessionTicket: its own error, with the alert it pairs with it.
    Ticket(TlsError),
    /// rustls's kernel connection failed (a key update it could not compute): no alert.
    Kernel(TlsError),
}

impl Rejection {
    /// The table: the alert we send (if any) and the error reported. Its length is one
    /// arm per rejection; it stays one function so that it reads as one table.
    fn alert_and_error(self) -> (Option<AlertDescription>, TlsError) {
        use AlertDescription as A;
        let inappropriate = |got_type| TlsError::InappropriateMessage {
            expect_types: vec![ContentType::ApplicationData],
            got_type,
        };
        let (alert, error) = match self {
            Rejection::UnexpectedType(got) => (A::UnexpectedMessage, inappropriate(got)),
            Rejection::UnknownVersion => (
                A::DecodeError,
                InvalidMessage::UnknownProtocolVersion.into(),
            ),
            Rejection::EmptyRecord => (A::DecodeError, InvalidMessage::InvalidEmptyPayload.into()),
            Rejection::Oversized => (A::RecordOverflow, TlsError::PeerSentOversizedRecord),
            Rejection::BadMac => (A::BadRecordMac, TlsError::DecryptError),
            Rejection::SequenceExhausted => return (None, TlsError::DecryptError),
            Rejection::NoInnerType => (
                A::UnexpectedMessage,
                PeerMisbehaved::IllegalTlsInnerPlaintext.into(),
            ),
            Rejection::UnknownInnerType => {
                (A::DecodeError, InvalidMessage::InvalidContentType.into())
            }
            Rejection::ProtectedChangeCipherSpec => (
                A::UnexpectedMessage,
                PeerMisbehaved::IllegalMiddleboxChangeCipherSpec.into(),
            ),
            Rejection::EmptyInnerPlaintext => (
                A::UnexpectedMessage,
                InvalidMessage::InvalidEmptyPayload.into(),
            ),
            Rejection::InterleavedHandshake => (
                A::UnexpectedMessage,
                PeerMisbehaved::MessageInterleavedWithHandshakeMessage.into(),
            ),
            Rejection::TooManyEmptyRecords => (
                A::UnexpectedMessage,
                PeerMisbehaved::TooManyEmptyFragments.into(),
            ),
            Rejection::HandshakeTooLarge => (
                A::DecodeError,
                InvalidMessage::HandshakePayloadTooLarge.into(),
            ),
            Rejection::AlertMissing(field) => {
                (A::DecodeError, InvalidMessage::MissingData(field).into())
            }
            Rejection::AlertTrailing => (
                A::DecodeError,
                InvalidMessage::TrailingData("AlertMessagePayload").into(),
            ),
            Rejection::AlertLevel(desc) => (A::IllegalParameter, TlsError::AlertReceived(desc)),
            Rejection::Tls13Warning(desc) => (A::DecodeError, TlsError::AlertReceived(desc)),
            Rejection::AlertReceived(desc) => return (None, TlsError::AlertReceived(desc)),
            Rejection::TooManyWarningAlerts => {
                return (None, PeerMisbehaved::TooManyWarningAlertsReceived.into());
            }
            Rejection::KeyUpdateMissing => (
                A::DecodeError,
                InvalidMessage::MissingData("KeyUpdateRequest").into(),
            ),
            Rejection::KeyUpdateTrailing => (
                A::DecodeError,
                InvalidMessage::TrailingData("HandshakeMessagePayload").into(),
            ),
            Rejection::KeyUpdateValue => {
                (A::IllegalParameter, InvalidMessage::InvalidKeyUpdate.into())
            }
            Rejection::KeyEpochWithPendingFragment => (
                A::UnexpectedMessage,
                PeerMisbehaved::KeyEpochWithPendingFragment.into(),
            ),
            Rejection::TooManyKeyUpdates => {
                return (None, PeerMisbehaved::TooManyKeyUpdateRequests.into());
            }
            Rejection::TooManyRenegotiations => {
                return (None, PeerMisbehaved::TooManyRenegotiationRequests.into());
            }
            // As rustls words it: TLS 1.3 expects a KeyUpdate, or a ticket on a client.
            Rejection::UnexpectedHandshake { got, client } => (
                A::UnexpectedMessage,
                TlsError::InappropriateHandshakeMessage {
                    expect_types: if client {
                        vec![HandshakeType::NewSessionTicket, HandshakeType::KeyUpdate]
                    } else {
                        vec![HandshakeType::KeyUpdate]
                    },
                    got_type: got,
                },
            ),
            Rejection::Ticket(e) => {
                let alert = match &e {
                    TlsError::InvalidMessage(m) => A::from(*m),
                    _ => A::DecodeError,
                };
                (alert, e)
            }
            Rejection::Kernel(e) => return (None, e),
        };
        (Some(alert), error)
    }

    /// Applies the table: asks for the alert (the first one asked for stays) and gives
    /// the error.
    pub(super) fn into_error(self, requests: &mut Requests) -> Error {
        let (alert, error) = self.alert_and_error();
        requests.fatal = requests.fatal.or(alert);
        Error::Tls(error)
    }
}

impl From<TlsError> for Rejection {
    fn from(e: TlsError) -> Self {
        Rejection::Kernel(e)
    }
}
