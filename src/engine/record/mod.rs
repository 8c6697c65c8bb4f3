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
    AlertDescription, ConnectionTrafficSecrets, ContentType, Error as TlsError, ProtocolVersion,
    SupportedCipherSuite,
};

#[cfg(any(test, fuzzing, feature = "fuzz-targets"))]
use super::aead::Algorithm;
use super::aead::Cipher;
use super::buffers::{MAX_PLAINTEXT, Window};
use crate::error::{Error, Invariant};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod messages;
mod open;
mod rejection;
mod seal;

pub(crate) use open::Opener;
pub(crate) use seal::Sealer;

const HEADER_LEN: usize = 5;
const EXPLICIT_NONCE_LEN: usize = 8;
/// The largest ciphertext a TLS 1.3 record may carry (RFC 8446, 5.2).
const MAX_CIPHERTEXT_TLS13: usize = MAX_PLAINTEXT + 256;
/// The largest ciphertext length a TLS 1.2 record header may declare. RFC 5246, 6.2.3
/// allows 2^14 + 2048; rustls's deframer refuses that length itself, from the header, and
/// so does the native layer, so that the two judge every header alike. No AEAD record
/// comes near it (2^14 + 24 at most).
const MAX_CIPHERTEXT_TLS12: usize = MAX_PLAINTEXT + 2048 - 1;
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
    /// A TLS 1.2 client taken over from rustls's buffered connection, which has no kernel
    /// connection. TLS 1.2 has no post-handshake message that needs rustls: no KeyUpdate,
    /// no ticket after the handshake, and renegotiation is refused here.
    Tls12Client,
}

impl Kernel {
    fn update_tx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), TlsError> {
        match self {
            Kernel::Client(k) => k.update_tx_secret(),
            Kernel::Server(k) => k.update_tx_secret(),
            Kernel::Tls12Client => Err(TlsError::HandshakeNotComplete),
        }
    }

    fn update_rx(&mut self) -> Result<(u64, ConnectionTrafficSecrets), TlsError> {
        match self {
            Kernel::Client(k) => k.update_rx_secret(),
            Kernel::Server(k) => k.update_rx_secret(),
            Kernel::Tls12Client => Err(TlsError::HandshakeNotComplete),
        }
    }
}

/// The outcome of [`Native::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadStep {
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
        let unsupported = || Error::from(Invariant::UnsupportedSuite);
        let framing = framing_for(suite).ok_or_else(unsupported)?;
        if (framing == Framing::Tls13) != (version == ProtocolVersion::TLSv1_3) {
            return Err(unsupported());
        }
        let (tx_seq, tx_secrets) = secrets.tx;
        let (rx_seq, rx_secrets) = secrets.rx;
        let tx_cipher = Cipher::new(&tx_secrets).ok_or_else(unsupported)?;
        let rx_cipher = Cipher::new(&rx_secrets).ok_or_else(unsupported)?;
        let limit = confidentiality_limit(suite);
        let client = matches!(kernel, Kernel::Client(_) | Kernel::Tls12Client);
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

    /// Takes over a TLS 1.2 client from rustls's buffered connection once its handshake
    /// is complete, nothing of it is left to send, and no record after the handshake
    /// reached it (see `engine/buffered.rs`).
    pub(crate) fn from_buffered_tls12(conn: rustls::ClientConnection) -> Result<Native, Error> {
        let (suite, version) = negotiated(&conn)?;
        if version != ProtocolVersion::TLSv1_2 {
            return Err(Invariant::UnsupportedSuite.into());
        }
        // The buffered connection has no `dangerous_into_kernel_connection`; what the
        // deprecation warns of (tickets and key updates after the handshake) does not
        // exist in TLS 1.2.
        #[allow(deprecated)]
        let secrets = conn.dangerous_extract_secrets()?;
        Native::new(Kernel::Tls12Client, suite, version, secrets)
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
    ) -> Result<ReadStep, Error> {
        let mut requests = Requests::default();
        let read = self.rx.read(rx, out, out_n, &mut requests);
        let answered = self.tx.answer(tx, requests);
        let status = read?;
        answered.map(|()| status)
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

/// Moves one direction to the secrets of a key update, with its new sequence number.
fn rekey(
    cipher: &mut Cipher,
    seq_slot: &mut u64,
    seq: u64,
    secrets: &ConnectionTrafficSecrets,
) -> Result<(), TlsError> {
    let new = Cipher::new(secrets).ok_or(Invariant::UnsupportedKeyUpdate)?;
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
#[cfg(any(test, fuzzing, feature = "fuzz-targets"))]
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

#[cfg(any(test, fuzzing, feature = "fuzz-targets"))]
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
