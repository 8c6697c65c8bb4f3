//! Part of the API-level checker (see `checker` for what it does): the configurations,
//! and the peers, a rustls connection driven by hand or a lazytls stream.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use lazytls::rustls::client::Resumption;
use lazytls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use lazytls::rustls::server::ServerSessionMemoryCache;
use lazytls::rustls::{
    self, ClientConfig, Connection, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use lazytls::{Error, HandshakeState, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::checker::{PEER_SEED, PeerWire, Wire, stream_byte, tracing};
use super::ours::{Shared, check_ours};
use crate::fuzzing::targets::provider;

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
    pub(super) fn from_bytes(a: u8, b: u8) -> Setup {
        let client = a & 1 != 0;
        Setup {
            client,
            tls13: a & 2 == 0,
            rustls_layer: a & 4 != 0,
            early_data: client && a & 8 != 0,
            long_alpn: a & 16 != 0,
            big_chain: a & 32 != 0,
            keep_idle_buffers: a & 64 != 0,
            usage: [Usage::Whole, Usage::Halves, Usage::TokioSplit, Usage::Whole]
                [usize::from(b % 4)],
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
                let names = (0..200)
                    .map(|i| format!("pad-{n}-{i:03}.example"))
                    .collect::<Vec<_>>();
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
pub(super) fn run_configs(setup: &Setup) -> (ClientConfig, ServerConfig) {
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
pub(super) struct Ledger {
    /// Bytes the peer wrote as application data, and bytes of them we read.
    pub(super) peer_sent: usize,
    pub(super) we_read: usize,
    /// Bytes our writes took, and bytes of them the peer received.
    pub(super) we_wrote: usize,
    pub(super) peer_read: usize,
    /// The peer's close_notify was written by it.
    pub(super) peer_closed: bool,
    /// We read the end of the stream.
    pub(super) we_saw_eof: bool,
    /// Something may legitimately end the connection early: a transport error or TCP
    /// close, or our own failure.
    pub(super) fatal: bool,
    /// Written since the last completed flush or shutdown.
    pub(super) unflushed: bool,
    /// Our close_notify or fatal alert reached the peer: nothing may follow.
    our_last_word: bool,
}

pub(super) struct Peer {
    pub(super) conn: Connection,
    pub(super) wire: Wire,
    pub(super) ledger: Rc<RefCell<Ledger>>,
    /// What the peer wrote and has not delivered yet.
    pub(super) outbox: Vec<u8>,
    /// The peer failed (after our fatal alert, or it reset the connection).
    pub(super) done: bool,
    pub(super) key_updates: usize,
    /// A KeyUpdate was asked for during the handshake: it goes right behind the
    /// handshake's last flight, in the same delivery.
    pub(super) key_update_at_handoff: bool,
}

impl Peer {
    /// Takes in everything our end sent, and checks it.
    pub(super) fn pump(&mut self) -> bool {
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
pub(super) struct PeerCmds {
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
pub(super) struct LazyPeer {
    pub(super) stream: Shared<TlsStream<PeerWire>>,
    pub(super) wire: Wire,
    pub(super) ledger: Rc<RefCell<Ledger>>,
    pub(super) cmds: Rc<PeerCmds>,
    pub(super) closing: bool,
    pub(super) done: bool,
    pub(super) key_updates: usize,
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

pub(super) async fn lazy_peer_reader(
    stream: Shared<TlsStream<PeerWire>>,
    ledger: Rc<RefCell<Ledger>>,
    wire: Wire,
) {
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

pub(super) async fn lazy_peer_writer(
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
                let data: Vec<u8> = (from..from + n)
                    .map(|i| stream_byte(PEER_SEED, i))
                    .collect();
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
pub(super) enum AnyPeer {
    Rustls(Box<Peer>),
    Lazytls(LazyPeer),
}

impl AnyPeer {
    pub(super) fn act(&mut self, b: u8, size: u16) -> bool {
        match self {
            AnyPeer::Rustls(p) => p.act(b, size),
            AnyPeer::Lazytls(p) => p.act(b, size),
        }
    }

    pub(super) fn finish(&mut self) -> bool {
        match self {
            AnyPeer::Rustls(p) => p.finish(),
            AnyPeer::Lazytls(p) => p.finish(),
        }
    }

    pub(super) fn ledger(&self) -> &Rc<RefCell<Ledger>> {
        match self {
            AnyPeer::Rustls(p) => &p.ledger,
            AnyPeer::Lazytls(p) => &p.ledger,
        }
    }

    pub(super) fn wire(&self) -> &Wire {
        match self {
            AnyPeer::Rustls(p) => &p.wire,
            AnyPeer::Lazytls(p) => &p.wire,
        }
    }

    pub(super) fn done(&self) -> bool {
        match self {
            AnyPeer::Rustls(p) => p.done,
            AnyPeer::Lazytls(p) => p.done,
        }
    }

    pub(super) fn key_updates(&self) -> usize {
        match self {
            AnyPeer::Rustls(p) => p.key_updates,
            AnyPeer::Lazytls(p) => p.key_updates,
        }
    }

    /// The peer's keying material for `label`, once its handshake has completed and while
    /// it has not failed (rustls refuses then).
    pub(super) fn export(&self, label: &[u8]) -> Option<[u8; 32]> {
        let context = Some(&b"api_sequences"[..]);
        match self {
            AnyPeer::Rustls(p) => p.conn.export_keying_material([0; 32], label, context).ok(),
            AnyPeer::Lazytls(p) => (p.stream.0.borrow())
                .export_keying_material([0; 32], label, context)
                .ok(),
        }
    }
}
