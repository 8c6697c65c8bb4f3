//! Post-handshake messages on the native layer: alerts (close_notify included), TLS 1.3
//! KeyUpdate and NewSessionTicket, and TLS 1.2 renegotiation, which is never done.

use std::ops::Range;

use rustls::{AlertDescription, HandshakeType};

use super::rejection::Rejection;
use super::{
    Framing, Kernel, MAX_HANDSHAKE_MESSAGE, MAX_KEY_UPDATES, MAX_WARNING_ALERTS, ReadStep, Recv,
    Requests,
};

/// The level byte of a warning alert.
const WARNING: u8 = 1;
/// The level byte of a fatal alert.
const FATAL: u8 = 2;

impl Recv {
    /// An alert record's bytes (`None` past its end): close_notify ends reading, a
    /// tolerated warning is skipped, anything else fails.
    pub(super) fn alert(&mut self, alert: [Option<u8>; 3]) -> Result<ReadStep, Rejection> {
        let (level, desc) = match alert {
            [Some(level), Some(desc), None] => (level, desc),
            // As rustls decodes an alert: a field missing, or bytes after it.
            [None, None, _] => return Err(Rejection::AlertMissing("AlertLevel")),
            [Some(_), None, _] => return Err(Rejection::AlertMissing("AlertDescription")),
            _ => return Err(Rejection::AlertTrailing),
        };
        let desc = AlertDescription::from(desc);
        if !matches!(level, WARNING | FATAL) {
            return Err(Rejection::AlertLevel(desc));
        }
        if desc == AlertDescription::CloseNotify {
            self.opener.closed = true;
            return Ok(ReadStep::PeerClosed);
        }
        if level == FATAL {
            return Err(Rejection::AlertReceived(desc));
        }
        self.opener.warning_alerts += 1;
        if self.opener.warning_alerts > MAX_WARNING_ALERTS {
            return Err(Rejection::TooManyWarningAlerts);
        }
        if self.opener.framing == Framing::Tls13 && desc != AlertDescription::UserCanceled {
            return Err(Rejection::Tls13Warning(desc));
        }
        Ok(ReadStep::Progress)
    }

    /// Handles every whole message in the reassembly buffer. Every message header there
    /// is checked against the size limit first, as rustls's deframer does, so a record
    /// carrying an oversized message fails before any message in it is acted on.
    pub(super) fn handshake_messages(&mut self, requests: &mut Requests) -> Result<(), Rejection> {
        let mut at = 0;
        while let Some(header) = self.opener.handshake.get(at..at + 4) {
            let len = message_len(header);
            if len > MAX_HANDSHAKE_MESSAGE {
                return Err(Rejection::HandshakeTooLarge);
            }
            at += 4 + len;
        }
        let mut start = 0;
        let result = loop {
            let buf = &self.opener.handshake[start..];
            if buf.len() < 4 {
                break Ok(());
            }
            let len = message_len(buf);
            if buf.len() < 4 + len {
                break Ok(());
            }
            let typ = HandshakeType::from(buf[0]);
            let body = start + 4..start + 4 + len;
            start += 4 + len;
            let last = start == self.opener.handshake.len();
            if let Err(e) = self.handshake_message(requests, typ, body, last) {
                break Err(e);
            }
        };
        self.opener.handshake.drain(..start);
        result
    }

    fn handshake_message(
        &mut self,
        requests: &mut Requests,
        typ: HandshakeType,
        body: Range<usize>,
        last_in_record: bool,
    ) -> Result<(), Rejection> {
        let tls13 = self.opener.framing == Framing::Tls13;
        let client = self.keys.client;
        match typ {
            HandshakeType::KeyUpdate if tls13 => self.key_update(requests, body, last_in_record),
            HandshakeType::NewSessionTicket if tls13 && client => match &mut *self.keys.kernel() {
                Kernel::Client(kernel) => kernel
                    .handle_new_session_ticket(&self.opener.handshake[body])
                    .map_err(Rejection::Ticket),
                // Unreachable with `tls13`; a ticket needs no answer.
                Kernel::Server(_) | Kernel::Tls12Client => Ok(()),
            },
            HandshakeType::HelloRequest if !tls13 && client => {
                // Ignored, as RFC 5246 (7.4.1.1) allows a client: OpenSSL takes a
                // no_renegotiation warning for a fatal handshake failure, and what the
                // server sends after its request would be lost. The server asked for
                // nothing it waits on; a second request is still fatal, as in rustls.
                self.count_renegotiation()
            }
            HandshakeType::ClientHello if !tls13 && !client => {
                // A client that asks to renegotiate waits for our answer: refuse it.
                self.count_renegotiation()?;
                requests.warning = Some(AlertDescription::NoRenegotiation);
                Ok(())
            }
            got if tls13 => Err(Rejection::UnexpectedHandshake { got, client }),
            // TLS 1.2 expects no handshake message at all.
            _ => Err(Rejection::UnexpectedType(rustls::ContentType::Handshake)),
        }
    }

    /// A TLS 1.3 KeyUpdate: the receive key moves on, and an answer is asked for if the
    /// peer requested one. Judged in rustls's order: the message's shape, then nothing
    /// after it in its record, then the count, then the request value.
    fn key_update(
        &mut self,
        requests: &mut Requests,
        body: Range<usize>,
        last_in_record: bool,
    ) -> Result<(), Rejection> {
        let value = match self.opener.handshake[body] {
            [value] => value,
            [] => return Err(Rejection::KeyUpdateMissing),
            _ => return Err(Rejection::KeyUpdateTrailing),
        };
        // New keys apply from the next record: nothing may follow in this one.
        if !last_in_record {
            return Err(Rejection::KeyEpochWithPendingFragment);
        }
        self.opener.key_updates += 1;
        if self.opener.key_updates > MAX_KEY_UPDATES {
            return Err(Rejection::TooManyKeyUpdates);
        }
        requests.key_update |= match value {
            0 => false,
            1 => true,
            _ => return Err(Rejection::KeyUpdateValue),
        };
        let (seq, secrets) = self.keys.kernel().update_rx()?;
        self.opener.rekey(seq, &secrets)
    }

    /// TLS 1.2 renegotiation is never done; one request is tolerated and a second one is
    /// fatal (with no alert, as in rustls).
    fn count_renegotiation(&mut self) -> Result<(), Rejection> {
        self.opener.renegotiations += 1;
        if self.opener.renegotiations > 1 {
            return Err(Rejection::TooManyRenegotiations);
        }
        Ok(())
    }
}

/// The body length in a handshake message header.
fn message_len(header: &[u8]) -> usize {
    usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3])
}
