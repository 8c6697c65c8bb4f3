//! Sealing: the send direction. One [`Sealer`] per key epoch's state, and the rules for
//! what may be sealed: nothing after our close_notify or a fatal alert, a new key (TLS 1.3)
//! or a close (TLS 1.2) at the confidentiality limit, and one KeyUpdate answer for any
//! number of requests that arrive while we are silent.

use rustls::{
    AlertDescription, ConnectionTrafficSecrets, ContentType, Error as TlsError, HandshakeType,
};

use super::{Framing, HEADER_LEN, Requests, SEQ_HARD_LIMIT, Send, rekey, tls12_aad};
use crate::engine::aead::{Cipher, TAG_LEN};
use crate::engine::buffers::{MAX_PLAINTEXT, TX_CAP, Window};
use crate::error::Error;

/// The send direction: key, IV, sequence number and the suite's limit.
#[derive(Debug)]
pub(crate) struct Sealer {
    pub(super) cipher: Cipher,
    pub(super) seq: u64,
    /// Records that may be sealed under one key before it must change.
    pub(super) limit: u64,
    pub(super) framing: Framing,
    /// Why nothing more may be sealed, once that is so. [`Sealer::seal`] checks it before
    /// every record and sets it when it seals a close_notify or a fatal alert, so no path
    /// can put a record after either (RFC 8446, 6.1 and 6.2).
    pub(super) closed: Option<SendClosed>,
    /// A KeyUpdate of ours was sealed after our last application record. A peer's
    /// `update_requested` is then answered already: requests that arrive while we are
    /// silent share one answer (RFC 8446, 4.6.3), so a peer cannot make a reader queue
    /// answers without bound.
    pub(super) updated_since_data: bool,
}

/// Why a [`Sealer`] seals nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendClosed {
    /// Our close_notify went out (or the TLS 1.2 limit made us send one).
    CloseNotify,
    /// A fatal alert went out.
    FatalAlert,
}

impl Send {
    /// Seals `data` into `tx` as records of at most 16 KiB. Returns the bytes taken (all
    /// of them, unless the TLS 1.2 limit is reached).
    pub(crate) fn write(&mut self, tx: &mut Window, data: &[u8]) -> Result<usize, Error> {
        let mut done = 0;
        for chunk in data.chunks(MAX_PLAINTEXT) {
            self.before_seal(tx)?;
            self.sealer.seal(tx, ContentType::ApplicationData, chunk)?;
            self.sealer.updated_since_data = false;
            done += chunk.len();
        }
        Ok(done)
    }

    /// Seals a close_notify alert into `tx`.
    pub(crate) fn close_notify(&mut self, tx: &mut Window) -> Result<(), Error> {
        self.sealer.seal(
            tx,
            ContentType::Alert,
            &[1, u8::from(AlertDescription::CloseNotify)],
        )
    }

    /// Seals what the receive side asked for: a warning alert, a KeyUpdate answer (unless
    /// one went out since our last application record), a fatal alert (best effort).
    /// Once we are closed for sending (our close_notify, a fatal alert) nothing is sealed:
    /// a peer's KeyUpdate then changes only the receive key.
    pub(crate) fn answer(&mut self, tx: &mut Window, requests: Requests) -> Result<(), Error> {
        if self.sealer.closed.is_some() {
            return Ok(());
        }
        if let Some(desc) = requests.warning {
            self.sealer
                .seal(tx, ContentType::Alert, &[1, u8::from(desc)])?;
        }
        let answered = if requests.key_update && !self.sealer.updated_since_data {
            self.send_key_update(tx, false)
        } else {
            Ok(())
        };
        if let Some(desc) = requests.fatal {
            // Sealing it closes the sealer, even if the KeyUpdate before it failed.
            let _ = self
                .sealer
                .seal(tx, ContentType::Alert, &[2, u8::from(desc)]);
        }
        answered
    }

    /// Keeps the send key within its confidentiality limit: TLS 1.3 moves to a new key
    /// (a KeyUpdate goes out first); TLS 1.2 cannot, so it closes.
    fn before_seal(&mut self, tx: &mut Window) -> Result<(), Error> {
        if self.sealer.seq < self.sealer.limit {
            return Ok(());
        }
        if self.sealer.framing == Framing::Tls13 {
            self.send_key_update(tx, false)
        } else {
            // The close_notify closes the sealer; an already closed one stays closed.
            let _ = self.close_notify(tx);
            Err(TlsError::EncryptError.into())
        }
    }

    /// Sends a KeyUpdate that asks the peer to update too (TLS 1.3 only).
    pub(crate) fn refresh_traffic_keys(&mut self, tx: &mut Window) -> Result<(), Error> {
        if self.sealer.framing != Framing::Tls13 {
            return Err(TlsError::General("key updates need TLS 1.3".into()).into());
        }
        self.send_key_update(tx, true)
    }

    /// Sends a KeyUpdate under the current key, then switches the send key.
    fn send_key_update(&mut self, tx: &mut Window, request: bool) -> Result<(), Error> {
        let message = [
            u8::from(HandshakeType::KeyUpdate),
            0,
            0,
            1,
            u8::from(request),
        ];
        self.sealer.seal(tx, ContentType::Handshake, &message)?;
        let (seq, secrets) = self.keys.kernel().update_tx()?;
        self.sealer.rekey(seq, &secrets)?;
        self.sealer.updated_since_data = true;
        Ok(())
    }
}

impl Sealer {
    pub(super) fn new(cipher: Cipher, seq: u64, limit: u64, framing: Framing) -> Sealer {
        Sealer {
            cipher,
            seq,
            limit,
            framing,
            closed: None,
            updated_since_data: false,
        }
    }

    pub(super) fn rekey(
        &mut self,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> Result<(), Error> {
        Ok(rekey(&mut self.cipher, &mut self.seq, seq, secrets)?)
    }

    /// Appends one sealed record of `content` type to `tx`. Refuses once we are closed
    /// for sending; a close_notify or a fatal alert closes us.
    pub(super) fn seal(
        &mut self,
        tx: &mut Window,
        content: ContentType,
        plaintext: &[u8],
    ) -> Result<(), Error> {
        debug_assert!(plaintext.len() <= MAX_PLAINTEXT);
        match self.closed {
            Some(SendClosed::CloseNotify) => return Err(Error::WriteAfterShutdown),
            Some(SendClosed::FatalAlert) => return Err(TlsError::EncryptError.into()),
            None => {}
        }
        if self.seq >= SEQ_HARD_LIMIT {
            return Err(TlsError::EncryptError.into());
        }
        if content == ContentType::Alert {
            self.closed = match plaintext {
                [2, _] => Some(SendClosed::FatalAlert),
                [_, desc] if *desc == u8::from(AlertDescription::CloseNotify) => {
                    Some(SendClosed::CloseNotify)
                }
                _ => None,
            };
        }
        let framing = self.framing;
        let explicit = framing.explicit_len();
        let tls13 = framing == Framing::Tls13;
        let inner_len = plaintext.len() + usize::from(tls13);
        let body_len = explicit + inner_len + TAG_LEN;
        tx.reserve_capped(HEADER_LEN + body_len, TX_CAP);
        let record = &mut tx.spare()[..HEADER_LEN + body_len];
        let outer = if tls13 {
            ContentType::ApplicationData
        } else {
            content
        };
        let len = (body_len as u16).to_be_bytes();
        record[..HEADER_LEN].copy_from_slice(&[u8::from(outer), 3, 3, len[0], len[1]]);
        let nonce = self.cipher.nonce(self.seq);
        if explicit > 0 {
            record[HEADER_LEN..HEADER_LEN + explicit].copy_from_slice(&nonce[4..]);
        }
        let body_start = HEADER_LEN + explicit;
        record[body_start..body_start + plaintext.len()].copy_from_slice(plaintext);
        if tls13 {
            record[body_start + plaintext.len()] = u8::from(content);
        }
        let (head, rest) = record.split_at_mut(body_start);
        let (inner, tag_out) = rest.split_at_mut(inner_len);
        let tag = if tls13 {
            self.cipher.seal(nonce, &head[..HEADER_LEN], inner)
        } else {
            let aad = tls12_aad(self.seq, content, [3, 3], inner_len);
            self.cipher.seal(nonce, &aad, inner)
        };
        tag_out.copy_from_slice(&tag);
        tx.commit(HEADER_LEN + body_len);
        self.seq += 1;
        Ok(())
    }
}
