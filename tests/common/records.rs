//! Record-level views of a transport, and the tapped pairs the record-layer suites share.
//!
//! - [`Tap`]: a transport wrapper that can flip a bit in flight, hold back written bytes
//!   (to replay, reorder or truncate records by hand), and split both directions into
//!   records as they pass ([`RecordSplitter`]), so a test can count records of a given
//!   size (TLS 1.3 KeyUpdates are [`KEY_UPDATE_RECORD_LEN`] bytes);
//! - [`records`] and [`raw_record`]: captured bytes split into records, and a raw record
//!   header with garbage behind it;
//! - [`Pair`]: our stream and a tokio-rustls stream (rustls's buffered record layer) over
//!   `tokio::io::duplex`, each on a [`Tap`], behind one face ([`Peer`]); the constructors
//!   check that our end runs on the native record layer, so a silent fallback fails.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lazytls::rustls::{self, ClientConfig, HandshakeKind, ServerConfig, SupportedProtocolVersion};
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use super::forger::{Forger, TakenOver};
use super::rng::Rng;
use super::{Pki, assert_bytes, bounded, localhost, write_while_reading};

// =======================================================================================
// Taps
// =======================================================================================

/// Splits a byte stream into TLS records as it passes, and remembers each record's length
/// field. TLS 1.3 KeyUpdate records are 22 bytes long: 5 bytes of message, 1 of inner
/// content type and a 16-byte tag (neither rustls nor we pad).
#[derive(Default, Debug)]
pub struct RecordSplitter {
    header: Vec<u8>,
    body_left: usize,
    pub lens: Vec<usize>,
}

pub const KEY_UPDATE_RECORD_LEN: usize = 22;

impl RecordSplitter {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        // Each turn consumes at least one byte.
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == 5 {
                let len = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.lens.push(len);
                self.body_left = len;
                self.header.clear();
            }
        }
    }

    /// Records of KeyUpdate size from record number `from` on.
    pub fn key_updates_since(&self, from: usize) -> usize {
        self.lens[from.min(self.lens.len())..]
            .iter()
            .filter(|&&l| l == KEY_UPDATE_RECORD_LEN)
            .count()
    }
}

/// What a [`Tap`] does to the bytes written through it, and what it saw.
#[derive(Default, Debug)]
pub struct TapCtl {
    /// Flip the lowest bit of the byte at this offset, counted from when it was armed.
    flip_at: Option<usize>,
    written_since_arm: usize,
    /// Keep written bytes in `held` instead of passing them on (and ignore a shutdown).
    hold: bool,
    held: Vec<u8>,
    /// Records written and read through the tap.
    pub tx: RecordSplitter,
    pub rx: RecordSplitter,
}

/// A transport wrapper that can flip a bit in flight, hold back written bytes (to replay,
/// reorder or truncate them by hand), and count records in both directions.
pub struct Tap<IO = DuplexStream> {
    pub inner: IO,
    ctl: Arc<Mutex<TapCtl>>,
}

impl<IO> Tap<IO> {
    pub fn new(inner: IO) -> Tap<IO> {
        Tap {
            inner,
            ctl: Arc::default(),
        }
    }

    pub fn ctl(&self) -> std::sync::MutexGuard<'_, TapCtl> {
        self.ctl.lock().unwrap()
    }

    pub fn flip_after(&self, offset: usize) {
        let mut ctl = self.ctl();
        ctl.flip_at = Some(offset);
        ctl.written_since_arm = 0;
    }

    pub fn hold(&self) {
        self.ctl().hold = true;
    }

    /// Stops holding and returns what was held.
    pub fn release(&self) -> Vec<u8> {
        let mut ctl = self.ctl();
        ctl.hold = false;
        std::mem::take(&mut ctl.held)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tap<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.ctl.lock().unwrap().rx.feed(&buf.filled()[before..]);
        }
        poll
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tap<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut ctl = this.ctl.lock().unwrap();
        if ctl.hold {
            ctl.held.extend_from_slice(buf);
            ctl.tx.feed(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        let flip = ctl
            .flip_at
            .and_then(|at| at.checked_sub(ctl.written_since_arm))
            .filter(|&i| i < buf.len());
        let poll = match flip {
            Some(i) => {
                let mut copy = buf.to_vec();
                copy[i] ^= 1;
                Pin::new(&mut this.inner).poll_write(cx, &copy)
            }
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = poll {
            if ctl.flip_at.is_some() {
                ctl.written_since_arm += n;
                if flip.is_some_and(|i| i < n) {
                    ctl.flip_at = None;
                }
            }
            ctl.tx.feed(&buf[..n]);
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ctl.lock().unwrap().hold {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Splits captured bytes into whole records.
pub fn records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        assert!(bytes.len() >= len, "a partial record was captured");
        out.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    assert!(bytes.is_empty(), "a partial header was captured");
    out
}

/// A raw record header (and `body_len` bytes of garbage), to write onto a sender's
/// transport with [`write_raw`], bypassing its TLS state.
pub fn raw_record(typ: u8, version: [u8; 2], len: usize, body_len: usize) -> Vec<u8> {
    let len = u16::try_from(len).unwrap().to_be_bytes();
    let mut out = vec![typ, version[0], version[1], len[0], len[1]];
    out.extend(Rng::new(body_len as u64).bytes(body_len));
    out
}

// =======================================================================================
// Tapped pairs: our stream and tokio-rustls's
// =======================================================================================

/// Our stream, and tokio-rustls's client and server streams, behind one face.
pub trait Peer: AsyncRead + AsyncWrite + Unpin {
    fn name(&self) -> &'static str;
    /// Queues a TLS 1.3 KeyUpdate with `update_requested`; it goes out with the next
    /// write or flush.
    fn refresh(&mut self);
    fn tap(&mut self) -> &mut Tap;
    /// The rustls error inside an error this peer returned, if it is a TLS error.
    fn tls_error(&self, e: &io::Error) -> Option<rustls::Error>;
    /// Takes over a tokio-rustls connection's record layer (see [`Forger::take_over`]).
    fn into_forger(self: Box<Self>) -> Forger<TakenOver> {
        panic!("{} cannot be taken over", self.name())
    }
}

pub type Native = TlsStream<Tap>;
pub type RustlsClient = tokio_rustls::client::TlsStream<Tap>;
pub type RustlsServer = tokio_rustls::server::TlsStream<Tap>;

impl Peer for Native {
    fn name(&self) -> &'static str {
        let rustls_layer = self
            .info()
            .is_some_and(|i| i.record_layer == RecordLayer::Rustls);
        match (self.is_client(), rustls_layer) {
            (true, false) => "native client",
            (false, false) => "native server",
            (true, true) => "lazytls client (rustls layer)",
            (false, true) => "lazytls server (rustls layer)",
        }
    }

    fn refresh(&mut self) {
        self.refresh_traffic_keys()
            .expect("native refresh_traffic_keys");
    }

    fn tap(&mut self) -> &mut Tap {
        self.get_mut()
    }

    fn tls_error(&self, e: &io::Error) -> Option<rustls::Error> {
        match lazytls::Error::from_io(e) {
            Some(lazytls::Error::Tls(t)) => Some(t.clone()),
            _ => None,
        }
    }
}

pub fn rustls_error_in(e: &io::Error) -> Option<rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>().cloned()
}

/// tokio-rustls's client and server streams, which differ only in name.
macro_rules! rustls_peer {
    ($stream:ty, $name:literal) => {
        impl Peer for $stream {
            fn name(&self) -> &'static str {
                $name
            }

            fn refresh(&mut self) {
                self.get_mut()
                    .1
                    .refresh_traffic_keys()
                    .expect("rustls refresh_traffic_keys");
            }

            fn tap(&mut self) -> &mut Tap {
                self.get_mut().0
            }

            fn tls_error(&self, e: &io::Error) -> Option<rustls::Error> {
                rustls_error_in(e)
            }

            fn into_forger(self: Box<Self>) -> Forger<TakenOver> {
                let (io, conn) = self.into_inner();
                Forger::take_over(Box::new(io.inner), conn.into())
            }
        }
    };
}

rustls_peer!(RustlsClient, "tokio-rustls client");
rustls_peer!(RustlsServer, "tokio-rustls server");

/// Which end is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    NativeClient,
    NativeServer,
}

pub const ROLES: [Role; 2] = [Role::NativeClient, Role::NativeServer];

/// Which way the bytes under test travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    RustlsToNative,
    NativeToRustls,
}

pub const DIRS: [Dir; 2] = [Dir::RustlsToNative, Dir::NativeToRustls];

/// A connected pair: our stream and a tokio-rustls stream, each on a tapped transport.
pub struct Pair {
    pub native: Native,
    pub rustls: Box<dyn Peer>,
    /// Whether tokio-rustls resumed a session (from its connection's handshake kind).
    pub rustls_resumed: bool,
}

impl Pair {
    /// (sender, receiver) for bytes travelling in `dir`.
    pub fn ends(&mut self, dir: Dir) -> (&mut dyn Peer, &mut dyn Peer) {
        match dir {
            Dir::RustlsToNative => (&mut *self.rustls, &mut self.native),
            Dir::NativeToRustls => (&mut self.native, &mut *self.rustls),
        }
    }

    pub fn info(&self) -> &lazytls::ConnectionInfo {
        self.native.info().expect("info after the handshake")
    }
}

/// Connects our client (from `connector`) to a tokio-rustls server.
pub async fn native_client_pair(connector: &TlsConnector, server: Arc<ServerConfig>) -> Pair {
    finish_pair(pair_with_rustls_server(connector, server).await)
}

/// Connects a tokio-rustls client to our server (from `acceptor`).
pub async fn native_server_pair(client: Arc<ClientConfig>, acceptor: &TlsAcceptor) -> Pair {
    finish_pair(pair_with_rustls_client(client, acceptor).await)
}

/// [`native_client_pair`] without the check on the record layer.
pub async fn pair_with_rustls_server(connector: &TlsConnector, server: Arc<ServerConfig>) -> Pair {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut native = connector.connect(localhost(), Tap::new(a));
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let (ours, theirs) = bounded("handshake with tokio-rustls server", async {
        tokio::join!(native.handshake(), acceptor.accept(Tap::new(b)))
    })
    .await;
    ours.expect("native client handshake");
    let theirs = theirs.expect("tokio-rustls server handshake");
    let rustls_resumed = theirs.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    Pair {
        native,
        rustls: Box::new(theirs),
        rustls_resumed,
    }
}

/// [`native_server_pair`] without the check on the record layer.
pub async fn pair_with_rustls_client(client: Arc<ClientConfig>, acceptor: &TlsAcceptor) -> Pair {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut native = acceptor.accept(Tap::new(b));
    let (theirs, ours) = bounded("handshake with tokio-rustls client", async {
        tokio::join!(
            connector.connect(localhost(), Tap::new(a)),
            native.handshake()
        )
    })
    .await;
    ours.expect("native server handshake");
    let theirs = theirs.expect("tokio-rustls client handshake");
    let rustls_resumed = theirs.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    Pair {
        native,
        rustls: Box::new(theirs),
        rustls_resumed,
    }
}

pub fn finish_pair(pair: Pair) -> Pair {
    assert_eq!(
        pair.info().record_layer,
        RecordLayer::Native,
        "{}: the native record layer must carry this connection (no silent fallback)",
        pair.native.name()
    );
    pair
}

pub async fn make_pair(role: Role, client: ClientConfig, server: ServerConfig) -> Pair {
    match role {
        Role::NativeClient => {
            native_client_pair(&TlsConnector::new(Arc::new(client)), Arc::new(server)).await
        }
        Role::NativeServer => {
            native_server_pair(Arc::new(client), &TlsAcceptor::new(Arc::new(server))).await
        }
    }
}

/// A pair on `v` with `pki`'s plain configs, warmed up (see [`warm_up`]).
pub async fn warm_pair(pki: &Pki, role: Role, v: &[&'static SupportedProtocolVersion]) -> Pair {
    let mut pair = make_pair(role, pki.client_config_with(v), pki.server_config_with(v)).await;
    warm_up(&mut pair).await;
    pair
}

/// `data` from `from` to `to`, checked.
pub async fn send(from: &mut dyn Peer, to: &mut dyn Peer, data: &[u8]) {
    let what = format!("{} -> {}", from.name(), to.name());
    let (w, r) = bounded(&what, write_while_reading(from, to, data)).await;
    w.unwrap_or_else(|e| panic!("{what}: write: {e}"));
    let got = r.unwrap_or_else(|e| panic!("{what}: read: {e}"));
    assert_bytes(&what, &got, data);
}

/// A short message each way, so that everything the handshake left in flight (TLS 1.3
/// tickets) is delivered and the next bytes on the wire are the test's.
pub async fn warm_up(pair: &mut Pair) {
    send(
        &mut pair.native,
        &mut *pair.rustls,
        b"warm-up: native to rustls",
    )
    .await;
    send(
        &mut *pair.rustls,
        &mut pair.native,
        b"warm-up: rustls to native",
    )
    .await;
}

/// Reads once from `peer`; it must fail with a TLS error, which is returned.
pub async fn read_tls_error(peer: &mut dyn Peer, what: &str) -> rustls::Error {
    let name = peer.name();
    let mut buf = [0u8; 1024];
    let result = bounded(&format!("{what}: {name} read"), async {
        // Data sent before the fault may still arrive first (at most a few reads).
        for _ in 0..64 {
            match peer.read(&mut buf).await {
                Ok(0) => return Ok(0),
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(usize::MAX)
    })
    .await;
    let e = match result {
        Ok(n) => panic!("{what}: {name} read {n} instead of failing"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}: {name}: {e}");
    peer.tls_error(&e)
        .unwrap_or_else(|| panic!("{what}: {name}: not a TLS error: {e:?}"))
}

/// Writes `bytes` straight onto `peer`'s transport, under its TLS state (and past the
/// tap's flip and hold).
pub async fn write_raw(peer: &mut dyn Peer, bytes: &[u8], what: &str) {
    bounded(what, async {
        let io = &mut peer.tap().inner;
        io.write_all(bytes).await.unwrap();
        io.flush().await.unwrap();
    })
    .await;
}
