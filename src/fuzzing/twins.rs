//! Two record layers fed one byte stream, for the differential fuzz target.
//!
//! A [`Twins`] holds two engines of ours on the same side, one on the native record layer
//! and one on rustls's, each after a handshake with its own rustls peer. The handshakes are
//! made deterministic ([`deterministic`], [`reseed`]): every random byte comes from a
//! seeded generator and the key exchange is a stand-in whose shared secret is a function
//! of both public values. rustls's real key schedule then derives the same traffic keys
//! for both pairs, so one forged byte stream is valid (or equally invalid) for both
//! engines, and what each seals in reply is byte for byte comparable.
//!
//! The stand-in key exchange is not cryptography and exists only here: what is under test
//! is the record layer after the handshake, and it sees real rustls secrets.

use std::cell::Cell;
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, MessageDecrypter, MessageEncrypter, OutboundChunks,
    OutboundPlainMessage,
};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::{
    ClientConfig, ConnectionTrafficSecrets, ContentType, Error as TlsError, NamedGroup,
    ProtocolVersion, ServerConfig, SupportedCipherSuite,
};

use super::{drain, feed};
use crate::RecordLayer;
use crate::engine::{HandshakeStatus, ReadStatus, TestEngine};

/// Rounds of flights a twin handshake may take.
const MAX_ROUNDS: usize = 20;

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(0) };
}

/// Restarts the deterministic generator behind [`deterministic`] providers on this thread.
pub fn reseed(seed: u64) {
    SEED.with(|s| s.set(seed));
}

fn next_random() -> u64 {
    // splitmix64: the state only has to repeat exactly, not to be secret.
    SEED.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[derive(Debug)]
struct SeededRandom;

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&next_random().to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// Named X25519 so that both TLS versions take it; its shared secret is the XOR of the
/// two public values, which both ends compute alike.
#[derive(Debug)]
struct StandInKx;

struct StandInShare([u8; 32]);

impl SupportedKxGroup for StandInKx {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, TlsError> {
        let mut public = [0u8; 32];
        SeededRandom
            .fill(&mut public)
            .map_err(|_| TlsError::FailedToGetRandomBytes)?;
        Ok(Box::new(StandInShare(public)))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for StandInShare {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, TlsError> {
        if peer.len() != 32 {
            return Err(TlsError::from(rustls::PeerMisbehaved::InvalidKeyShare));
        }
        let secret: Vec<u8> = self.0.iter().zip(peer).map(|(a, b)| a ^ b).collect();
        Ok(SharedSecret::from(secret))
    }

    fn pub_key(&self) -> &[u8] {
        &self.0
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// `provider` with its randomness and key exchange replaced by the seeded stand-ins. Its
/// suites stay the very objects of `provider`, so the native layer still carries them.
pub fn deterministic(provider: CryptoProvider) -> CryptoProvider {
    static KX: StandInKx = StandInKx;
    static RANDOM: SeededRandom = SeededRandom;
    CryptoProvider {
        kx_groups: vec![&KX],
        secure_random: &RANDOM,
        ..provider
    }
}

/// A record our engine sent, as its peer opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An alert: level and description bytes.
    Alert(u8, u8),
    /// A TLS 1.3 KeyUpdate; `true` if it requested one back.
    KeyUpdate(bool),
    /// Application data of this length.
    Data(usize),
    /// Another record: its content type and length.
    Other(u8, usize),
}

/// How an engine's reads stand after a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Waiting for more input.
    Open,
    /// The peer's close_notify was read.
    PeerClosed,
    /// The read failed; the error's `Debug`.
    Failed(String),
}

/// What one engine did with a feed: plaintext delivered, where its reads ended, and what
/// it sealed in reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Plaintext delivered by this feed.
    pub delivered: Vec<u8>,
    /// Where the reads ended.
    pub end: End,
    /// The records it sent, in order.
    pub replies: Vec<Reply>,
}

/// The two kernel connections a forging peer may hold.
enum PeerKernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl PeerKernel {
    fn update_tx(&mut self) -> (u64, ConnectionTrafficSecrets) {
        match self {
            PeerKernel::Client(k) => k.update_tx_secret(),
            PeerKernel::Server(k) => k.update_tx_secret(),
        }
        .expect("peer: update tx secret")
    }

    fn update_rx(&mut self) -> (u64, ConnectionTrafficSecrets) {
        match self {
            PeerKernel::Client(k) => k.update_rx_secret(),
            PeerKernel::Server(k) => k.update_rx_secret(),
        }
        .expect("peer: update rx secret")
    }
}

/// One end of a twin pair seen from the other side: it seals what a fuzz input asks for
/// with the connection's real keys, and opens what our engine sends, checking the wire
/// invariants on the way.
struct Peer {
    kernel: PeerKernel,
    suite: SupportedCipherSuite,
    tls13: bool,
    /// TLS 1.2 GCM: each record carries its nonce.
    explicit_nonces: bool,
    seal: Box<dyn MessageEncrypter>,
    seal_seq: u64,
    open: Box<dyn MessageDecrypter>,
    open_seq: u64,
    /// Explicit nonces seen under the current receive key (TLS 1.2 GCM).
    nonces: std::collections::HashSet<[u8; 8]>,
    /// Our engine sent a fatal alert or close_notify: nothing may follow.
    closed: Option<Reply>,
    /// The secrets the handshake ended with, for the twins' identity check.
    fingerprint: Vec<u8>,
}

fn key_iv(s: &ConnectionTrafficSecrets) -> (&[u8], &[u8]) {
    match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key.as_ref(), iv.as_ref()),
        _ => panic!("harness: secrets of a suite the native layer does not carry"),
    }
}

fn into_key_iv(s: ConnectionTrafficSecrets) -> (AeadKey, Iv, bool) {
    match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (key, iv, false),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv, true),
        _ => panic!("harness: secrets of a suite the native layer does not carry"),
    }
}

fn encrypter(
    suite: SupportedCipherSuite,
    s: ConnectionTrafficSecrets,
) -> Box<dyn MessageEncrypter> {
    let (key, iv, _chacha) = into_key_iv(s);
    #[allow(unreachable_patterns)]
    match suite {
        SupportedCipherSuite::Tls13(t) => t.aead_alg.encrypter(key, iv),
        #[cfg(feature = "tls12")]
        SupportedCipherSuite::Tls12(t) if _chacha => t.aead_alg.encrypter(key, iv.as_ref(), &[]),
        // GCM: a 4-byte salt, and the explicit nonce's starting value.
        #[cfg(feature = "tls12")]
        SupportedCipherSuite::Tls12(t) => {
            t.aead_alg
                .encrypter(key, &iv.as_ref()[..4], &iv.as_ref()[4..])
        }
        _ => panic!("harness: a TLS 1.2 suite without the tls12 feature"),
    }
}

fn decrypter(
    suite: SupportedCipherSuite,
    s: ConnectionTrafficSecrets,
) -> Box<dyn MessageDecrypter> {
    let (key, iv, _chacha) = into_key_iv(s);
    #[allow(unreachable_patterns)]
    match suite {
        SupportedCipherSuite::Tls13(t) => t.aead_alg.decrypter(key, iv),
        #[cfg(feature = "tls12")]
        SupportedCipherSuite::Tls12(t) if _chacha => t.aead_alg.decrypter(key, iv.as_ref()),
        #[cfg(feature = "tls12")]
        SupportedCipherSuite::Tls12(t) => t.aead_alg.decrypter(key, &iv.as_ref()[..4]),
        _ => panic!("harness: a TLS 1.2 suite without the tls12 feature"),
    }
}

impl Peer {
    fn new(kernel: PeerKernel, secrets: rustls::ExtractedSecrets) -> Peer {
        let (suite, version) = match &kernel {
            PeerKernel::Client(k) => (k.negotiated_cipher_suite(), k.protocol_version()),
            PeerKernel::Server(k) => (k.negotiated_cipher_suite(), k.protocol_version()),
        };
        let (seal_seq, tx) = secrets.tx;
        let (open_seq, rx) = secrets.rx;
        let mut fingerprint = Vec::new();
        for (seq, s) in [(seal_seq, &tx), (open_seq, &rx)] {
            fingerprint.extend_from_slice(&seq.to_be_bytes());
            let (key, iv) = key_iv(s);
            fingerprint.extend_from_slice(key);
            fingerprint.extend_from_slice(iv);
        }
        let tls13 = version == ProtocolVersion::TLSv1_3;
        let explicit_nonces =
            !tls13 && !matches!(tx, ConnectionTrafficSecrets::Chacha20Poly1305 { .. });
        let mut seal = encrypter(suite, tx);
        // aws-lc's TLS 1.2 GCM sealing key wants its sequence numbers from 0, one by one.
        for seq in 0..seal_seq {
            seal.encrypt(plain(ContentType::ApplicationData, &[]), seq)
                .expect("peer: seal");
        }
        Peer {
            open: decrypter(suite, rx),
            seal,
            kernel,
            suite,
            tls13,
            explicit_nonces,
            seal_seq,
            open_seq,
            nonces: Default::default(),
            closed: None,
            fingerprint,
        }
    }

    /// One record of `typ` carrying `payload`, sealed under the current key. On TLS 1.3
    /// `typ` becomes the inner type byte after `payload` (so `Unknown(0)` makes the tail of
    /// `payload` padding).
    fn seal(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        let sealed = self
            .seal
            .encrypt(plain(typ, payload), self.seal_seq)
            .expect("peer: seal");
        self.seal_seq += 1;
        sealed.encode()
    }

    /// Our sending key moves on (after a KeyUpdate was sealed).
    fn rekey_tx(&mut self) {
        let (seq, secrets) = self.kernel.update_tx();
        self.seal = encrypter(self.suite, secrets);
        self.seal_seq = seq;
    }

    /// Opens every record in `wire` (our engine's output), checking that nothing follows
    /// a fatal alert or close_notify and that no nonce repeats under one key.
    fn open_all(&mut self, mut wire: &[u8]) -> Vec<Reply> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            assert!(wire.len() >= 5, "our engine sent a partial record header");
            let len = 5 + usize::from(u16::from_be_bytes([wire[3], wire[4]]));
            assert!(wire.len() >= len, "our engine sent a partial record");
            let (record, rest) = wire.split_at(len);
            wire = rest;
            if let Some(last) = &self.closed {
                panic!("our engine sent a record after {last:?}");
            }
            if self.explicit_nonces {
                let explicit: [u8; 8] = record[5..13].try_into().expect("explicit nonce");
                assert!(
                    self.nonces.insert(explicit),
                    "our engine repeated a TLS 1.2 nonce under one key"
                );
            }
            let mut body = record[5..].to_vec();
            let typ = ContentType::from(record[0]);
            let opaque = InboundOpaqueMessage::new(typ, ProtocolVersion::TLSv1_2, &mut body);
            // Records open only in sequence: a repeated or skipped sequence number under
            // one key fails here.
            let opened = self
                .open
                .decrypt(opaque, self.open_seq)
                .unwrap_or_else(|e| panic!("our engine sent a record its peer cannot open: {e}"));
            self.open_seq += 1;
            let payload = opened.payload.to_vec();
            let reply = match opened.typ {
                ContentType::Alert if payload.len() == 2 => Reply::Alert(payload[0], payload[1]),
                ContentType::Handshake if self.tls13 && payload.first() == Some(&24) => {
                    let (seq, secrets) = self.kernel.update_rx();
                    self.open = decrypter(self.suite, secrets);
                    self.open_seq = seq;
                    self.nonces.clear();
                    Reply::KeyUpdate(payload.get(4) == Some(&1))
                }
                ContentType::ApplicationData => Reply::Data(payload.len()),
                other => Reply::Other(u8::from(other), payload.len()),
            };
            if matches!(reply, Reply::Alert(2, _) | Reply::Alert(_, 0)) {
                self.closed = Some(reply.clone());
            }
            out.push(reply);
        }
        out
    }
}

fn plain(typ: ContentType, payload: &[u8]) -> OutboundPlainMessage<'_> {
    OutboundPlainMessage {
        typ,
        version: ProtocolVersion::TLSv1_2,
        payload: OutboundChunks::Single(payload),
    }
}

/// rustls's unbuffered connections of either side, for one handshake driver.
trait PeerConn {
    type Data;
    fn process<'c, 'i>(&'c mut self, rx: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn handshaking(&self) -> bool;
}

impl PeerConn for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, rx: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(rx)
    }
    fn handshaking(&self) -> bool {
        self.is_handshaking()
    }
}

impl PeerConn for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, rx: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(rx)
    }
    fn handshaking(&self) -> bool {
        self.is_handshaking()
    }
}

/// Runs the peer as far as `rx` allows, appending its flights to `out`. `None` if it
/// failed; `Some(true)` once its handshake is complete.
fn pump<C: PeerConn>(conn: &mut C, rx: &mut Vec<u8>, out: &mut Vec<u8>) -> Option<bool> {
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..64 {
        let UnbufferedStatus { discard, state } = conn.process(rx);
        let (wrote, blocked) = match state.ok()? {
            ConnectionState::EncodeTlsData(mut e) => (e.encode(&mut buf).ok()?, false),
            ConnectionState::TransmitTlsData(t) => {
                t.done();
                (0, false)
            }
            ConnectionState::ReadTraffic(mut r) => {
                while let Some(record) = r.next_record() {
                    record.ok()?;
                }
                (0, false)
            }
            ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => (0, true),
            _ => return None,
        };
        out.extend_from_slice(&buf[..wrote]);
        rx.drain(..discard);
        if blocked && discard == 0 {
            return Some(!conn.handshaking());
        }
    }
    None
}

/// Our engine and its peer connection, driven until both completed the handshake.
fn handshake<C: PeerConn>(engine: &mut TestEngine, conn: &mut C) -> Option<()> {
    let (mut peer_rx, mut peer_out) = (Vec::new(), Vec::new());
    for _ in 0..MAX_ROUNDS {
        let ours = engine.drive_handshake().ok()?;
        let n = engine.tx().len();
        peer_rx.extend_from_slice(engine.tx().data());
        engine.tx().consume(n);
        let peer_done = pump(conn, &mut peer_rx, &mut peer_out)?;
        feed(engine, &peer_out);
        peer_out.clear();
        if ours == HandshakeStatus::Done && peer_done && peer_rx.is_empty() {
            return Some(());
        }
    }
    None
}

/// One engine of ours and its peer after a deterministic handshake.
fn twin(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    ours_client: bool,
    layer: RecordLayer,
    seed: u64,
) -> Option<(TestEngine, Peer)> {
    reseed(seed);
    let name = ServerName::try_from("localhost").ok()?;
    if ours_client {
        let mut engine = TestEngine::client(client.clone(), name, layer).ok()?;
        let mut conn = UnbufferedServerConnection::new(server.clone()).ok()?;
        handshake(&mut engine, &mut conn)?;
        let (secrets, kernel) = conn.dangerous_into_kernel_connection().ok()?;
        Some((engine, Peer::new(PeerKernel::Server(kernel), secrets)))
    } else {
        let mut engine = TestEngine::server(server.clone(), layer).ok()?;
        let mut conn = UnbufferedClientConnection::new(client.clone(), name).ok()?;
        handshake(&mut engine, &mut conn)?;
        let (secrets, kernel) = conn.dangerous_into_kernel_connection().ok()?;
        Some((engine, Peer::new(PeerKernel::Client(kernel), secrets)))
    }
}

/// Our native and rustls record layers, each with its peer, holding the same keys.
pub struct Twins {
    engines: [TestEngine; 2],
    peers: [Peer; 2],
    /// Whether each engine failed (its alert was collected then).
    failed: [bool; 2],
}

impl std::fmt::Debug for Twins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twins").finish_non_exhaustive()
    }
}

impl Twins {
    /// Runs both handshakes from `seed`. The configs must use [`deterministic`]
    /// providers. `None` if they cannot agree; panics if the twins ended with different
    /// keys (the harness would compare nonsense).
    pub fn new(
        client: &Arc<ClientConfig>,
        server: &Arc<ServerConfig>,
        ours_client: bool,
        seed: u64,
    ) -> Option<Twins> {
        let (native, p1) = twin(client, server, ours_client, RecordLayer::Native, seed)?;
        let (rustls, p2) = twin(client, server, ours_client, RecordLayer::Rustls, seed)?;
        assert_eq!(
            p1.fingerprint, p2.fingerprint,
            "harness: the twin handshakes ended with different keys"
        );
        let layers = [
            native.info_ref()?.record_layer,
            rustls.info_ref()?.record_layer,
        ];
        assert_eq!(
            layers,
            [RecordLayer::Native, RecordLayer::Rustls],
            "harness: the twins do not use the two record layers"
        );
        Some(Twins {
            engines: [native, rustls],
            peers: [p1, p2],
            failed: [false; 2],
        })
    }

    /// Whether the connection is TLS 1.3.
    pub fn tls13(&self) -> bool {
        self.peers[0].tls13
    }

    /// The peer seals one record (see [`Peer::seal`]); the second peer keeps in step.
    pub fn seal(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        let wire = self.peers[0].seal(typ, payload);
        let again = self.peers[1].seal(typ, payload);
        debug_assert_eq!(wire, again);
        wire
    }

    /// The peer's sending key moves on, after it sealed a KeyUpdate (TLS 1.3).
    pub fn peer_rekey(&mut self) {
        for peer in &mut self.peers {
            peer.rekey_tx();
        }
    }

    /// Gives `bytes` to both engines and reads all they deliver.
    pub fn feed(&mut self, bytes: &[u8]) -> [Observed; 2] {
        std::array::from_fn(|i| {
            feed(&mut self.engines[i], bytes);
            self.observe(i)
        })
    }

    /// Both engines seal `data` (the application writing), then report their replies.
    pub fn write(&mut self, data: &[u8]) -> [Observed; 2] {
        std::array::from_fn(|i| {
            let engine = &mut self.engines[i];
            let end = match engine.write(&[std::io::IoSlice::new(data)]) {
                Ok(_) => End::Open,
                Err(e) => {
                    self.failed[i] = true;
                    engine.collect_alert();
                    End::Failed(format!("{e:?}"))
                }
            };
            let replies = self.replies(i);
            Observed {
                delivered: Vec::new(),
                end,
                replies,
            }
        })
    }

    /// Both engines send close_notify.
    pub fn close(&mut self) -> [Observed; 2] {
        std::array::from_fn(|i| {
            let end = match self.engines[i].close_notify() {
                Ok(()) => End::Open,
                Err(e) => End::Failed(format!("{e:?}")),
            };
            let replies = self.replies(i);
            Observed {
                delivered: Vec::new(),
                end,
                replies,
            }
        })
    }

    fn observe(&mut self, i: usize) -> Observed {
        let mut delivered = Vec::new();
        let end = match drain(&mut self.engines[i], &mut delivered) {
            Ok(ReadStatus::PeerClosed) => End::PeerClosed,
            Ok(_) => End::Open,
            Err(e) => {
                if !self.failed[i] {
                    // What the stream does on a failure: rustls's alert is collected.
                    self.engines[i].collect_alert();
                }
                self.failed[i] = true;
                End::Failed(e)
            }
        };
        if std::env::var_os("DIFF_TRACE").is_some() {
            eprintln!(
                "engine {i}: {} bytes still buffered after the reads",
                self.engines[i].rx_len()
            );
        }
        let replies = self.replies(i);
        Observed {
            delivered,
            end,
            replies,
        }
    }

    fn replies(&mut self, i: usize) -> Vec<Reply> {
        let tx = self.engines[i].tx();
        let n = tx.len();
        let wire = tx.data().to_vec();
        tx.consume(n);
        self.peers[i].open_all(&wire)
    }
}
