//! rustls's buffered client connection ([`BufferedClient`]), which carries a client whose
//! config enables 0-RTT early data: its handshake, and on TLS 1.3 the whole connection.
//!
//! Why not the unbuffered connection the rest of the engine uses: its client cannot tell
//! whether the server accepted early data (only the buffered `ClientConnection` has
//! `is_early_data_accepted`), and without that a client cannot know whether to send the
//! refused bytes again. Why a TLS 1.3 connection stays here after the handshake: the
//! buffered connection has no `dangerous_into_kernel_connection`, so there would be no
//! rustls state left for key updates and tickets; rustls seals and opens its records, as
//! tokio-rustls does for all of its connections. A TLS 1.2 connection needs no rustls
//! state after its handshake (and has no early data), so on the native layer it moves
//! there like any other ([`BufferedClient::into_native`]), and survives a HelloRequest
//! like any other.
//!
//! rustls is only ever given whole records from `rx`: a partial record stays in our
//! buffer, where the stream's truncation rule can see it.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::client::ClientConnection;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind};

use super::Buffers;
use super::buffers::{MAX_RECORD, READ_MIN, Window};
use super::record::{self, ReadStep};
use crate::error::Error;
use crate::info::{ConnectionInfo, EarlyDataStatus};

/// The most early data a stream takes. It keeps a copy until the server has answered
/// (to send it again if refused), so the copy is bounded here as well as by the ticket's
/// `max_early_data_size`; writes beyond it wait for the handshake.
pub(super) const MAX_EARLY: usize = 64 * 1024;

/// A client on rustls's buffered connection; see the module docs.
pub(crate) struct BufferedClient {
    conn: ClientConnection,
    /// A copy of the early data written, until the handshake says whether the server
    /// took it.
    early: Vec<u8>,
    /// Whether any early data was written.
    early_written: bool,
}

impl BufferedClient {
    /// Builds the ClientHello (and the early data keys, if a ticket allows 0-RTT).
    pub(super) fn new(config: Arc<ClientConfig>, name: ServerName<'static>) -> Result<Self, Error> {
        Ok(BufferedClient {
            conn: ClientConnection::new(config, name)?,
            early: Vec::new(),
            early_written: false,
        })
    }

    /// Encrypts what 0-RTT still allows of `data` as early data into `tx`; 0 when the
    /// ticket allows none, the server has answered, or [`MAX_EARLY`] is reached.
    pub(super) fn write_early(
        &mut self,
        data: &[IoSlice<'_>],
        tx: &mut Window,
    ) -> Result<usize, Error> {
        let Some(mut early) = self.conn.early_data() else {
            return Ok(0);
        };
        let mut n = 0;
        for buf in data {
            let take = buf.len().min(MAX_EARLY - self.early.len());
            if take == 0 {
                break;
            }
            let written = early.write(&buf[..take]).map_err(Error::Io)?;
            self.early.extend_from_slice(&buf[..written]);
            n += written;
            if written < buf.len() {
                break;
            }
        }
        self.early_written |= n > 0;
        self.flush(tx);
        Ok(n)
    }

    /// Whether early data was written and the handshake has not yet said what became
    /// of it.
    pub(super) fn early_pending(&self) -> bool {
        !self.early.is_empty()
    }

    /// Moves what rustls queued for the peer into `tx`.
    pub(super) fn flush(&mut self, tx: &mut Window) {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut Appender(tx)).is_err() {
                break;
            }
        }
    }

    /// Hands rustls the whole records in `rx` (at most `max_records` of them) and runs
    /// them. Plaintext goes to `out[*out_n..]`, then to `plain`; what rustls answers (a
    /// flight, a KeyUpdate, an alert) to `tx`, before an error is returned. Returns
    /// whether the peer has closed.
    fn process(
        &mut self,
        bufs: &mut Buffers,
        max_records: usize,
        out: &mut [u8],
        out_n: &mut usize,
    ) -> Result<bool, Error> {
        let whole = whole_records(bufs.rx.data(), max_records);
        let mut input = &bufs.rx.data()[..whole];
        loop {
            let mut fed = 0;
            while !input.is_empty() {
                match self.conn.read_tls(&mut input) {
                    // rustls takes nothing after the peer's close_notify.
                    Ok(0) => input = &[],
                    Ok(n) => fed += n,
                    // Its buffer is full: run what it has, then feed the rest.
                    Err(_) if fed > 0 => break,
                    Err(e) => return Err(Error::Io(e)),
                }
            }
            let processed = self.conn.process_new_packets();
            self.flush(&mut bufs.tx);
            // What was decrypted before a failing record goes first, as on the other
            // layers: the engine returns it and keeps the error for the next call.
            self.take_plaintext(&mut bufs.plain, out, out_n)?;
            let state = processed?;
            if input.is_empty() {
                bufs.rx.consume(whole);
                return Ok(state.peer_has_closed());
            }
        }
    }

    /// Moves the plaintext rustls holds to `out[*out_n..]`, then to `plain`.
    fn take_plaintext(
        &mut self,
        plain: &mut Window,
        out: &mut [u8],
        out_n: &mut usize,
    ) -> Result<(), Error> {
        let mut reader = self.conn.reader();
        loop {
            let read = if *out_n < out.len() {
                reader.read(&mut out[*out_n..]).inspect(|&n| *out_n += n)
            } else {
                plain.reserve(READ_MIN);
                let n = reader.read(plain.spare());
                n.inspect(|&n| plain.commit(n))
            };
            match read {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                // Nothing more to read now (rustls says so by `WouldBlock`).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// Runs the handshake over the buffered input; `true` once it is complete.
    ///
    /// Until TLS 1.3 is known to be negotiated, rustls is given one record at a time, so
    /// that it stops at the handshake's last record: a TLS 1.2 connection then moves to
    /// the native layer ([`BufferedClient::into_native`]), which must get every record
    /// after it. A TLS 1.3 connection stays here, and takes all there is, as rustls's own
    /// stream would.
    pub(super) fn drive(&mut self, bufs: &mut Buffers) -> Result<bool, Error> {
        let mut n = 0;
        // The ClientHello (and early data), or what the last record made rustls answer.
        self.flush(&mut bufs.tx);
        while self.conn.is_handshaking() && whole_records(bufs.rx.data(), 1) > 0 {
            let tls13 = self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
            let records = if tls13 { usize::MAX } else { 1 };
            if self.process(bufs, records, &mut [], &mut n)? {
                bufs.peer_closed = true;
            }
        }
        Ok(!self.conn.is_handshaking())
    }

    /// Whether the native layer can take this connection over, once [`Self::finish`] has
    /// settled its early data: TLS 1.2 (which has none, so nothing is left for this API to
    /// tell) and a suite the native layer carries. No plaintext is left in rustls, since
    /// it stopped at the handshake's last record.
    pub(super) fn can_go_native(&self) -> bool {
        self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_2)
            && self
                .conn
                .negotiated_cipher_suite()
                .is_some_and(record::supports)
    }

    /// Hands the connection to the native record layer (see [`Self::can_go_native`]),
    /// after moving what rustls still has for the peer (our Finished, on resumption) to
    /// `tx`.
    pub(super) fn into_native(mut self, bufs: &mut Buffers) -> Result<record::Native, Error> {
        self.flush(&mut bufs.tx);
        record::Native::from_buffered_tls12(self.conn)
    }

    /// What the handshake negotiated. If the server refused the early data, it is sent
    /// again now, as ordinary data after the handshake.
    pub(super) fn finish(
        &mut self,
        bufs: &mut Buffers,
        sni: Option<String>,
    ) -> Result<ConnectionInfo, Error> {
        let c = &self.conn;
        let early_data = match (self.early_written, c.is_early_data_accepted()) {
            (false, _) => EarlyDataStatus::NotSent,
            (true, true) => EarlyDataStatus::Accepted,
            (true, false) => EarlyDataStatus::Rejected,
        };
        let info = ConnectionInfo {
            alpn: c.alpn_protocol().map(<[u8]>::to_vec),
            protocol_version: c.protocol_version(),
            cipher_suite: c.negotiated_cipher_suite(),
            key_exchange_group: c.negotiated_key_exchange_group().map(|g| g.name()),
            sni,
            peer_certificates: c.peer_certificates().map(<[_]>::to_vec),
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
            early_data,
            ..ConnectionInfo::empty(Default::default())
        };
        let early = std::mem::take(&mut self.early);
        if early_data == EarlyDataStatus::Rejected {
            let mut sent = 0;
            while sent < early.len() {
                sent += self.seal(bufs, &early[sent..])?;
            }
        }
        Ok(info)
    }

    /// Decrypts whole buffered records into `out`.
    pub(super) fn read(
        &mut self,
        bufs: &mut Buffers,
        out: &mut [u8],
        out_n: &mut usize,
    ) -> Result<ReadStep, Error> {
        if whole_records(bufs.rx.data(), 1) == 0 {
            return Ok(ReadStep::NeedInput);
        }
        let before = *out_n;
        if self.process(bufs, usize::MAX, out, out_n)? {
            // Nothing after the close_notify is read.
            bufs.rx.consume(bufs.rx.len());
            return Ok(ReadStep::PeerClosed);
        }
        Ok(if *out_n > before || whole_records(bufs.rx.data(), 1) > 0 {
            ReadStep::Progress
        } else {
            ReadStep::NeedInput
        })
    }

    /// Encrypts `data` into `tx`; returns the bytes taken.
    pub(super) fn seal(&mut self, bufs: &mut Buffers, data: &[u8]) -> Result<usize, Error> {
        let n = self.conn.writer().write(data).map_err(Error::Io)?;
        self.flush(&mut bufs.tx);
        if n == 0 && !data.is_empty() {
            return Err(crate::error::Invariant::CannotSendNow.into());
        }
        Ok(n)
    }

    pub(super) fn close_notify(&mut self, bufs: &mut Buffers) {
        self.conn.send_close_notify();
        self.flush(&mut bufs.tx);
    }

    pub(super) fn refresh_traffic_keys(&mut self, bufs: &mut Buffers) -> Result<(), Error> {
        self.conn.refresh_traffic_keys()?;
        self.flush(&mut bufs.tx);
        Ok(())
    }
}

/// How many leading bytes of `data` are whole records, `max` of them at most.
fn whole_records(data: &[u8], max: usize) -> usize {
    let mut at = 0;
    let mut records = 0;
    while let Some(header) = data.get(at..at + 5).filter(|_| records < max) {
        records += 1;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if 5 + len > MAX_RECORD {
            // Too large to ever be whole here: rustls rejects it by its header.
            return at + 5;
        }
        if at + 5 + len > data.len() {
            break;
        }
        at += 5 + len;
    }
    at
}

/// `io::Write` into a [`Window`], for `write_tls`.
struct Appender<'a>(&'a mut Window);

impl Write for Appender<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.extend(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
