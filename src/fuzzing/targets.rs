//! The logic of lazytls's fuzz targets, in one place for two users:
//!
//! - the cargo-fuzz binaries in `fuzz/fuzz_targets/`, through the `lazytls_fuzz` library
//!   (`fuzz/src/lib.rs`), which builds lazytls with the hidden `fuzz-targets` feature;
//! - the in-crate random-input tests in `src/fuzz_tests/`, so that plain `cargo test` runs
//!   the very same checks on a few thousand generated cases.
//!
//! Every entry point takes arbitrary bytes. It panics only when lazytls breaks a promise: a
//! panic inside lazytls, a valid stream that fails, delivered bytes that differ from what
//! was sent, an error that is not sticky, a lost wakeup, or unbounded polling.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use lazytls::fuzzing;
use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use lazytls::rustls::{
    self, ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};
use lazytls::{Error, RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

/// At most this many chunks are taken from one input.
pub const MAX_CHUNKS: usize = 64;
/// At most this many operations run on one live pair.
pub const MAX_OPS: usize = 256;
/// The largest transfer, per direction, in `io_schedule`.
pub const MAX_TRANSFER: usize = 48 * 1024;

// ---------------------------------------------------------------------------------------
// Configurations, built once per process
// ---------------------------------------------------------------------------------------

/// The provider lazytls was built with (aws-lc-rs first, as in the crate).
pub fn provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return rustls::crypto::ring::default_provider();
}

/// Client and server configurations for the targets: one pair allowing every version and
/// suite, and one pair per suite, so that inputs can pin each record framing.
pub struct FuzzConfigs {
    /// Every version and suite of the provider (ECDSA certificates), ALPN h2/http1.1.
    pub client: Arc<ClientConfig>,
    /// The server for `client`.
    pub server: Arc<ServerConfig>,
    /// One (client, server) pair per suite, in the provider's order.
    pub per_suite: Vec<(Arc<ClientConfig>, Arc<ServerConfig>)>,
}

/// The configurations, built on first use (rcgen key generation is slow).
pub fn configs() -> &'static FuzzConfigs {
    static CONFIGS: OnceLock<FuzzConfigs> = OnceLock::new();
    CONFIGS.get_or_init(build_configs)
}

/// The suites an ECDSA certificate can use.
pub fn ecdsa_suites() -> Vec<SupportedCipherSuite> {
    provider()
        .cipher_suites
        .into_iter()
        .filter(|s| !format!("{:?}", s.suite()).contains("_RSA_"))
        .collect()
}

fn build_configs() -> FuzzConfigs {
    let key = rcgen::KeyPair::generate().expect("rcgen key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("rcgen params")
        .self_signed(&key)
        .expect("rcgen certificate");
    let cert_der = cert.der().clone();
    let key_der = key.serialize_der();
    let mut roots = RootCertStore::empty();
    roots.add(cert_der.clone()).expect("root");
    let build = |suites: Vec<SupportedCipherSuite>, alpn: bool| {
        let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
        for s in &suites {
            if !versions.iter().any(|v| v.version == s.version().version) {
                versions.push(s.version());
            }
        }
        let mut p = provider();
        p.cipher_suites = suites;
        let p = Arc::new(p);
        let mut client = ClientConfig::builder_with_provider(p.clone())
            .with_protocol_versions(&versions)
            .expect("client versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        client.enable_secret_extraction = true;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.clone()));
        let mut server = ServerConfig::builder_with_provider(p)
            .with_protocol_versions(&versions)
            .expect("server versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key)
            .expect("server certificate");
        server.enable_secret_extraction = true;
        if alpn {
            client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        (Arc::new(client), Arc::new(server))
    };
    let suites = ecdsa_suites();
    let (client, server) = build(suites.clone(), true);
    let per_suite = suites.into_iter().map(|s| build(vec![s], false)).collect();
    FuzzConfigs {
        client,
        server,
        per_suite,
    }
}

/// The name every test certificate is issued for.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("valid name")
}

// ---------------------------------------------------------------------------------------
// Input helpers
// ---------------------------------------------------------------------------------------

/// Splits an input into chunks: each is a big-endian `u16` length and that many bytes
/// (fewer at the end of the input). At most [`MAX_CHUNKS`].
pub fn split_chunks(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < MAX_CHUNKS {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        data = &data[2..];
        let take = len.min(data.len());
        out.push(&data[..take]);
        data = &data[take..];
    }
    out
}

/// The inverse of [`split_chunks`], for building inputs (chunks of at most 64 KiB - 1).
pub fn join_chunks<T: AsRef<[u8]>>(chunks: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        let c = c.as_ref();
        let len = u16::try_from(c.len()).expect("chunk fits a u16 length");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// A cursor over fuzz input; reads past the end give `None` or empty slices.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// The next byte.
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// The next big-endian `u16` (0 past the end).
    pub fn u16(&mut self) -> u16 {
        let hi = self.byte().unwrap_or(0);
        let lo = self.byte().unwrap_or(0);
        u16::from_be_bytes([hi, lo])
    }

    /// A `u16`-length-prefixed chunk (shorter at the end of the input).
    pub fn chunk(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16()).min(self.data.len());
        let (chunk, rest) = self.data.split_at(len);
        self.data = rest;
        chunk
    }

    /// Everything left.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// A tiny deterministic generator (xorshift64*), for derived choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator; any seed works (0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Targets 1 and 2: handshakes fed arbitrary flights
// ---------------------------------------------------------------------------------------

/// Target `server_handshake`: the input, split by [`split_chunks`], is the client's
/// flights. Returns whether the handshake completed (it never should on garbage).
pub fn server_handshake(data: &[u8]) -> bool {
    fuzzing::server_handshake(configs().server.clone(), &split_chunks(data))
}

/// Target `client_handshake`: the input, split by [`split_chunks`], is the server's
/// flights.
pub fn client_handshake(data: &[u8]) -> bool {
    fuzzing::client_handshake(configs().client.clone(), &split_chunks(data))
}

// ---------------------------------------------------------------------------------------
// Target 3: the native record layer
// ---------------------------------------------------------------------------------------

/// Operations on a live pair, picked by `op % 6` in [`native_records`].
pub mod op {
    /// Feed the next chunk as raw bytes.
    pub const RAW: u8 = 0;
    /// Seal the next chunk at the server and feed it whole.
    pub const VALID: u8 = 1;
    /// Seal the next chunk and feed it in two parts, split at a `u16` from the input.
    pub const SPLIT: u8 = 2;
    /// Seal the next chunk, apply one edit (next byte: kind, then a `u16` position), feed.
    pub const EDIT: u8 = 3;
    /// Feed the last sealed bytes again (a replay).
    pub const REPLAY: u8 = 4;
    /// Let the server read what the client sent back (alerts, KeyUpdate answers).
    pub const ANSWER: u8 = 5;
}

/// Target `native_records`. The first byte picks the mode:
///
/// - even: `open_fixed(next byte, rest)`: arbitrary bytes opened as records under fixed
///   keys, in one of the three framings;
/// - odd: a live pair (bits 1..: record layer, then suite) fed a sequence of [`op`]s.
///
/// On the live pair it checks:
/// - nothing panics; a read loop ends (the harness bounds it);
/// - as long as only whole valid records were fed, nothing fails and the plaintext is
///   exactly what was sealed;
/// - whatever is fed, the plaintext delivered is a prefix of what the server sealed: no
///   forged, reordered or replayed byte is ever delivered;
/// - errors are sticky: every feed after the first error fails too;
/// - whatever the client sends back is read by the server without panic; when the native
///   layer fails, its alert reaches the server (the server's read fails).
pub fn native_records(data: &[u8]) -> RecordsOutcome {
    let Some((&mode, rest)) = data.split_first() else {
        return RecordsOutcome::default();
    };
    if mode & 1 == 0 {
        open_fixed(rest)
    } else {
        live_pair(mode >> 1, rest)
    }
}

/// What `native_records` saw, for callers that want figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordsOutcome {
    /// Plaintext bytes delivered.
    pub delivered: usize,
    /// The live pair's client failed.
    pub failed: bool,
    /// Bytes other than whole valid records were fed.
    pub tampered: bool,
}

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
fn open_fixed(data: &[u8]) -> RecordsOutcome {
    let Some((&framing, bytes)) = data.split_first() else {
        return RecordsOutcome::default();
    };
    let plain = fuzzing::open_fixed(framing, bytes);
    assert!(
        plain.len() <= bytes.len(),
        "open_fixed produced more plaintext ({}) than its input ({})",
        plain.len(),
        bytes.len()
    );
    RecordsOutcome {
        delivered: plain.len(),
        failed: false,
        tampered: true,
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
fn open_fixed(_: &[u8]) -> RecordsOutcome {
    RecordsOutcome::default()
}

fn live_pair(sel: u8, data: &[u8]) -> RecordsOutcome {
    let c = configs();
    let layer = if sel & 1 == 0 {
        RecordLayer::Native
    } else {
        RecordLayer::Rustls
    };
    let (client, server) = c.per_suite[usize::from(sel >> 1) % c.per_suite.len()].clone();
    let mut pair =
        fuzzing::Pair::new(client, server, layer).expect("a handshake of matching configs failed");
    let native = pair.client_layer() == Some(RecordLayer::Native);
    let mut input = Input::new(data);
    let mut sealed = Vec::new(); // every plaintext byte the server sealed, in order
    let mut got = Vec::new(); // every plaintext byte the client delivered
    let mut tampered = false; // something other than whole valid records was fed
    let mut failed: Option<String> = None;
    let mut last_wire = Vec::new();
    for _ in 0..MAX_OPS {
        let Some(op) = input.byte() else { break };
        let op = op % 6;
        let parts: Vec<Vec<u8>> = match op {
            op::RAW => {
                tampered = true;
                vec![input.chunk().to_vec()]
            }
            op::VALID | op::SPLIT | op::EDIT => {
                let plain = input.chunk();
                let Some(wire) = seal(&mut pair, plain) else {
                    continue;
                };
                sealed.extend_from_slice(plain);
                last_wire.clone_from(&wire);
                match op {
                    op::VALID => vec![wire],
                    op::SPLIT => {
                        let at = usize::from(input.u16()) % (wire.len() + 1);
                        vec![wire[..at].to_vec(), wire[at..].to_vec()]
                    }
                    _ => {
                        tampered = true;
                        let kind = input.byte().unwrap_or(0);
                        let pos = usize::from(input.u16());
                        vec![edit(wire, kind, pos)]
                    }
                }
            }
            op::REPLAY => {
                tampered = true;
                vec![last_wire.clone()]
            }
            _ => {
                let answer = pair.server_reads_client_output();
                if !tampered {
                    assert_eq!(
                        answer,
                        Ok(Vec::new()),
                        "the server could not read the client's answers to valid records"
                    );
                }
                continue;
            }
        };
        for part in parts {
            match (pair.feed_client(&part), &failed) {
                (Ok(plain), None) => got.extend_from_slice(&plain),
                (Ok(plain), Some(first)) => panic!(
                    "error not sticky: after {first:?}, a feed delivered {} bytes",
                    plain.len()
                ),
                (Err(e), None) => {
                    assert!(tampered, "valid records failed: {e}");
                    failed = Some(e);
                    // Stickiness right away, with no new bytes.
                    assert!(
                        pair.feed_client(&[]).is_err(),
                        "error not sticky: an empty feed after {failed:?} succeeded"
                    );
                    if native {
                        // The native layer alerts on every error it can meet here
                        // (bad_record_mac, decode_error, record_overflow, ...).
                        let answer = pair.server_reads_client_output();
                        assert!(
                            answer.is_err(),
                            "no alert reached the server after {failed:?}: {answer:?}"
                        );
                    }
                }
                (Err(_), Some(_)) => {}
            }
        }
        assert!(
            sealed.starts_with(&got),
            "delivered plaintext is not a prefix of the sealed plaintext ({} bytes delivered)",
            got.len()
        );
    }
    if !tampered {
        assert_eq!(got, sealed, "valid records lost or changed plaintext");
    }
    // Whatever the client sent last, the server reads it without panicking.
    let _ = pair.server_reads_client_output();
    RecordsOutcome {
        delivered: got.len(),
        failed: failed.is_some(),
        tampered,
    }
}

/// Seals `plain` at the server in pieces of at most 8 KiB. (`Pair::seal_from_server`
/// drains the server's outgoing buffer only once its loop is done, so one call with more
/// than about one record of data never returns: `Engine::write` takes nothing once that
/// buffer holds `TX_BATCH` bytes.)
fn seal(pair: &mut fuzzing::Pair, plain: &[u8]) -> Option<Vec<u8>> {
    let mut wire = Vec::new();
    for piece in plain.chunks(8192) {
        wire.extend(pair.seal_from_server(piece).ok()?);
    }
    Some(wire)
}

/// One structural edit of a sealed record stream, chosen by `kind`, at `pos`.
pub fn edit(mut wire: Vec<u8>, kind: u8, pos: usize) -> Vec<u8> {
    if wire.is_empty() {
        return vec![kind];
    }
    let at = pos % wire.len();
    match kind % 8 {
        // A flipped bit.
        0 => wire[at] ^= 1 << (pos % 8),
        // Truncation.
        1 => wire.truncate(at),
        // The first record's length field, moved by a small amount or set to an extreme.
        2 => {
            if wire.len() >= 5 {
                let len = u16::from_be_bytes([wire[3], wire[4]]);
                let new = match pos % 6 {
                    0 => len.wrapping_add(1),
                    1 => len.wrapping_sub(1),
                    2 => 0,
                    3 => 0xffff,
                    4 => 16_384 + 256 + 1,
                    _ => 16_384 + 2048 + 1,
                };
                wire[3..5].copy_from_slice(&new.to_be_bytes());
            }
        }
        // The content type byte.
        3 => wire[0] = [20, 21, 22, 23, 24, 0, 255][pos % 7],
        // The version bytes.
        4 => {
            if wire.len() >= 3 {
                wire[1] = (pos % 5) as u8;
                wire[2] = (pos / 5 % 5) as u8;
            }
        }
        // A byte inserted.
        5 => wire.insert(at, pos as u8),
        // A byte removed.
        6 => {
            wire.remove(at);
        }
        // The tail duplicated (a partial replay).
        _ => {
            let tail = wire[at..].to_vec();
            wire.extend_from_slice(&tail);
        }
    }
    wire
}

// ---------------------------------------------------------------------------------------
// Target 4: an arbitrary I/O schedule under a real client and server
// ---------------------------------------------------------------------------------------

/// What a transport call does, from one schedule byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes through to the in-memory pipe.
    None,
    /// Returns `Pending` after waking the task (a spurious yield).
    Pending,
    /// Moves at most this many bytes.
    Short(usize),
    /// Moves at most one byte.
    OneByte,
    /// Fails (`ConnectionReset` on reads, `BrokenPipe` otherwise).
    Error,
    /// A read returns EOF, from now on; a write returns `Ok(0)`.
    Eof,
}

impl Fault {
    /// The fault a schedule byte stands for.
    pub fn from_byte(b: u8) -> Fault {
        match b {
            0..=111 => Fault::None,
            112..=167 => Fault::Pending,
            168..=207 => Fault::Short(usize::from(b - 167) * 29),
            208..=239 => Fault::OneByte,
            240..=247 => Fault::Error,
            _ => Fault::Eof,
        }
    }
}

/// Counters shared between a transport and the harness.
#[derive(Debug, Default)]
pub struct IoStats {
    /// Transport calls made.
    pub calls: AtomicUsize,
    /// An error or EOF was injected.
    pub fatal: AtomicBool,
}

/// One end of an in-memory pipe that misbehaves as its schedule says, call by call. Once
/// the schedule is used up it behaves.
pub struct FaultIo {
    inner: DuplexStream,
    schedule: Vec<u8>,
    pos: usize,
    read_eof: bool,
    stats: Arc<IoStats>,
}

impl FaultIo {
    /// Wraps one end of a pipe.
    pub fn new(inner: DuplexStream, schedule: Vec<u8>) -> Self {
        FaultIo {
            inner,
            schedule,
            pos: 0,
            read_eof: false,
            stats: Arc::default(),
        }
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<IoStats> {
        self.stats.clone()
    }

    fn next(&mut self) -> Fault {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let Some(&b) = self.schedule.get(self.pos) else {
            return Fault::None;
        };
        self.pos += 1;
        let fault = Fault::from_byte(b);
        if matches!(fault, Fault::Error | Fault::Eof) {
            self.stats.fatal.store(true, Ordering::Relaxed);
        }
        fault
    }
}

fn injected(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, "injected transport fault")
}

impl AsyncRead for FaultIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let fault = this.next();
        if this.read_eof {
            return Poll::Ready(Ok(()));
        }
        let limit = match fault {
            Fault::None => return Pin::new(&mut this.inner).poll_read(cx, buf),
            Fault::Pending => {
                // A spurious yield: the task is woken, so it will poll again.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Fault::Error => return Poll::Ready(Err(injected(io::ErrorKind::ConnectionReset))),
            Fault::Eof => {
                this.read_eof = true;
                return Poll::Ready(Ok(()));
            }
            Fault::Short(n) => n,
            Fault::OneByte => 1,
        };
        let mut tmp = [0u8; 2048];
        let n = limit.min(buf.remaining()).min(tmp.len());
        let mut small = ReadBuf::new(&mut tmp[..n]);
        let poll = Pin::new(&mut this.inner).poll_read(cx, &mut small);
        if let Poll::Ready(Ok(())) = poll {
            buf.put_slice(small.filled());
        }
        poll
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = match this.next() {
            Fault::None => buf.len(),
            Fault::Pending => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Fault::Error => return Poll::Ready(Err(injected(io::ErrorKind::BrokenPipe))),
            Fault::Eof => return Poll::Ready(Ok(0)),
            Fault::Short(n) => n.min(buf.len()),
            Fault::OneByte => 1.min(buf.len()),
        };
        Pin::new(&mut this.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.next() {
            Fault::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Fault::Error => Poll::Ready(Err(injected(io::ErrorKind::BrokenPipe))),
            _ => Pin::new(&mut this.inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.next() {
            Fault::Pending => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Fault::Error => Poll::Ready(Err(injected(io::ErrorKind::BrokenPipe))),
            _ => Pin::new(&mut this.inner).poll_shutdown(cx),
        }
    }
}

#[derive(Default)]
struct WakeFlag {
    woken: AtomicBool,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
    }
}

/// Runs two futures on this thread, polling a future only after its waker fired. Panics
/// on a lost wakeup (both pending, neither woken) and after `max_polls` polls in all.
/// Returns both outputs and the number of polls.
pub fn run2<A: Future, B: Future>(max_polls: usize, a: A, b: B) -> (A::Output, B::Output, usize) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (fa, fb) = (Arc::new(WakeFlag::default()), Arc::new(WakeFlag::default()));
    fa.woken.store(true, Ordering::Relaxed);
    fb.woken.store(true, Ordering::Relaxed);
    let (wa, wb) = (Waker::from(fa.clone()), Waker::from(fb.clone()));
    let (mut out_a, mut out_b) = (None, None);
    let mut polls = 0;
    while out_a.is_none() || out_b.is_none() {
        let mut polled = false;
        if out_a.is_none() && fa.woken.swap(false, Ordering::AcqRel) {
            polled = true;
            polls += 1;
            if let Poll::Ready(x) = a.as_mut().poll(&mut Context::from_waker(&wa)) {
                out_a = Some(x);
            }
        }
        if out_b.is_none() && fb.woken.swap(false, Ordering::AcqRel) {
            polled = true;
            polls += 1;
            if let Poll::Ready(x) = b.as_mut().poll(&mut Context::from_waker(&wb)) {
                out_b = Some(x);
            }
        }
        assert!(
            polled,
            "lost wakeup: both tasks pending and neither woken, after {polls} polls"
        );
        assert!(polls <= max_polls, "more than {max_polls} polls: busy loop");
    }
    (out_a.expect("done"), out_b.expect("done"), polls)
}

/// What `io_schedule` found, for callers that want figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleOutcome {
    /// A fault that may end the connection (error, EOF) was injected.
    pub fatal_injected: bool,
    /// Both ends finished without error.
    pub clean: bool,
    /// Polls of both tasks together.
    pub polls: usize,
    /// Transport calls of both ends together.
    pub io_calls: usize,
}

/// Asserts that an error is one of ours (typed) or an injected transport error passed
/// through.
fn assert_clean_error(side: &str, e: &io::Error) {
    let typed = Error::from_io(e).is_some();
    let passed = matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    ) && e.to_string().contains("injected");
    // tokio's pipe refuses writes once the other end is gone.
    let pipe_closed = e.kind() == io::ErrorKind::BrokenPipe;
    assert!(
        typed || passed || pipe_closed,
        "{side}: error neither typed nor from the transport: {e:?}"
    );
}

/// Target `io_schedule`: a client and a server `TlsStream` (public API only) over an
/// in-memory pipe whose ends misbehave call by call as the input says.
///
/// Input: byte 0 picks the suite, each side's record layer and whether the handshake is
/// explicit; byte 1 the pipe capacity; bytes 2..6 the two transfer sizes; bytes 6..14 seed
/// the write sizes, read sizes and flush points; the rest is the two schedules,
/// interleaved (even bytes: the client's transport, odd: the server's).
///
/// The client writes its data (random write sizes and flushes), shuts down, and reads to
/// the end; the server reads to the end, writes its data back and shuts down. Checks:
/// - nothing panics; no lost wakeup; polls and transport calls are bounded;
/// - what each side received is a prefix of what the other sent (intact, in order);
/// - with no error or EOF injected, both sides finish cleanly with every byte;
/// - an error is typed (or the injected transport error passed through).
pub fn io_schedule(data: &[u8]) -> ScheduleOutcome {
    let mut input = Input::new(data);
    let flags = input.byte().unwrap_or(0);
    let cap = [4096, 5000, 16_384, 65_536][usize::from(input.byte().unwrap_or(0) % 4)];
    let c_len = usize::from(input.u16()) % (MAX_TRANSFER + 1);
    let s_len = usize::from(input.u16()) % (MAX_TRANSFER + 1);
    let mut seed = [0u8; 8];
    for b in &mut seed {
        *b = input.byte().unwrap_or(0);
    }
    let rest = input.rest();
    let c_schedule: Vec<u8> = rest.iter().step_by(2).copied().collect();
    let s_schedule: Vec<u8> = rest.iter().skip(1).step_by(2).copied().collect();
    let mut rng = Rng::new(u64::from_le_bytes(seed));

    let c = configs();
    let (client_cfg, server_cfg) = c.per_suite[usize::from(flags >> 4) % c.per_suite.len()].clone();
    let layer = |bit: u8| {
        if flags & bit == 0 {
            RecordLayer::Native
        } else {
            RecordLayer::Rustls
        }
    };
    let explicit = flags & 4 != 0;
    let (a, b) = tokio::io::duplex(cap);
    let (a, b) = (FaultIo::new(a, c_schedule), FaultIo::new(b, s_schedule));
    let (c_stats, s_stats) = (a.stats(), b.stats());
    let client = TlsConnector::new(client_cfg)
        .record_layer(layer(1))
        .connect(localhost(), a);
    let server = TlsAcceptor::new(server_cfg)
        .record_layer(layer(2))
        .accept(b);

    let mut c_data = vec![0u8; c_len];
    let mut s_data = vec![0u8; s_len];
    rng.fill(&mut c_data);
    rng.fill(&mut s_data);
    let c_rng = Rng::new(rng.next_u64());
    let s_rng = Rng::new(rng.next_u64());

    let schedule_len = rest.len();
    let max_polls = 10_000 + 4 * schedule_len + (c_len + s_len) / 8;
    let (c_out, s_out, polls) = run2(
        max_polls,
        client_task(client, &c_data, c_rng, explicit),
        server_task(server, &s_data, s_rng, explicit),
    );
    let (c_result, c_got) = c_out;
    let (s_result, s_got) = s_out;
    let fatal = c_stats.fatal.load(Ordering::Relaxed) || s_stats.fatal.load(Ordering::Relaxed);
    let io_calls = c_stats.calls.load(Ordering::Relaxed) + s_stats.calls.load(Ordering::Relaxed);
    let max_calls = 50_000 + 4 * schedule_len + 2 * (c_len + s_len);
    assert!(
        io_calls <= max_calls,
        "{io_calls} transport calls for {} bytes (bound {max_calls})",
        c_len + s_len
    );
    assert!(
        c_data.starts_with(&s_got),
        "the server received bytes the client never sent, or out of order"
    );
    assert!(
        s_data.starts_with(&c_got),
        "the client received bytes the server never sent, or out of order"
    );
    if let Err(e) = &c_result {
        assert_clean_error("client", e);
    }
    if let Err(e) = &s_result {
        assert_clean_error("server", e);
    }
    if !fatal {
        if let Err(e) = &c_result {
            panic!("client failed with no fault injected: {e:?}");
        }
        if let Err(e) = &s_result {
            panic!("server failed with no fault injected: {e:?}");
        }
        assert_eq!(s_got.len(), c_data.len(), "the server missed bytes");
        assert_eq!(c_got.len(), s_data.len(), "the client missed bytes");
    }
    ScheduleOutcome {
        fatal_injected: fatal,
        clean: c_result.is_ok() && s_result.is_ok(),
        polls,
        io_calls,
    }
}

/// Writes `data` in random pieces with random flushes.
async fn write_pieces<IO: AsyncRead + AsyncWrite + Unpin>(
    s: &mut TlsStream<IO>,
    data: &[u8],
    rng: &mut Rng,
) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let want = (1 + rng.below(20_000)).min(data.len() - off);
        let n = s.write(&data[off..off + want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        off += n;
        if rng.below(4) == 0 {
            s.flush().await?;
        }
    }
    Ok(())
}

/// Reads to the end in random read sizes.
async fn read_pieces<IO: AsyncRead + AsyncWrite + Unpin>(
    s: &mut TlsStream<IO>,
    got: &mut Vec<u8>,
    rng: &mut Rng,
) -> io::Result<()> {
    let mut buf = vec![0u8; 20_000];
    loop {
        let want = 1 + rng.below(buf.len());
        let n = s.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok(());
        }
        got.extend_from_slice(&buf[..n]);
    }
}

async fn client_task(
    mut s: TlsStream<FaultIo>,
    data: &[u8],
    mut rng: Rng,
    explicit: bool,
) -> (io::Result<()>, Vec<u8>) {
    let mut got = Vec::new();
    let result = async {
        // With nothing to write, make sure the handshake ran: `shutdown()` before any
        // handshake closes the transport without TLS (as Go refuses CloseWrite then), and
        // the read after it could not handshake over a write-closed pipe.
        if explicit || data.is_empty() {
            s.handshake().await?;
        }
        write_pieces(&mut s, data, &mut rng).await?;
        s.shutdown().await?;
        read_pieces(&mut s, &mut got, &mut rng).await
    }
    .await;
    // Dropping the stream closes the pipe, which wakes the peer.
    drop(s);
    (result, got)
}

async fn server_task(
    mut s: TlsStream<FaultIo>,
    data: &[u8],
    mut rng: Rng,
    explicit: bool,
) -> (io::Result<()>, Vec<u8>) {
    let mut got = Vec::new();
    let result = async {
        if explicit {
            s.handshake().await?;
        }
        read_pieces(&mut s, &mut got, &mut rng).await?;
        write_pieces(&mut s, data, &mut rng).await?;
        s.shutdown().await
    }
    .await;
    drop(s);
    (result, got)
}
