//! The sans-IO core. This is the only module that calls rustls connection APIs. It fills
//! and drains byte buffers; it knows nothing of `Context`, wakers or tokio.
//!
//! Record layers: the handshake goes through rustls's unbuffered API ([`handshake`]).
//! After it, the native record layer ([`record`]) takes over by converting the
//! connection with `dangerous_into_kernel_connection()`, unless the rustls layer was
//! chosen or the suite needs it. The seam is the calls the stream makes here:
//! [`Engine::drive_handshake`], [`Engine::read`], [`Engine::write`] and
//! [`Engine::close_notify`]. A split stream turns one native engine into a receive engine
//! and a send engine ([`Engine::split_off_send`]).

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
mod aead;
mod buffers;
mod handshake;
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
pub(crate) mod record;
#[cfg(all(test, any(feature = "aws-lc-rs", feature = "ring")))]
mod rfc8448;
mod sni;
#[cfg(test)]
mod tests;

use std::io::IoSlice;
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, HandshakeKind, ServerConfig};

use buffers::TX_KEEP;
pub(crate) use buffers::{MAX_PLAINTEXT, MAX_RECORD, READ_MIN, TX_BATCH, Window};
use handshake::{Sinks, Step, WriteOp, step};

use crate::error::Error;
use crate::info::{ConnectionInfo, RecordLayer};

/// The rustls connection of either side.
enum Conn {
    /// A client before its first poll: building the ClientHello (key generation) is CPU
    /// work, so it waits for the handshake's first poll rather than `connect()`.
    PendingClient(Arc<ClientConfig>, ServerName<'static>),
    Client(UnbufferedClientConnection),
    /// A server that picks its config from the ClientHello: rustls's `Acceptor` reads the
    /// hello from a copy of the incoming bytes (`fed` of them so far); the bytes stay in
    /// `rx` and are replayed into the real connection once a config is chosen.
    AwaitingHello {
        acceptor: Box<rustls::server::Acceptor>,
        fed: usize,
    },
    /// The ClientHello was read; the stream is asking its resolver for a config.
    HelloReady(Box<rustls::server::Accepted>),
    Server(UnbufferedServerConnection),
    /// After the handshake: the native record layer, with rustls's kernel connection.
    #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
    Native(Box<record::Native>),
    /// The read half of a split stream: the receive direction only.
    #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
    Recv(Box<record::Recv>),
    /// The write half of a split stream: the send direction only.
    #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
    Send(Box<record::Send>),
    /// rustls refused to create the connection (the stream holding this engine is failed
    /// from the start), or a conversion to the native layer failed midway.
    Unusable,
}

/// Runs `$body` with `$c` bound to the side's connection; both arms have the same code,
/// so generic code can follow.
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr, other => $none:expr) => {
        match $conn {
            Conn::Client($c) => $body,
            Conn::Server($c) => $body,
            _ => $none,
        }
    };
}

/// The outcome of [`Engine::drive_handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeStatus {
    /// More bytes from the peer are needed.
    NeedInput,
    /// The ClientHello is here ([`Engine::client_hello`]); the handshake goes on after
    /// [`Engine::set_server_config`].
    NeedConfig,
    /// The handshake is complete (the final flight may still sit in the outgoing buffer).
    Done,
}

/// The outcome of [`Engine::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadStatus {
    /// This many plaintext bytes were written to the caller's buffer (at least one).
    Data(usize),
    /// No plaintext is available; more bytes from the peer are needed.
    NeedInput,
    /// The peer sent close_notify and every byte before it was delivered.
    PeerClosed,
}

pub(crate) struct Engine {
    conn: Conn,
    /// Incoming TLS bytes not yet consumed by rustls.
    rx: Window,
    /// Outgoing TLS bytes not yet written to the transport.
    tx: Window,
    /// Decrypted bytes the caller's buffer had no room for.
    plain: Window,
    /// Where small write slices are gathered into one record.
    gather: Vec<u8>,
    peer_closed: bool,
    /// The client's requested name, kept for `info()`.
    sni: Option<String>,
    /// Server side: whether the ClientHello was looked at for `sni` yet.
    sni_seen: bool,
    /// Server side: whether the first bytes were checked for plaintext HTTP.
    first_bytes_checked: bool,
    client: bool,
    /// Which record layer to use after the handshake.
    #[cfg_attr(not(any(feature = "aws-lc-rs", feature = "ring")), allow(dead_code))]
    layer: RecordLayer,
    /// What the handshake negotiated, captured before rustls's connection is converted.
    info: Option<ConnectionInfo>,
    /// The first error; every later entry point returns it.
    failed: Option<Error>,
    handshake_done: bool,
    /// A receive engine: what it asks the send engine to send.
    requests: Requests,
}

/// What a split stream's receive engine asks its send engine to send (alerts, a KeyUpdate
/// answer).
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
pub(crate) use record::Requests;

/// Without the native layer a stream never splits its engine: nothing is ever asked.
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Requests;

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
impl Requests {
    pub(crate) fn is_empty(&self) -> bool {
        true
    }

    pub(crate) fn is_fatal(&self) -> bool {
        false
    }

    pub(crate) fn merge(&mut self, _other: Requests) {}
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("side", &if self.is_client() { "client" } else { "server" })
            .field("rx", &self.rx.len())
            .field("tx", &self.tx.len())
            .field("plain", &self.plain.len())
            .field("peer_closed", &self.peer_closed)
            .finish()
    }
}

impl Engine {
    /// A client engine. `layer` is the record layer wanted after the handshake; the
    /// native layer needs `config.enable_secret_extraction`.
    pub(crate) fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        layer: RecordLayer,
    ) -> Result<Self, Error> {
        let sni = match &name {
            ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
            _ => None,
        };
        let layer = effective_layer(layer, config.enable_secret_extraction, config.fips());
        Ok(Self::new(
            Conn::PendingClient(config, name),
            sni,
            true,
            layer,
        ))
    }

    /// A server engine; see [`Engine::client`] for `layer`.
    pub(crate) fn server(config: Arc<ServerConfig>, layer: RecordLayer) -> Result<Self, Error> {
        let layer = effective_layer(layer, config.enable_secret_extraction, config.fips());
        let conn = UnbufferedServerConnection::new(config)?;
        Ok(Self::new(Conn::Server(conn), None, false, layer))
    }

    /// A server engine whose config is chosen from the ClientHello by the stream.
    pub(crate) fn server_resolving(layer: RecordLayer) -> Self {
        let conn = Conn::AwaitingHello {
            acceptor: Box::default(),
            fed: 0,
        };
        Self::new(conn, None, false, layer)
    }

    /// The ClientHello, once [`Engine::drive_handshake`] returned `NeedConfig`.
    pub(crate) fn client_hello(&self) -> Option<rustls::server::ClientHello<'_>> {
        match &self.conn {
            Conn::HelloReady(accepted) => Some(accepted.client_hello()),
            _ => None,
        }
    }

    /// Continues a resolving server with the chosen config. The ClientHello bytes, still
    /// in the incoming buffer, are replayed into the new connection.
    pub(crate) fn set_server_config(&mut self, config: Arc<ServerConfig>) -> Result<(), Error> {
        self.layer = effective_layer(self.layer, true, config.fips());
        let config = if self.layer == RecordLayer::Native && !config.enable_secret_extraction {
            let mut copy = ServerConfig::clone(&config);
            copy.enable_secret_extraction = true;
            Arc::new(copy)
        } else {
            config
        };
        if let Conn::HelloReady(accepted) = &self.conn {
            self.sni = accepted.client_hello().server_name().map(str::to_owned);
        }
        self.sni_seen = true;
        self.conn = Conn::Server(UnbufferedServerConnection::new(config)?);
        Ok(())
    }

    /// Queues a plaintext fatal `handshake_failure` alert: the answer when no config could
    /// be chosen for a ClientHello.
    pub(crate) fn reject_client_hello(&mut self) {
        const HANDSHAKE_FAILURE: u8 = 40;
        self.tx.extend(&[21, 3, 3, 0, 2, 2, HANDSHAKE_FAILURE]);
        self.conn = Conn::Unusable;
    }

    /// An engine for a stream that failed before it began (rustls refused the config).
    pub(crate) fn unusable(client: bool) -> Self {
        Self::new(Conn::Unusable, None, client, RecordLayer::Rustls)
    }

    fn new(conn: Conn, sni: Option<String>, client: bool, layer: RecordLayer) -> Self {
        Engine {
            client,
            layer,
            info: None,
            failed: None,
            handshake_done: false,
            requests: Requests::default(),
            rx: Window::default(),
            tx: Window::default(),
            plain: Window::default(),
            gather: Vec::new(),
            peer_closed: false,
            sni_seen: !matches!(conn, Conn::Server(_)),
            first_bytes_checked: client,
            sni,
            conn,
        }
    }

    pub(crate) fn is_client(&self) -> bool {
        self.client
    }

    /// Runs one entry point, keeping its first error: once the connection failed, rustls
    /// (or the native layer) is not called again, since reading on could reject the same
    /// bad record twice. Only [`Engine::collect_alert`] still asks rustls for its alert.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        if let Some(e) = &self.failed {
            return Err(e.duplicate());
        }
        let result = f(self);
        if let Err(e) = &result {
            self.failed = Some(e.duplicate());
        }
        result
    }

    /// Calls rustls once over the buffered input and handles the state it returns.
    fn process(
        &mut self,
        out: &mut [u8],
        out_n: &mut usize,
        op: &mut WriteOp<'_>,
    ) -> Result<Step, Error> {
        let Engine {
            conn,
            rx,
            tx,
            plain,
            ..
        } = self;
        let mut sinks = Sinks {
            tx,
            plain,
            out,
            out_n: *out_n,
        };
        let (discard, result) = with_conn!(conn, c => {
            let status = c.process_tls_records(rx.data_mut());
            let discard = status.discard;
            let result = match status.state {
                Ok(state) => step(state, &mut sinks, op),
                Err(e) => Err(e.into()),
            };
            (discard, result)
        }, other => (0, Err(unusable())));
        *out_n = sinks.out_n;
        rx.consume(discard);
        let step = result?;
        if step == Step::PeerClosed || step == Step::Closed {
            self.peer_closed = true;
        }
        Ok(step)
    }

    /// Moves the handshake forward as far as the buffered input allows. Outgoing flights
    /// land in [`Engine::tx`].
    pub(crate) fn drive_handshake(&mut self) -> Result<HandshakeStatus, Error> {
        self.guard(Self::drive_handshake_inner)
    }

    fn drive_handshake_inner(&mut self) -> Result<HandshakeStatus, Error> {
        if self.handshake_done {
            return Ok(HandshakeStatus::Done);
        }
        if let Conn::PendingClient(config, name) = &self.conn {
            let conn = UnbufferedClientConnection::new(config.clone(), name.clone())?;
            self.conn = Conn::Client(conn);
        }
        if !self.first_bytes_checked {
            match looks_like_http(self.rx.data()) {
                Some(true) => return Err(Error::PlaintextHttp),
                Some(false) => self.first_bytes_checked = true,
                None => return Ok(HandshakeStatus::NeedInput),
            }
        }
        if let Conn::AwaitingHello { acceptor, fed } = &mut self.conn {
            let mut unread = &self.rx.data()[*fed..];
            while !unread.is_empty() {
                let before = unread.len();
                acceptor.read_tls(&mut unread).map_err(Error::Io)?;
                *fed += before - unread.len();
            }
            match acceptor.accept() {
                Ok(None) => return Ok(HandshakeStatus::NeedInput),
                Ok(Some(accepted)) => {
                    self.conn = Conn::HelloReady(Box::new(accepted));
                    return Ok(HandshakeStatus::NeedConfig);
                }
                Err((e, mut alert)) => {
                    let mut bytes = Vec::new();
                    let _ = alert.write_all(&mut bytes);
                    self.tx.extend(&bytes);
                    self.conn = Conn::Unusable;
                    return Err(e.into());
                }
            }
        }
        if let Conn::HelloReady(_) = self.conn {
            return Ok(HandshakeStatus::NeedConfig);
        }
        if !self.sni_seen {
            // The first record is looked at once it is whole, before rustls consumes it.
            let d = self.rx.data();
            if d.len() >= 5 && d.len() >= 5 + usize::from(u16::from_be_bytes([d[3], d[4]])) {
                self.sni_seen = true;
                self.sni = sni::client_hello_sni(d);
            }
        }
        let mut n = 0;
        loop {
            // Bytes decrypted during the handshake (early data, or data that arrived with
            // the peer's Finished) go to the stash.
            match self.process(&mut [], &mut n, &mut WriteOp::None)? {
                Step::Continue | Step::PeerClosed => continue,
                Step::BlockedHandshake => return Ok(HandshakeStatus::NeedInput),
                Step::Traffic | Step::Closed => {
                    let handshaking =
                        with_conn!(&self.conn, c => c.is_handshaking(), other => true);
                    if handshaking {
                        return Ok(HandshakeStatus::NeedInput);
                    }
                    self.finish_handshake()?;
                    return Ok(HandshakeStatus::Done);
                }
            }
        }
    }

    /// Decrypts buffered records into `out`. Post-handshake messages are handled on the
    /// way (tickets, KeyUpdate; a KeyUpdate answer lands in `tx`).
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Result<ReadStatus, Error> {
        self.guard(|e| e.read_inner(out))
    }

    fn read_inner(&mut self, out: &mut [u8]) -> Result<ReadStatus, Error> {
        let mut n = self.take_plain(out);
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Native(native) = &mut self.conn {
            while n < out.len() {
                let step = match native.read(&mut self.rx, &mut self.tx, out, &mut n) {
                    Ok(step) => step,
                    // The data already delivered goes first; `guard` returns the error
                    // from the next call.
                    Err(e) if n > 0 => {
                        self.failed = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                };
                match step {
                    record::NativeRead::Progress => continue,
                    record::NativeRead::NeedInput => break,
                    record::NativeRead::PeerClosed => {
                        self.peer_closed = true;
                        break;
                    }
                }
            }
            return Ok(self.read_status(n));
        }
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Recv(recv) = &mut self.conn {
            while n < out.len() {
                match recv.read(&mut self.rx, out, &mut n, &mut self.requests) {
                    Ok(record::NativeRead::Progress) => continue,
                    Ok(record::NativeRead::NeedInput) => break,
                    Ok(record::NativeRead::PeerClosed) => {
                        self.peer_closed = true;
                        break;
                    }
                    Err(e) if n > 0 => {
                        self.failed = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok(self.read_status(n));
        }
        while n < out.len() {
            let step = match self.process(out, &mut n, &mut WriteOp::None) {
                Ok(step) => step,
                Err(e) if n > 0 => {
                    self.failed = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            match step {
                Step::Continue | Step::PeerClosed => continue,
                Step::BlockedHandshake | Step::Traffic | Step::Closed => break,
            }
        }
        Ok(self.read_status(n))
    }

    fn read_status(&self, n: usize) -> ReadStatus {
        if n > 0 {
            ReadStatus::Data(n)
        } else if self.peer_closed {
            ReadStatus::PeerClosed
        } else {
            ReadStatus::NeedInput
        }
    }

    fn take_plain(&mut self, out: &mut [u8]) -> usize {
        let n = self.plain.len().min(out.len());
        out[..n].copy_from_slice(&self.plain.data()[..n]);
        self.plain.consume(n);
        n
    }

    /// Encrypts plaintext from `bufs` into `tx`: up to [`TX_BATCH`] bytes less what `tx`
    /// already holds. Small slices are gathered into one record rather than one record
    /// each. Returns how many plaintext bytes were taken (0 only when `tx` is full or the
    /// slices are empty).
    pub(crate) fn write(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Error> {
        self.guard(|e| e.write_inner(bufs))
    }

    fn write_inner(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Error> {
        let mut room = TX_BATCH.saturating_sub(self.tx.len());
        let first = bufs.first().map_or(&[][..], |b| &b[..]);
        if first.len() > room && room >= MAX_PLAINTEXT {
            // Input that does not fit is cut at a record boundary: full records only.
            room -= room % MAX_PLAINTEXT;
        }
        if bufs.len() <= 1 || first.len() >= MAX_PLAINTEXT {
            return self.encrypt(&first[..first.len().min(room)]);
        }
        let mut gather = std::mem::take(&mut self.gather);
        gather.clear();
        let limit = room.min(MAX_PLAINTEXT);
        for buf in bufs {
            let take = buf.len().min(limit - gather.len());
            gather.extend_from_slice(&buf[..take]);
            if gather.len() == limit {
                break;
            }
        }
        let result = self.encrypt(&gather);
        self.gather = gather;
        result
    }

    fn encrypt(&mut self, data: &[u8]) -> Result<usize, Error> {
        if data.is_empty() {
            return Ok(0);
        }
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Native(native) = &mut self.conn {
            return native.write(&mut self.tx, data);
        }
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Send(send) = &mut self.conn {
            return send.write(&mut self.tx, data);
        }
        let mut op = WriteOp::Encrypt { data, done: 0 };
        self.run_write_op(&mut op)?;
        Ok(match op {
            WriteOp::Encrypt { done, .. } => done,
            _ => 0,
        })
    }

    /// Queues a close_notify alert in `tx`.
    pub(crate) fn close_notify(&mut self) -> Result<(), Error> {
        self.guard(Self::close_notify_inner)
    }

    fn close_notify_inner(&mut self) -> Result<(), Error> {
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Native(native) = &mut self.conn {
            return native.close_notify(&mut self.tx);
        }
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Send(send) = &mut self.conn {
            return send.close_notify(&mut self.tx);
        }
        let mut op = WriteOp::CloseNotify { done: false };
        self.run_write_op(&mut op)
    }

    /// Sends a TLS 1.3 KeyUpdate asking the peer to update as well, and moves our sending
    /// key forward. The KeyUpdate lands in `tx`.
    pub(crate) fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.duplicate());
        }
        // A refusal (TLS 1.2 has no KeyUpdate) is not a failure of the connection.
        self.refresh_traffic_keys_inner()
    }

    fn refresh_traffic_keys_inner(&mut self) -> Result<(), Error> {
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Native(native) = &mut self.conn {
            return native.refresh_traffic_keys(&mut self.tx);
        }
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Send(send) = &mut self.conn {
            return send.refresh_traffic_keys(&mut self.tx);
        }
        self.run_write_op(&mut WriteOp::RefreshKeys { done: false })
    }

    /// Whether this engine is a whole native one that [`Engine::split_off_send`] can
    /// divide.
    pub(crate) fn can_split(&self) -> bool {
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Native(_) = &self.conn {
            return self.failed.is_none() && self.plain.is_empty();
        }
        false
    }

    /// Divides a whole native engine: `self` keeps the receive direction (incoming
    /// bytes, the opener) and the returned engine gets the send direction (outgoing
    /// bytes, the sealer). `None`, with `self` unchanged, when [`Engine::can_split`] is
    /// false.
    pub(crate) fn split_off_send(&mut self) -> Option<Engine> {
        if !self.can_split() {
            return None;
        }
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let Conn::Native(native) = std::mem::replace(&mut self.conn, Conn::Unusable) {
            let (recv, send) = native.split();
            let mut send_engine =
                Engine::new(Conn::Send(Box::new(send)), None, self.client, self.layer);
            send_engine.handshake_done = true;
            send_engine.tx = std::mem::take(&mut self.tx);
            send_engine.gather = std::mem::take(&mut self.gather);
            self.conn = Conn::Recv(Box::new(recv));
            return Some(send_engine);
        }
        None
    }

    /// Joins what [`Engine::split_off_send`] divided. The first error of either side is kept.
    #[cfg_attr(not(any(feature = "aws-lc-rs", feature = "ring")), allow(unused_mut))]
    pub(crate) fn join(mut recv: Engine, mut send: Engine) -> Engine {
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if let (Conn::Recv(_), Conn::Send(_)) = (&recv.conn, &send.conn) {
            let r = std::mem::replace(&mut recv.conn, Conn::Unusable);
            let s = std::mem::replace(&mut send.conn, Conn::Unusable);
            if let (Conn::Recv(r), Conn::Send(s)) = (r, s) {
                recv.conn = Conn::Native(Box::new(record::Native::join(*r, *s)));
            }
        }
        recv.tx = send.tx;
        recv.gather = send.gather;
        recv.failed = recv.failed.or(send.failed);
        recv
    }

    /// The error a read deferred so that the data before it went first: the next call
    /// returns it. A split stream stores it for both halves before the alert goes out.
    pub(crate) fn deferred_error(&self) -> Option<Error> {
        self.failed.as_ref().map(Error::duplicate)
    }

    /// Takes what a receive engine asked to be sent.
    pub(crate) fn take_requests(&mut self) -> Requests {
        std::mem::take(&mut self.requests)
    }

    /// A send engine seals what its receive engine asked for into `tx`.
    pub(crate) fn answer(&mut self, requests: Requests) -> Result<(), Error> {
        if requests.is_empty() {
            return Ok(());
        }
        self.guard(|e| {
            #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
            if let Conn::Send(send) = &mut e.conn {
                return send.answer(&mut e.tx, requests);
            }
            let _ = e;
            Ok(())
        })
    }

    /// Test hook: the native layer, if in use.
    #[cfg(all(test, any(feature = "aws-lc-rs", feature = "ring")))]
    pub(crate) fn native_mut(&mut self) -> Option<&mut record::Native> {
        match &mut self.conn {
            Conn::Native(native) => Some(native),
            _ => None,
        }
    }

    fn run_write_op(&mut self, op: &mut WriteOp<'_>) -> Result<(), Error> {
        let mut n = 0;
        loop {
            match self.process(&mut [], &mut n, op)? {
                Step::Continue | Step::PeerClosed => continue,
                Step::Traffic => return Ok(()),
                // Unreachable after a completed handshake; refuse rather than spin.
                Step::BlockedHandshake | Step::Closed => {
                    return Err(
                        rustls::Error::General("connection cannot send data now".into()).into(),
                    );
                }
            }
        }
    }

    /// After rustls returned an error, pulls the alert it queued into `tx`, so the caller
    /// can make one best-effort write. Never fails; at most a few steps.
    pub(crate) fn collect_alert(&mut self) {
        let mut n = 0;
        // rustls hands out what it queued (a flight, then the alert) before it reads
        // input again, so call it only while it has something queued: reading again could
        // reject the same bad record a second time and queue a second alert.
        for _ in 0..8 {
            let queued = with_conn!(&self.conn, c => c.wants_write(), other => false);
            if !queued || self.process(&mut [], &mut n, &mut WriteOp::None).is_err() {
                break;
            }
        }
    }
    /// After a flush: gives back outgoing-buffer memory above one record.
    pub(crate) fn trim_tx(&mut self) {
        self.tx.shrink_to_if_idle(TX_KEEP);
    }

    /// Whether no outgoing bytes wait for the transport.
    pub(crate) fn tx_is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// Outgoing TLS bytes waiting for the transport.
    pub(crate) fn tx(&mut self) -> &mut Window {
        &mut self.tx
    }

    /// Room for incoming bytes: the rest of the record being received, or READ_MIN.
    pub(crate) fn rx_spare(&mut self) -> &mut [u8] {
        // The rest of the record being received, once its header is here (never more than
        // one maximum record in all); READ_MIN before that. A buffer that grew to a whole
        // record never grows again.
        let d = self.rx.data();
        let want = if d.len() >= 5 {
            // A header announcing more than the largest record is rejected once it is
            // in; it must not make the buffer grow first.
            let record = 5 + usize::from(u16::from_be_bytes([d[3], d[4]]));
            record.min(MAX_RECORD).saturating_sub(d.len()).max(1)
        } else {
            READ_MIN
        };
        self.rx.reserve_capped(want, MAX_RECORD);
        self.rx.spare()
    }

    pub(crate) fn rx_commit(&mut self, n: usize) {
        self.rx.commit(n);
    }

    /// Test hook: incoming bytes not yet consumed.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// Whether incoming bytes of an unfinished record are buffered (an EOF now would cut
    /// a record in half).
    pub(crate) fn rx_partial(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Drops buffer memory that a large handshake flight left behind.
    pub(crate) fn trim_after_handshake(&mut self) {
        // The handshake's buffers are sized for its flights; an idle connection keeps none.
        // The first read and write after it allocate their buffers once.
        self.tx.shrink_if_idle(0);
        self.rx.shrink_if_idle(0);
        self.plain.shrink_if_idle(0);
    }

    /// Heap bytes held by the engine's own buffers (not rustls's).
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.rx.capacity() + self.tx.capacity() + self.plain.capacity() + self.gather.capacity()
    }

    /// Records what was negotiated, then moves to the native record layer if wanted and
    /// possible. A conversion refused up front (unsupported suite) falls back to rustls;
    /// one that fails midway is an error, since rustls's connection is gone by then.
    fn finish_handshake(&mut self) -> Result<(), Error> {
        self.handshake_done = true;
        #[cfg_attr(not(any(feature = "aws-lc-rs", feature = "ring")), allow(unused_mut))]
        let mut info = with_conn!(&self.conn, c => ConnectionInfo {
            alpn: c.alpn_protocol().map(<[u8]>::to_vec),
            protocol_version: c.protocol_version(),
            cipher_suite: c.negotiated_cipher_suite(),
            sni: self.sni.clone(),
            peer_certificates: c.peer_certificates().map(<[_]>::to_vec),
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
            handshake_duration: Default::default(),
            record_layer: RecordLayer::Rustls,
        }, other => ConnectionInfo::empty(Default::default()));
        #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
        if self.layer == RecordLayer::Native && info.cipher_suite.is_some_and(record::supports) {
            let native = match std::mem::replace(&mut self.conn, Conn::Unusable) {
                Conn::Client(c) => record::Native::from_client(c)?,
                Conn::Server(c) => record::Native::from_server(c)?,
                other => {
                    self.conn = other;
                    return Err(unusable());
                }
            };
            self.conn = Conn::Native(Box::new(native));
            info.record_layer = RecordLayer::Native;
        }
        self.info = Some(info);
        Ok(())
    }

    /// What was negotiated, once the handshake is done (before the stream takes it).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn info_ref(&self) -> Option<&ConnectionInfo> {
        self.info.as_ref()
    }

    /// What was negotiated, once the handshake is done.
    pub(crate) fn take_info(&mut self) -> Option<ConnectionInfo> {
        self.info.take()
    }
}

/// The native layer needs secret extraction; without it, or without an AEAD crate
/// compiled in, rustls carries the records. So it does for a config in FIPS mode
/// (`fips()`, the aws-lc-rs FIPS module): rustls seals its records with aws-lc's
/// TLS-specific AEAD keys, whose nonce checks are part of the approved use, and the
/// native layer's general AEAD keys are not.
fn effective_layer(wanted: RecordLayer, secrets_extractable: bool, fips: bool) -> RecordLayer {
    let native_built = cfg!(any(feature = "aws-lc-rs", feature = "ring"));
    if wanted == RecordLayer::Native && secrets_extractable && native_built && !fips {
        RecordLayer::Native
    } else {
        RecordLayer::Rustls
    }
}

/// Whether the first bytes a server got are a plaintext HTTP request rather than TLS:
/// `None` while too few bytes are here to tell. A TLS handshake record starts with 22;
/// HTTP/1 starts with an upper-case method and a space, HTTP/2 with `PRI * HTTP/2.0`.
fn looks_like_http(first: &[u8]) -> Option<bool> {
    const METHODS: [&[u8]; 10] = [
        b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PRI ",
    ];
    match first.first() {
        None => None,
        Some(b) if !b.is_ascii_uppercase() => Some(false),
        Some(_) if first.len() < 4 => {
            // Decide early only if no method can match any more.
            let possible = METHODS.iter().any(|m| m.starts_with(first));
            if possible { None } else { Some(false) }
        }
        Some(_) => Some(METHODS.iter().any(|m| first.starts_with(m))),
    }
}

fn unusable() -> Error {
    rustls::Error::General("tls connection was never created".into()).into()
}
