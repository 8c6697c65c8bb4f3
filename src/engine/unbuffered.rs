//! rustls's unbuffered connection ([`Rustls`]): it carries the handshake, and after it,
//! when rustls is the record layer, application records and post-handshake messages.
//!
//! [`Rustls::process`] calls `process_tls_records` once; [`step`] handles the
//! [`ConnectionState`] it returned and reports what happened as a plain [`Step`] that
//! borrows nothing, so the caller can apply the `discard` and decide whether to call
//! rustls again.

use rustls::HandshakeKind;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, ReadEarlyData};

use super::buffers::{TX_CAP, Window};
use super::feed::RecordFeed;
use super::record::Native;
use crate::error::{Error, Invariant};
use crate::info::ConnectionInfo;

/// The unbuffered rustls connection of either side. Boxed: a connection is large, and
/// kept inline it would make every stream as large for its whole life, long after the
/// native layer took over.
pub(super) enum Rustls {
    Client(Box<UnbufferedClientConnection>),
    Server(Box<UnbufferedServerConnection>),
}

/// Runs `$body` with `$c` bound to the side's connection; both arms have the same code,
/// so generic code can follow.
macro_rules! either_side {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Rustls::Client($c) => $body,
            Rustls::Server($c) => $body,
        }
    };
}

impl Rustls {
    /// Calls rustls once over `rx` (during the handshake, over what `feed` gives it),
    /// consuming what it discards. Decrypted bytes go to `sinks`, encoded bytes to its
    /// `tx`.
    pub(super) fn process(
        &mut self,
        rx: &mut Window,
        mut feed: Option<&mut RecordFeed>,
        sinks: &mut Sinks<'_>,
        op: &mut WriteOp<'_>,
    ) -> Result<Step, Error> {
        let limit = match feed.as_mut() {
            Some(feed) => feed.limit(rx.data()),
            None => rx.len(),
        };
        let (discard, result) = either_side!(self, c => {
            let status = c.process_tls_records(&mut rx.data_mut()[..limit]);
            let result = match status.state {
                Ok(state) => step(state, sinks, op),
                Err(e) => Err(e.into()),
            };
            (status.discard, result)
        });
        rx.consume(discard);
        if let Some(feed) = feed {
            feed.discarded(discard);
        }
        result
    }

    pub(super) fn is_handshaking(&self) -> bool {
        either_side!(self, c => c.is_handshaking())
    }

    /// Whether rustls has bytes queued for the peer (a flight, an alert).
    pub(super) fn wants_write(&self) -> bool {
        either_side!(self, c => c.wants_write())
    }

    /// What the handshake negotiated; `sni` is what the engine learned of the name.
    pub(super) fn info(&self, sni: Option<String>) -> ConnectionInfo {
        either_side!(self, c => ConnectionInfo {
            alpn: c.alpn_protocol().map(<[u8]>::to_vec),
            protocol_version: c.protocol_version(),
            cipher_suite: c.negotiated_cipher_suite(),
            key_exchange_group: c.negotiated_key_exchange_group().map(|g| g.name()),
            sni,
            peer_certificates: c.peer_certificates().map(<[_]>::to_vec),
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
            ..ConnectionInfo::empty(Default::default())
        })
    }

    /// Hands the traffic secrets to the native record layer; rustls keeps the kernel
    /// connection for key updates and tickets.
    pub(super) fn into_native(self) -> Result<Native, Error> {
        match self {
            Rustls::Client(c) => Native::from_client(*c),
            Rustls::Server(c) => Native::from_server(*c),
        }
    }
}

/// What one call into rustls produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Something was consumed or produced; call rustls again.
    Continue,
    /// rustls needs more bytes from the peer to go on with the handshake.
    BlockedHandshake,
    /// Nothing more to do without input; application data may be sent.
    Traffic,
    /// The peer's close_notify was just processed (reported once).
    PeerClosed,
    /// Both close_notifies have been exchanged.
    Closed,
}

/// Where decrypted application data goes: first the caller's buffer, then the stash;
/// a server's early data goes to `early`, never to the others.
pub(super) struct Sinks<'a> {
    pub(super) tx: &'a mut Window,
    pub(super) plain: &'a mut Window,
    pub(super) early: &'a mut Window,
    pub(super) out: &'a mut [u8],
    pub(super) out_n: usize,
}

impl Sinks<'_> {
    fn deliver(&mut self, payload: &[u8]) {
        let room = self.out.len() - self.out_n;
        let direct = room.min(payload.len());
        self.out[self.out_n..self.out_n + direct].copy_from_slice(&payload[..direct]);
        self.out_n += direct;
        if direct < payload.len() {
            self.plain.extend(&payload[direct..]);
        }
    }
}

/// What to do if rustls lets us send application data in this step.
pub(super) enum WriteOp<'a> {
    None,
    /// Encrypt these bytes; `done` receives how many were taken.
    Encrypt {
        data: &'a [u8],
        done: usize,
    },
    /// Encrypt a close_notify alert.
    CloseNotify {
        done: bool,
    },
    /// Send a TLS 1.3 KeyUpdate that asks the peer to update too, and move to new keys.
    RefreshKeys {
        done: bool,
    },
}

pub(super) fn step<D: EarlyData>(
    state: ConnectionState<'_, '_, D>,
    sinks: &mut Sinks<'_>,
    op: &mut WriteOp<'_>,
) -> Result<Step, Error> {
    match state {
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                sinks.deliver(record?.payload);
            }
            Ok(Step::Continue)
        }
        ConnectionState::ReadEarlyData(early) => {
            D::drain(early, sinks)?;
            Ok(Step::Continue)
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            loop {
                match encode.encode(sinks.tx.spare()) {
                    Ok(n) => {
                        sinks.tx.commit(n);
                        break;
                    }
                    Err(EncodeError::InsufficientSize(e)) => sinks.tx.reserve(e.required_size),
                    Err(EncodeError::AlreadyEncoded) => break,
                }
            }
            Ok(Step::Continue)
        }
        // The encoded bytes already sit in `tx`; the stream flushes them before it waits
        // for anything, so telling rustls they are transmitted is safe.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            Ok(Step::Continue)
        }
        ConnectionState::BlockedHandshake => Ok(Step::BlockedHandshake),
        ConnectionState::PeerClosed => Ok(Step::PeerClosed),
        ConnectionState::Closed => Ok(Step::Closed),
        ConnectionState::WriteTraffic(mut traffic) => {
            if let WriteOp::RefreshKeys { done: done @ false } = op {
                *done = true;
                traffic.refresh_traffic_keys()?;
                // The KeyUpdate is queued in rustls; the next step encodes it.
                return Ok(Step::Continue);
            }
            match op {
                WriteOp::None => {}
                WriteOp::Encrypt { data, done } => {
                    let chunk = &data[*done..];
                    encrypt_into(sinks.tx, |out| traffic.encrypt(chunk, out))?;
                    *done += chunk.len();
                }
                WriteOp::CloseNotify { done } => {
                    encrypt_into(sinks.tx, |out| traffic.queue_close_notify(out))?;
                    *done = true;
                }
                WriteOp::RefreshKeys { .. } => {}
            }
            Ok(Step::Traffic)
        }
        // `ConnectionState` is non-exhaustive; a state we do not know cannot make progress
        // here, so report it as a protocol failure instead of looping.
        _ => Err(Invariant::UnknownRustlsState.into()),
    }
}

/// Runs a rustls encryption into `tx`'s spare room, growing it as rustls asks.
fn encrypt_into(
    tx: &mut Window,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), Error> {
    loop {
        match encrypt(tx.spare()) {
            Ok(n) => {
                tx.commit(n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(e)) => tx.reserve_capped(e.required_size, TX_CAP),
            Err(EncryptError::EncryptExhausted) => return Err(rustls::Error::EncryptError.into()),
        }
    }
}

/// Early (0-RTT) data exists only on the server side; this lets `step` stay generic.
pub(super) trait EarlyData: Sized {
    fn drain(early: ReadEarlyData<'_, '_, Self>, sinks: &mut Sinks<'_>) -> Result<(), Error>;
}

impl EarlyData for ServerConnectionData {
    /// Early data is replayable (RFC 8446 §8), so it is kept apart from ordinary data
    /// for the application to take knowingly. rustls bounds it by `max_early_data_size`.
    fn drain(mut early: ReadEarlyData<'_, '_, Self>, sinks: &mut Sinks<'_>) -> Result<(), Error> {
        while let Some(record) = early.next_record() {
            sinks.early.extend(record?.payload);
        }
        Ok(())
    }
}

impl EarlyData for ClientConnectionData {
    fn drain(_: ReadEarlyData<'_, '_, Self>, _: &mut Sinks<'_>) -> Result<(), Error> {
        // rustls never hands a client early data to read.
        Ok(())
    }
}
