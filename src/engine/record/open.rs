//! Opening: the receive direction. [`Recv::read`] takes one record through three steps,
//! each in its own function:
//!
//! 1. [`record_len`]: the header, each field judged as soon as its bytes are here, in
//!    rustls's order, so both layers fail on the same byte;
//! 2. [`Opener::open`]: the AEAD, in place, and the TLS 1.3 inner type and padding;
//! 3. [`Recv::dispatch`]: application data to the caller, alerts and handshake messages
//!    to [`super::messages`].
//!
//! Every refusal is a [`Rejection`]; its alert and error come from one table.

use std::ops::Range;

use rustls::{ConnectionTrafficSecrets, ContentType};

use super::rejection::Rejection;
use super::{
    Framing, HEADER_LEN, MAX_CIPHERTEXT_TLS12, MAX_CIPHERTEXT_TLS13, MAX_EMPTY_RECORDS,
    MAX_HANDSHAKE_MESSAGE, ReadStep, Recv, Requests, SEQ_HARD_LIMIT, rekey, tls12_aad,
};
use crate::engine::aead::{Cipher, NONCE_LEN, TAG_LEN};
use crate::engine::buffers::{MAX_PLAINTEXT, Window};
use crate::error::Error;

/// The receive direction: key, IV, sequence number and the message reassembly state.
#[derive(Debug)]
pub(crate) struct Opener {
    pub(super) cipher: Cipher,
    pub(super) seq: u64,
    pub(super) framing: Framing,
    /// Post-handshake handshake bytes not yet forming a whole message.
    pub(super) handshake: Vec<u8>,
    pub(super) empty_records: u8,
    pub(super) warning_alerts: u8,
    pub(super) key_updates: u8,
    pub(super) renegotiations: u8,
    /// The peer's close_notify arrived; nothing after it is read.
    pub(super) closed: bool,
    /// An opened application record whose plaintext the caller has not taken in full.
    open_record: Option<OpenRecord>,
}

/// Where the undelivered plaintext of an opened record lies, relative to the start of the
/// incoming window (the record itself starts at offset 0).
#[derive(Debug, Clone, Copy)]
struct OpenRecord {
    start: usize,
    end: usize,
    record_len: usize,
}

/// A record that [`Opener::open`] opened: its content type, where its plaintext lies in
/// the incoming window, and its length on the wire.
struct Opened {
    content: ContentType,
    plaintext: Range<usize>,
    record_len: usize,
}

impl Recv {
    /// Opens one buffered record (or serves the rest of one opened earlier) into `out`.
    /// What must be sent in answer (alerts, a KeyUpdate) is added to `requests`.
    pub(crate) fn read(
        &mut self,
        rx: &mut Window,
        out: &mut [u8],
        out_n: &mut usize,
        requests: &mut Requests,
    ) -> Result<ReadStep, Error> {
        self.read_record(rx, out, out_n, requests)
            .map_err(|rejection| rejection.into_error(requests))
    }

    fn read_record(
        &mut self,
        rx: &mut Window,
        out: &mut [u8],
        out_n: &mut usize,
        requests: &mut Requests,
    ) -> Result<ReadStep, Rejection> {
        if let Some(open) = &mut self.opener.open_record {
            // The rest of a record opened earlier: it stays in place in `rx` until the
            // caller has taken all of it, so a small read buffer costs no extra copy.
            let rest = &rx.data()[open.start..open.end];
            let n = copy_out(rest, out, out_n);
            open.start += n;
            if open.start == open.end {
                rx.consume(open.record_len);
                self.opener.open_record = None;
            }
            return Ok(ReadStep::Progress);
        }
        if self.opener.closed {
            return Ok(ReadStep::PeerClosed);
        }
        let Some(len) = record_len(rx.data(), self.opener.framing)? else {
            return Ok(ReadStep::NeedInput);
        };
        let record_len = HEADER_LEN + len;
        let (content, plaintext) = self.opener.open(&mut rx.data_mut()[..record_len])?;
        let opened = Opened {
            content,
            plaintext,
            record_len,
        };
        self.dispatch(rx, opened, out, out_n, requests)
    }

    /// Acts on an opened record by its content type.
    fn dispatch(
        &mut self,
        rx: &mut Window,
        opened: Opened,
        out: &mut [u8],
        out_n: &mut usize,
        requests: &mut Requests,
    ) -> Result<ReadStep, Rejection> {
        let Opened {
            content,
            plaintext: range,
            record_len,
        } = opened;
        let payload = &rx.data()[range.clone()];
        if !self.opener.handshake.is_empty() && content != ContentType::Handshake {
            // A handshake message split over records must not be interleaved with others.
            return Err(Rejection::InterleavedHandshake);
        }
        if let ContentType::Unknown(_) = content {
            // A TLS 1.3 inner type nobody defined (a TLS 1.2 one failed at the header),
            // judged after the interleaving, as rustls does.
            return Err(Rejection::UnknownInnerType);
        }
        if payload.is_empty() && content != ContentType::ApplicationData {
            // Only application data may be empty. A TLS 1.2 record is judged from its
            // header; a TLS 1.3 inner plaintext here, with the alert RFC 8446 (5.4) asks.
            return Err(Rejection::EmptyInnerPlaintext);
        }
        match content {
            ContentType::ApplicationData => {
                self.opener.count_data_record(payload.is_empty())?;
                let n = copy_out(payload, out, out_n);
                if n < payload.len() {
                    self.opener.open_record = Some(OpenRecord {
                        start: range.start + n,
                        end: range.end,
                        record_len,
                    });
                } else {
                    rx.consume(record_len);
                }
                Ok(ReadStep::Progress)
            }
            ContentType::Alert => {
                let alert = [0, 1, 2].map(|i| payload.get(i).copied());
                let read = self.alert(alert)?;
                rx.consume(record_len);
                Ok(read)
            }
            ContentType::Handshake => {
                if self.opener.handshake.len() + payload.len() > MAX_HANDSHAKE_MESSAGE + 4 {
                    return Err(Rejection::HandshakeTooLarge);
                }
                self.opener.handshake.extend_from_slice(payload);
                rx.consume(record_len);
                self.handshake_messages(requests)?;
                Ok(ReadStep::Progress)
            }
            other => Err(Rejection::UnexpectedType(other)),
        }
    }
}

/// Copies what fits of `from` into `out` after its first `out_n` bytes.
fn copy_out(from: &[u8], out: &mut [u8], out_n: &mut usize) -> usize {
    let n = from.len().min(out.len() - *out_n);
    out[*out_n..*out_n + n].copy_from_slice(&from[..n]);
    *out_n += n;
    n
}

/// Judges a record header: `Some(body length)` once the whole record is buffered, `None`
/// while bytes are missing. Each field is judged as soon as its bytes are here.
fn record_len(data: &[u8], framing: Framing) -> Result<Option<usize>, Rejection> {
    let Some(&first) = data.first() else {
        return Ok(None);
    };
    let outer = ContentType::from(first);
    if let ContentType::Unknown(_) = outer {
        return Err(Rejection::UnexpectedType(outer));
    }
    if data.len() < 3 {
        return Ok(None);
    }
    if data[1] != 3 {
        return Err(Rejection::UnknownVersion);
    }
    if data.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([data[3], data[4]]));
    if len == 0 && outer != ContentType::ApplicationData {
        // Only application data may be empty (RFC 8446, 5.1; RFC 5246, 6.2.1).
        return Err(Rejection::EmptyRecord);
    }
    let max = if framing == Framing::Tls13 {
        MAX_CIPHERTEXT_TLS13
    } else {
        MAX_CIPHERTEXT_TLS12
    };
    if len > max {
        return Err(Rejection::Oversized);
    }
    Ok((data.len() >= HEADER_LEN + len).then_some(len))
}

impl Opener {
    pub(super) fn new(cipher: Cipher, seq: u64, framing: Framing) -> Opener {
        Opener {
            cipher,
            seq,
            framing,
            handshake: Vec::new(),
            empty_records: 0,
            warning_alerts: 0,
            key_updates: 0,
            renegotiations: 0,
            closed: false,
            open_record: None,
        }
    }

    pub(super) fn rekey(
        &mut self,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> Result<(), Rejection> {
        rekey(&mut self.cipher, &mut self.seq, seq, secrets).map_err(Rejection::Kernel)
    }

    /// Counts an application record: a run of empty ones is bounded, and data resets the
    /// KeyUpdate count.
    fn count_data_record(&mut self, empty: bool) -> Result<(), Rejection> {
        if empty {
            self.empty_records += 1;
            if self.empty_records > MAX_EMPTY_RECORDS {
                return Err(Rejection::TooManyEmptyRecords);
            }
        } else {
            self.empty_records = 0;
            self.key_updates = 0;
        }
        Ok(())
    }

    /// Opens one whole record in place. Returns its content type and where its plaintext
    /// lies within `record`.
    pub(super) fn open(
        &mut self,
        record: &mut [u8],
    ) -> Result<(ContentType, Range<usize>), Rejection> {
        if self.seq >= SEQ_HARD_LIMIT {
            return Err(Rejection::SequenceExhausted);
        }
        let result = match self.framing {
            Framing::Tls13 => self.open_tls13(record)?,
            Framing::Tls12Gcm | Framing::Tls12Chacha => self.open_tls12(record)?,
        };
        self.seq += 1;
        Ok(result)
    }

    fn open_tls13(&mut self, record: &mut [u8]) -> Result<(ContentType, Range<usize>), Rejection> {
        let outer = ContentType::from(record[0]);
        if outer != ContentType::ApplicationData {
            return Err(Rejection::UnexpectedType(outer));
        }
        let (head, body) = record.split_at_mut(HEADER_LEN);
        if body.len() < TAG_LEN {
            return Err(Rejection::BadMac);
        }
        let nonce = self.cipher.nonce(self.seq);
        let n = (self.cipher.open(nonce, head, body)).map_err(|_| Rejection::BadMac)?;
        // The cap is on the whole TLSInnerPlaintext, padding included (RFC 8446, 5.4), so
        // padding cannot smuggle in a record larger than the peer may send. Within it,
        // the content before the type byte is at most 2^14 bytes.
        if n > MAX_PLAINTEXT + 1 {
            return Err(Rejection::Oversized);
        }
        // Strip the padding; the last non-zero byte is the real content type.
        let Some(pos) = body[..n].iter().rposition(|&b| b != 0) else {
            return Err(Rejection::NoInnerType);
        };
        let inner = ContentType::from(body[pos]);
        if inner == ContentType::ChangeCipherSpec {
            return Err(Rejection::ProtectedChangeCipherSpec);
        }
        Ok((inner, HEADER_LEN..HEADER_LEN + pos))
    }

    fn open_tls12(&mut self, record: &mut [u8]) -> Result<(ContentType, Range<usize>), Rejection> {
        let outer = ContentType::from(record[0]);
        if !matches!(
            outer,
            ContentType::ApplicationData | ContentType::Alert | ContentType::Handshake
        ) {
            return Err(Rejection::UnexpectedType(outer));
        }
        let (head, body) = record.split_at_mut(HEADER_LEN);
        let explicit = self.framing.explicit_len();
        if body.len() < explicit + TAG_LEN {
            return Err(Rejection::BadMac);
        }
        let nonce: [u8; NONCE_LEN] = if explicit > 0 {
            self.cipher.nonce_with_explicit(&body[..explicit])
        } else {
            self.cipher.nonce(self.seq)
        };
        let plain_len = body.len() - explicit - TAG_LEN;
        if plain_len > MAX_PLAINTEXT {
            return Err(Rejection::Oversized);
        }
        // The record's own version: an edited header must not open.
        let aad = tls12_aad(self.seq, outer, [head[1], head[2]], plain_len);
        let n = (self.cipher.open(nonce, &aad, &mut body[explicit..]))
            .map_err(|_| Rejection::BadMac)?;
        Ok((outer, HEADER_LEN + explicit..HEADER_LEN + explicit + n))
    }
}
