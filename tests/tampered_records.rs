//! Records damaged in flight between our native record layer and rustls's: a bit flipped,
//! a record replayed, two records reordered, a record cut short then EOF, an oversized
//! record header, and garbage after close_notify, injected in each direction. The
//! receiver's typed error is checked, and so is the alert the sender then receives; our
//! error is sticky, and authenticated data that arrived before a bad record is delivered
//! before the error.
//!
//! Fixture: our native client or server and tokio-rustls in the other role over
//! `tokio::io::duplex`, each on a tap that flips bits and holds back records
//! ([`common::records::Pair`], [`common::records::Tap`]), TLS 1.2 and TLS 1.3. Every
//! connection asserts that it runs on the native record layer.

mod common;

use std::io;
use std::sync::Arc;

use common::records::*;
use common::*;
use lazytls::rustls::{self, AlertDescription, ProtocolVersion};
use lazytls::{TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The receiver failed with `expect`: it must have sent the matching alert, which the
/// sender reports as `AlertReceived`. Our side's error must also be sticky.
async fn expect_failure_and_alert(
    pair: &mut Pair,
    dir: Dir,
    what: &str,
    expect: &rustls::Error,
    alert: AlertDescription,
) {
    let (sender, receiver) = pair.ends(dir);
    let got = read_tls_error(receiver, what).await;
    assert_eq!(&got, expect, "{what}: {}'s error", receiver.name());
    let got = read_tls_error(sender, what).await;
    assert_eq!(
        got,
        rustls::Error::AlertReceived(alert),
        "{what}: {} must receive the alert",
        sender.name()
    );
    // Sticky: our stream returns the same error again.
    let again = read_tls_error(&mut pair.native, what).await;
    let want = if dir == Dir::RustlsToNative {
        expect.clone()
    } else {
        rustls::Error::AlertReceived(alert)
    };
    assert_eq!(again, want, "{what}: native error is sticky");
}

/// [`expect_failure_and_alert`] for a record that does not decrypt: `DecryptError`, then
/// bad_record_mac.
async fn expect_bad_record_mac(pair: &mut Pair, dir: Dir, what: &str) {
    let (error, alert) = (rustls::Error::DecryptError, AlertDescription::BadRecordMac);
    expect_failure_and_alert(pair, dir, what, &error, alert).await;
}

/// A bit flipped in flight, in the first ciphertext byte (the explicit nonce for TLS 1.2
/// GCM), in the middle, and in the last tag byte, each direction: the receiver fails with
/// `DecryptError` and sends bad_record_mac, which the sender receives.
#[tokio::test]
async fn flipped_bits_are_bad_record_mac_both_ways() {
    let pki = Pki::new();
    for v in versions() {
        for role in ROLES {
            for dir in DIRS {
                // 1000 bytes make one record: a 5-byte header, the explicit nonce (8
                // bytes, TLS 1.2 GCM) or the inner content type (1 byte, TLS 1.3), the
                // ciphertext and a 16-byte tag.
                let extra = if version_of(v) == ProtocolVersion::TLSv1_2 {
                    8
                } else {
                    1
                };
                let record_len = 5 + extra + 1000 + 16;
                for offset in [5, 500, record_len - 1] {
                    let what = format!("{} {role:?} {dir:?}, bit flipped at {offset}", vname(v));
                    let mut pair = warm_pair(&pki, role, v).await;
                    let (sender, _) = pair.ends(dir);
                    sender.tap().flip_after(offset);
                    bounded(&what, async {
                        sender.write_all(&[7u8; 1000]).await.unwrap();
                        sender.flush().await.unwrap();
                    })
                    .await;
                    expect_bad_record_mac(&mut pair, dir, &what).await;
                }
            }
        }
    }
}

/// The sender seals two records ("first", "second"), which the tap holds back and
/// returns.
async fn two_held_records(sender: &mut dyn Peer, what: &str) -> (Vec<u8>, Vec<u8>) {
    sender.tap().hold();
    bounded(what, async {
        sender.write_all(b"first").await.unwrap();
        sender.flush().await.unwrap();
        sender.write_all(b"second").await.unwrap();
        sender.flush().await.unwrap();
    })
    .await;
    let held = records(&sender.tap().release());
    assert_eq!(held.len(), 2, "{what}: one record per flushed write");
    (held[0].clone(), held[1].clone())
}

/// A record replayed (sent twice), and two records swapped, in each direction: the
/// receiver takes what came before and then fails with `DecryptError`; the sender
/// receives bad_record_mac.
#[tokio::test]
async fn replayed_and_reordered_records_are_bad_record_mac() {
    let pki = Pki::new();
    for v in versions() {
        for role in ROLES {
            for dir in DIRS {
                for replay in [true, false] {
                    let what = format!(
                        "{} {role:?} {dir:?}, {}",
                        vname(v),
                        if replay { "replayed" } else { "reordered" }
                    );
                    let mut pair = warm_pair(&pki, role, v).await;
                    let (sender, receiver) = pair.ends(dir);
                    let (r1, r2) = two_held_records(sender, &what).await;
                    let wire = if replay {
                        [r1.clone(), r1].concat()
                    } else {
                        [r2, r1].concat()
                    };
                    write_raw(sender, &wire, &what).await;
                    // We deliver the original record, then fail on the copy. (tokio-rustls
                    // reports the error first, and would hand out the data on a retry.)
                    if replay && dir == Dir::RustlsToNative {
                        let mut got = [0u8; 5];
                        bounded(&what, receiver.read_exact(&mut got))
                            .await
                            .unwrap_or_else(|e| panic!("{what}: {}: {e}", receiver.name()));
                        assert_eq!(&got, b"first", "{what}: the original record");
                    }
                    expect_bad_record_mac(&mut pair, dir, &what).await;
                }
            }
        }
    }
}

/// A record cut short and then EOF: our side delivers the whole record before it, then
/// fails with `UnexpectedEof` carrying the typed `Error::Truncated`, even with
/// `allow_truncation` (which only accepts an EOF on a record boundary, as it also shows).
/// tokio-rustls, on the same input from us, fails with `UnexpectedEof` too.
#[tokio::test]
async fn truncated_record_then_eof_is_unexpected_eof() {
    let pki = Pki::new();
    for v in versions() {
        for role in ROLES {
            for allow_truncation in [false, true] {
                for cut in [None, Some(1), Some(5), Some(9)] {
                    let what = format!(
                        "{} {role:?}, allow_truncation {allow_truncation}, second record cut \
                         to {cut:?} bytes",
                        vname(v)
                    );
                    let client = Arc::new(pki.client_config_with(v));
                    let server = Arc::new(pki.server_config_with(v));
                    let mut pair = match role {
                        Role::NativeClient => {
                            let c = TlsConnector::new(client).allow_truncation(allow_truncation);
                            native_client_pair(&c, server).await
                        }
                        Role::NativeServer => {
                            let a = TlsAcceptor::new(server).allow_truncation(allow_truncation);
                            native_server_pair(client, &a).await
                        }
                    };
                    warm_up(&mut pair).await;
                    let (sender, receiver) = pair.ends(Dir::RustlsToNative);
                    let (r1, r2) = two_held_records(sender, &what).await;
                    let mut wire = r1;
                    if let Some(cut) = cut {
                        wire.extend_from_slice(&r2[..cut]);
                    }
                    write_raw(sender, &wire, &what).await;
                    bounded(&what, sender.tap().inner.shutdown()).await.unwrap();
                    let mut got = [0u8; 5];
                    bounded(&what, receiver.read_exact(&mut got)).await.unwrap();
                    assert_eq!(&got, b"first", "{what}");
                    let end = bounded(&what, pair.native.read(&mut [0u8; 64])).await;
                    if allow_truncation && cut.is_none() {
                        assert_eq!(end.unwrap(), 0, "{what}: accepted at a record boundary");
                        continue;
                    }
                    let e = end.expect_err(&what);
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{what}: {e}");
                    assert!(
                        matches!(lazytls::Error::from_io(&e), Some(lazytls::Error::Truncated)),
                        "{what}: {e:?}"
                    );
                    // It stays that way.
                    let e = bounded(&what, pair.native.read(&mut [0u8; 64]))
                        .await
                        .expect_err(&what);
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{what}: {e}");
                }
            }
            // The mirror: tokio-rustls reads a cut record of ours, then EOF.
            let what = format!("{} {role:?}, our record cut, to tokio-rustls", vname(v));
            let mut pair = warm_pair(&pki, role, v).await;
            let (sender, receiver) = pair.ends(Dir::NativeToRustls);
            let (r1, r2) = two_held_records(sender, &what).await;
            write_raw(sender, &[&r1[..], &r2[..9]].concat(), &what).await;
            bounded(&what, sender.tap().inner.shutdown()).await.unwrap();
            let mut got = [0u8; 5];
            bounded(&what, receiver.read_exact(&mut got)).await.unwrap();
            assert_eq!(&got, b"first", "{what}");
            let e = bounded(&what, receiver.read(&mut [0u8; 64]))
                .await
                .expect_err(&what);
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{what}: {e}");
        }
    }
}

/// An oversized record towards our side: `PeerSentOversizedRecord`, and the peer
/// receives record_overflow (RFC 8446, 5.2; RFC 5246, 6.2.3). The limits are 2^14 + 256
/// for TLS 1.3 and 2^14 + 2048 for TLS 1.2; a header one byte over is refused at once,
/// before its body arrives.
#[tokio::test]
async fn oversized_record_is_record_overflow() {
    let pki = Pki::new();
    for v in versions() {
        let limit = if version_of(v) == ProtocolVersion::TLSv1_3 {
            16384 + 256
        } else {
            16384 + 2048
        };
        for role in ROLES {
            for len in [limit + 1, 0xffff] {
                let what = format!("{} {role:?}, a {len}-byte record to us", vname(v));
                let mut pair = warm_pair(&pki, role, v).await;
                write_raw(&mut *pair.rustls, &raw_record(23, [3, 3], len, 0), &what).await;
                expect_failure_and_alert(
                    &mut pair,
                    Dir::RustlsToNative,
                    &what,
                    &rustls::Error::PeerSentOversizedRecord,
                    AlertDescription::RecordOverflow,
                )
                .await;
            }
        }
    }
}

/// Authenticated data that arrived before a bad record is delivered before the error,
/// whatever the size of the read buffer: Go's `crypto/tls` returns it first and fails on
/// the next `Read`, and so do we when the buffer is exactly the data's size (see
/// [`replayed_and_reordered_records_are_bad_record_mac`]). With a larger buffer, the
/// good record and the bad one are handled in one `read`, and the good record's bytes
/// must not be dropped with the error.
#[tokio::test]
async fn data_before_a_bad_record_is_delivered_first() {
    let pki = Pki::new();
    for v in versions() {
        for role in ROLES {
            let what = format!("{} {role:?}", vname(v));
            let mut pair = warm_pair(&pki, role, v).await;
            let (sender, _) = pair.ends(Dir::RustlsToNative);
            let (r1, _) = two_held_records(sender, &what).await;
            // The good record, then its replay, which fails; both in one transport read.
            write_raw(sender, &[r1.clone(), r1].concat(), &what).await;
            let mut buf = [0u8; 64];
            let first = bounded(&what, pair.native.read(&mut buf)).await;
            let second = bounded(&what, pair.native.read(&mut buf)).await;
            assert!(
                matches!(first, Ok(5)) && &buf[..5] == b"first",
                "{what}: the good record's 5 bytes must come first; got {first:?}"
            );
            let e = second.expect_err(&what);
            assert!(
                matches!(
                    lazytls::Error::from_io(&e),
                    Some(lazytls::Error::Tls(rustls::Error::DecryptError))
                ),
                "{what}: then the error: {e:?}"
            );
        }
    }
}

/// Records after close_notify are never read: the receiving side keeps returning a clean
/// `Ok(0)`, whatever follows (garbage that would otherwise be a fatal error), on both
/// implementations.
#[tokio::test]
async fn records_after_close_notify_are_ignored() {
    let pki = Pki::new();
    for v in versions() {
        for role in ROLES {
            for dir in DIRS {
                let what = format!("{} {role:?} {dir:?}, garbage after close_notify", vname(v));
                let mut pair = warm_pair(&pki, role, v).await;
                let (sender, receiver) = pair.ends(dir);
                // close_notify followed by a record that does not decrypt: held, then
                // sent in one write so that both arrive together.
                sender.tap().hold();
                bounded(&what, sender.shutdown()).await.unwrap();
                let mut wire = sender.tap().release();
                wire.extend(raw_record(23, [3, 3], 64, 64));
                write_raw(sender, &wire, &what).await;
                for _ in 0..3 {
                    let n = bounded(&what, receiver.read(&mut [0u8; 64]))
                        .await
                        .unwrap_or_else(|e| panic!("{what}: {}: {e}", receiver.name()));
                    assert_eq!(n, 0, "{what}: {}", receiver.name());
                }
            }
        }
    }
}
