//! The native record layer. After the handshake, rustls hands over the traffic secrets
//! (`dangerous_into_kernel_connection`) and this module seals and opens records itself, in
//! the engine's buffers, with no allocation per record:
//!
//! - sending: the plaintext is copied once, into its place in the outgoing buffer, and
//!   sealed there;
//! - receiving: the record is opened in place in the incoming buffer and copied once, into
//!   the caller's buffer.
//!
//! rustls's `KernelConnection` still computes new secrets for TLS 1.3 KeyUpdate and stores
//! NewSessionTickets. Everything else a record layer must do is here: alerts (close_notify
//! included), the TLS 1.2 explicit nonce, the TLS 1.3 inner content type and padding,
//! reassembly of post-handshake messages (bounded), refusing renegotiation, and the
//! cipher's confidentiality limit. The errors and alerts match what rustls gives for the
//! same input.
//!
//! Send state ([`Sealer`]) and receive state ([`Opener`]) are separate values, so a split
//! stream can give one to each half.

use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{
    AlertDescription, ConnectionTrafficSecrets, ContentType, Error as TlsError, HandshakeType,
    InvalidMessage, PeerMisbehaved, ProtocolVersion, SupportedCipherSuite,
};

#[cfg(any(test, fuzzing))]
use super::aead::Algorithm;
use super::aead::{Cipher, NONCE_LEN, TAG_LEN};
use super::buffers::{MAX_PLAINTEXT, TX_CAP, Window};
use crate::error::Error;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

const HEADER_LEN: usize = 5;
const EXPLICIT_NONCE_LEN: usize = 8;
/// The largest ciphertext a TLS 1.3 record may carry (RFC 8446, 5.2).
const MAX_CIPHERTEXT_TLS13: usize = MAX_PLAINTEXT + 256;
/// The largest ciphertext a TLS 1.2 record may carry (RFC 5246, 6.2.3).
const MAX_CIPHERTEXT_TLS12: usize = MAX_PLAINTEXT + 2048;
/// The bound on a post-handshake message being reassembled (rustls uses the same).
const MAX_HANDSHAKE_MESSAGE: usize = 0xffff;
/// Consecutive empty records tolerated, as in rustls.
const MAX_EMPTY_RECORDS: u8 = 32;
/// Warning alerts tolerated (TLS 1.2), as in rustls.
const MAX_WARNING_ALERTS: u8 = 4;
/// KeyUpdates tolerated between two application records, as in rustls (BoringSSL's 32).
const MAX_KEY_UPDATES: u8 = 32;
/// rustls's hard sequence limit: never reuse a nonce, whatever the suite.
const SEQ_HARD_LIMIT: u64 = 0xffff_ffff_ffff_fffe;

/// The TLS version and nonce style of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Tls13,
    /// TLS 1.2 with AES-GCM: 8 explicit nonce bytes precede the ciphertext.
    Tls12Gcm,
    /// TLS 1.2 with ChaCha20-Poly1305: no explicit nonce.
    Tls12Chacha,
}

impl Framing {
    fn explicit_len(self) -> usize {
        if self == Framing::Tls12Gcm {
            EXPLICIT_NONCE_LEN
        } else {
            0
        }
    }
}

/// rustls's view of the connection after the handshake.
enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl Kernel {
    fn update_tx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), TlsError> {
        match self {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
        }
    }

    fn update_rx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), TlsError> {
        match self {
            Kernel::Client(k) => k.update_rx_secret(),
            Kernel::Server(k) => k.update_rx_secret(),
        }
    }
}

/// The send direction: key, IV, sequence number and the suite's limit.
#[derive(Debug)]
pub(crate) struct Sealer {
    cipher: Cipher,
    seq: u64,
    /// Records that may be sealed under one key before it must change.
    limit: u64,
    framing: Framing,
    /// Why nothing more may be sealed, once that is so. [`Sealer::seal`] checks it before
    /// every record and sets it when it seals a close_notify or a fatal alert, so no path
    /// can put a record after either (RFC 8446, 6.1 and 6.2).
    closed: Option<SendClosed>,
    /// A KeyUpdate of ours was sealed after our last application record. A peer's
    /// `update_requested` is then answered already: requests that arrive while we are
    /// silent share one answer (RFC 8446, 4.6.3), so a peer cannot make a reader queue
    /// answers without bound.
    updated_since_data: bool,
}

/// Why a [`Sealer`] seals nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendClosed {
    /// Our close_notify went out (or the TLS 1.2 limit made us send one).
    CloseNotify,
    /// A fatal alert went out.
    FatalAlert,
}

/// The receive direction: key, IV, sequence number and the message reassembly state.
#[derive(Debug)]
pub(crate) struct Opener {
    cipher: Cipher,
    seq: u64,
    framing: Framing,
    /// Post-handshake handshake bytes not yet forming a whole message.
    handshake: Vec<u8>,
    empty_records: u8,
    warning_alerts: u8,
    key_updates: u8,
    renegotiations: u8,
    /// The peer's close_notify arrived; nothing after it is read.
    closed: bool,
    /// An opened application record whose plaintext the caller has not taken in full.
    open_record: Option<OpenRecord>,
}

/// Where the undelivered plaintext of an opened record lies, relative to the start of the
/// incoming window (the record itself starts at offset 0).
#[derive(Debug, Clone, Copy)]
struct OpenRecord {
    start: usize,
    end: usize,
    record_len: usize,
}

/// The outcome of [`Native::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NativeRead {
    /// The caller's buffer is full, or a record was processed: call again if needed.
    Progress,
    /// No whole record is buffered.
    NeedInput,
    /// The peer's close_notify was processed.
    PeerClosed,
}

/// rustls's kernel connection, shared by the two directions: the receive side needs it
/// for a peer's KeyUpdate and for tickets, the send side for its own KeyUpdate. Locked
/// only for those rare events, never across I/O.
pub(crate) struct Keys {
    kernel: Mutex<Kernel>,
    client: bool,
}

impl Keys {
    fn kernel(&self) -> MutexGuard<'_, Kernel> {
        self.kernel.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the receive side asks the send side to send. A split stream carries this from
/// the read half to the write half; a whole stream applies it at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    /// A warning alert (no_renegotiation).
    warning: Option<AlertDescription>,
    /// The peer asked for a KeyUpdate: send one (a single answer covers several).
    key_update: bool,
    /// A fatal alert; nothing is sent after it.
    fatal: Option<AlertDescription>,
}

impl Requests {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Requests::default()
    }

    /// Whether a fatal alert is asked for: the connection is over.
    pub(crate) fn is_fatal(&self) -> bool {
        self.fatal.is_some()
    }

    /// Adds `other`, keeping the first alert of each kind.
    pub(crate) fn merge(&mut self, other: Requests) {
        self.warning = self.warning.or(other.warning);
        self.key_update |= other.key_update;
        self.fatal = self.fatal.or(other.fatal);
    }
}

/// The send direction with access to the kernel connection.
pub(crate) struct Send {
    sealer: Sealer,
    keys: Arc<Keys>,
}

/// The receive direction with access to the kernel connection.
pub(crate) struct Recv {
    opener: Opener,
    keys: Arc<Keys>,
}

impl std::fmt::Debug for Send {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Send")
            .field("framing", &self.sealer.framing)
            .field("seq", &self.sealer.seq)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Recv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recv")
            .field("framing", &self.opener.framing)
            .field("seq", &self.opener.seq)
            .finish_non_exhaustive()
    }
}

/// Both directions of a whole (unsplit) stream.
pub(crate) struct Native {
    tx: Send,
    rx: Recv,
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native")
            .field("framing", &self.tx.sealer.framing)
            .field("tx_seq", &self.tx.sealer.seq)
            .field("rx_seq", &self.rx.opener.seq)
            .finish_non_exhaustive()
    }
}

/// Whether the native layer can carry this suite: it is the compiled-in provider's own
/// suite object (so its AEAD is the one we call) and has a framing we implement.
pub(crate) fn supports(suite: SupportedCipherSuite) -> bool {
    super::aead::is_provider_suite(suite) && framing_for(suite).is_some()
}

fn framing_for(suite: SupportedCipherSuite) -> Option<Framing> {
    let name = suite.suite();
    use rustls::CipherSuite as C;
    Some(match name {
        C::TLS13_AES_128_GCM_SHA256
        | C::TLS13_AES_256_GCM_SHA384
        | C::TLS13_CHACHA20_POLY1305_SHA256 => Framing::Tls13,
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        | C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Framing::Tls12Gcm,
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => Framing::Tls12Chacha,
        _ => return None,
    })
}

impl Native {
    /// Takes over from a kernel connection and its extracted secrets.
    fn new(
        kernel: Kernel,
        suite: SupportedCipherSuite,
        version: ProtocolVersion,
        secrets: rustls::ExtractedSecrets,
    ) -> Result<Native, Error> {
        let unsupported = || {
            Error::Tls(TlsError::General(
                "native record layer: unsupported suite".into(),
            ))
        };
        let framing = framing_for(suite).ok_or_else(unsupported)?;
        if (framing == Framing::Tls13) != (version == ProtocolVersion::TLSv1_3) {
            return Err(unsupported());
        }
        let (tx_seq, tx_secrets) = secrets.tx;
        let (rx_seq, rx_secrets) = secrets.rx;
        let tx_cipher = Cipher::new(&tx_secrets).ok_or_else(unsupported)?;
        let rx_cipher = Cipher::new(&rx_secrets).ok_or_else(unsupported)?;
        let limit = confidentiality_limit(suite);
        let client = matches!(kernel, Kernel::Client(_));
        let keys = Arc::new(Keys {
            kernel: Mutex::new(kernel),
            client,
        });
        let sealer = Sealer::new(tx_cipher, tx_seq, limit, framing);
        let opener = Opener::new(rx_cipher, rx_seq, framing);
        Ok(Native {
            tx: Send {
                sealer,
                keys: keys.clone(),
            },
            rx: Recv { opener, keys },
        })
    }

    pub(crate) fn from_client(
        conn: rustls::client::UnbufferedClientConnection,
    ) -> Result<Native, Error> {
        let (suite, version) = negotiated(&conn)?;
        let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
        Native::new(Kernel::Client(kernel), suite, version, secrets)
    }

    pub(crate) fn from_server(
        conn: rustls::server::UnbufferedServerConnection,
    ) -> Result<Native, Error> {
        let (suite, version) = negotiated(&conn)?;
        let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
        Native::new(Kernel::Server(kernel), suite, version, secrets)
    }

    /// Gives the two directions to the halves of a split stream.
    pub(crate) fn split(self) -> (Recv, Send) {
        (self.rx, self.tx)
    }

    /// Joins the two directions of a split stream again.
    pub(crate) fn join(rx: Recv, tx: Send) -> Native {
        Native { tx, rx }
    }

    /// Seals `data` into `tx`; see [`Send::write`].
    pub(crate) fn write(&mut self, tx: &mut Window, data: &[u8]) -> Result<usize, Error> {
        self.tx.write(tx, data)
    }

    /// Seals a close_notify alert into `tx`.
    pub(crate) fn close_notify(&mut self, tx: &mut Window) -> Result<(), Error> {
        self.tx.close_notify(tx)
    }

    /// Sends a KeyUpdate that asks the peer to update too (TLS 1.3 only).
    pub(crate) fn refresh_traffic_keys(&mut self, tx: &mut Window) -> Result<(), Error> {
        self.tx.refresh_traffic_keys(tx)
    }

    /// Test hook: moves the receive sequence number (to follow a peer moved with
    /// [`Native::set_tx_seq`]).
    #[cfg(test)]
    pub(crate) fn set_rx_seq(&mut self, seq: u64) {
        self.rx.opener.seq = seq;
    }

    /// Test hook: the send sequence number.
    #[cfg(test)]
    pub(crate) fn tx_seq(&self) -> u64 {
        self.tx.sealer.seq
    }

    /// Test hook: moves the send sequence number (to reach the limit without sending 2^24
    /// records).
    #[cfg(test)]
    pub(crate) fn set_tx_seq(&mut self, seq: u64) {
        self.tx.sealer.seq = seq;
    }

    /// Opens one buffered record (see [`Recv::read`]); what it asks to send (alerts, a
    /// KeyUpdate answer) is sealed into `tx` at once.
    pub(crate) fn read(
        &mut self,
        rx: &mut Window,
        tx: &mut Window,
        out: &mut [u8],
        out_n: &mut usize,
    ) -> Result<NativeRead, Error> {
        let mut requests = Requests::default();
        let read = self.rx.read(rx, out, out_n, &mut requests);
        let answered = self.tx.answer(tx, requests);
        let status = read?;
        answered.map(|()| status)
    }
}

impl Send {
    /// Seals `data` into `tx` as records of at most 16 KiB. Returns the bytes taken (all
    /// of them, unless the TLS 1.2 limit is reached).
    pub(crate) fn write(&mut self, tx: &mut Window, data: &[u8]) -> Result<usize, Error> {
        let mut done = 0;
        for chunk in data.chunks(MAX_PLAINTEXT) {
            self.before_seal(tx)?;
            self.sealer.seal(tx, ContentType::ApplicationData, chunk)?;
            self.sealer.updated_since_data = false;
            done += chunk.len();
        }
        Ok(done)
    }

    /// Seals a close_notify alert into `tx`.
    pub(crate) fn close_notify(&mut self, tx: &mut Window) -> Result<(), Error> {
        self.sealer.seal(
            tx,
            ContentType::Alert,
            &[1, u8::from(AlertDescription::CloseNotify)],
        )
    }

    /// Seals what the receive side asked for: a warning alert, a KeyUpdate answer (unless
    /// one went out since our last application record), a fatal alert (best effort).
    /// Once we are closed for sending (our close_notify, a fatal alert) nothing is sealed:
    /// a peer's KeyUpdate then changes only the receive key.
    pub(crate) fn answer(&mut self, tx: &mut Window, requests: Requests) -> Result<(), Error> {
        if self.sealer.closed.is_some() {
            return Ok(());
        }
        if let Some(desc) = requests.warning {
            self.sealer
                .seal(tx, ContentType::Alert, &[1, u8::from(desc)])?;
        }
        let answered = if requests.key_update && !self.sealer.updated_since_data {
            self.send_key_update(tx, false)
        } else {
            Ok(())
        };
        if let Some(desc) = requests.fatal {
            // Sealing it closes the sealer, even if the KeyUpdate before it failed.
            let _ = self
                .sealer
                .seal(tx, ContentType::Alert, &[2, u8::from(desc)]);
        }
        answered
    }

    /// Keeps the send key within its confidentiality limit: TLS 1.3 moves to a new key
    /// (a KeyUpdate goes out first); TLS 1.2 cannot, so it closes.
    fn before_seal(&mut self, tx: &mut Window) -> Result<(), Error> {
        if self.sealer.seq < self.sealer.limit {
            return Ok(());
        }
        if self.sealer.framing == Framing::Tls13 {
            self.send_key_update(tx, false)
        } else {
            // The close_notify closes the sealer; an already closed one stays closed.
            let _ = self.close_notify(tx);
            Err(TlsError::EncryptError.into())
        }
    }

    /// Sends a KeyUpdate that asks the peer to update too (TLS 1.3 only).
    pub(crate) fn refresh_traffic_keys(&mut self, tx: &mut Window) -> Result<(), Error> {
        if self.sealer.framing != Framing::Tls13 {
            return Err(TlsError::General("key updates need TLS 1.3".into()).into());
        }
        self.send_key_update(tx, true)
    }

    /// Sends a KeyUpdate under the current key, then switches the send key.
    fn send_key_update(&mut self, tx: &mut Window, request: bool) -> Result<(), Error> {
        let message = [
            u8::from(HandshakeType::KeyUpdate),
            0,
            0,
            1,
            u8::from(request),
        ];
        self.sealer.seal(tx, ContentType::Handshake, &message)?;
        let (seq, secrets) = self.keys.kernel().update_tx()?;
        self.sealer.rekey(seq, &secrets)?;
        self.sealer.updated_since_data = true;
        Ok(())
    }
}

impl Recv {
    /// Opens one buffered record (or serves the rest of one opened earlier) into `out`.
    /// What must be sent in answer (alerts, a KeyUpdate) is added to `requests`.
    pub(crate) fn read(
        &mut self,
        rx: &mut Window,
        out: &mut [u8],
        out_n: &mut usize,
        requests: &mut Requests,
    ) -> Result<NativeRead, Error> {
        if let Some(open) = &mut self.opener.open_record {
            // The rest of a record opened earlier: it stays in place in `rx` until the
            // caller has taken all of it, so a small read buffer costs no extra copy.
            let rest = &rx.data()[open.start..open.end];
            let n = rest.len().min(out.len() - *out_n);
            out[*out_n..*out_n + n].copy_from_slice(&rest[..n]);
            *out_n += n;
            open.start += n;
            if open.start == open.end {
                rx.consume(open.record_len);
                self.opener.open_record = None;
            }
            return Ok(NativeRead::Progress);
        }
        if self.opener.closed {
            return Ok(NativeRead::PeerClosed);
        }
        let data = rx.data_mut();
        // Each header field is judged as soon as its bytes are here, in rustls's order, so
        // both layers fail on the same byte.
        let Some(&first) = data.first() else {
            return Ok(NativeRead::NeedInput);
        };
        let outer = ContentType::from(first);
        if let ContentType::Unknown(_) = outer {
            return Err(self.fatal(
                requests,
                AlertDescription::UnexpectedMessage,
                TlsError::InappropriateMessage {
                    expect_types: vec![ContentType::ApplicationData],
                    got_type: outer,
                },
            ));
        }
        if data.len() < 3 {
            return Ok(NativeRead::NeedInput);
        }
        if data[1] != 3 {
            return Err(self.fatal(
                requests,
                AlertDescription::DecodeError,
                InvalidMessage::UnknownProtocolVersion,
            ));
        }
        if data.len() < HEADER_LEN {
            return Ok(NativeRead::NeedInput);
        }
        let len = usize::from(u16::from_be_bytes([data[3], data[4]]));
        if len == 0 && outer != ContentType::ApplicationData {
            // Only application data may be empty (RFC 8446, 5.1; RFC 5246, 6.2.1).
            return Err(self.fatal(
                requests,
                AlertDescription::DecodeError,
                InvalidMessage::InvalidEmptyPayload,
            ));
        }
        let max = if self.opener.framing == Framing::Tls13 {
            MAX_CIPHERTEXT_TLS13
        } else {
            MAX_CIPHERTEXT_TLS12
        };
        if len > max {
            return Err(self.fatal(
                requests,
                AlertDescription::RecordOverflow,
                TlsError::PeerSentOversizedRecord,
            ));
        }
        if data.len() < HEADER_LEN + len {
            return Ok(NativeRead::NeedInput);
        }
        let record = &mut data[..HEADER_LEN + len];
        let opened = self.opener.open(record);
        let (content, range) = match opened {
            Ok(found) => found,
            Err(OpenError::BadMac) => {
                return Err(self.fatal(
                    requests,
                    AlertDescription::BadRecordMac,
                    TlsError::DecryptError,
                ));
            }
            Err(OpenError::Overflow) => {
                return Err(self.fatal(
                    requests,
                    AlertDescription::RecordOverflow,
                    TlsError::PeerSentOversizedRecord,
                ));
            }
            Err(OpenError::Unexpected(e)) => {
                return Err(self.fatal(requests, AlertDescription::UnexpectedMessage, e));
            }
            Err(OpenError::SeqExhausted) => return Err(TlsError::DecryptError.into()),
        };
        let payload = &record[range.clone()];
        if !self.opener.handshake.is_empty() && content != ContentType::Handshake {
            // A handshake message split over records must not be interleaved with others.
            return Err(self.fatal(
                requests,
                AlertDescription::UnexpectedMessage,
                PeerMisbehaved::MessageInterleavedWithHandshakeMessage,
            ));
        }
        if let ContentType::Unknown(_) = content {
            // A TLS 1.3 inner type nobody defined (a TLS 1.2 one failed at the header),
            // judged after the interleaving, as rustls does.
            return Err(self.fatal(
                requests,
                AlertDescription::DecodeError,
                InvalidMessage::InvalidContentType,
            ));
        }
        if payload.is_empty() && content != ContentType::ApplicationData {
            // Only application data may be empty. A TLS 1.2 record is judged from its
            // header; a TLS 1.3 inner plaintext here, with the alert RFC 8446 (5.4) asks.
            return Err(self.fatal(
                requests,
                AlertDescription::UnexpectedMessage,
                InvalidMessage::InvalidEmptyPayload,
            ));
        }
        let result = match content {
            ContentType::ApplicationData => {
                if payload.is_empty() {
                    self.opener.empty_records += 1;
                    if self.opener.empty_records > MAX_EMPTY_RECORDS {
                        return Err(self.fatal(
                            requests,
                            AlertDescription::UnexpectedMessage,
                            PeerMisbehaved::TooManyEmptyFragments,
                        ));
                    }
                } else {
                    self.opener.empty_records = 0;
                    self.opener.key_updates = 0;
                }
                let n = payload.len().min(out.len() - *out_n);
                out[*out_n..*out_n + n].copy_from_slice(&payload[..n]);
                *out_n += n;
                if n < payload.len() {
                    self.opener.open_record = Some(OpenRecord {
                        start: range.start + n,
                        end: range.end,
                        record_len: HEADER_LEN + len,
                    });
                    return Ok(NativeRead::Progress);
                }
                NativeRead::Progress
            }
            ContentType::Alert => {
                let alert = [
                    payload.first().copied(),
                    payload.get(1).copied(),
                    payload.get(2).copied(),
                ];
                self.alert(requests, alert)?
            }
            ContentType::Handshake => {
                if self.opener.handshake.len() + payload.len() > MAX_HANDSHAKE_MESSAGE + 4 {
                    return Err(self.fatal(
                        requests,
                        AlertDescription::DecodeError,
                        InvalidMessage::HandshakePayloadTooLarge,
                    ));
                }
                self.opener.handshake.extend_from_slice(payload);
                rx.consume(HEADER_LEN + len);
                self.handshake_messages(requests)?;
                return Ok(NativeRead::Progress);
            }
            other => {
                return Err(self.fatal(
                    requests,
                    AlertDescription::UnexpectedMessage,
                    TlsError::InappropriateMessage {
                        expect_types: vec![ContentType::ApplicationData],
                        got_type: other,
                    },
                ));
            }
        };
        rx.consume(HEADER_LEN + len);
        Ok(result)
    }

    fn alert(
        &mut self,
        requests: &mut Requests,
        alert: [Option<u8>; 3],
    ) -> Result<NativeRead, Error> {
        let (level, desc) = match alert {
            [Some(level), Some(desc), None] => (level, desc),
            // As rustls decodes an alert: a field missing, or bytes after it.
            [level, None, _] => {
                let missing = if level.is_none() {
                    "AlertLevel"
                } else {
                    "AlertDescription"
                };
                return Err(self.fatal(
                    requests,
                    AlertDescription::DecodeError,
                    InvalidMessage::MissingData(missing),
                ));
            }
            _ => {
                return Err(self.fatal(
                    requests,
                    AlertDescription::DecodeError,
                    InvalidMessage::TrailingData("AlertMessagePayload"),
                ));
            }
        };
        let desc = AlertDescription::from(desc);
        if !matches!(level, 1 | 2) {
            return Err(self.fatal(
                requests,
                AlertDescription::IllegalParameter,
                TlsError::AlertReceived(desc),
            ));
        }
        if desc == AlertDescription::CloseNotify {
            self.opener.closed = true;
            return Ok(NativeRead::PeerClosed);
        }
        if level == 1 {
            self.opener.warning_alerts += 1;
            if self.opener.warning_alerts > MAX_WARNING_ALERTS {
                return Err(Error::Tls(
                    PeerMisbehaved::TooManyWarningAlertsReceived.into(),
                ));
            }
            if self.opener.framing == Framing::Tls13 && desc != AlertDescription::UserCanceled {
                return Err(self.fatal(
                    requests,
                    AlertDescription::DecodeError,
                    TlsError::AlertReceived(desc),
                ));
            }
            return Ok(NativeRead::Progress);
        }
        Err(TlsError::AlertReceived(desc).into())
    }

    /// Handles every whole message in the reassembly buffer. Every message header there
    /// is checked against the size limit first, as rustls's deframer does, so a record
    /// carrying an oversized message fails before any message in it is acted on.
    fn handshake_messages(&mut self, requests: &mut Requests) -> Result<(), Error> {
        let mut at = 0;
        while let Some(header) = self.opener.handshake.get(at..at + 4) {
            let len =
                usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
            if len > MAX_HANDSHAKE_MESSAGE {
                return Err(self.fatal(
                    requests,
                    AlertDescription::DecodeError,
                    InvalidMessage::HandshakePayloadTooLarge,
                ));
            }
            at += 4 + len;
        }
        let mut start = 0;
        let result = loop {
            let buf = &self.opener.handshake[start..];
            if buf.len() < 4 {
                break Ok(());
            }
            let len = usize::from(buf[1]) << 16 | usize::from(buf[2]) << 8 | usize::from(buf[3]);
            if buf.len() < 4 + len {
                break Ok(());
            }
            let typ = HandshakeType::from(buf[0]);
            let body_range = start + 4..start + 4 + len;
            start += 4 + len;
            let last = start == self.opener.handshake.len();
            if let Err(e) = self.handshake_message(requests, typ, body_range, last) {
                break Err(e);
            }
        };
        self.opener.handshake.drain(..start);
        result
    }

    fn handshake_message(
        &mut self,
        requests: &mut Requests,
        typ: HandshakeType,
        body: std::ops::Range<usize>,
        last_in_record: bool,
    ) -> Result<(), Error> {
        let tls13 = self.opener.framing == Framing::Tls13;
        let is_client = self.keys.client;
        match typ {
            HandshakeType::KeyUpdate if tls13 => self.key_update(requests, body, last_in_record),
            HandshakeType::NewSessionTicket if tls13 && is_client => {
                let stored = match &mut *self.keys.kernel() {
                    Kernel::Client(kernel) => {
                        kernel.handle_new_session_ticket(&self.opener.handshake[body])
                    }
                    Kernel::Server(_) => Ok(()),
                };
                stored.map_err(|e| {
                    // The alert rustls pairs with the decode error.
                    let alert = match &e {
                        TlsError::InvalidMessage(m) => AlertDescription::from(*m),
                        _ => AlertDescription::DecodeError,
                    };
                    self.fatal(requests, alert, e)
                })
            }
            HandshakeType::HelloRequest if !tls13 && is_client => {
                // Ignored, as RFC 5246 (7.4.1.1) allows a client: OpenSSL takes a
                // no_renegotiation warning for a fatal handshake failure, and what the
                // server sends after its request would be lost. The server asked for
                // nothing it waits on; a second request is still fatal, as in rustls.
                self.count_renegotiation()
            }
            HandshakeType::ClientHello if !tls13 && !is_client => {
                // A client that asks to renegotiate waits for our answer: refuse it.
                self.count_renegotiation()?;
                requests.warning = Some(AlertDescription::NoRenegotiation);
                Ok(())
            }
            // As rustls words it: TLS 1.3 expects a KeyUpdate (or a ticket, on a client),
            // TLS 1.2 no handshake message at all.
            other if tls13 => Err(self.fatal(
                requests,
                AlertDescription::UnexpectedMessage,
                TlsError::InappropriateHandshakeMessage {
                    expect_types: if is_client {
                        vec![HandshakeType::NewSessionTicket, HandshakeType::KeyUpdate]
                    } else {
                        vec![HandshakeType::KeyUpdate]
                    },
                    got_type: other,
                },
            )),
            _ => Err(self.fatal(
                requests,
                AlertDescription::UnexpectedMessage,
                TlsError::InappropriateMessage {
                    expect_types: vec![ContentType::ApplicationData],
                    got_type: ContentType::Handshake,
                },
            )),
        }
    }

    /// A TLS 1.3 KeyUpdate: the receive key moves on, and an answer is asked for if the
    /// peer requested one. Judged in rustls's order: the message's shape, then nothing
    /// after it in its record, then the count, then the request value.
    fn key_update(
        &mut self,
        requests: &mut Requests,
        body: std::ops::Range<usize>,
        last_in_record: bool,
    ) -> Result<(), Error> {
        let value = match self.opener.handshake[body] {
            [value] => value,
            [] => {
                return Err(self.fatal(
                    requests,
                    AlertDescription::DecodeError,
                    InvalidMessage::MissingData("KeyUpdateRequest"),
                ));
            }
            _ => {
                return Err(self.fatal(
                    requests,
                    AlertDescription::DecodeError,
                    InvalidMessage::TrailingData("HandshakeMessagePayload"),
                ));
            }
        };
        // New keys apply from the next record: nothing may follow in this one.
        if !last_in_record {
            return Err(self.fatal(
                requests,
                AlertDescription::UnexpectedMessage,
                PeerMisbehaved::KeyEpochWithPendingFragment,
            ));
        }
        self.opener.key_updates += 1;
        if self.opener.key_updates > MAX_KEY_UPDATES {
            return Err(Error::Tls(PeerMisbehaved::TooManyKeyUpdateRequests.into()));
        }
        let request = match value {
            0 => false,
            1 => true,
            _ => {
                return Err(self.fatal(
                    requests,
                    AlertDescription::IllegalParameter,
                    InvalidMessage::InvalidKeyUpdate,
                ));
            }
        };
        requests.key_update |= request;
        let (seq, secrets) = self.keys.kernel().update_rx()?;
        self.opener.rekey(seq, &secrets)
    }

    /// TLS 1.2 renegotiation is never done; one request is tolerated and a second one is
    /// fatal (with no alert, as in rustls).
    fn count_renegotiation(&mut self) -> Result<(), Error> {
        self.opener.renegotiations += 1;
        if self.opener.renegotiations > 1 {
            return Err(Error::Tls(
                PeerMisbehaved::TooManyRenegotiationRequests.into(),
            ));
        }
        Ok(())
    }

    /// Asks for a fatal alert and returns the error.
    fn fatal(
        &mut self,
        requests: &mut Requests,
        desc: AlertDescription,
        err: impl Into<TlsError>,
    ) -> Error {
        requests.fatal = requests.fatal.or(Some(desc));
        Error::Tls(err.into())
    }
}

/// The suite and version of a completed handshake.
fn negotiated(
    common: &rustls::CommonState,
) -> Result<(SupportedCipherSuite, ProtocolVersion), TlsError> {
    let suite = common.negotiated_cipher_suite();
    let version = common.protocol_version();
    suite.zip(version).ok_or(TlsError::HandshakeNotComplete)
}

fn confidentiality_limit(suite: SupportedCipherSuite) -> u64 {
    // Match on the TLS 1.3 variant only: whether rustls has a TLS 1.2 variant depends on
    // every crate in the build, not on our own `tls12` feature.
    #[allow(unreachable_patterns)]
    let limit = match suite {
        SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
        // Every TLS 1.2 suite we carry is an AEAD suite; rustls sets 2^24 for AES-GCM and
        // no limit for ChaCha20-Poly1305 (RFC 8446, 5.5 and its TLS 1.2 analogue).
        _ => match suite.suite() {
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => u64::MAX,
            _ => 1 << 24,
        },
    };
    limit.min(SEQ_HARD_LIMIT)
}

enum OpenError {
    BadMac,
    Overflow,
    Unexpected(TlsError),
    SeqExhausted,
}

impl Sealer {
    fn new(cipher: Cipher, seq: u64, limit: u64, framing: Framing) -> Sealer {
        Sealer {
            cipher,
            seq,
            limit,
            framing,
            closed: None,
            updated_since_data: false,
        }
    }

    fn rekey(&mut self, seq: u64, secrets: &ConnectionTrafficSecrets) -> Result<(), Error> {
        rekey(&mut self.cipher, &mut self.seq, seq, secrets)
    }

    /// Appends one sealed record of `content` type to `tx`. Refuses once we are closed
    /// for sending; a close_notify or a fatal alert closes us.
    fn seal(
        &mut self,
        tx: &mut Window,
        content: ContentType,
        plaintext: &[u8],
    ) -> Result<(), Error> {
        debug_assert!(plaintext.len() <= MAX_PLAINTEXT);
        match self.closed {
            Some(SendClosed::CloseNotify) => return Err(Error::WriteAfterShutdown),
            Some(SendClosed::FatalAlert) => return Err(TlsError::EncryptError.into()),
            None => {}
        }
        if self.seq >= SEQ_HARD_LIMIT {
            return Err(TlsError::EncryptError.into());
        }
        if content == ContentType::Alert {
            self.closed = match plaintext {
                [2, _] => Some(SendClosed::FatalAlert),
                [_, desc] if *desc == u8::from(AlertDescription::CloseNotify) => {
                    Some(SendClosed::CloseNotify)
                }
                _ => None,
            };
        }
        let framing = self.framing;
        let explicit = framing.explicit_len();
        let tls13 = framing == Framing::Tls13;
        let inner_len = plaintext.len() + usize::from(tls13);
        let body_len = explicit + inner_len + TAG_LEN;
        tx.reserve_capped(HEADER_LEN + body_len, TX_CAP);
        let record = &mut tx.spare()[..HEADER_LEN + body_len];
        let outer = if tls13 {
            ContentType::ApplicationData
        } else {
            content
        };
        let len = (body_len as u16).to_be_bytes();
        record[..HEADER_LEN].copy_from_slice(&[u8::from(outer), 3, 3, len[0], len[1]]);
        let nonce = self.cipher.nonce(self.seq);
        if explicit > 0 {
            record[HEADER_LEN..HEADER_LEN + explicit].copy_from_slice(&nonce[4..]);
        }
        let body_start = HEADER_LEN + explicit;
        record[body_start..body_start + plaintext.len()].copy_from_slice(plaintext);
        if tls13 {
            record[body_start + plaintext.len()] = u8::from(content);
        }
        let (head, rest) = record.split_at_mut(body_start);
        let (inner, tag_out) = rest.split_at_mut(inner_len);
        let tag = if tls13 {
            self.cipher.seal(nonce, &head[..HEADER_LEN], inner)
        } else {
            let aad = tls12_aad(self.seq, content, [3, 3], inner_len);
            self.cipher.seal(nonce, &aad, inner)
        };
        tag_out.copy_from_slice(&tag);
        tx.commit(HEADER_LEN + body_len);
        self.seq += 1;
        Ok(())
    }
}

impl Opener {
    fn new(cipher: Cipher, seq: u64, framing: Framing) -> Opener {
        Opener {
            cipher,
            seq,
            framing,
            handshake: Vec::new(),
            empty_records: 0,
            warning_alerts: 0,
            key_updates: 0,
            renegotiations: 0,
            closed: false,
            open_record: None,
        }
    }

    fn rekey(&mut self, seq: u64, secrets: &ConnectionTrafficSecrets) -> Result<(), Error> {
        rekey(&mut self.cipher, &mut self.seq, seq, secrets)
    }

    /// Opens one whole record in place. Returns its content type and where its plaintext
    /// lies within `record`.
    fn open(
        &mut self,
        record: &mut [u8],
    ) -> Result<(ContentType, std::ops::Range<usize>), OpenError> {
        if self.seq >= SEQ_HARD_LIMIT {
            return Err(OpenError::SeqExhausted);
        }
        let outer = ContentType::from(record[0]);
        let (head, body) = record.split_at_mut(HEADER_LEN);
        let result = match self.framing {
            Framing::Tls13 => {
                if outer != ContentType::ApplicationData {
                    return Err(OpenError::Unexpected(TlsError::InappropriateMessage {
                        expect_types: vec![ContentType::ApplicationData],
                        got_type: outer,
                    }));
                }
                if body.len() < TAG_LEN {
                    return Err(OpenError::BadMac);
                }
                let nonce = self.cipher.nonce(self.seq);
                let n = self
                    .cipher
                    .open(nonce, head, body)
                    .map_err(|_| OpenError::BadMac)?;
                // The cap is on the whole TLSInnerPlaintext, padding included (RFC 8446,
                // 5.4), so padding cannot smuggle in a record larger than the peer may send.
                // Within it, the content before the type byte is at most 2^14 bytes.
                if n > MAX_PLAINTEXT + 1 {
                    return Err(OpenError::Overflow);
                }
                // Strip the padding; the last non-zero byte is the real content type.
                let Some(pos) = body[..n].iter().rposition(|&b| b != 0) else {
                    return Err(OpenError::Unexpected(
                        PeerMisbehaved::IllegalTlsInnerPlaintext.into(),
                    ));
                };
                let inner = ContentType::from(body[pos]);
                if inner == ContentType::ChangeCipherSpec {
                    // A protected change_cipher_spec is never valid (RFC 8446, 5).
                    return Err(OpenError::Unexpected(
                        PeerMisbehaved::IllegalMiddleboxChangeCipherSpec.into(),
                    ));
                }
                (inner, HEADER_LEN..HEADER_LEN + pos)
            }
            Framing::Tls12Gcm | Framing::Tls12Chacha => {
                if !matches!(
                    outer,
                    ContentType::ApplicationData | ContentType::Alert | ContentType::Handshake
                ) {
                    return Err(OpenError::Unexpected(TlsError::InappropriateMessage {
                        expect_types: vec![ContentType::ApplicationData],
                        got_type: outer,
                    }));
                }
                let explicit = self.framing.explicit_len();
                if body.len() < explicit + TAG_LEN {
                    return Err(OpenError::BadMac);
                }
                let nonce: [u8; NONCE_LEN] = if explicit > 0 {
                    self.cipher.nonce_with_explicit(&body[..explicit])
                } else {
                    self.cipher.nonce(self.seq)
                };
                let plain_len = body.len() - explicit - TAG_LEN;
                if plain_len > MAX_PLAINTEXT {
                    return Err(OpenError::Overflow);
                }
                // The record's own version: an edited header must not open.
                let aad = tls12_aad(self.seq, outer, [head[1], head[2]], plain_len);
                let n = self
                    .cipher
                    .open(nonce, &aad, &mut body[explicit..])
                    .map_err(|_| OpenError::BadMac)?;
                (outer, HEADER_LEN + explicit..HEADER_LEN + explicit + n)
            }
        };
        self.seq += 1;
        Ok(result)
    }
}

/// Moves one direction to the secrets of a key update, with its new sequence number.
fn rekey(
    cipher: &mut Cipher,
    seq_slot: &mut u64,
    seq: u64,
    secrets: &ConnectionTrafficSecrets,
) -> Result<(), Error> {
    let new = Cipher::new(secrets).ok_or_else(|| {
        Error::Tls(TlsError::General(
            "native record layer: unsupported key update".into(),
        ))
    })?;
    debug_assert_eq!(new.algorithm(), cipher.algorithm());
    *cipher = new;
    *seq_slot = seq;
    Ok(())
}

/// TLS 1.2 additional data: seq_num || type || version || length (RFC 5246, 6.2.3.3), with
/// the record's own type and version.
fn tls12_aad(seq: u64, content: ContentType, version: [u8; 2], len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = u8::from(content);
    aad[9..11].copy_from_slice(&version);
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

/// Opens arbitrary bytes as records under fixed keys, for fuzzing the record parser
/// without a handshake. See [`crate::fuzzing::open_fixed`].
#[cfg(any(test, fuzzing))]
pub(crate) fn fixed_open(framing: u8, bytes: &[u8]) -> Vec<u8> {
    let (framing, algorithm) = match framing % 3 {
        0 => (Framing::Tls13, Algorithm::Aes128Gcm),
        1 => (Framing::Tls12Gcm, Algorithm::Aes128Gcm),
        _ => (Framing::Tls12Chacha, Algorithm::Chacha20Poly1305),
    };
    let key = [7u8; 32];
    let key = &key[..if algorithm == Algorithm::Aes128Gcm {
        16
    } else {
        32
    }];
    let (_, mut opener) = testing::pair(framing, algorithm, key, &[9u8; 12], 0);
    let mut buf = bytes.to_vec();
    let mut rest = &mut buf[..];
    let mut out = Vec::new();
    while rest.len() >= HEADER_LEN {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len > MAX_CIPHERTEXT_TLS12 || rest.len() < HEADER_LEN + len {
            break;
        }
        let (record, tail) = rest.split_at_mut(HEADER_LEN + len);
        match opener.open(record) {
            Ok((_, range)) => out.extend_from_slice(&record[range]),
            Err(_) => break,
        }
        rest = tail;
    }
    out
}

#[cfg(any(test, fuzzing))]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod testing {
    //! Builds a `Sealer`/`Opener` pair from raw keys, for known-answer and tampering tests.
    use super::*;

    pub(crate) fn tls13_pair(
        algorithm: Algorithm,
        key: &[u8],
        iv: &[u8],
        seq: u64,
    ) -> (Sealer, Opener) {
        pair(Framing::Tls13, algorithm, key, iv, seq)
    }

    pub(crate) fn tls12_pair(
        algorithm: Algorithm,
        key: &[u8],
        iv: &[u8],
        seq: u64,
    ) -> (Sealer, Opener) {
        let framing = if algorithm == Algorithm::Chacha20Poly1305 {
            Framing::Tls12Chacha
        } else {
            Framing::Tls12Gcm
        };
        pair(framing, algorithm, key, iv, seq)
    }

    pub(super) fn pair(
        framing: Framing,
        algorithm: Algorithm,
        key: &[u8],
        iv: &[u8],
        seq: u64,
    ) -> (Sealer, Opener) {
        let cipher = || Cipher::from_parts(algorithm, key, iv).expect("fixed test keys fit");
        (
            Sealer::new(cipher(), seq, u64::MAX, framing),
            Opener::new(cipher(), seq, framing),
        )
    }

    pub(crate) fn seal(sealer: &mut Sealer, content: ContentType, plaintext: &[u8]) -> Vec<u8> {
        let mut tx = Window::default();
        sealer.seal(&mut tx, content, plaintext).unwrap();
        tx.data().to_vec()
    }

    /// Opens a record; returns the content type and plaintext, or `None` if rejected.
    pub(crate) fn open(opener: &mut Opener, record: &[u8]) -> Option<(ContentType, Vec<u8>)> {
        let mut buf = record.to_vec();
        match opener.open(&mut buf) {
            Ok((typ, range)) => Some((typ, buf[range].to_vec())),
            Err(_) => None,
        }
    }
}
