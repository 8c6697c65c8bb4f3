//! The handshake phase: everything the engine does before records carry application
//! data. Its stages: a client waiting for its first poll; a server checking its first
//! bytes (plaintext HTTP?); a resolving server reading the ClientHello with rustls's
//! `Acceptor` and waiting for the stream's resolver; and a rustls connection handshaking,
//! where a fixed-config server peeks at the ClientHello's SNI. [`Handshaking::finish`]
//! turns the phase into a record layer for the traffic phase.

use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::{Accepted, Acceptor, ClientHello, UnbufferedServerConnection};
use rustls::{ClientConfig, ServerConfig};

use super::buffered::{BufferedClient, MAX_EARLY};
use super::capture::{self, Captured, ServerHello};
use super::exporter::Exporter;
use super::feed::RecordFeed;
use super::traffic::Layer;
use super::unbuffered::{Rustls, Step, WriteOp};
use super::{Buffers, HandshakeStatus, aead, record, sni};
use crate::error::{Error, Invariant};
use crate::info::{ConnectionInfo, RecordLayer};

/// The answer to a plaintext HTTP request on the TLS port, when the acceptor asks for one.
const PLAINTEXT_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Where the handshake is. What only one side keeps lives in that side's variants.
enum Stage {
    /// A client before its first poll: building the ClientHello (key generation) is CPU
    /// work, so it waits for the handshake's first poll rather than `connect()`.
    PendingClient {
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        /// What a write offered as early data before the ClientHello existed; the first
        /// drive sends what 0-RTT allows of it right after the ClientHello.
        early_offer: Vec<u8>,
    },
    /// A server before its first bytes were checked for plaintext HTTP. `answer`: such a
    /// request gets a `400` before the handshake fails. `next` reads the bytes once they
    /// are TLS (taken when this stage ends).
    FirstBytes {
        answer: bool,
        next: Option<ServerStart>,
    },
    /// A server that picks its config from the ClientHello: rustls's `Acceptor` reads the
    /// hello from a copy of the incoming bytes (`fed` of them so far); the bytes stay in
    /// `rx` and are replayed into the real connection once a config is chosen.
    AwaitingHello { acceptor: Box<Acceptor>, fed: usize },
    /// The ClientHello was read; the stream is asking its resolver for a config.
    HelloReady(Box<Accepted>),
    /// rustls's connection, handshaking. `sni_unseen`: a fixed-config server has not yet
    /// looked at its ClientHello for the SNI (rustls's unbuffered server does not expose
    /// it).
    Running { conn: Rustls, sni_unseen: bool },
    /// A client whose config enables early data, on rustls's buffered connection.
    /// `offer_taken`: how much of the early offer went out as early data.
    Buffered {
        client: Box<BufferedClient>,
        offer_taken: usize,
    },
}

/// What reads a server's first bytes once they are TLS.
enum ServerStart {
    /// A fixed config's connection; it peeks at the ClientHello for the SNI.
    Fixed(Rustls),
    /// A resolving server's `Acceptor`.
    Resolving(Box<Acceptor>),
}

impl ServerStart {
    fn into_stage(self) -> Stage {
        match self {
            ServerStart::Fixed(conn) => Stage::Running {
                conn,
                sni_unseen: true,
            },
            ServerStart::Resolving(acceptor) => Stage::AwaitingHello { acceptor, fed: 0 },
        }
    }
}

/// The handshake phase's state.
pub(super) struct Handshaking {
    stage: Stage,
    /// The client's requested name, kept for `info()`.
    sni: Option<String>,
    /// Which record layer to use after the handshake.
    layer: RecordLayer,
    /// What rustls's connection has been given of `rx`: whole records, so that nothing
    /// after the handshake's last one reaches it.
    feed: RecordFeed,
    /// What the handshake left for keying-material exporters.
    captured: Captured,
}

/// What [`Handshaking::drive`] reached.
pub(super) enum Progress {
    /// The handshake waits for input or for a config.
    Waiting(HandshakeStatus),
    /// rustls finished the handshake: [`Handshaking::finish`] next.
    Complete,
}

impl Handshaking {
    fn new(stage: Stage, sni: Option<String>, layer: RecordLayer) -> Self {
        Handshaking {
            stage,
            sni,
            layer,
            feed: RecordFeed::default(),
            captured: Captured::default(),
        }
    }

    pub(super) fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        layer: RecordLayer,
    ) -> Self {
        let sni = match &name {
            ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
            _ => None,
        };
        let layer = effective_layer(layer, config.enable_secret_extraction, config.fips());
        let stage = Stage::PendingClient {
            config,
            name,
            early_offer: Vec::new(),
        };
        Self::new(stage, sni, layer)
    }

    pub(super) fn server(config: Arc<ServerConfig>, layer: RecordLayer) -> Result<Self, Error> {
        let layer = effective_layer(layer, config.enable_secret_extraction, config.fips());
        let conn = UnbufferedServerConnection::new(config)?;
        let start = ServerStart::Fixed(Rustls::Server(Box::new(conn)));
        Ok(Self::new(first_bytes(start), None, layer))
    }

    pub(super) fn resolving(layer: RecordLayer) -> Self {
        let start = ServerStart::Resolving(Box::default());
        Self::new(first_bytes(start), None, layer)
    }

    pub(super) fn answer_plaintext_http(&mut self, answer: bool) {
        if let Stage::FirstBytes { answer: a, .. } = &mut self.stage {
            *a = answer;
        }
    }

    pub(super) fn client_hello(&self) -> Option<ClientHello<'_>> {
        match &self.stage {
            Stage::HelloReady(accepted) => Some(accepted.client_hello()),
            _ => None,
        }
    }

    /// Continues a resolving server with the chosen config. The ClientHello bytes, still
    /// in the incoming buffer, are replayed into the new connection.
    pub(super) fn set_server_config(&mut self, config: Arc<ServerConfig>) -> Result<(), Error> {
        self.layer = effective_layer(self.layer, true, config.fips());
        let config = capture::prepare_server_config(config);
        if let Stage::HelloReady(accepted) = &self.stage {
            self.sni = accepted.client_hello().server_name().map(str::to_owned);
        }
        let conn = UnbufferedServerConnection::new(config)?;
        self.stage = Stage::Running {
            conn: Rustls::Server(Box::new(conn)),
            sni_unseen: false,
        };
        Ok(())
    }

    /// See [`Engine::write_early`](super::Engine::write_early).
    pub(super) fn write_early(
        &mut self,
        data: &[std::io::IoSlice<'_>],
        tx: &mut super::Window,
    ) -> Result<usize, Error> {
        match &mut self.stage {
            Stage::Buffered { client, .. } => client.write_early(data, tx),
            Stage::PendingClient {
                config,
                early_offer,
                ..
            } if config.enable_early_data => {
                // Kept for the first drive, which builds the ClientHello: sent only then,
                // early data goes out in its flight, before a fast server can answer.
                early_offer.clear();
                for buf in data {
                    let room = MAX_EARLY - early_offer.len();
                    early_offer.extend_from_slice(&buf[..buf.len().min(room)]);
                }
                Ok(0)
            }
            _ => Ok(0),
        }
    }

    /// How much of the offer [`Handshaking::write_early`] kept went out as early data;
    /// the rest of the offer is dropped.
    pub(super) fn take_early_offer(&mut self) -> usize {
        match &mut self.stage {
            Stage::PendingClient { early_offer, .. } => {
                *early_offer = Vec::new();
                0
            }
            Stage::Buffered { offer_taken, .. } => std::mem::take(offer_taken),
            _ => 0,
        }
    }

    pub(super) fn early_pending(&self) -> bool {
        matches!(&self.stage, Stage::Buffered { client, .. } if client.early_pending())
    }

    /// After a failure: moves the alert a buffered client queued into `tx`.
    pub(super) fn flush_buffered(&mut self, tx: &mut super::Window) {
        if let Stage::Buffered { client, .. } = &mut self.stage {
            client.flush(tx);
        }
    }

    /// Where the incoming bytes that rustls's connection has not seen start: the next
    /// transport read is sized from them ([`super::feed::read_room`]).
    pub(super) fn unseen_from(&self) -> usize {
        match self.stage {
            Stage::Running { .. } => self.feed.unseen_from(),
            _ => 0,
        }
    }

    /// The rustls connection, once there is one.
    pub(super) fn rustls_mut(&mut self) -> Option<&mut Rustls> {
        match &mut self.stage {
            Stage::Running { conn, .. } => Some(conn),
            _ => None,
        }
    }

    /// Moves the handshake forward as far as the buffered input allows. rustls's key log
    /// writes into this connection's [`Captured`] meanwhile, and the ServerHello is read
    /// as it passes (see [`capture`]).
    pub(super) fn drive(&mut self, bufs: &mut Buffers) -> Result<Progress, Error> {
        let client = self.is_client();
        if client {
            self.watch_server_hello(bufs.rx.data());
        }
        let sent_before = bufs.tx.len();
        let mut captured = std::mem::take(&mut self.captured);
        let progress = capture::during(&mut captured, || self.drive_rustls(bufs));
        self.captured = captured;
        if !client {
            self.watch_server_hello(&bufs.tx.data()[sent_before.min(bufs.tx.len())..]);
        }
        progress
    }

    fn is_client(&self) -> bool {
        matches!(
            self.stage,
            Stage::PendingClient { .. }
                | Stage::Buffered { .. }
                | Stage::Running {
                    conn: Rustls::Client(_),
                    ..
                }
        )
    }

    /// Keeps the ServerHello's facts from the first handshake record the client received
    /// or the server sent, once it is whole.
    fn watch_server_hello(&mut self, first: &[u8]) {
        if matches!(self.captured.server_hello, ServerHello::Unseen) {
            if let Some(hello) = capture::read_server_hello(first) {
                self.captured.server_hello = hello;
            }
        }
    }

    fn drive_rustls(&mut self, bufs: &mut Buffers) -> Result<Progress, Error> {
        if let Stage::PendingClient {
            config,
            name,
            early_offer,
        } = &mut self.stage
        {
            let (config, name) = (config.clone(), name.clone());
            let early_offer = std::mem::take(early_offer);
            self.stage = start_client(config, name, &early_offer, bufs)?;
        }
        if let Stage::Buffered { client, .. } = &mut self.stage {
            return Ok(match client.drive(bufs)? {
                true => Progress::Complete,
                false => Progress::Waiting(HandshakeStatus::NeedInput),
            });
        }
        if let Stage::FirstBytes { answer, next } = &mut self.stage {
            match looks_like_http(bufs.rx.data()) {
                Some(true) => {
                    if *answer {
                        bufs.tx.extend(PLAINTEXT_HTTP_ANSWER);
                    }
                    return Err(Error::PlaintextHttp);
                }
                Some(false) => {
                    let next = next.take().ok_or(Invariant::NoConnection)?;
                    self.stage = next.into_stage();
                }
                None => return Ok(Progress::Waiting(HandshakeStatus::NeedInput)),
            }
        }
        if let Some(waiting) = self.read_client_hello(bufs)? {
            return Ok(Progress::Waiting(waiting));
        }
        self.peek_sni(bufs.rx.data());
        let Stage::Running { conn, .. } = &mut self.stage else {
            return Err(Invariant::NoConnection.into());
        };
        let mut n = 0;
        loop {
            // Bytes decrypted during the handshake (a server's early data) go to the
            // stash. rustls is given one record at a time (see `feed`), so it stops at the
            // handshake's last record.
            let feed = Some(&mut self.feed);
            let blocked = match bufs.process(conn, feed, &mut [], &mut n, &mut WriteOp::None)? {
                Step::Continue | Step::PeerClosed => continue,
                Step::BlockedHandshake => true,
                Step::Traffic | Step::Closed => conn.is_handshaking(),
            };
            if !blocked {
                return Ok(Progress::Complete);
            }
            if !self.feed.blocked(bufs.rx.len()) {
                return Ok(Progress::Waiting(HandshakeStatus::NeedInput));
            }
        }
    }

    /// A resolving server feeds its Acceptor until the ClientHello is whole. `None` once
    /// a config is set and the connection runs.
    fn read_client_hello(&mut self, bufs: &mut Buffers) -> Result<Option<HandshakeStatus>, Error> {
        let Stage::AwaitingHello { acceptor, fed } = &mut self.stage else {
            return Ok(match self.stage {
                Stage::HelloReady(_) => Some(HandshakeStatus::NeedConfig),
                _ => None,
            });
        };
        let mut unread = &bufs.rx.data()[*fed..];
        // rustls's deframer takes at most one record's worth of bytes beyond the handshake
        // message it is joining before it must process them: each read is processed
        // before the next, however much one transport read brought.
        let accepted = loop {
            let before = unread.len();
            if before > 0 {
                // With each read processed, the only refusal left is a handshake message
                // larger than rustls buffers (64 KiB): the peer's fault, not the transport's.
                acceptor.read_tls(&mut unread).map_err(|_| {
                    Error::Tls(rustls::Error::InvalidMessage(
                        rustls::InvalidMessage::HandshakePayloadTooLarge,
                    ))
                })?;
                *fed += before - unread.len();
            }
            match acceptor.accept() {
                Ok(None) if !unread.is_empty() && unread.len() < before => continue,
                accepted => break accepted,
            }
        };
        match accepted {
            Ok(None) => Ok(Some(HandshakeStatus::NeedInput)),
            Ok(Some(accepted)) => {
                self.stage = Stage::HelloReady(Box::new(accepted));
                Ok(Some(HandshakeStatus::NeedConfig))
            }
            Err((e, mut alert)) => {
                let mut bytes = Vec::new();
                let _ = alert.write_all(&mut bytes);
                bufs.tx.extend(&bytes);
                Err(e.into())
            }
        }
    }

    /// A fixed-config server looks at its first record once it is whole, before rustls
    /// consumes it, for the SNI (rustls's unbuffered server does not expose it).
    fn peek_sni(&mut self, d: &[u8]) {
        let Stage::Running {
            sni_unseen: unseen @ true,
            ..
        } = &mut self.stage
        else {
            return;
        };
        if d.len() >= 5 && d.len() >= 5 + usize::from(u16::from_be_bytes([d[3], d[4]])) {
            *unseen = false;
            self.sni = sni::client_hello_sni(d);
        }
    }

    /// Records what was negotiated, then moves to the native record layer if wanted and
    /// possible. A conversion refused up front (unsupported suite) falls back to rustls;
    /// one that fails midway is an error, since rustls's connection is gone by then.
    pub(super) fn finish(self, bufs: &mut Buffers) -> Result<(Layer, ConnectionInfo), Error> {
        let captured = self.captured;
        let conn = match self.stage {
            Stage::Running { conn, .. } => conn,
            Stage::Buffered { mut client, .. } => {
                let mut info = client.finish(bufs, self.sni)?;
                info.exporter = Exporter::new(info.cipher_suite, captured);
                if self.layer == RecordLayer::Native && client.can_go_native() {
                    let native = client.into_native(bufs)?;
                    info.record_layer = RecordLayer::Native;
                    return Ok((Layer::Native(native), info));
                }
                return Ok((Layer::Buffered(client), info));
            }
            _ => return Err(Invariant::NoConnection.into()),
        };
        let mut info = conn.info(self.sni);
        info.exporter = Exporter::new(info.cipher_suite, captured);
        if !bufs.early.is_empty() {
            info.early_data = crate::info::EarlyDataStatus::Accepted;
        }
        if self.layer == RecordLayer::Native && info.cipher_suite.is_some_and(record::supports) {
            let native = conn.into_native()?;
            info.record_layer = RecordLayer::Native;
            return Ok((Layer::Native(native), info));
        }
        Ok((Layer::Rustls(conn), info))
    }
}

/// A server's first stage: its first bytes are checked for plaintext HTTP before `next`
/// reads them.
fn first_bytes(next: ServerStart) -> Stage {
    Stage::FirstBytes {
        answer: false,
        next: Some(next),
    }
}

/// A client's first drive: its rustls connection, and on a config that enables early data
/// the buffered one, which sends what 0-RTT allows of `early_offer` right after the
/// ClientHello.
fn start_client(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    early_offer: &[u8],
    bufs: &mut Buffers,
) -> Result<Stage, Error> {
    if !config.enable_early_data {
        let conn = UnbufferedClientConnection::new(config, name)?;
        return Ok(Stage::Running {
            conn: Rustls::Client(Box::new(conn)),
            sni_unseen: false,
        });
    }
    let mut client = BufferedClient::new(config, name)?;
    let mut offer_taken = 0;
    if !early_offer.is_empty() {
        let offer = [std::io::IoSlice::new(early_offer)];
        offer_taken = client.write_early(&offer, &mut bufs.tx)?;
    }
    Ok(Stage::Buffered {
        client: Box::new(client),
        offer_taken,
    })
}

/// The native layer needs secret extraction; without it, or without an AEAD crate
/// compiled in, rustls carries the records. So it does for a config in FIPS mode
/// (`fips()`, the aws-lc-rs FIPS module): rustls seals its records with aws-lc's
/// TLS-specific AEAD keys, whose nonce checks are part of the approved use, and the
/// native layer's general AEAD keys are not.
fn effective_layer(wanted: RecordLayer, secrets_extractable: bool, fips: bool) -> RecordLayer {
    if wanted == RecordLayer::Native && secrets_extractable && aead::AVAILABLE && !fips {
        RecordLayer::Native
    } else {
        RecordLayer::Rustls
    }
}

/// Whether the first bytes a server got are a plaintext HTTP request rather than TLS:
/// `None` while too few bytes are here to tell. A TLS handshake record starts with 22;
/// HTTP/1 starts with an upper-case method and a space, HTTP/2 with `PRI * HTTP/2.0`.
pub(super) fn looks_like_http(first: &[u8]) -> Option<bool> {
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
