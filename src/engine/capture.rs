//! What a handshake leaves behind for keying-material exporters (RFC 5705, RFC 8446 §7.5).
//!
//! rustls 0.23 computes exporters only on its buffered connections; the unbuffered and
//! kernel connections that lazytls drives have none. The one way rustls hands out the
//! secret an exporter needs is its `KeyLog` (`EXPORTER_SECRET` on TLS 1.3, the master
//! secret as `CLIENT_RANDOM` on TLS 1.2). So lazytls's copy of the config carries a
//! [`CaptureKeyLog`] that wraps the user's key log (which still gets every line it got
//! before, so `SSLKEYLOGFILE` keeps working) and also offers the secret to the connection
//! whose rustls call is running on this thread.
//!
//! That tie is the point of this module. A config, and so its key log, is shared by every
//! connection; rustls calls `log` from inside one connection's own call, on its thread. The
//! engine opens a [`Scope`] around each of its handshake calls into rustls, which puts the
//! connection's [`Captured`] in a thread-local slot for the length of the call; `log` writes
//! only into that slot. Nothing the peer sends chooses the slot: in particular it is never
//! looked up by the client random, which a client picks and an attacker could copy.
//!
//! TLS 1.2's exporter also needs the server random, and is sound only with the extended
//! master secret (RFC 7627): both come from the ServerHello, which the engine reads as it
//! passes (received by a client, sent by a server; see [`read_server_hello`]).

use std::cell::RefCell;
use std::sync::Arc;

use rustls::{ClientConfig, KeyLog, ServerConfig};
use zeroize::Zeroize;

/// rustls's key-log label for TLS 1.3's exporter master secret.
const EXPORTER_SECRET: &str = "EXPORTER_SECRET";
/// rustls's key-log label for TLS 1.2's master secret.
const CLIENT_RANDOM: &str = "CLIENT_RANDOM";
/// `KeyLog` has no way to downcast, so a config's key log is recognised as ours by two
/// labels no other key log answers this way: yes to the first, no to the second (a key log
/// that logs everything says yes to both).
const PROBE_YES: &str = "lazytls: exporter capture";
const PROBE_NO: &str = "lazytls: exporter capture, not";

/// The longest secret kept: a SHA-512 suite's.
const MAX_SECRET: usize = 64;

/// A secret from the key log, zeroized when dropped.
#[derive(Clone)]
pub(crate) struct Secret {
    bytes: [u8; MAX_SECRET],
    len: u8,
}

impl Secret {
    fn new(secret: &[u8]) -> Option<Self> {
        let mut bytes = [0; MAX_SECRET];
        bytes.get_mut(..secret.len())?.copy_from_slice(secret);
        Some(Secret {
            bytes,
            len: secret.len() as u8,
        })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// What the ServerHello told, for TLS 1.2's exporter.
#[derive(Clone, Copy, Default)]
#[cfg_attr(not(feature = "tls12"), allow(dead_code))]
pub(crate) enum ServerHello {
    /// Not seen yet.
    #[default]
    Unseen,
    /// The first handshake record did not hold a whole ServerHello (a peer may fragment
    /// it): no TLS 1.2 exporter for this connection.
    Unreadable,
    Read {
        random: [u8; 32],
        extended_master_secret: bool,
    },
}

/// The secrets one connection's handshake logged. Boxed, since a handshake logs one of
/// them, and the engine holds this through its handshake phase.
#[derive(Clone, Default)]
pub(crate) struct Captured {
    /// TLS 1.3: the exporter master secret.
    pub(crate) exporter_secret: Option<Box<Secret>>,
    /// TLS 1.2: the master secret and the client random it was logged with.
    // Without the `tls12` feature no handshake logs it, and nothing reads these two.
    #[cfg_attr(not(feature = "tls12"), allow(dead_code))]
    pub(crate) master_secret: Option<Box<(Secret, [u8; 32])>>,
    #[cfg_attr(not(feature = "tls12"), allow(dead_code))]
    pub(crate) server_hello: ServerHello,
}

thread_local! {
    /// The connection whose rustls call is running on this thread, if the engine made it.
    static CURRENT: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Makes `captured` the slot that [`CaptureKeyLog`] writes into while `f` runs (a call
/// into rustls for that connection), and puts it back after, also on unwinding.
pub(crate) fn during<T>(captured: &mut Captured, f: impl FnOnce() -> T) -> T {
    struct Scope<'a> {
        captured: &'a mut Captured,
        outer: Option<Captured>,
    }
    impl Drop for Scope<'_> {
        fn drop(&mut self) {
            let mine = CURRENT.with(|slot| slot.replace(self.outer.take()));
            if let Some(mine) = mine {
                *self.captured = mine;
            }
        }
    }
    let outer = CURRENT.with(|slot| slot.replace(Some(std::mem::take(captured))));
    let _scope = Scope { captured, outer };
    f()
}

/// The key log of lazytls's config copies: forwards to the user's, and captures the
/// exporter's secret for the connection in scope (see the module docs).
#[derive(Debug)]
struct CaptureKeyLog {
    user: Arc<dyn KeyLog>,
}

impl KeyLog for CaptureKeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        offer(label, client_random, secret);
        // rustls logs TLS 1.2's master secret without asking `will_log` first.
        if label == CLIENT_RANDOM || self.user.will_log(label) {
            self.user.log(label, client_random, secret);
        }
    }

    fn will_log(&self, label: &str) -> bool {
        match label {
            PROBE_YES | EXPORTER_SECRET => true,
            PROBE_NO => false,
            _ => self.user.will_log(label),
        }
    }
}

/// Keeps a secret the exporter needs in the slot of the connection in scope, if any.
fn offer(label: &str, client_random: &[u8], secret: &[u8]) {
    CURRENT.with(|slot| {
        let mut slot = slot.borrow_mut();
        let Some(captured) = slot.as_mut() else {
            return;
        };
        match label {
            EXPORTER_SECRET => captured.exporter_secret = Secret::new(secret).map(Box::new),
            CLIENT_RANDOM => {
                captured.master_secret = (Secret::new(secret))
                    .zip(<[u8; 32]>::try_from(client_random).ok())
                    .map(Box::new);
            }
            _ => {}
        }
    });
}

fn captures(key_log: &dyn KeyLog) -> bool {
    key_log.will_log(PROBE_YES) && !key_log.will_log(PROBE_NO)
}

/// `config` as lazytls runs it: secret extraction on (the native record layer needs it;
/// it only allows handing the traffic keys over) and the capturing key log around the
/// user's. A config that has both already is returned as it is.
pub(crate) fn prepare_client_config(config: Arc<ClientConfig>) -> Arc<ClientConfig> {
    if config.enable_secret_extraction && captures(&*config.key_log) {
        return config;
    }
    let mut copy = ClientConfig::clone(&config);
    copy.enable_secret_extraction = true;
    if !captures(&*copy.key_log) {
        copy.key_log = Arc::new(CaptureKeyLog { user: copy.key_log });
    }
    Arc::new(copy)
}

/// The server's [`prepare_client_config`].
pub(crate) fn prepare_server_config(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    if config.enable_secret_extraction && captures(&*config.key_log) {
        return config;
    }
    let mut copy = ServerConfig::clone(&config);
    copy.enable_secret_extraction = true;
    if !captures(&*copy.key_log) {
        copy.key_log = Arc::new(CaptureKeyLog { user: copy.key_log });
    }
    Arc::new(copy)
}

/// Reads the ServerHello at the start of `record`, the first handshake record a client
/// received or a server sent. `None` until the record is whole.
///
/// Only a ServerHello that is the record's first message and lies wholly inside it is
/// read; anything else is [`ServerHello::Unreadable`], and the connection gets no TLS 1.2
/// exporter rather than one computed from bytes rustls may not have used.
pub(crate) fn read_server_hello(record: &[u8]) -> Option<ServerHello> {
    const HANDSHAKE: u8 = 22;
    const SERVER_HELLO: u8 = 2;
    const EXTENDED_MASTER_SECRET: u16 = 23;
    let header = record.get(..5)?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let body = record.get(5..5 + len)?;
    if header[0] != HANDSHAKE {
        return Some(ServerHello::Unreadable);
    }
    let parsed = (|| {
        let mut r = Reader(body);
        if r.u8()? != SERVER_HELLO {
            return None;
        }
        let len = r.u24()?;
        let mut hello = Reader(r.take(len)?);
        hello.take(2)?; // legacy_version
        let random = <[u8; 32]>::try_from(hello.take(32)?).ok()?;
        let session_id = usize::from(hello.u8()?);
        hello.take(session_id)?;
        hello.take(3)?; // cipher_suite, compression_method
        let mut extended_master_secret = false;
        if !hello.0.is_empty() {
            let len = usize::from(hello.u16()?);
            let mut extensions = Reader(hello.take(len)?);
            while !extensions.0.is_empty() {
                let kind = extensions.u16()?;
                let len = usize::from(extensions.u16()?);
                extensions.take(len)?;
                extended_master_secret |= kind == EXTENDED_MASTER_SECRET;
            }
        }
        hello.0.is_empty().then_some(ServerHello::Read {
            random,
            extended_master_secret,
        })
    })();
    Some(parsed.unwrap_or(ServerHello::Unreadable))
}

/// A cursor over a handshake message; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ServerHello record: `extensions` as (type, body) pairs, `None` for a hello with
    /// no extensions block.
    fn server_hello(random: u8, extensions: Option<&[(u16, &[u8])]>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([random; 32]);
        body.extend([1, 0xaa]); // a one-byte session id
        body.extend([0xc0, 0x2b, 0]);
        if let Some(extensions) = extensions {
            let mut block = Vec::new();
            for (kind, data) in extensions {
                block.extend(kind.to_be_bytes());
                block.extend((data.len() as u16).to_be_bytes());
                block.extend(*data);
            }
            body.extend((block.len() as u16).to_be_bytes());
            body.extend(block);
        }
        let mut message = vec![2, 0, (body.len() >> 8) as u8, body.len() as u8];
        message.extend(body);
        let mut record = vec![22, 3, 3];
        record.extend((message.len() as u16).to_be_bytes());
        record.extend(message);
        record
    }

    fn read(record: &[u8]) -> Option<(u8, bool)> {
        match read_server_hello(record)? {
            ServerHello::Read {
                random,
                extended_master_secret,
            } => Some((random[0], extended_master_secret)),
            ServerHello::Unreadable => Some((0, false)),
            ServerHello::Unseen => unreachable!(),
        }
    }

    #[test]
    fn a_server_hello_gives_its_random_and_whether_ems_was_agreed() {
        let ems = server_hello(7, Some(&[(0xff01, &[0]), (23, &[])]));
        assert_eq!(read(&ems), Some((7, true)));
        let no_ems = server_hello(9, Some(&[(0xff01, &[0])]));
        assert_eq!(read(&no_ems), Some((9, false)));
        assert_eq!(read(&server_hello(5, None)), Some((5, false)));
        // More messages after it in the same record are left alone.
        let mut two = server_hello(4, Some(&[(23, &[])]));
        two.extend([11, 0, 0, 0]);
        let len = (two.len() - 5) as u16;
        two[3..5].copy_from_slice(&len.to_be_bytes());
        assert_eq!(read(&two), Some((4, true)));
    }

    #[test]
    fn anything_but_a_whole_first_server_hello_is_unreadable() {
        let whole = server_hello(7, Some(&[(23, &[])]));
        // Not whole yet: undecided.
        assert_eq!(
            read_server_hello(&whole[..whole.len() - 1]).map(|_| ()),
            None
        );
        assert_eq!(read_server_hello(&whole[..3]).map(|_| ()), None);
        // A ServerHello cut across two records.
        let mut first = whole[..30].to_vec();
        first[3..5].copy_from_slice(&25u16.to_be_bytes());
        assert_eq!(read(&first), Some((0, false)));
        // Another message first, another record type, a bad extension length.
        let mut request = vec![22, 3, 3, 0, 4, 0, 0, 0, 0];
        request.extend(&whole[5..]);
        assert_eq!(read(&request), Some((0, false)));
        let mut alert = whole.clone();
        alert[0] = 21;
        assert_eq!(read(&alert), Some((0, false)));
        let mut bad = whole.clone();
        let at = bad.len() - 1; // the extension's length, past the end
        bad[at] = 9;
        assert_eq!(read(&bad), Some((0, false)));
    }

    #[test]
    fn only_the_connection_in_scope_captures() {
        let log = CaptureKeyLog {
            user: Arc::new(rustls::KeyLogFile::new()),
        };
        assert!(captures(&log));
        assert!(!captures(&*Arc::new(rustls::KeyLogFile::new())));
        assert!(!captures(&rustls::NoKeyLog));
        // Outside any scope nothing is kept.
        log.log(EXPORTER_SECRET, &[1; 32], &[1; 32]);
        let (mut a, mut b) = (Captured::default(), Captured::default());
        during(&mut a, || {
            log.log(EXPORTER_SECRET, &[2; 32], &[2; 32]);
            // A nested scope (another connection) takes its own and gives a's back.
            during(&mut b, || log.log(CLIENT_RANDOM, &[3; 32], &[3; 48]));
            log.log("CLIENT_TRAFFIC_SECRET_0", &[2; 32], &[9; 32]);
        });
        assert_eq!(
            a.exporter_secret.as_ref().map(|s| s.as_bytes()),
            Some(&[2; 32][..])
        );
        assert!(a.master_secret.is_none());
        assert!(b.exporter_secret.is_none());
        let (secret, random) = &**b.master_secret.as_ref().unwrap();
        assert_eq!((secret.as_bytes(), random), (&[3; 48][..], &[3; 32]));
        CURRENT.with(|slot| assert!(slot.borrow().is_none()));
    }
}
