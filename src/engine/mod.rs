//! The sans-IO core. This is the only module that calls rustls connection APIs or an
//! AEAD. It fills and drains byte buffers; it knows nothing of `Context`, wakers or tokio.
//!
//! An [`Engine`] is in one of two phases:
//!
//! - the **handshake** ([`handshaking`]): rustls's unbuffered API ([`unbuffered`]) over
//!   the engine's buffers, with a server's ClientHello stages before it;
//! - **traffic** ([`traffic`]): a record layer carries application data. Either rustls's
//!   connection goes on, or rustls hands over the traffic secrets
//!   (`dangerous_into_kernel_connection`) and the native record layer ([`record`]) seals
//!   and opens records itself. A split stream takes the native layer apart into a
//!   receive engine and a send engine ([`Engine::split_off_send`]) and [`Engine::join`]
//!   puts it together again.
//!
//! A client whose config enables 0-RTT early data is the exception: rustls's buffered
//! connection ([`buffered`]) carries its handshake, because only that API tells whether
//! the server accepted the early data, and on TLS 1.3 the rest of the connection too
//! (that API has no kernel connection for key updates and tickets).
//!
//! The I/O core's calls ([`Engine::drive_handshake`], [`Engine::read`], [`Engine::write`],
//! [`Engine::close_notify`], …) are each one `match` over the phase. Each takes the
//! connection's [`Buffers`], which the caller owns, as quinn-proto's `poll_transmit`
//! writes into a buffer its caller owns (and as rustls 0.24's connections will read from
//! and write into caller-owned buffers): the engine reads the peer's bytes from `rx` and
//! writes its own into `tx`. When buffers are released or grown is the caller's policy.

mod aead;
mod buffered;
mod buffers;
mod capture;
mod exporter;
mod feed;
mod handshaking;
pub(crate) mod record;
#[cfg(all(test, any(feature = "aws-lc-rs", feature = "ring")))]
mod rfc8448;
mod sni;
#[cfg(any(test, fuzzing, feature = "fuzz-targets"))]
mod test_engine;
#[cfg(test)]
mod tests;
mod traffic;
mod unbuffered;

use std::io::IoSlice;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

pub(crate) use buffers::{
    Buffers, MAX_PLAINTEXT, MAX_RECORD, READ_MIN, RX_CAP, TX_BATCH, TX_KEEP, Window,
};
pub(crate) use capture::{prepare_client_config, prepare_server_config};
pub(crate) use exporter::Exporter;
use feed::RecordFeed;
use handshaking::{Handshaking, Progress};
use record::ReadStep;
/// What a split stream's receive engine asks its send engine to send (alerts, a KeyUpdate
/// answer).
pub(crate) use record::Requests;
#[cfg(any(test, fuzzing, feature = "fuzz-targets"))]
pub(crate) use test_engine::TestEngine;
use traffic::Layer;
use unbuffered::{Rustls, Sinks, Step, WriteOp};

use crate::error::{Error, Invariant};
use crate::info::{ConnectionInfo, RecordLayer};

/// Where the connection is.
enum Phase {
    Handshake(Handshaking),
    Traffic(Layer),
    /// rustls refused to create the connection (the stream holding this engine is failed
    /// from the start), no config could be chosen, or a conversion to the native layer
    /// failed midway.
    Unusable,
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

impl Buffers {
    /// Calls rustls once over the buffered input and handles the state it returns.
    fn process(
        &mut self,
        conn: &mut Rustls,
        feed: Option<&mut RecordFeed>,
        out: &mut [u8],
        out_n: &mut usize,
        op: &mut WriteOp<'_>,
    ) -> Result<Step, Error> {
        let mut sinks = Sinks {
            tx: &mut self.tx,
            plain: &mut self.plain,
            early: &mut self.early,
            out,
            out_n: *out_n,
        };
        let step = conn.process(&mut self.rx, feed, &mut sinks, op);
        *out_n = sinks.out_n;
        let step = step?;
        if step == Step::PeerClosed || step == Step::Closed {
            self.peer_closed = true;
        }
        Ok(step)
    }
}

/// Copies decrypted bytes left over from an earlier read into `out`.
fn take_plain(bufs: &mut Buffers, out: &mut [u8]) -> usize {
    let plain = &mut bufs.plain;
    let n = plain.len().min(out.len());
    out[..n].copy_from_slice(&plain.data()[..n]);
    plain.consume(n);
    n
}

/// A connection's TLS state, without its buffers: each call takes the [`Buffers`] its
/// caller owns (the I/O core's), reads the peer's bytes from `rx` and writes its own into
/// `tx`.
pub(crate) struct Engine {
    phase: Phase,
    client: bool,
    /// What the handshake negotiated, until the stream takes it.
    info: Option<ConnectionInfo>,
    /// The first error; every later entry point returns it.
    failed: Option<Error>,
    /// A receive engine: what it asks the send engine to send.
    requests: Requests,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("side", &if self.is_client() { "client" } else { "server" })
            .field("traffic", &self.in_traffic())
            .field("failed", &self.failed.is_some())
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
        let handshake = Handshaking::client(config, name, layer);
        Ok(Self::new(Phase::Handshake(handshake), true))
    }

    /// A server engine; see [`Engine::client`] for `layer`.
    pub(crate) fn server(config: Arc<ServerConfig>, layer: RecordLayer) -> Result<Self, Error> {
        let handshake = Handshaking::server(config, layer)?;
        Ok(Self::new(Phase::Handshake(handshake), false))
    }

    /// A server engine whose config is chosen from the ClientHello by the stream.
    pub(crate) fn server_resolving(layer: RecordLayer) -> Self {
        Self::new(Phase::Handshake(Handshaking::resolving(layer)), false)
    }

    /// An engine for a stream that failed before it began (rustls refused the config).
    pub(crate) fn unusable(client: bool) -> Self {
        Self::new(Phase::Unusable, client)
    }

    fn new(phase: Phase, client: bool) -> Self {
        Engine {
            phase,
            client,
            info: None,
            failed: None,
            requests: Requests::default(),
        }
    }

    /// Server side: a plaintext HTTP request on the TLS port is answered with a `400`
    /// (queued in `tx`) before the handshake fails with [`Error::PlaintextHttp`].
    pub(crate) fn answer_plaintext_http(mut self, answer: bool) -> Self {
        if let Phase::Handshake(handshake) = &mut self.phase {
            handshake.answer_plaintext_http(answer);
        }
        self
    }

    pub(crate) fn is_client(&self) -> bool {
        self.client
    }

    /// Whether a record layer carries application data (the handshake is over).
    pub(crate) fn in_traffic(&self) -> bool {
        matches!(self.phase, Phase::Traffic(_))
    }

    /// The ClientHello, once [`Engine::drive_handshake`] returned `NeedConfig`.
    pub(crate) fn client_hello(&self) -> Option<rustls::server::ClientHello<'_>> {
        match &self.phase {
            Phase::Handshake(handshake) => handshake.client_hello(),
            Phase::Traffic(_) | Phase::Unusable => None,
        }
    }

    /// Continues a resolving server with the chosen config. The ClientHello bytes, still
    /// in the incoming buffer, are replayed into the new connection.
    pub(crate) fn set_server_config(&mut self, config: Arc<ServerConfig>) -> Result<(), Error> {
        match &mut self.phase {
            Phase::Handshake(handshake) => handshake.set_server_config(config),
            Phase::Traffic(_) | Phase::Unusable => Err(Invariant::NoConnection.into()),
        }
    }

    /// Queues a plaintext fatal `handshake_failure` alert: the answer when no config could
    /// be chosen for a ClientHello.
    pub(crate) fn reject_client_hello(&mut self, bufs: &mut Buffers) {
        const HANDSHAKE_FAILURE: u8 = 40;
        bufs.tx.extend(&[21, 3, 3, 0, 2, 2, HANDSHAKE_FAILURE]);
        self.phase = Phase::Unusable;
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

    /// Moves the handshake forward as far as the buffered input allows. Outgoing flights
    /// land in `bufs.tx`.
    pub(crate) fn drive_handshake(&mut self, bufs: &mut Buffers) -> Result<HandshakeStatus, Error> {
        self.guard(|e| e.drive_handshake_inner(bufs))
    }

    fn drive_handshake_inner(&mut self, bufs: &mut Buffers) -> Result<HandshakeStatus, Error> {
        match &mut self.phase {
            Phase::Traffic(_) => Ok(HandshakeStatus::Done),
            Phase::Unusable => Err(Invariant::NoConnection.into()),
            Phase::Handshake(handshake) => match handshake.drive(bufs)? {
                Progress::Waiting(status) => Ok(status),
                Progress::Complete => {
                    let Phase::Handshake(handshake) =
                        std::mem::replace(&mut self.phase, Phase::Unusable)
                    else {
                        unreachable!("matched the handshake phase above");
                    };
                    let (layer, info) = handshake.finish(bufs)?;
                    self.phase = Phase::Traffic(layer);
                    self.info = Some(info);
                    Ok(HandshakeStatus::Done)
                }
            },
        }
    }

    /// Client: encrypts what 0-RTT allows of `data` as early data into `tx`, during the
    /// handshake. 0 when it allows none (no ticket, no `enable_early_data`, the server
    /// already answered), and before the ClientHello exists: then the bytes are kept, and
    /// the next drive sends what it can of them right after the ClientHello
    /// ([`Engine::take_early_offer`] says how much).
    pub(crate) fn write_early(
        &mut self,
        bufs: &mut Buffers,
        data: &[IoSlice<'_>],
    ) -> Result<usize, Error> {
        self.guard(|e| match &mut e.phase {
            Phase::Handshake(handshake) => handshake.write_early(data, &mut bufs.tx),
            Phase::Traffic(_) | Phase::Unusable => Ok(0),
        })
    }

    /// Client: how much of what [`Engine::write_early`] kept before the ClientHello went
    /// out as early data when the handshake built it (see [`Engine::write_early`]).
    pub(crate) fn take_early_offer(&mut self) -> usize {
        match &mut self.phase {
            Phase::Handshake(handshake) => handshake.take_early_offer(),
            Phase::Traffic(_) | Phase::Unusable => 0,
        }
    }

    /// Client: whether early data was written and the handshake has not said yet what
    /// became of it (a shutdown must wait for that, to send it again if refused).
    pub(crate) fn early_data_pending(&self) -> bool {
        match &self.phase {
            Phase::Handshake(handshake) => handshake.early_pending(),
            Phase::Traffic(_) | Phase::Unusable => false,
        }
    }

    /// Decrypts buffered records into `out`. Post-handshake messages are handled on the
    /// way (tickets, KeyUpdate; a KeyUpdate answer lands in `tx`).
    pub(crate) fn read(&mut self, bufs: &mut Buffers, out: &mut [u8]) -> Result<ReadStatus, Error> {
        self.guard(|e| e.read_inner(bufs, out))
    }

    fn read_inner(&mut self, bufs: &mut Buffers, out: &mut [u8]) -> Result<ReadStatus, Error> {
        let mut n = take_plain(bufs, out);
        let Phase::Traffic(layer) = &mut self.phase else {
            return Err(Invariant::NoConnection.into());
        };
        while n < out.len() {
            match layer.read(bufs, out, &mut n, &mut self.requests) {
                Ok(ReadStep::Progress) => continue,
                Ok(ReadStep::NeedInput) => break,
                Ok(ReadStep::PeerClosed) => {
                    bufs.peer_closed = true;
                    break;
                }
                // The data already delivered goes first; `guard` returns the error from
                // the next call.
                Err(e) if n > 0 => {
                    self.failed = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(if n > 0 {
            ReadStatus::Data(n)
        } else if bufs.peer_closed {
            ReadStatus::PeerClosed
        } else {
            ReadStatus::NeedInput
        })
    }

    /// Encrypts plaintext from `data` into `tx`: up to [`TX_BATCH`] bytes less what `tx`
    /// already holds. Small slices are gathered into one record rather than one record
    /// each. Returns how many plaintext bytes were taken (0 only when `tx` is full or the
    /// slices are empty).
    pub(crate) fn write(
        &mut self,
        bufs: &mut Buffers,
        data: &[IoSlice<'_>],
    ) -> Result<usize, Error> {
        self.guard(|e| e.write_inner(bufs, data))
    }

    fn write_inner(&mut self, bufs: &mut Buffers, data: &[IoSlice<'_>]) -> Result<usize, Error> {
        let first = data.first().map_or(&[][..], |b| &b[..]);
        if data.len() > 1 && first.len() < MAX_PLAINTEXT {
            return self.gather_and_seal(bufs, data);
        }
        let mut room = TX_BATCH.saturating_sub(bufs.tx.len());
        if first.len() > room && room >= MAX_PLAINTEXT {
            // Input that does not fit is cut at a record boundary: full records only.
            room -= room % MAX_PLAINTEXT;
        }
        self.seal(bufs, &first[..first.len().min(room)])
    }

    /// Seals slices that start small (an HTTP/2 frame header before its data, say):
    /// gathered into records of up to [`MAX_PLAINTEXT`] each, as many as the batch has
    /// room for, so that the transport takes them in one write. After the first record
    /// another is sealed only if a whole one fits or all that is left does: input that
    /// does not fit is cut at a record boundary, as a single slice is.
    ///
    /// A failure after some records were sealed returns what they took; the failure
    /// comes again from the next call, which the engine then keeps.
    fn gather_and_seal(
        &mut self,
        bufs: &mut Buffers,
        data: &[IoSlice<'_>],
    ) -> Result<usize, Error> {
        let mut gather = std::mem::take(&mut bufs.gather);
        let mut slices = data.iter().map(|b| &b[..]);
        let mut current: &[u8] = &[];
        let mut left: usize = data.iter().map(|b| b.len()).sum();
        let mut taken = 0;
        let result = loop {
            let limit = TX_BATCH.saturating_sub(bufs.tx.len()).min(MAX_PLAINTEXT);
            if left == 0 || limit == 0 || (taken > 0 && limit < MAX_PLAINTEXT && left > limit) {
                break Ok(taken);
            }
            gather.clear();
            while gather.len() < limit {
                if current.is_empty() {
                    match slices.next() {
                        Some(next) => current = next,
                        None => break,
                    }
                    continue;
                }
                let n = current.len().min(limit - gather.len());
                gather.extend(&current[..n]);
                current = &current[n..];
            }
            match self.seal(bufs, gather.data()) {
                Ok(n) if n < gather.len() => break Ok(taken + n),
                Ok(n) => {
                    taken += n;
                    left -= n;
                }
                Err(_) if taken > 0 => break Ok(taken),
                Err(e) => break Err(e),
            }
        };
        gather.clear();
        bufs.gather = gather;
        result
    }

    fn seal(&mut self, bufs: &mut Buffers, data: &[u8]) -> Result<usize, Error> {
        if data.is_empty() {
            return Ok(0);
        }
        self.traffic()?.seal(bufs, data)
    }

    /// The traffic phase's record layer.
    fn traffic(&mut self) -> Result<&mut Layer, Error> {
        match &mut self.phase {
            Phase::Traffic(layer) => Ok(layer),
            Phase::Handshake(_) | Phase::Unusable => Err(Invariant::NoConnection.into()),
        }
    }

    /// Queues a close_notify alert in `tx`.
    pub(crate) fn close_notify(&mut self, bufs: &mut Buffers) -> Result<(), Error> {
        self.guard(|e| e.traffic()?.close_notify(bufs))
    }

    /// Sends a TLS 1.3 KeyUpdate asking the peer to update as well, and moves our sending
    /// key forward. The KeyUpdate lands in `tx`.
    pub(crate) fn refresh_traffic_keys(&mut self, bufs: &mut Buffers) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.duplicate());
        }
        // A refusal (TLS 1.2 has no KeyUpdate) is not a failure of the connection.
        self.traffic()?.refresh_traffic_keys(bufs)
    }

    /// Whether this engine is a whole native one that [`Engine::split_off_send`] can
    /// divide.
    pub(crate) fn can_split(&self) -> bool {
        matches!(self.phase, Phase::Traffic(Layer::Native(_))) && self.failed.is_none()
    }

    /// Divides a whole native engine: `self` keeps the receive direction (the opener) and
    /// the returned engine gets the send direction (the sealer); the caller divides the
    /// buffers ([`Buffers::split_off_send`]). `None`, with `self` unchanged, when
    /// [`Engine::can_split`] is false.
    pub(crate) fn split_off_send(&mut self) -> Option<Engine> {
        if !self.can_split() {
            return None;
        }
        let Phase::Traffic(Layer::Native(native)) =
            std::mem::replace(&mut self.phase, Phase::Unusable)
        else {
            unreachable!("can_split saw a whole native layer");
        };
        let (recv, send) = native.split();
        self.phase = Phase::Traffic(Layer::Recv(Box::new(recv)));
        Some(Engine::new(
            Phase::Traffic(Layer::Send(Box::new(send))),
            self.client,
        ))
    }

    /// Joins what [`Engine::split_off_send`] divided. The first error of either side is kept.
    pub(crate) fn join(mut recv: Engine, send: Engine) -> Engine {
        let phase = std::mem::replace(&mut recv.phase, Phase::Unusable);
        recv.phase = match (phase, send.phase) {
            (Phase::Traffic(Layer::Recv(r)), Phase::Traffic(Layer::Send(s))) => {
                Phase::Traffic(Layer::Native(record::Native::join(*r, *s)))
            }
            // Not the two sides of one native layer: the receive engine's stays.
            (phase, _) => phase,
        };
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
    pub(crate) fn answer(&mut self, bufs: &mut Buffers, requests: Requests) -> Result<(), Error> {
        if requests.is_empty() {
            return Ok(());
        }
        self.guard(|e| e.traffic()?.answer(bufs, requests))
    }

    /// Test hook: the native layer, if in use.
    #[cfg(test)]
    pub(crate) fn native_mut(&mut self) -> Option<&mut record::Native> {
        match &mut self.phase {
            Phase::Traffic(Layer::Native(native)) => Some(native),
            _ => None,
        }
    }

    /// After rustls returned an error, pulls the alert it queued into `tx`, so the caller
    /// can make one best-effort write. Never fails; at most a few steps.
    pub(crate) fn collect_alert(&mut self, bufs: &mut Buffers) {
        match &mut self.phase {
            Phase::Handshake(handshake) => handshake.flush_buffered(&mut bufs.tx),
            Phase::Traffic(Layer::Buffered(client)) => client.flush(&mut bufs.tx),
            _ => {}
        }
        let conn = match &mut self.phase {
            Phase::Handshake(handshake) => handshake.rustls_mut(),
            Phase::Traffic(Layer::Rustls(conn)) => Some(conn),
            Phase::Traffic(_) | Phase::Unusable => None,
        };
        let Some(conn) = conn else { return };
        let mut n = 0;
        // rustls hands out what it queued (a flight, then the alert) before it reads
        // input again, so call it only while it has something queued: reading again could
        // reject the same bad record a second time and queue a second alert.
        for _ in 0..8 {
            if !conn.wants_write()
                || (bufs.process(conn, None, &mut [], &mut n, &mut WriteOp::None)).is_err()
            {
                break;
            }
        }
    }

    /// What the next transport read should offer ([`feed::read_room`]), judged from the
    /// bytes no rustls connection has seen: during the handshake, those after the records
    /// rustls was given; after it, every record layer consumes whole records.
    pub(crate) fn read_room(&self, bufs: &Buffers) -> usize {
        let from = match &self.phase {
            Phase::Handshake(handshake) => handshake.unseen_from(),
            Phase::Traffic(_) | Phase::Unusable => 0,
        };
        feed::read_room(bufs.rx.data(), from)
    }

    /// What was negotiated, once the handshake is done (before the stream takes it).
    #[cfg(any(test, fuzzing, feature = "fuzz-targets"))]
    pub(crate) fn info_ref(&self) -> Option<&ConnectionInfo> {
        self.info.as_ref()
    }

    /// What was negotiated, once the handshake is done.
    pub(crate) fn take_info(&mut self) -> Option<ConnectionInfo> {
        self.info.take()
    }
}
