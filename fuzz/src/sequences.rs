// The API-level checker (target `api_sequences`): random sequences of public-API
// operations on one lazytls connection, from one or two tasks, against a peer whose every
// action the input chooses, over an in-memory transport that misbehaves as the input says.
// Invariants are checked after every step.
//
// (No `//!` here: this file is `include!`d, like `targets.rs`.)
//
// - Configurations: our client or our server; TLS 1.3 or 1.2; the native record layer,
//   rustls's (unbuffered) one, or, for a client with early data, rustls's buffered one;
//   early data with a ticket; long ALPN lists and a large certificate chain (handshake
//   flights of several records); `keep_idle_buffers`; the whole stream, `into_split`
//   halves, or `tokio::io::split` halves.
// - The peer is a rustls `Connection` driven by hand (the same connection tokio-rustls
//   wraps, with control over which bytes leave together), or a lazytls stream with a
//   reader task and a writer task of its own. Its actions: deliver what it wrote (all of
//   it, or holding back the tail of a record), send data, KeyUpdate with a request (TLS
//   1.3; with rustls also right behind its last handshake message), close_notify, a TCP
//   close.
// - Our operations: reads of random sizes, writes and vectored writes, flush, shutdown,
//   `handshake()` with and without `cancel_on` (cancelled or not), a read, write or
//   handshake future dropped after one poll, idle waits, and `unsplit` at the end.
// - The transport returns `Pending` at random (after a wake-up, as a busy transport
//   would), reads and writes short, keeps one waker per direction as a socket does, and
//   has a bounded capacity towards the peer.
// - The executor polls a task only when its waker fired. When every task waits and the
//   peer has nothing left to do, it polls each task once more without a wake-up: a task
//   that makes progress then had lost a wake-up. Polls without progress are bounded (a
//   busy loop fails).
// - Invariants: every byte either way arrives exactly once and in order (checked as it
//   arrives), and all of it when nothing fatal was injected; an error is typed, or the
//   injected transport error; transport reads stay within a constant of the deliveries
//   plus the bytes over one record's room; a connection idle after its handshake (every
//   task waiting in a read, nothing written since the last flush) holds at most one
//   record's room; the peer (rustls) accepts every record we send, and nothing arrives
//   after our close_notify or fatal alert.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use lazytls::rustls::client::Resumption;
use lazytls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use lazytls::rustls::server::ServerSessionMemoryCache;
use lazytls::rustls::{
    self, ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig,
    ServerConnection, SupportedProtocolVersion,
};
use lazytls::{Error, HandshakeState, RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A record's largest size with its header and the most overhead rustls accepts: what a
/// connection waiting for the rest of one record may hold.
pub const ONE_RECORD_ROOM: usize = 16_384 + 2_048 + 5;

/// What goes the peer's way at most before our writes wait.
const TO_PEER_CAP: usize = 96 * 1024;

/// Byte `i` of the stream the peer sends (and of ours, with another seed), so that every
/// byte can be checked where it arrives.
/// `SEQ_TRACE=1` prints each run's configuration, operations and the peer's actions.
fn tracing() -> bool {
    std::env::var_os("SEQ_TRACE").is_some()
}

fn stream_byte(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add((i >> 8) as u8).wrapping_add(seed)
}

const PEER_SEED: u8 = 7;
const OUR_SEED: u8 = 101;

// ---------------------------------------------------------------------------------------
// The transport
// ---------------------------------------------------------------------------------------

/// One direction of the wire.
#[derive(Default)]
struct Lane {
    bytes: VecDeque<u8>,
    /// The last bytes that the peer holds back (the tail of a record) until it releases
    /// them: a reader sees `bytes.len() - held`.
    held: usize,
    /// The writer closed this lane (EOF after the bytes).
    closed: bool,
    /// The one task waiting on this lane, as a socket keeps one per direction.
    waker: Option<Waker>,
}

impl Lane {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// What the transport saw, for the invariants.
#[derive(Default, Debug, Clone, Copy)]
pub struct WireStats {
    /// Reads that brought bytes.
    pub reads: usize,
    /// The bytes they brought.
    pub bytes_read: usize,
    /// Short reads the schedule injected.
    pub short_reads: usize,
    /// Times the peer made more bytes readable.
    pub deliveries: usize,
    /// Anything moved or was injected: the executor's measure of progress.
    pub progress: usize,
    /// A transport error or a TCP close was injected.
    pub fatal: bool,
}

#[derive(Default)]
struct WireState {
    to_us: Lane,
    to_peer: Lane,
    /// A lazytls peer's reader waiting for our bytes (`to_peer`'s own waker is our
    /// writer's, waiting for room).
    peer_reader: Option<Waker>,
    /// The peer reset the connection: our writes fail.
    reset: bool,
    faults: Vec<u8>,
    pos: usize,
    stats: WireStats,
}

impl WireState {
    /// The most bytes this call may move, from the schedule; `None` when it yields
    /// instead (after waking the task, as a busy transport would).
    fn limit(&mut self, cx: &Context<'_>) -> Option<usize> {
        match self.fault() {
            Fault::Pending => {
                self.stats.progress += 1;
                cx.waker().wake_by_ref();
                None
            }
            Fault::Short(n) => Some(n),
            Fault::OneByte => Some(1),
            _ => Some(usize::MAX),
        }
    }

    fn fault(&mut self) -> Fault {
        let Some(&b) = self.faults.get(self.pos) else {
            return Fault::None;
        };
        self.pos += 1;
        // Only yields and short transfers: errors and EOF come from the peer's actions.
        match Fault::from_byte(b) {
            Fault::Error | Fault::Eof => Fault::None,
            f => f,
        }
    }
}

/// Our end of the wire. One `Mutex` because `into_split` wants a `Send` transport; it is
/// never contended (one thread).
#[derive(Clone)]
pub struct Wire(Arc<Mutex<WireState>>);

impl Wire {
    fn state(&self) -> std::sync::MutexGuard<'_, WireState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stats(&self) -> WireStats {
        self.state().stats
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut w = self.state();
        let Some(limit) = w.limit(cx) else {
            return Poll::Pending;
        };
        let lane = &mut w.to_us;
        let readable = lane.bytes.len() - lane.held;
        if readable == 0 {
            if lane.closed && lane.held == 0 {
                return Poll::Ready(Ok(()));
            }
            lane.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = readable.min(buf.remaining()).min(limit);
        let (front, back) = lane.bytes.as_slices();
        let from_front = n.min(front.len());
        buf.put_slice(&front[..from_front]);
        buf.put_slice(&back[..n - from_front]);
        lane.bytes.drain(..n);
        w.stats.reads += 1;
        w.stats.bytes_read += n;
        w.stats.progress += 1;
        if n < readable.min(buf.remaining()) {
            w.stats.short_reads += 1;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut w = self.state();
        if w.reset || w.to_peer.closed {
            // As a socket does after the peer's reset, or after our own shutdown.
            w.stats.fatal = true;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "injected transport fault: the connection is closed for writing",
            )));
        }
        let Some(limit) = w.limit(cx) else {
            return Poll::Pending;
        };
        let room = TO_PEER_CAP.saturating_sub(w.to_peer.bytes.len());
        if room == 0 {
            w.to_peer.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(room).min(limit);
        w.to_peer.bytes.extend(&buf[..n]);
        w.stats.progress += 1;
        if let Some(waker) = w.peer_reader.take() {
            waker.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.state();
        if w.fault() == Fault::Pending {
            w.stats.progress += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.state();
        w.to_peer.closed = true;
        w.stats.progress += 1;
        if let Some(waker) = w.peer_reader.take() {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
}

/// A lazytls peer's end of the wire: it reads what we write and writes what we read,
/// without faults of its own.
pub struct PeerWire(Wire);

impl AsyncRead for PeerWire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut w = self.0.state();
        let lane = &mut w.to_peer;
        if lane.bytes.is_empty() {
            if lane.closed {
                return Poll::Ready(Ok(()));
            }
            w.peer_reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = lane.bytes.len().min(buf.remaining());
        let (front, back) = lane.bytes.as_slices();
        let from_front = n.min(front.len());
        buf.put_slice(&front[..from_front]);
        buf.put_slice(&back[..n - from_front]);
        lane.bytes.drain(..n);
        lane.wake();
        w.stats.progress += 1;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PeerWire {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut w = self.0.state();
        if w.reset || w.to_us.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "injected transport fault: the connection is closed for writing",
            )));
        }
        w.to_us.bytes.extend(buf);
        w.to_us.wake();
        w.stats.deliveries += 1;
        w.stats.progress += 1;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = self.0.state();
        w.to_us.closed = true;
        w.to_us.wake();
        w.stats.progress += 1;
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------------------

/// How our end is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// One task on the whole stream.
    Whole,
    /// `TlsStream::into_split`.
    Halves,
    /// `tokio::io::split`.
    TokioSplit,
}

/// One run's configuration, from the input's first bytes.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Our end is the client (else the server).
    pub client: bool,
    /// TLS 1.3 (else 1.2).
    pub tls13: bool,
    /// `RecordLayer::Rustls` (else native).
    pub rustls_layer: bool,
    /// Our client's config enables early data, and a first connection left a ticket.
    pub early_data: bool,
    /// The client offers 253 long ALPN names (a 65 KB ClientHello).
    pub long_alpn: bool,
    /// The server's chain carries ten padding certificates (about 60 KB).
    pub big_chain: bool,
    /// `keep_idle_buffers(true)` on our end.
    pub keep_idle_buffers: bool,
    /// How our end is used.
    pub usage: Usage,
    /// The peer is a lazytls stream (else a rustls connection driven by hand).
    pub lazytls_peer: bool,
}

impl Setup {
    fn from_bytes(a: u8, b: u8) -> Setup {
        let client = a & 1 != 0;
        Setup {
            client,
            tls13: a & 2 == 0,
            rustls_layer: a & 4 != 0,
            early_data: client && a & 8 != 0,
            long_alpn: a & 16 != 0,
            big_chain: a & 32 != 0,
            keep_idle_buffers: a & 64 != 0,
            usage: [Usage::Whole, Usage::Halves, Usage::TokioSplit, Usage::Whole][usize::from(b % 4)],
            lazytls_peer: b & 4 != 0,
        }
    }
}

/// The certificates of the checker: a CA-less self-signed end entity, and unrelated
/// certificates with long name lists to make the server's flight large.
struct Pki {
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
    padding: Vec<rustls::pki_types::CertificateDer<'static>>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("rcgen key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("certificate");
        let padding = (0..10)
            .map(|n| {
                let names = (0..200).map(|i| format!("pad-{n}-{i:03}.example")).collect::<Vec<_>>();
                let params = rcgen::CertificateParams::new(names).expect("params");
                let k = rcgen::KeyPair::generate().expect("rcgen key");
                params.self_signed(&k).expect("certificate").der().clone()
            })
            .collect();
        Pki {
            cert: cert.der().clone(),
            key: key.serialize_der(),
            padding,
        }
    })
}

fn versions(tls13: bool) -> &'static [&'static SupportedProtocolVersion] {
    static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    if tls13 { &TLS13 } else { &TLS12 }
}

/// Fresh configs for one run (fresh session stores, so runs do not depend on each other).
fn run_configs(setup: &Setup) -> (ClientConfig, ServerConfig) {
    let pki = pki();
    let provider = Arc::new(provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.cert.clone()).expect("root");
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(setup.tls13))
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = Resumption::in_memory_sessions(4);
    let mut chain = vec![pki.cert.clone()];
    if setup.big_chain {
        chain.extend(pki.padding.iter().cloned());
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone()));
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(setup.tls13))
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
    server.session_storage = ServerSessionMemoryCache::new(4);
    if setup.long_alpn {
        // About 65 KB: near rustls's limit for one handshake message.
        client.alpn_protocols = (0..253u32)
            .map(|i| {
                let mut name = format!("{i:03}-").into_bytes();
                name.resize(255, b'p');
                name
            })
            .collect();
    }
    if setup.early_data {
        client.enable_early_data = true;
        server.max_early_data_size = 16_384;
    }
    (client, server)
}

// ---------------------------------------------------------------------------------------
// The peer
// ---------------------------------------------------------------------------------------

/// What the run shares between the peer, our tasks and the checks.
#[derive(Default)]
struct Ledger {
    /// Bytes the peer wrote as application data, and bytes of them we read.
    peer_sent: usize,
    we_read: usize,
    /// Bytes our writes took, and bytes of them the peer received.
    we_wrote: usize,
    peer_read: usize,
    /// The peer's close_notify was written by it.
    peer_closed: bool,
    /// We read the end of the stream.
    we_saw_eof: bool,
    /// Something may legitimately end the connection early: a transport error or TCP
    /// close, or our own failure.
    fatal: bool,
    /// Written since the last completed flush or shutdown.
    unflushed: bool,
    /// Our close_notify or fatal alert reached the peer: nothing may follow.
    our_last_word: bool,
}

struct Peer {
    conn: Connection,
    wire: Wire,
    ledger: Rc<RefCell<Ledger>>,
    /// What the peer wrote and has not delivered yet.
    outbox: Vec<u8>,
    /// The peer failed (after our fatal alert, or it reset the connection).
    done: bool,
    key_updates: usize,
    /// A KeyUpdate was asked for during the handshake: it goes right behind the
    /// handshake's last flight, in the same delivery.
    key_update_at_handoff: bool,
}

impl Peer {
    /// Takes in everything our end sent, and checks it.
    fn pump(&mut self) -> bool {
        let mut w = self.wire.state();
        let bytes: Vec<u8> = w.to_peer.bytes.drain(..).collect();
        let eof = w.to_peer.closed;
        if !bytes.is_empty() {
            w.to_peer.wake();
        }
        drop(w);
        if bytes.is_empty() || self.done {
            return !bytes.is_empty();
        }
        assert!(
            !self.ledger.borrow().our_last_word,
            "{} bytes arrived after our close_notify or fatal alert",
            bytes.len()
        );
        let mut input = &bytes[..];
        while !input.is_empty() {
            match self.conn.read_tls(&mut input) {
                Ok(0) => {
                    // rustls takes nothing after our close_notify.
                    assert!(input.is_empty(), "bytes after our close_notify");
                    break;
                }
                Ok(_) => {}
                Err(e) => panic!("the peer's buffer overflowed: {e}"),
            }
            if let Err(e) = self.conn.process_new_packets() {
                self.failed(e);
                return true;
            }
            self.read_plaintext();
        }
        let _ = eof;
        true
    }

    fn failed(&mut self, e: rustls::Error) {
        match e {
            // Our fatal alert: the connection is over, and nothing may follow it.
            rustls::Error::AlertReceived(_) => {
                let mut l = self.ledger.borrow_mut();
                l.our_last_word = true;
                l.fatal = true;
            }
            e => panic!("the peer (rustls) rejected what our end sent: {e}"),
        }
        self.done = true;
    }

    fn read_plaintext(&mut self) {
        let mut buf = [0u8; 4096];
        let mut early = Vec::new();
        if let Connection::Server(server) = &mut self.conn {
            if let Some(mut data) = server.early_data() {
                data.read_to_end(&mut early).expect("early data");
            }
        }
        self.check_ours(&early);
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => {
                    // Our close_notify: nothing may follow it.
                    self.ledger.borrow_mut().our_last_word = true;
                    return;
                }
                Ok(n) => self.check_ours(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // EOF without close_notify: our transport was shut without it.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return,
                Err(e) => panic!("the peer's reader: {e}"),
            }
        }
    }

    fn check_ours(&mut self, got: &[u8]) {
        check_ours(&self.ledger, got);
    }

    /// Moves what rustls has for us into the outbox.
    fn encode(&mut self) {
        if self.key_update_at_handoff && !self.handshaking() {
            self.key_update_at_handoff = false;
            let ok = self.conn.refresh_traffic_keys().is_ok();
            self.key_updates += usize::from(ok);
        }
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.outbox).expect("write_tls");
        }
    }

    /// Makes `n` more bytes of the outbox readable (all with `None`), holding back
    /// `tail` bytes of what is readable until the next delivery.
    fn deliver(&mut self, n: Option<usize>, tail: usize) -> bool {
        let n = n.unwrap_or(self.outbox.len()).min(self.outbox.len());
        let mut w = self.wire.state();
        let released = w.to_us.held > 0;
        if n == 0 && !released {
            return false;
        }
        w.to_us.bytes.extend(self.outbox.drain(..n));
        w.to_us.held = tail.min(w.to_us.bytes.len());
        w.to_us.wake();
        w.stats.deliveries += 1;
        w.stats.progress += 1;
        true
    }

    fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// One action, from `b`. Returns whether it did anything.
    fn act(&mut self, b: u8, size: u16) -> bool {
        if tracing() {
            eprintln!("peer action {} ({size})", b % 8);
        }
        if self.done {
            return false;
        }
        let pumped = self.pump();
        self.encode();
        let did = match b % 8 {
            0 | 1 => self.deliver(None, 0),
            2 => {
                // Hold back the tail of what there is: part of a record waits.
                let tail = 1 + usize::from(size) % 200;
                self.deliver(None, tail)
            }
            3 if !self.ledger.borrow().peer_closed => {
                let len = usize::from(size) % 40_000;
                let l = self.ledger.borrow_mut();
                let data: Vec<u8> = (l.peer_sent..l.peer_sent + len)
                    .map(|i| stream_byte(PEER_SEED, i))
                    .collect();
                drop(l);
                let n = self.conn.writer().write(&data).expect("peer write");
                self.ledger.borrow_mut().peer_sent += n;
                self.encode();
                n > 0
            }
            // A KeyUpdate asking for one back, right behind what is queued (during the
            // handshake's last flight too, once rustls allows it).
            4 if !self.ledger.borrow().peer_closed => {
                self.key_update_at_handoff = true;
                self.encode();
                true
            }
            5 if !self.handshaking() && !self.ledger.borrow().peer_closed => {
                self.conn.send_close_notify();
                self.ledger.borrow_mut().peer_closed = true;
                self.encode();
                true
            }
            // A TCP close (rare: only with both bits): what was delivered stays readable.
            6 if size % 16 == 0 => {
                self.close_tcp();
                true
            }
            _ => false,
        };
        did || pumped
    }

    fn close_tcp(&mut self) {
        close_tcp(&self.wire, &self.ledger);
        self.done = true;
    }

    /// The end of the peer's script: everything it has goes out, then its close_notify.
    /// Returns whether it did anything.
    fn finish(&mut self) -> bool {
        if self.done {
            return false;
        }
        let pumped = self.pump();
        self.encode();
        if self.deliver(None, 0) {
            return true;
        }
        if !self.handshaking() && !self.ledger.borrow().peer_closed {
            self.conn.send_close_notify();
            self.ledger.borrow_mut().peer_closed = true;
            self.encode();
            return true;
        }
        pumped
    }
}

/// What a lazytls peer's writer task is asked to do.
#[derive(Debug, Clone, Copy)]
enum PeerCmd {
    Write(usize),
    Flush,
    Shutdown,
}

/// The commands for a lazytls peer's writer task, and its waker while it waits for one.
#[derive(Default)]
struct PeerCmds {
    queue: RefCell<VecDeque<PeerCmd>>,
    waiting: RefCell<Option<Waker>>,
}

impl PeerCmds {
    fn push(&self, cmd: PeerCmd) {
        self.queue.borrow_mut().push_back(cmd);
        if let Some(w) = self.waiting.borrow_mut().take() {
            w.wake();
        }
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<PeerCmd> {
        match self.queue.borrow_mut().pop_front() {
            Some(cmd) => Poll::Ready(cmd),
            None => {
                *self.waiting.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A lazytls stream as the peer: a reader task checks every byte of ours, a writer task
/// sends what the actions ask for. Its failures count as ours, unless something fatal
/// was injected.
struct LazyPeer {
    stream: Shared<TlsStream<PeerWire>>,
    wire: Wire,
    ledger: Rc<RefCell<Ledger>>,
    cmds: Rc<PeerCmds>,
    closing: bool,
    done: bool,
    key_updates: usize,
}

/// A failure of the lazytls peer: fine after our fatal alert, our own shutdown (before
/// a handshake it ends the connection) or an injected fault; anything else is a defect on
/// one end or the other.
fn peer_failure(what: &str, e: &io::Error, ledger: &RefCell<Ledger>, wire: &Wire) {
    let ours = matches!(
        Error::from_io(e),
        Some(Error::Tls(rustls::Error::AlertReceived(_)))
    );
    let shut = wire.state().to_peer.closed;
    let excused = ours || shut || ledger.borrow().fatal || wire.stats().fatal;
    assert!(excused, "the lazytls peer's {what} failed: {e:?}");
    ledger.borrow_mut().fatal = true;
}

async fn lazy_peer_reader(stream: Shared<TlsStream<PeerWire>>, ledger: Rc<RefCell<Ledger>>, wire: Wire) {
    // The handshake first: our early data, which a lazytls server keeps apart from its
    // reads, comes before everything else of ours.
    let handshake = std::future::poll_fn(|cx| stream.0.borrow_mut().poll_handshake(cx)).await;
    if let Err(e) = handshake {
        return peer_failure("handshake", &io::Error::from(e), &ledger, &wire);
    }
    let early = stream.0.borrow_mut().take_early_data();
    check_ours(&ledger, &early);
    let mut r = stream;
    let mut buf = vec![0u8; 20_000];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => {
                ledger.borrow_mut().our_last_word = true;
                return;
            }
            Ok(n) => check_ours(&ledger, &buf[..n]),
            Err(e) => return peer_failure("read", &e, &ledger, &wire),
        }
    }
}

async fn lazy_peer_writer(
    stream: Shared<TlsStream<PeerWire>>,
    cmds: Rc<PeerCmds>,
    ledger: Rc<RefCell<Ledger>>,
    wire: Wire,
) {
    let mut w = stream;
    loop {
        let cmd = std::future::poll_fn(|cx| cmds.poll_next(cx)).await;
        let result = match cmd {
            PeerCmd::Write(n) => {
                let from = ledger.borrow().peer_sent;
                let data: Vec<u8> = (from..from + n).map(|i| stream_byte(PEER_SEED, i)).collect();
                let mut off = 0;
                let mut result = Ok(());
                while off < n {
                    match w.write(&data[off..]).await {
                        Ok(k) => {
                            off += k;
                            ledger.borrow_mut().peer_sent += k;
                        }
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                result
            }
            PeerCmd::Flush => w.flush().await,
            PeerCmd::Shutdown => {
                let shut = w.shutdown().await;
                if shut.is_ok() {
                    return;
                }
                shut
            }
        };
        if let Err(e) = result {
            return peer_failure("write", &e, &ledger, &wire);
        }
    }
}

impl LazyPeer {
    fn ready(&self) -> bool {
        self.stream.0.borrow().state() == HandshakeState::Ready
    }

    fn act(&mut self, b: u8, size: u16) -> bool {
        if self.done {
            return false;
        }
        match b % 8 {
            0 | 1 => self.release(),
            2 => {
                let mut w = self.wire.state();
                let len = w.to_us.bytes.len();
                w.to_us.held = (1 + usize::from(size) % 200).min(len);
                len > 0
            }
            3 if !self.closing => {
                self.cmds.push(PeerCmd::Write(usize::from(size) % 40_000));
                self.cmds.push(PeerCmd::Flush);
                true
            }
            4 if !self.closing && self.ready() => {
                let ok = self.stream.0.borrow_mut().refresh_traffic_keys().is_ok();
                if ok {
                    self.key_updates += 1;
                    self.cmds.push(PeerCmd::Flush);
                }
                ok
            }
            5 if !self.closing && self.ready() => {
                self.close();
                true
            }
            6 if size % 16 == 0 => {
                close_tcp(&self.wire, &self.ledger);
                self.done = true;
                true
            }
            _ => false,
        }
    }

    fn close(&mut self) {
        self.closing = true;
        self.ledger.borrow_mut().peer_closed = true;
        self.cmds.push(PeerCmd::Shutdown);
    }

    /// Makes any held-back bytes readable.
    fn release(&mut self) -> bool {
        let mut w = self.wire.state();
        let held = std::mem::take(&mut w.to_us.held);
        if held > 0 {
            w.to_us.wake();
            w.stats.deliveries += 1;
        }
        held > 0
    }

    fn finish(&mut self) -> bool {
        if self.done {
            return false;
        }
        if self.release() {
            return true;
        }
        if !self.closing && self.ready() {
            self.close();
            return true;
        }
        false
    }
}

/// A TCP close by the peer: what was delivered stays readable, our writes fail.
fn close_tcp(wire: &Wire, ledger: &RefCell<Ledger>) {
    let mut w = wire.state();
    w.to_us.held = 0;
    w.to_us.closed = true;
    w.reset = true;
    w.stats.fatal = true;
    w.to_us.wake();
    w.to_peer.wake();
    drop(w);
    ledger.borrow_mut().fatal = true;
}

/// Either peer.
enum AnyPeer {
    Rustls(Box<Peer>),
    Lazytls(LazyPeer),
}

impl AnyPeer {
    fn act(&mut self, b: u8, size: u16) -> bool {
        match self {
            AnyPeer::Rustls(p) => p.act(b, size),
            AnyPeer::Lazytls(p) => p.act(b, size),
        }
    }

    fn finish(&mut self) -> bool {
        match self {
            AnyPeer::Rustls(p) => p.finish(),
            AnyPeer::Lazytls(p) => p.finish(),
        }
    }

    fn ledger(&self) -> &Rc<RefCell<Ledger>> {
        match self {
            AnyPeer::Rustls(p) => &p.ledger,
            AnyPeer::Lazytls(p) => &p.ledger,
        }
    }

    fn wire(&self) -> &Wire {
        match self {
            AnyPeer::Rustls(p) => &p.wire,
            AnyPeer::Lazytls(p) => &p.wire,
        }
    }

    fn done(&self) -> bool {
        match self {
            AnyPeer::Rustls(p) => p.done,
            AnyPeer::Lazytls(p) => p.done,
        }
    }

    fn key_updates(&self) -> usize {
        match self {
            AnyPeer::Rustls(p) => p.key_updates,
            AnyPeer::Lazytls(p) => p.key_updates,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Our end: operations
// ---------------------------------------------------------------------------------------

/// One operation of ours.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// A read of up to this many bytes.
    Read(usize),
    /// `write_all` of this many bytes.
    Write(usize),
    /// One vectored write of this many bytes in three slices.
    WriteVectored(usize),
    /// `flush()`.
    Flush,
    /// `shutdown()`.
    Shutdown,
    /// `handshake()`.
    Handshake,
    /// `handshake().cancel_on(token)`, the token cancelled first or not.
    HandshakeCancelled(bool),
    /// A read, write or handshake future polled once, then dropped.
    DropRead,
    /// A write of this many bytes, polled once, then dropped.
    DropWrite(usize),
    /// A `handshake()` future polled once, then dropped.
    DropHandshake,
}

impl Op {
    fn from_bytes(b: u8, size: u16) -> Op {
        let size = usize::from(size);
        match b % 12 {
            0..=2 => Op::Read(1 + size % 20_000),
            3 | 4 => Op::Write(size % 20_000),
            5 => Op::WriteVectored(size % 20_000),
            6 => Op::Flush,
            7 => Op::Handshake,
            8 => Op::HandshakeCancelled(size % 2 == 0),
            9 => Op::DropRead,
            10 => Op::DropWrite(1 + size % 5_000),
            _ if size % 8 == 0 => Op::Shutdown,
            _ => Op::DropHandshake,
        }
    }

    fn writes(&self) -> bool {
        matches!(self, Op::Write(_) | Op::WriteVectored(_) | Op::DropWrite(_))
    }
}

/// Checks bytes the peer read against our stream.
fn check_ours(ledger: &RefCell<Ledger>, got: &[u8]) {
    let mut l = ledger.borrow_mut();
    for (i, &b) in got.iter().enumerate() {
        let at = l.peer_read + i;
        assert!(at < l.we_wrote, "the peer received byte {at}, which we never wrote");
        assert_eq!(b, stream_byte(OUR_SEED, at), "byte {at} of ours, as the peer got it");
    }
    l.peer_read += got.len();
}

/// Checks bytes we read against the peer's stream.
fn check_theirs(ledger: &RefCell<Ledger>, got: &[u8]) {
    let mut l = ledger.borrow_mut();
    for (i, &b) in got.iter().enumerate() {
        let at = l.we_read + i;
        assert!(at < l.peer_sent, "we read byte {at}, which the peer never sent");
        assert_eq!(b, stream_byte(PEER_SEED, at), "byte {at} of the peer's, as we read it");
    }
    l.we_read += got.len();
}

fn our_bytes(ledger: &RefCell<Ledger>, len: usize) -> Vec<u8> {
    let from = ledger.borrow().we_wrote;
    (from..from + len).map(|i| stream_byte(OUR_SEED, i)).collect()
}

/// An error of ours must be typed, or the injected transport fault passed through.
fn check_error(what: &str, e: &io::Error, ledger: &RefCell<Ledger>) {
    let typed = Error::from_io(e).is_some();
    let injected = e.to_string().contains("injected");
    assert!(typed || injected, "{what}: error neither typed nor injected: {e:?}");
    if !matches!(Error::from_io(e), Some(Error::Cancelled)) {
        ledger.borrow_mut().fatal = true;
    }
}

/// One of our ends (the stream or a half), shared between its task and the executor: each
/// poll borrows it for the poll alone, so that between polls the executor can look at its
/// buffers.
pub struct Shared<T>(Rc<RefCell<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Shared<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Shared<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.borrow().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_shutdown(cx)
    }
}

/// Runs a read operation. Returns false when the task stops (end of stream or error).
async fn read_op<R: AsyncRead + Unpin>(
    r: &mut R,
    op: Op,
    ledger: &RefCell<Ledger>,
    in_read: &Cell<bool>,
) -> bool {
    let mut buf = vec![0u8; 20_000];
    match op {
        Op::Read(n) => {
            in_read.set(true);
            let got = r.read(&mut buf[..n]).await;
            in_read.set(false);
            match got {
                Ok(0) => {
                    let mut l = ledger.borrow_mut();
                    assert!(
                        l.peer_closed,
                        "a clean end of stream without the peer's close_notify"
                    );
                    l.we_saw_eof = true;
                    false
                }
                Ok(n) => {
                    check_theirs(ledger, &buf[..n]);
                    true
                }
                Err(e) => {
                    check_error("read", &e, ledger);
                    false
                }
            }
        }
        Op::DropRead => {
            std::future::poll_fn(|cx| {
                let mut rb = ReadBuf::new(&mut buf[..4096]);
                if let Poll::Ready(Ok(())) = Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    check_theirs(ledger, rb.filled());
                }
                Poll::Ready(())
            })
            .await;
            true
        }
        _ => true,
    }
}

fn wrote(ledger: &RefCell<Ledger>, k: usize) {
    if tracing() {
        eprintln!("we wrote {k}");
    }
    let mut l = ledger.borrow_mut();
    l.we_wrote += k;
    l.unflushed |= k > 0;
}

/// Runs a write operation. Returns false when the task stops writing.
async fn write_op<W: AsyncWrite + Unpin>(w: &mut W, op: Op, ledger: &RefCell<Ledger>) -> bool {
    let result = match op {
        Op::Write(n) => {
            let data = our_bytes(ledger, n);
            let mut off = 0;
            let mut result = Ok(());
            while off < n {
                match w.write(&data[off..]).await {
                    Ok(0) => {
                        result = Err(io::ErrorKind::WriteZero.into());
                        break;
                    }
                    Ok(k) => {
                        off += k;
                        wrote(ledger, k);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result
        }
        Op::WriteVectored(n) => {
            let data = our_bytes(ledger, n);
            let (a, b) = (n / 3, (n / 3 + 1).min(n));
            let slices = [
                IoSlice::new(&data[..a]),
                IoSlice::new(&data[a..b]),
                IoSlice::new(&data[b..]),
            ];
            w.write_vectored(&slices).await.map(|k| wrote(ledger, k))
        }
        Op::DropWrite(n) => {
            let data = our_bytes(ledger, n);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(Ok(k)) = Pin::new(&mut *w).poll_write(cx, &data) {
                    wrote(ledger, k);
                }
                Poll::Ready(())
            })
            .await;
            Ok(())
        }
        Op::Flush => w.flush().await.map(|()| ledger.borrow_mut().unflushed = false),
        Op::Shutdown => match w.shutdown().await {
            Ok(()) => {
                ledger.borrow_mut().unflushed = false;
                return false;
            }
            Err(e) => Err(e),
        },
        _ => Ok(()),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            check_error("write", &e, ledger);
            false
        }
    }
}

/// Runs a handshake operation on the whole stream. Returns false when the task stops.
async fn handshake_op(s: &Shared<TlsStream<Wire>>, op: Op, ledger: &RefCell<Ledger>) -> bool {
    let result = match op {
        Op::Handshake | Op::HandshakeCancelled(false) => {
            let token = tokio_util::sync::CancellationToken::new();
            let cancelable = matches!(op, Op::HandshakeCancelled(_));
            std::future::poll_fn(|cx| {
                let mut stream = s.0.borrow_mut();
                if cancelable {
                    // A token that is never cancelled: the handshake runs as without it.
                    pin!(stream.handshake().cancel_on(&token)).poll(cx)
                } else {
                    stream.poll_handshake(cx)
                }
            })
            .await
        }
        Op::HandshakeCancelled(true) | Op::DropHandshake => {
            // One poll, then the future is dropped. A cancelled token makes it end at
            // once with a resumable `Cancelled`.
            let token = tokio_util::sync::CancellationToken::new();
            token.cancel();
            let cancel = matches!(op, Op::HandshakeCancelled(true));
            let polled = std::future::poll_fn(|cx| {
                let mut stream = s.0.borrow_mut();
                let poll = if cancel {
                    pin!(stream.handshake().cancel_on(&token)).poll(cx)
                } else {
                    pin!(stream.handshake()).poll(cx)
                };
                Poll::Ready(poll)
            })
            .await;
            match polled {
                Poll::Ready(Err(Error::Cancelled)) if cancel => return true,
                Poll::Ready(result) => result,
                Poll::Pending => return true,
            }
        }
        _ => return true,
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            check_error("handshake", &io::Error::from(e), ledger);
            false
        }
    }
}

/// What every read script ends with: reads to the end (the peer closes once its own script
/// is done).
fn reads_to_the_end() -> impl Iterator<Item = Op> {
    std::iter::repeat_n(Op::Read(20_000), 10_000)
}

/// The whole stream, running every operation in order, then reads to the end and a last
/// flush (a write that was never flushed need not reach the peer).
async fn whole_task(
    s: Shared<TlsStream<Wire>>,
    ops: Vec<Op>,
    ledger: Rc<RefCell<Ledger>>,
    in_read: Rc<Cell<bool>>,
) {
    let mut io = s.clone();
    let mut writing = true;
    for op in ops.into_iter().chain(reads_to_the_end()) {
        let go_on = match op {
            Op::Read(_) | Op::DropRead => read_op(&mut io, op, &ledger, &in_read).await,
            Op::Handshake | Op::HandshakeCancelled(_) | Op::DropHandshake => {
                handshake_op(&s, op, &ledger).await
            }
            op if writing => {
                writing = write_op(&mut io, op, &ledger).await;
                // After a clean shutdown, reads go on.
                writing || !ledger.borrow().fatal
            }
            _ => true,
        };
        if !go_on {
            break;
        }
    }
    if writing && !ledger.borrow().fatal {
        write_op(&mut io, Op::Flush, &ledger).await;
    }
}

async fn read_task<R: AsyncRead + Unpin>(
    mut r: R,
    ops: Vec<Op>,
    ledger: Rc<RefCell<Ledger>>,
    in_read: Rc<Cell<bool>>,
    done: Rc<ReaderDone>,
) {
    let reads = ops.into_iter().filter(|op| matches!(op, Op::Read(_) | Op::DropRead));
    for op in reads.chain(reads_to_the_end()) {
        if !read_op(&mut r, op, &ledger, &in_read).await {
            break;
        }
    }
    done.set();
}

/// The write half's task. Its last flush waits until the reader is done: a writer that
/// wrote without flushing may sit idle while the reader waits (the reader must not depend
/// on it).
async fn write_task<W: AsyncWrite + Unpin>(
    mut w: W,
    ops: Vec<Op>,
    ledger: Rc<RefCell<Ledger>>,
    reader: Rc<ReaderDone>,
) {
    let writes = ops
        .into_iter()
        .filter(|op| op.writes() || matches!(op, Op::Flush | Op::Shutdown));
    for op in writes {
        if !write_op(&mut w, op, &ledger).await {
            return;
        }
    }
    std::future::poll_fn(|cx| reader.poll_done(cx)).await;
    if !ledger.borrow().fatal {
        write_op(&mut w, Op::Flush, &ledger).await;
    }
}

/// Set when the read task ends; wakes the write task waiting for it.
#[derive(Default)]
struct ReaderDone {
    done: Cell<bool>,
    waiting: RefCell<Option<Waker>>,
}

impl ReaderDone {
    fn set(&self) {
        self.done.set(true);
        if let Some(w) = self.waiting.borrow_mut().take() {
            w.wake();
        }
    }

    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done.get() {
            return Poll::Ready(());
        }
        *self.waiting.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------------------
// The executor
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Our end as the executor sees it between polls.
enum Ends {
    Whole(Shared<TlsStream<Wire>>),
    Halves(Shared<lazytls::TlsReadHalf<Wire>>, Shared<lazytls::TlsWriteHalf<Wire>>),
}

impl Ends {
    fn state(&self) -> HandshakeState {
        match self {
            Ends::Whole(s) => s.0.borrow().state(),
            Ends::Halves(r, _) => match r.0.borrow().info() {
                Some(_) => HandshakeState::Ready,
                None => HandshakeState::Handshaking,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Ends::Whole(s) => format!("{:?}", s.0.borrow()),
            Ends::Halves(r, w) => format!(
                "read half {}, write half {}",
                r.0.borrow().buffered_capacity(),
                w.0.borrow().buffered_capacity()
            ),
        }
    }

    fn buffered_capacity(&self) -> usize {
        match self {
            Ends::Whole(s) => s.0.borrow().buffered_capacity(),
            Ends::Halves(r, w) => {
                let (r, w) = (r.0.borrow(), w.0.borrow());
                // Only the native layer is divided between the halves; otherwise both
                // report the one stream they share.
                let divided = r.info().is_some_and(|i| i.record_layer == RecordLayer::Native);
                r.buffered_capacity() + if divided { w.buffered_capacity() } else { 0 }
            }
        }
    }
}

/// What `api_sequences` found, for callers that want figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceOutcome {
    /// Polls of our tasks.
    pub polls: usize,
    /// What the transport saw.
    pub wire: WireStats,
    /// Idle states in which the memory bound was checked.
    pub idle_checks: usize,
    /// The run ended without anything fatal, every byte delivered both ways.
    pub clean: bool,
    /// KeyUpdates the peer sent.
    pub key_updates: usize,
}

/// Target `api_sequences`: see the top of this file.
pub fn api_sequences(data: &[u8]) -> SequenceOutcome {
    let mut input = Input::new(data);
    let setup = Setup::from_bytes(input.byte().unwrap_or(0), input.byte().unwrap_or(0));
    let n_ops = usize::from(input.byte().unwrap_or(0) % 24);
    let ops: Vec<Op> = (0..n_ops)
        .map(|_| Op::from_bytes(input.byte().unwrap_or(0), input.u16()))
        .collect();
    let n_actions = usize::from(input.byte().unwrap_or(0) % 32);
    let actions: Vec<(u8, u16)> = (0..n_actions)
        .map(|_| (input.byte().unwrap_or(0), input.u16()))
        .collect();
    let interleave = input.byte().unwrap_or(0);
    run(setup, &ops, &actions, interleave, input.rest().to_vec())
}

/// One run, from the pieces `api_sequences` decodes: our operations, the peer's actions
/// (a kind and a size each), how often the peer acts between our polls (every
/// `interleave`th turn; 0: only when we wait), and the transport's fault schedule.
pub fn run(
    setup: Setup,
    ops: &[Op],
    actions: &[(u8, u16)],
    interleave: u8,
    faults: Vec<u8>,
) -> SequenceOutcome {
    if tracing() {
        eprintln!("{setup:?}\nops {ops:?}\nactions {actions:?}\ninterleave {interleave}, {} faults", faults.len());
    }
    let (client_cfg, server_cfg) = run_configs(&setup);
    let configs = (Arc::new(client_cfg), Arc::new(server_cfg));
    if setup.early_data {
        // A first connection leaves the ticket that allows early data on the second.
        let first = Setup {
            usage: Usage::Whole,
            ..setup
        };
        let warm = one_connection(first, &configs, &[Op::Read(1)], &[(3, 1)], 0, Vec::new());
        assert!(warm.clean, "the first connection, for a ticket: {warm:?}");
    }
    one_connection(setup, &configs, ops, actions, interleave, faults)
}

fn one_connection(
    setup: Setup,
    (client_cfg, server_cfg): &(Arc<ClientConfig>, Arc<ServerConfig>),
    ops: &[Op],
    actions: &[(u8, u16)],
    interleave: u8,
    faults: Vec<u8>,
) -> SequenceOutcome {
    let layer = if setup.rustls_layer {
        RecordLayer::Rustls
    } else {
        RecordLayer::Native
    };
    let wire = Wire(Arc::new(Mutex::new(WireState {
        faults,
        ..WireState::default()
    })));
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    let stream = if setup.client {
        TlsConnector::new(client_cfg.clone())
            .record_layer(layer)
            .keep_idle_buffers(setup.keep_idle_buffers)
            .connect(localhost(), wire.clone())
    } else {
        TlsAcceptor::new(server_cfg.clone())
            .record_layer(layer)
            .keep_idle_buffers(setup.keep_idle_buffers)
            .accept(wire.clone())
    };
    fn shared<T>(x: T) -> Shared<T> {
        Shared(Rc::new(RefCell::new(x)))
    }
    let mut tasks: Vec<Task> = Vec::new();
    let mut peer = if setup.lazytls_peer {
        let end = PeerWire(wire.clone());
        let stream = if setup.client {
            TlsAcceptor::new(server_cfg.clone()).accept(end)
        } else {
            TlsConnector::new(client_cfg.clone()).connect(localhost(), end)
        };
        let stream = shared(stream);
        let cmds = Rc::new(PeerCmds::default());
        let (l, w) = (ledger.clone(), wire.clone());
        tasks.push(Box::pin(lazy_peer_reader(stream.clone(), l, w)));
        let (l, w) = (ledger.clone(), wire.clone());
        tasks.push(Box::pin(lazy_peer_writer(stream.clone(), cmds.clone(), l, w)));
        AnyPeer::Lazytls(LazyPeer {
            stream,
            wire: wire.clone(),
            ledger: ledger.clone(),
            cmds,
            closing: false,
            done: false,
            key_updates: 0,
        })
    } else {
        let conn: Connection = if setup.client {
            ServerConnection::new(server_cfg.clone()).expect("peer").into()
        } else {
            ClientConnection::new(client_cfg.clone(), localhost())
                .expect("peer")
                .into()
        };
        AnyPeer::Rustls(Box::new(Peer {
            conn,
            wire: wire.clone(),
            ledger: ledger.clone(),
            outbox: Vec::new(),
            done: false,
            key_updates: 0,
            key_update_at_handoff: false,
        }))
    };

    let in_read = Rc::new(Cell::new(false));
    let peer_tasks = tasks.len();
    let ends = match setup.usage {
        Usage::Whole => {
            let s = shared(stream);
            tasks.push(Box::pin(whole_task(s.clone(), ops.to_vec(), ledger.clone(), in_read.clone())));
            Ends::Whole(s)
        }
        Usage::TokioSplit => {
            let s = shared(stream);
            let (r, w) = tokio::io::split(s.clone());
            let done = Rc::new(ReaderDone::default());
            let l = ledger.clone();
            tasks.push(Box::pin(read_task(r, ops.to_vec(), l, in_read.clone(), done.clone())));
            tasks.push(Box::pin(write_task(w, ops.to_vec(), ledger.clone(), done)));
            Ends::Whole(s)
        }
        Usage::Halves => {
            let (r, w) = stream.into_split();
            let (r, w) = (shared(r), shared(w));
            let done = Rc::new(ReaderDone::default());
            let l = ledger.clone();
            tasks.push(Box::pin(read_task(r.clone(), ops.to_vec(), l, in_read.clone(), done.clone())));
            tasks.push(Box::pin(write_task(w.clone(), ops.to_vec(), ledger.clone(), done)));
            Ends::Halves(r, w)
        }
    };
    let mut out = SequenceOutcome::default();
    drive(&mut tasks, peer_tasks, &mut peer, actions, interleave, &mut out, || {
        // Every task waits: when our end is idle after its handshake, it holds at most
        // one record's room.
        let idle = !setup.keep_idle_buffers
            && in_read.get()
            && !ledger.borrow().unflushed
            && ends.state() == HandshakeState::Ready;
        if idle {
            let held = ends.buffered_capacity();
            assert!(
                held <= ONE_RECORD_ROOM,
                "{setup:?}: {held} bytes held by an idle connection ({})",
                ends.describe()
            );
        }
        idle
    });
    drop(tasks);
    if let Ends::Halves(r, w) = ends {
        let (r, w) = (Rc::try_unwrap(r.0), Rc::try_unwrap(w.0));
        let (Ok(r), Ok(w)) = (r, w) else {
            panic!("the halves are still shared after their tasks")
        };
        assert!(r.into_inner().unsplit(w.into_inner()).is_ok(), "unsplit");
    }
    // Take in what is left (our close_notify).
    if let AnyPeer::Rustls(peer) = &mut peer {
        peer.pump();
    }
    if tracing() {
        eprintln!("{} polls, {:?}", out.polls, wire.stats());
    }

    let l = ledger.borrow();
    out.wire = wire.stats();
    out.key_updates = peer.key_updates();
    let w = out.wire;
    let bound = 3 * w.deliveries + w.short_reads + 2 * (w.bytes_read / 16_384) + 8;
    assert!(
        w.reads <= bound,
        "{} transport reads for {} bytes in {} deliveries ({} short): bound {bound}",
        w.reads,
        w.bytes_read,
        w.deliveries,
        w.short_reads
    );
    if !l.fatal && !w.fatal {
        assert!(l.we_saw_eof, "{setup:?}: the peer's close_notify was never read");
        assert_eq!(l.we_read, l.peer_sent, "{setup:?}: we missed bytes of the peer's");
        assert_eq!(l.peer_read, l.we_wrote, "{setup:?}: the peer missed bytes of ours");
        out.clean = true;
    }
    out
}

/// Polls the tasks whose wakers fired, lets the peer act (between polls, at the points
/// the input picks, and whenever every task waits), and checks for lost wake-ups and busy
/// loops, until our tasks are done and no task is woken. The first `peer_tasks` tasks are
/// a lazytls peer's, which need not finish (its reader waits for a close that our script
/// may never make). `on_idle` runs whenever every task waits; it returns whether it
/// checked anything.
#[allow(clippy::too_many_arguments)]
fn drive(
    tasks: &mut [Task],
    peer_tasks: usize,
    peer: &mut AnyPeer,
    actions: &[(u8, u16)],
    interleave: u8,
    out: &mut SequenceOutcome,
    mut on_idle: impl FnMut() -> bool,
) {
    let flags: Vec<Arc<Flag>> = tasks.iter().map(|_| Arc::new(Flag::default())).collect();
    for f in &flags {
        f.0.store(true, Ordering::Relaxed);
    }
    let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
    let mut done = vec![false; tasks.len()];
    let mut actions = actions.iter();
    let progress = |peer: &AnyPeer| {
        let l = peer.ledger().borrow();
        peer.wire().stats().progress + l.we_read + l.we_wrote + l.peer_read + l.peer_sent
    };
    let (mut last, mut stalled, mut turn) = (usize::MAX, 0, 0u32);
    loop {
        let ours_done = done[peer_tasks..].iter().all(|d| *d);
        let woken = flags.iter().zip(&done).any(|(f, d)| !d && f.0.load(Ordering::Acquire));
        if ours_done && !woken {
            return;
        }
        turn = turn.wrapping_add(1);
        if interleave != 0 && turn % u32::from(interleave) == 0 {
            if let Some(&(b, size)) = actions.next() {
                peer.act(b, size);
            }
        }
        let mut polled = false;
        for (i, task) in tasks.iter_mut().enumerate() {
            if done[i] || !flags[i].0.swap(false, Ordering::AcqRel) {
                continue;
            }
            polled = true;
            out.polls += 1;
            done[i] = task.as_mut().poll(&mut Context::from_waker(&wakers[i])).is_ready();
        }
        if polled {
            let now = progress(peer);
            stalled = if now == last { stalled + 1 } else { 0 };
            last = now;
            assert!(stalled < 2_000, "{stalled} polls without progress: a busy loop");
            assert!(out.polls < 500_000, "more than 500,000 polls");
            continue;
        }
        out.idle_checks += usize::from(on_idle());
        if let Some(&(b, size)) = actions.next() {
            peer.act(b, size);
            continue;
        }
        if peer.finish() {
            continue;
        }
        if ours_done {
            return;
        }
        // The peer has nothing left to do and nobody was woken. A task that makes
        // progress when polled anyway had lost its wake-up.
        let before = progress(peer);
        for (i, task) in tasks.iter_mut().enumerate() {
            if !done[i] {
                let ready = task.as_mut().poll(&mut Context::from_waker(&wakers[i])).is_ready();
                assert!(!ready, "lost wake-up: task {i} completed when polled without one");
            }
        }
        assert_eq!(
            before,
            progress(peer),
            "lost wake-up: a task made progress when polled without one"
        );
        if flags.iter().zip(&done).any(|(f, d)| !d && f.0.load(Ordering::Acquire)) {
            continue;
        }
        if peer.ledger().borrow().fatal || peer.done() {
            // Our end failed, or the peer closed the connection: a task may wait on a
            // transport that will never move again.
            return;
        }
        panic!("deadlock: every task waits, the peer is done, and nobody was woken");
    }
}
