//! The sans-IO core. This is the only module that calls rustls connection APIs. It fills
//! and drains byte buffers; it knows nothing of `Context`, wakers or tokio.
//!
//! Record layers: today every record goes through rustls's unbuffered API
//! ([`handshake`]). The native record layer will take over after the handshake by
//! converting the connection with `dangerous_into_kernel_connection()`; the seam is the
//! four calls the stream makes here: [`Engine::drive_handshake`], [`Engine::read`],
//! [`Engine::write`] and [`Engine::close_notify`].

mod buffers;
mod handshake;
mod sni;

use std::io::IoSlice;
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, HandshakeKind, ServerConfig};

pub(crate) use buffers::{MAX_PLAINTEXT, MAX_RECORD, TX_BATCH, Window};
use handshake::{Sinks, Step, WriteOp, step};

use crate::error::Error;
use crate::info::{ConnectionInfo, RecordLayer};

/// The rustls connection of either side.
enum Conn {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
    /// rustls refused to create the connection; the stream holding this engine is failed
    /// from the start and never calls in here.
    Unusable,
}

/// Runs `$body` with `$c` bound to the side's connection; both arms have the same code,
/// so generic code can follow.
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr, unusable => $none:expr) => {
        match $conn {
            Conn::Client($c) => $body,
            Conn::Server($c) => $body,
            Conn::Unusable => $none,
        }
    };
}

/// The outcome of [`Engine::drive_handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeStatus {
    /// More bytes from the peer are needed.
    NeedInput,
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
    pub(crate) fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Self, Error> {
        let sni = match &name {
            ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
            _ => None,
        };
        let conn = UnbufferedClientConnection::new(config, name)?;
        Ok(Self::new(Conn::Client(conn), sni))
    }

    pub(crate) fn server(config: Arc<ServerConfig>) -> Result<Self, Error> {
        let conn = UnbufferedServerConnection::new(config)?;
        Ok(Self::new(Conn::Server(conn), None))
    }

    /// An engine for a stream that failed before it began (rustls refused the config).
    pub(crate) fn unusable() -> Self {
        Self::new(Conn::Unusable, None)
    }

    fn new(conn: Conn, sni: Option<String>) -> Self {
        Engine {
            rx: Window::default(),
            tx: Window::default(),
            plain: Window::default(),
            gather: Vec::new(),
            peer_closed: false,
            sni_seen: !matches!(conn, Conn::Server(_)),
            sni,
            conn,
        }
    }

    pub(crate) fn is_client(&self) -> bool {
        matches!(self.conn, Conn::Client(_))
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
        }, unusable => (0, Err(unusable())));
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
                        with_conn!(&self.conn, c => c.is_handshaking(), unusable => true);
                    return Ok(if handshaking {
                        HandshakeStatus::NeedInput
                    } else {
                        HandshakeStatus::Done
                    });
                }
            }
        }
    }

    /// Decrypts buffered records into `out`. Post-handshake messages are handled on the
    /// way (tickets, KeyUpdate; a KeyUpdate answer lands in `tx`).
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Result<ReadStatus, Error> {
        let mut n = self.take_plain(out);
        while n < out.len() {
            match self.process(out, &mut n, &mut WriteOp::None)? {
                Step::Continue | Step::PeerClosed => continue,
                Step::BlockedHandshake | Step::Traffic | Step::Closed => break,
            }
        }
        Ok(if n > 0 {
            ReadStatus::Data(n)
        } else if self.peer_closed {
            ReadStatus::PeerClosed
        } else {
            ReadStatus::NeedInput
        })
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
        let room = TX_BATCH.saturating_sub(self.tx.len());
        let first = bufs.first().map_or(&[][..], |b| &b[..]);
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
        let mut op = WriteOp::Encrypt { data, done: 0 };
        self.run_write_op(&mut op)?;
        Ok(match op {
            WriteOp::Encrypt { done, .. } => done,
            _ => 0,
        })
    }

    /// Queues a close_notify alert in `tx`.
    pub(crate) fn close_notify(&mut self) -> Result<(), Error> {
        let mut op = WriteOp::CloseNotify { done: false };
        self.run_write_op(&mut op)
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
        for _ in 0..4 {
            if !matches!(
                self.process(&mut [], &mut n, &mut WriteOp::None),
                Ok(Step::Continue)
            ) {
                break;
            }
        }
    }

    /// Outgoing TLS bytes waiting for the transport.
    pub(crate) fn tx(&mut self) -> &mut Window {
        &mut self.tx
    }

    /// Room for incoming bytes: at least one maximum record.
    pub(crate) fn rx_spare(&mut self) -> &mut [u8] {
        self.rx.reserve(MAX_RECORD);
        self.rx.spare()
    }

    pub(crate) fn rx_commit(&mut self, n: usize) {
        self.rx.commit(n);
    }

    /// Whether incoming bytes of an unfinished record are buffered (an EOF now would cut
    /// a record in half).
    pub(crate) fn rx_partial(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Drops buffer memory that a large handshake flight left behind.
    pub(crate) fn trim_after_handshake(&mut self) {
        self.tx.shrink_if_idle(TX_BATCH + MAX_RECORD);
        self.rx.shrink_if_idle(2 * MAX_RECORD);
    }

    /// Heap bytes held by the engine's own buffers (not rustls's).
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.rx.capacity() + self.tx.capacity() + self.plain.capacity() + self.gather.capacity()
    }

    /// What was negotiated; call after the handshake.
    pub(crate) fn connection_info(
        &self,
        handshake_duration: std::time::Duration,
    ) -> ConnectionInfo {
        with_conn!(&self.conn, c => ConnectionInfo {
            alpn: c.alpn_protocol().map(<[u8]>::to_vec),
            protocol_version: c.protocol_version(),
            cipher_suite: c.negotiated_cipher_suite(),
            sni: self.sni.clone(),
            peer_certificates: c.peer_certificates().map(<[_]>::to_vec),
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
            handshake_duration,
            record_layer: RecordLayer::Rustls,
        }, unusable => ConnectionInfo::empty(handshake_duration))
    }
}

fn unusable() -> Error {
    rustls::Error::General("tls connection was never created".into()).into()
}
