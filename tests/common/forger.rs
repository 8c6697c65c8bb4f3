//! A forging peer: it completes a real handshake with rustls's unbuffered API, takes the
//! keys with `dangerous_into_kernel_connection`, and then seals any content type under
//! TLS 1.2 or 1.3 with the connection's own keys, following key updates both ways
//! ([`forged_server`], [`forged_client`]).
//!
//! A forger can also take over the record layer of a tokio-rustls connection after its
//! handshake ([`Forger::take_over`], with `dangerous_extract_secrets`), for tests that
//! compare what our end and rustls make of the same forged records. Such a forger has no
//! kernel connection, so it cannot follow a key update: forging one, or receiving one,
//! fails the test.
//!
//! Reading what our end sends, it checks two wire invariants on every record, so each
//! test that reads through it gets them for free (a violation fails the test):
//!
//! - nothing follows a fatal alert or a close_notify from our end;
//! - no nonce repeats under one key. TLS 1.2 AES-GCM carries an explicit nonce: each must
//!   be unique within the key. Elsewhere (TLS 1.3, ChaCha20-Poly1305) the nonce is the
//!   sequence number: records must open under strictly consecutive sequence numbers from
//!   the start of their key epoch (a KeyUpdate starts a new epoch).

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lazytls::rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use lazytls::rustls::crypto::cipher::{
    InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use lazytls::rustls::kernel::KernelConnection;
use lazytls::rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use lazytls::rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use lazytls::rustls::{
    self, AlertDescription, ClientConfig, ConnectionTrafficSecrets, ContentType, ProtocolVersion,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::{Pki, localhost, tcp_pair};

/// The one protocol version a forged connection runs under.
pub type Version = &'static [&'static SupportedProtocolVersion];

pub fn is_tls13(v: Version) -> bool {
    v[0].version == ProtocolVersion::TLSv1_3
}

/// Alert levels, for [`Forger::alert`] and [`Sent::Alert`].
pub const FATAL: u8 = 2;
pub const WARNING: u8 = 1;

// =======================================================================================
// Transports
// =======================================================================================

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type BoxIo = Box<dyn Io>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Duplex,
    /// A duplex pipe whose shutdown on our end only flushes (see [`KeepOpen`]).
    KeepOpen,
}

pub const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::Duplex];

/// Two connected ends: (ours, the forging peer's).
pub async fn connected(t: Transport) -> (BoxIo, BoxIo) {
    match t {
        Transport::Tcp => {
            let (ours, theirs) = tcp_pair().await;
            ours.set_nodelay(true).unwrap();
            theirs.set_nodelay(true).unwrap();
            (Box::new(ours), Box::new(theirs))
        }
        Transport::Duplex => {
            let (a, b) = tokio::io::duplex(256 * 1024);
            (Box::new(a), Box::new(b))
        }
        Transport::KeepOpen => {
            let (a, b) = tokio::io::duplex(256 * 1024);
            (Box::new(KeepOpen(a)), Box::new(b))
        }
    }
}

/// Our end's transport with a shutdown that only flushes. A real shutdown makes later
/// writes fail before they reach the wire, which would hide a record sealed after our
/// close_notify or fatal alert; here the forger receives it and its checks see it. The
/// forger gets EOF when our end is dropped.
pub struct KeepOpen<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for KeepOpen<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for KeepOpen<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
}

// =======================================================================================
// The handshake
// =======================================================================================

/// rustls's two unbuffered connections, for one handshake driver.
trait Raw {
    type Data;
    fn process<'c, 'i>(&'c mut self, rx: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn handshaking(&self) -> bool;
}

impl Raw for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, rx: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(rx)
    }
    fn handshaking(&self) -> bool {
        self.is_handshaking()
    }
}

impl Raw for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, rx: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(rx)
    }
    fn handshaking(&self) -> bool {
        self.is_handshaking()
    }
}

enum Step {
    Send(usize),
    Flush,
    Read,
    Done,
    Again,
}

/// Drives an unbuffered connection through its handshake over `io`.
async fn raw_handshake<C: Raw>(conn: &mut C, io: &mut BoxIo) {
    let mut rx = vec![0u8; 1 << 17];
    let mut rx_len = 0;
    let mut tx = vec![0u8; 1 << 17];
    for _ in 0..10_000 {
        let UnbufferedStatus { discard, state } = conn.process(&mut rx[..rx_len]);
        let step = match state.expect("the forging peer's handshake failed") {
            ConnectionState::EncodeTlsData(mut e) => Step::Send(e.encode(&mut tx).unwrap()),
            ConnectionState::TransmitTlsData(t) => {
                t.done();
                Step::Flush
            }
            ConnectionState::BlockedHandshake => Step::Read,
            ConnectionState::WriteTraffic(_) => Step::Done,
            ConnectionState::ReadTraffic(mut r) => {
                while let Some(record) = r.next_record() {
                    record.unwrap();
                }
                Step::Again
            }
            other => panic!("forging peer: unexpected state {other:?}"),
        };
        rx.copy_within(discard..rx_len, 0);
        rx_len -= discard;
        match step {
            Step::Send(n) => io.write_all(&tx[..n]).await.unwrap(),
            Step::Flush => io.flush().await.unwrap(),
            Step::Done if !conn.handshaking() => {
                assert_eq!(rx_len, 0, "bytes after the peer's last flight");
                return;
            }
            Step::Read | Step::Done => {
                let n = io.read(&mut rx[rx_len..]).await.unwrap();
                assert!(n > 0, "EOF during the forging peer's handshake");
                rx_len += n;
            }
            Step::Again => {}
        }
    }
    panic!("the forging peer's handshake did not settle");
}

fn key_iv(
    s: ConnectionTrafficSecrets,
) -> (
    rustls::crypto::cipher::AeadKey,
    rustls::crypto::cipher::Iv,
    bool,
) {
    match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (key, iv, false),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv, true),
        _ => panic!("secrets of an unexpected suite"),
    }
}

fn encrypter(
    suite: SupportedCipherSuite,
    s: ConnectionTrafficSecrets,
) -> Box<dyn MessageEncrypter> {
    let (key, iv, chacha) = key_iv(s);
    match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.encrypter(key, iv),
        SupportedCipherSuite::Tls12(s) if chacha => s.aead_alg.encrypter(key, iv.as_ref(), &[]),
        // GCM: a 4-byte salt, and the explicit nonce's starting value.
        SupportedCipherSuite::Tls12(s) => {
            s.aead_alg
                .encrypter(key, &iv.as_ref()[..4], &iv.as_ref()[4..])
        }
    }
}

fn decrypter(
    suite: SupportedCipherSuite,
    s: ConnectionTrafficSecrets,
) -> Box<dyn MessageDecrypter> {
    let (key, iv, chacha) = key_iv(s);
    match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.decrypter(key, iv),
        SupportedCipherSuite::Tls12(s) if chacha => s.aead_alg.decrypter(key, iv.as_ref()),
        SupportedCipherSuite::Tls12(s) => s.aead_alg.decrypter(key, &iv.as_ref()[..4]),
    }
}

// =======================================================================================
// The forger
// =======================================================================================

/// What our end sent the forging peer after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Alert(u8, AlertDescription),
    KeyUpdate,
    Data(usize),
    Other(ContentType),
}

/// The record header's length field plus the header: a record's size on the wire.
fn wire_len(header: &[u8]) -> usize {
    5 + usize::from(u16::from_be_bytes([header[3], header[4]]))
}

/// What the wire checks remember about our end's records so far.
#[derive(Default)]
struct WireCheck {
    /// Records read from our end.
    records: usize,
    /// The close_notify or fatal alert after which our end must send nothing.
    last_word: Option<Sent>,
    /// Receive key epochs so far (one per KeyUpdate of ours), the sequence number the
    /// current one started at, and the records opened under it.
    epoch: usize,
    epoch_start: u64,
    opened_in_epoch: u64,
    /// TLS 1.2 AES-GCM: the explicit nonces seen under the current key.
    explicit_nonces: HashSet<[u8; 8]>,
    violations: Vec<String>,
}

/// A peer that completed a real handshake and then seals whatever the test asks for with
/// the connection's own keys, following key updates both ways (when it has a kernel
/// connection).
pub struct Forger<D> {
    pub io: BoxIo,
    /// `None` for a taken-over tokio-rustls connection ([`Forger::take_over`]).
    kernel: Option<KernelConnection<D>>,
    suite: SupportedCipherSuite,
    tls13: bool,
    /// Our end's records carry an explicit nonce (TLS 1.2 AES-GCM).
    explicit_nonce: bool,
    seal: Box<dyn MessageEncrypter>,
    seal_seq: u64,
    open: Box<dyn MessageDecrypter>,
    open_seq: u64,
    /// Bytes from our end that do not make a whole record yet.
    rx: Vec<u8>,
    wire: WireCheck,
}

/// The connection data type of a forger that took over a tokio-rustls connection (see
/// [`Forger::take_over`]): it has no kernel connection.
pub enum TakenOver {}

impl Forger<TakenOver> {
    /// Takes over the record layer of a tokio-rustls connection after its handshake
    /// (`enable_secret_extraction` must be set in its config): seals with the connection's
    /// send keys, opens what our end sends with its receive keys, and checks the same wire
    /// invariants. It cannot follow key updates.
    pub fn take_over(io: BoxIo, conn: rustls::Connection) -> Forger<TakenOver> {
        let suite = conn
            .negotiated_cipher_suite()
            .expect("a connection past its handshake has a suite");
        let version = conn.protocol_version().expect("a negotiated version");
        let secrets = conn
            .dangerous_extract_secrets()
            .expect("extract the sender's secrets");
        Forger::keyed(io, secrets, suite, version, None)
    }
}

impl<D> Forger<D> {
    fn new(io: BoxIo, secrets: rustls::ExtractedSecrets, kernel: KernelConnection<D>) -> Forger<D> {
        let suite = kernel.negotiated_cipher_suite();
        let version = kernel.protocol_version();
        Forger::keyed(io, secrets, suite, version, Some(kernel))
    }

    fn keyed(
        io: BoxIo,
        secrets: rustls::ExtractedSecrets,
        suite: SupportedCipherSuite,
        version: ProtocolVersion,
        kernel: Option<KernelConnection<D>>,
    ) -> Forger<D> {
        let tls13 = version == ProtocolVersion::TLSv1_3;
        let (seal_seq, tx) = secrets.tx;
        let (open_seq, rx) = secrets.rx;
        let explicit_nonce =
            !tls13 && !matches!(rx, ConnectionTrafficSecrets::Chacha20Poly1305 { .. });
        let mut seal = encrypter(suite, tx);
        // aws-lc's GCM sealing keys (TLS 1.2, and TLS 1.3) check that their sequence
        // numbers start at 0 and go up by one: use the ones the handshake already spent.
        for seq in 0..seal_seq {
            let msg = OutboundPlainMessage {
                typ: ContentType::ApplicationData,
                version: ProtocolVersion::TLSv1_2,
                payload: OutboundChunks::Single(&[]),
            };
            seal.encrypt(msg, seq).expect("seal");
        }
        Forger {
            io,
            seal,
            open: decrypter(suite, rx),
            kernel,
            suite,
            tls13,
            explicit_nonce,
            seal_seq,
            open_seq,
            rx: Vec::new(),
            wire: WireCheck {
                epoch_start: open_seq,
                ..WireCheck::default()
            },
        }
    }

    pub fn is_tls13(&self) -> bool {
        self.tls13
    }

    /// One record of `typ` carrying `payload` (any length, even 0).
    pub fn record(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        let msg = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(payload),
        };
        let sealed = self.seal.encrypt(msg, self.seal_seq).expect("seal");
        self.seal_seq += 1;
        sealed.encode()
    }

    pub fn data(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.record(ContentType::ApplicationData, bytes)
    }

    /// One TLS 1.3 record whose inner plaintext is exactly `inner`: content, content type,
    /// then any padding, as given (even without a non-zero type byte). rustls's sealer
    /// appends the message type as the inner plaintext's last byte, so everything but
    /// `inner`'s last byte goes in the payload, sealed as that last byte's type.
    pub fn inner_plaintext(&mut self, inner: &[u8]) -> Vec<u8> {
        assert!(self.tls13, "an inner plaintext is TLS 1.3 only");
        let (last, content) = inner.split_last().expect("an inner plaintext has a type");
        self.record(ContentType::from(*last), content)
    }

    /// A TLS 1.3 application record whose inner plaintext is `content`, its type byte and
    /// `padding` zeros (see [`Forger::inner_plaintext`]).
    pub fn padded_data(&mut self, content: &[u8], padding: usize) -> Vec<u8> {
        assert!(self.tls13, "padding is TLS 1.3 only");
        if padding == 0 {
            return self.data(content);
        }
        let mut inner = content.to_vec();
        inner.push(u8::from(ContentType::ApplicationData));
        inner.resize(inner.len() + padding, 0);
        self.inner_plaintext(&inner)
    }

    pub fn alert(&mut self, level: u8, desc: AlertDescription) -> Vec<u8> {
        self.record(ContentType::Alert, &[level, u8::from(desc)])
    }

    pub fn close_notify(&mut self) -> Vec<u8> {
        self.alert(1, AlertDescription::CloseNotify)
    }

    /// A TLS 1.3 KeyUpdate, then our sending key moves on.
    pub fn key_update(&mut self, request: bool) -> Vec<u8> {
        let wire = self.record(ContentType::Handshake, &[24, 0, 0, 1, u8::from(request)]);
        let (seq, secrets) = self
            .kernel
            .as_mut()
            .expect("a taken-over connection cannot follow a key update")
            .update_tx_secret()
            .expect("update tx");
        self.seal = encrypter(self.suite, secrets);
        self.seal_seq = seq;
        wire
    }

    /// Reads what our end sends until EOF (it fails and shuts the transport down, or the
    /// test shuts it down or drops it), opening each record; follows our end's
    /// KeyUpdates. Fails the test if our end broke a wire invariant.
    pub async fn read_to_eof(&mut self) -> Vec<Sent> {
        self.read_records(usize::MAX).await
    }

    /// Like [`Forger::read_to_eof`], but returns once `n` records have been read (or at
    /// EOF, with fewer).
    pub async fn read_records(&mut self, n: usize) -> Vec<Sent> {
        match self.read_records_checked(n).await {
            Ok(sent) => sent,
            Err(broken) => panic!("{broken}"),
        }
    }

    /// [`Forger::read_to_eof`] that returns a broken wire invariant as an error (with
    /// what was read), for a test that reports every case before it fails.
    pub async fn read_to_eof_checked(&mut self) -> Result<Vec<Sent>, String> {
        self.read_records_checked(usize::MAX).await
    }

    /// The first alert our end sends (any level), if one comes before EOF or `limit`.
    /// Reads on to EOF (within `limit`), so that every record is checked as by
    /// [`Forger::read_to_eof`]; fails the test if our end broke a wire invariant.
    pub async fn first_alert_within(&mut self, limit: Duration) -> Option<AlertDescription> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut first = None;
        // Each turn reads at least one byte, or ends.
        loop {
            while let Some(sent) = self.next_record() {
                if let (None, Sent::Alert(_, desc)) = (first, &sent) {
                    first = Some(*desc);
                }
            }
            match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.rx.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        if let Err(broken) = self.wire_verdict(&[]) {
            panic!("{broken}");
        }
        first
    }

    /// `Err` if our end broke a wire invariant so far (with the last of `read`).
    fn wire_verdict(&self, read: &[Sent]) -> Result<(), String> {
        let bad = &self.wire.violations;
        if bad.is_empty() {
            return Ok(());
        }
        let tail = &read[read.len().saturating_sub(8)..];
        Err(format!(
            "our end broke a wire invariant {} time(s): {}; the last records read: {tail:?}",
            bad.len(),
            bad[..bad.len().min(8)].join("; "),
        ))
    }

    async fn read_records_checked(&mut self, n: usize) -> Result<Vec<Sent>, String> {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            while out.len() < n {
                match self.next_record() {
                    Some(sent) => out.push(sent),
                    None => break,
                }
            }
            if out.len() >= n {
                break;
            }
            let got = self.io.read(&mut chunk).await.unwrap_or(0);
            if got == 0 {
                break;
            }
            self.rx.extend_from_slice(&chunk[..got]);
        }
        self.wire_verdict(&out).map(|()| out)
    }

    /// Opens the next whole buffered record of our end's, if there is one, and checks it.
    fn next_record(&mut self) -> Option<Sent> {
        if self.rx.len() < 5 || self.rx.len() < wire_len(&self.rx) {
            return None;
        }
        let len = wire_len(&self.rx);
        let mut record: Vec<u8> = self.rx.drain(..len).collect();
        let index = self.wire.records;
        self.wire.records += 1;
        if let Some(last) = &self.wire.last_word {
            self.wire.violations.push(format!(
                "record {index} (type {}, {len} bytes) follows our end's {last:?}",
                record[0]
            ));
        }
        if self.explicit_nonce && record.len() >= 13 {
            let mut nonce = [0u8; 8];
            nonce.copy_from_slice(&record[5..13]);
            if !self.wire.explicit_nonces.insert(nonce) {
                self.wire.violations.push(format!(
                    "record {index} repeats the explicit nonce {nonce:02x?} under one key"
                ));
            }
        }
        // Each record opens under the next sequence number of its epoch or not at all
        // (`unopenable` then tells a repeated nonce from skipped numbers).
        if self.open_seq != self.wire.epoch_start + self.wire.opened_in_epoch {
            self.wire.violations.push(format!(
                "record {index}: sequence number {} is not the next of key epoch {}",
                self.open_seq, self.wire.epoch
            ));
        }
        let sealed = record.clone();
        let typ = ContentType::from(record[0]);
        let opaque = InboundOpaqueMessage::new(typ, ProtocolVersion::TLSv1_2, &mut record[5..]);
        let plain = match self.open.decrypt(opaque, self.open_seq) {
            Ok(plain) => plain,
            Err(e) => panic!("{}", self.unopenable(index, &sealed, e)),
        };
        self.open_seq += 1;
        self.wire.opened_in_epoch += 1;
        let (typ, payload) = (plain.typ, plain.payload.to_vec());
        Some(match typ {
            ContentType::Alert if payload.len() == 2 => {
                let desc = AlertDescription::from(payload[1]);
                let sent = Sent::Alert(payload[0], desc);
                if payload[0] == 2 || desc == AlertDescription::CloseNotify {
                    self.wire.last_word.get_or_insert(sent.clone());
                }
                sent
            }
            ContentType::Handshake if payload.first() == Some(&24) && self.tls13 => {
                let Some(kernel) = self.kernel.as_mut() else {
                    panic!(
                        "record {index}: our end sent a KeyUpdate, which a taken-over \
                         connection cannot follow"
                    );
                };
                let (seq, secrets) = kernel.update_rx_secret().expect("update rx");
                self.open = decrypter(self.suite, secrets);
                self.open_seq = seq;
                self.wire.epoch += 1;
                self.wire.epoch_start = seq;
                self.wire.opened_in_epoch = 0;
                self.wire.explicit_nonces.clear();
                Sent::KeyUpdate
            }
            ContentType::ApplicationData => Sent::Data(payload.len()),
            other => Sent::Other(other),
        })
    }

    /// Why record `index` of our end's does not open under the next sequence number of
    /// its key epoch: under an earlier one (a repeated nonce), a later one (skipped
    /// sequence numbers), or none.
    fn unopenable(&mut self, index: usize, sealed: &[u8], e: rustls::Error) -> String {
        let (seq, epoch) = (self.open_seq, self.wire.epoch);
        let used = seq - self.wire.epoch_start;
        let mut opens_under = |s: u64| {
            let mut copy = sealed.to_vec();
            let typ = ContentType::from(copy[0]);
            let opaque = InboundOpaqueMessage::new(typ, ProtocolVersion::TLSv1_2, &mut copy[5..]);
            self.open.decrypt(opaque, s).is_ok()
        };
        if let Some(s) = (1..=used.min(16))
            .map(|back| seq - back)
            .find(|&s| opens_under(s))
        {
            return format!(
                "record {index} of our end's opens under sequence number {s}, already used in \
                 key epoch {epoch} (want {seq}): a repeated nonce"
            );
        }
        if let Some(s) = (1..=16).map(|ahead| seq + ahead).find(|&s| opens_under(s)) {
            return format!(
                "record {index} of our end's opens under sequence number {s} of key epoch \
                 {epoch}, want {seq}: sequence numbers skipped"
            );
        }
        format!(
            "our end sent record {index} that its peer cannot open under sequence number \
             {seq} of key epoch {epoch}: {e:?}"
        )
    }
}

/// Our client (on `layer`) and a forging server, handshaken over `t`.
pub async fn forged_server(
    pki: &Pki,
    v: Version,
    t: Transport,
    layer: RecordLayer,
    allow_truncation: bool,
) -> (Forger<ServerConnectionData>, TlsStream<BoxIo>) {
    let (ours, theirs) = connected(t).await;
    forged_server_over(pki, v, ours, theirs, layer, allow_truncation).await
}

/// Our client (on `layer`, over `ours`) and a forging server (over `theirs`), handshaken.
pub async fn forged_server_over(
    pki: &Pki,
    v: Version,
    ours: BoxIo,
    theirs: BoxIo,
    layer: RecordLayer,
    allow_truncation: bool,
) -> (Forger<ServerConnectionData>, TlsStream<BoxIo>) {
    let config = pki.client_config_with(v);
    forged_server_for(pki, v, config, ours, theirs, layer, allow_truncation).await
}

/// Our client on rustls's buffered connection (a config that enables early data) and a
/// forging server, handshaken over `t`. Its records are rustls's: `info()` says `Rustls`.
pub async fn forged_server_buffered(
    pki: &Pki,
    v: Version,
    t: Transport,
    allow_truncation: bool,
) -> (Forger<ServerConnectionData>, TlsStream<BoxIo>) {
    let (ours, theirs) = connected(t).await;
    let mut config = pki.client_config_with(v);
    config.enable_early_data = true;
    let layer = RecordLayer::Rustls;
    forged_server_for(pki, v, config, ours, theirs, layer, allow_truncation).await
}

async fn forged_server_for(
    pki: &Pki,
    v: Version,
    config: ClientConfig,
    ours: BoxIo,
    mut theirs: BoxIo,
    layer: RecordLayer,
    allow_truncation: bool,
) -> (Forger<ServerConnectionData>, TlsStream<BoxIo>) {
    let mut c = TlsConnector::new(Arc::new(config))
        .record_layer(layer)
        .allow_truncation(allow_truncation)
        .connect(localhost(), ours);
    let mut cfg = pki.server_config_with(v);
    cfg.enable_secret_extraction = true;
    let mut conn = UnbufferedServerConnection::new(Arc::new(cfg)).unwrap();
    let (rc, ()) = tokio::join!(c.handshake(), raw_handshake(&mut conn, &mut theirs));
    rc.unwrap();
    assert_eq!(c.info().unwrap().record_layer, layer);
    let (secrets, kernel) = conn.dangerous_into_kernel_connection().unwrap();
    (Forger::new(theirs, secrets, kernel), c)
}

/// Our server and a forging client, handshaken over `t`.
pub async fn forged_client(
    pki: &Pki,
    v: Version,
    t: Transport,
    layer: RecordLayer,
) -> (Forger<ClientConnectionData>, TlsStream<BoxIo>) {
    let (ours, mut theirs) = connected(t).await;
    let mut s = TlsAcceptor::new(Arc::new(pki.server_config_with(v)))
        .record_layer(layer)
        .accept(ours);
    let mut cfg = pki.client_config_with(v);
    cfg.enable_secret_extraction = true;
    let mut conn = UnbufferedClientConnection::new(Arc::new(cfg), localhost()).unwrap();
    let (rs, ()) = tokio::join!(s.handshake(), raw_handshake(&mut conn, &mut theirs));
    rs.unwrap();
    let (secrets, kernel) = conn.dangerous_into_kernel_connection().unwrap();
    (Forger::new(theirs, secrets, kernel), s)
}

/// A real ClientHello message (without its record header), for renegotiation attempts.
pub fn client_hello_message(pki: &Pki, v: Version) -> Vec<u8> {
    let mut conn =
        UnbufferedClientConnection::new(Arc::new(pki.client_config_with(v)), localhost()).unwrap();
    let mut tx = vec![0u8; 1 << 16];
    let UnbufferedStatus { state, .. } = conn.process_tls_records(&mut []);
    let ConnectionState::EncodeTlsData(mut e) = state.unwrap() else {
        panic!("no ClientHello");
    };
    let n = e.encode(&mut tx).unwrap();
    assert_eq!(tx[0], 22);
    tx[5..n].to_vec()
}
