//! Sticky errors, alerts, deadlines and cancellation: a handshake
//! failure gives the same error on every later call and the peer receives the alert; the
//! deadline and the connector's token are fatal and shut the transport down; a per-call
//! `cancel_on` is resumable.
mod common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lazytls::rustls::pki_types::ServerName;
use lazytls::rustls::{self, AlertDescription, CertificateError};
use lazytls::{
    CancellationToken, Error, HandshakeState, RecordLayer, TlsAcceptor, TlsConnector, TlsStream,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

/// Asserts that every later call on a failed stream reports `first` again: the same kind,
/// the same message, and the same typed error (checked by `typed`).
async fn assert_sticky<IO>(
    stream: &mut TlsStream<IO>,
    first: &Error,
    typed: impl Fn(&Error) -> bool,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    assert!(
        typed(first),
        "first error is not the expected one: {first:?}"
    );
    assert_eq!(stream.state(), HandshakeState::Failed);
    let (kind, msg) = (first.kind(), first.to_string());
    let check_io = |what: &str, e: io::Error| {
        assert_eq!(e.kind(), kind, "{what}: kind changed: {e}");
        assert_eq!(e.to_string(), msg, "{what}: message changed");
        let inner = Error::from_io(&e).unwrap_or_else(|| panic!("{what}: untyped {e:?}"));
        assert!(typed(inner), "{what}: typed error changed: {inner:?}");
        assert_eq!(inner.to_string(), msg);
    };
    for _ in 0..3 {
        let e = bounded("handshake again", stream.handshake())
            .await
            .unwrap_err();
        assert!(typed(&e), "handshake(): {e:?}");
        assert_eq!((e.kind(), e.to_string()), (kind, msg.clone()));
        // A per-call token that is not cancelled changes nothing. (A cancelled one is
        // checked by `per_call_cancel_after_failure_returns_the_sticky_error`.)
        let e = bounded(
            "handshake().cancel_on",
            stream.handshake().cancel_on(&CancellationToken::new()),
        )
        .await
        .unwrap_err();
        assert!(typed(&e), "handshake().cancel_on(): {e:?}");
        assert_eq!((e.kind(), e.to_string()), (kind, msg.clone()));
        let mut buf = [0u8; 32];
        check_io(
            "read",
            bounded("read", stream.read(&mut buf)).await.unwrap_err(),
        );
        check_io(
            "write",
            bounded("write", stream.write(b"abc")).await.unwrap_err(),
        );
        let bufs = [io::IoSlice::new(b"a"), io::IoSlice::new(b"b")];
        check_io(
            "write_vectored",
            bounded("write_vectored", stream.write_vectored(&bufs))
                .await
                .unwrap_err(),
        );
        check_io("flush", bounded("flush", stream.flush()).await.unwrap_err());
        assert_eq!(stream.state(), HandshakeState::Failed);
    }
}

fn is_alert(e: &Error, want: Option<AlertDescription>) -> bool {
    match e {
        Error::Tls(rustls::Error::AlertReceived(got)) => want.is_none_or(|w| *got == w),
        _ => false,
    }
}

/// Runs both handshakes to their end, concurrently.
async fn handshake_both(
    c: &mut TlsStream<DuplexStream>,
    s: &mut TlsStream<DuplexStream>,
) -> (Result<(), Error>, Result<(), Error>) {
    bounded("handshakes", async {
        tokio::join!(c.handshake(), s.handshake())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Sticky errors, and the peer receives the alert
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn untrusted_certificate_is_sticky_and_alerted() {
    let pki = Pki::new();
    let stranger = Pki::new();
    for v in versions() {
        // The client trusts another CA.
        let (mut c, mut s) = duplex_pair(
            Arc::new(stranger.client_config_with(v)),
            Arc::new(pki.server_config_with(v)),
        );
        let (rc, rs) = handshake_both(&mut c, &mut s).await;
        let ec = rc.expect_err("client accepted an untrusted certificate");
        // Both CAs carry the same name, so webpki may find the stranger's CA as the issuer
        // and fail on its signature rather than on an unknown issuer.
        let Error::Tls(rustls::Error::InvalidCertificate(cert_err)) = &ec else {
            panic!("{}: {ec:?}", vname(v));
        };
        assert!(
            matches!(
                cert_err,
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            ),
            "{cert_err:?}"
        );
        let cert_err = cert_err.clone();
        assert_eq!(ec.kind(), io::ErrorKind::InvalidData);
        assert_sticky(
            &mut c,
            &ec,
            |e| matches!(e, Error::Tls(rustls::Error::InvalidCertificate(x)) if *x == cert_err),
        )
        .await;
        let es = rs.expect_err("server did not see the client's alert");
        println!("{}: client {ec}; server {es}", vname(v));
        let want = AlertDescription::from(cert_err.clone());
        assert_sticky(&mut s, &es, |e| is_alert(e, Some(want))).await;
    }
}

#[tokio::test]
async fn wrong_server_name_is_sticky_and_alerted() {
    let pki = Pki::new();
    for v in versions() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let wrong = ServerName::try_from("wrong.example.com").unwrap();
        let mut c = TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(wrong, a);
        let mut s = TlsAcceptor::new(Arc::new(pki.server_config_with(v))).accept(b);
        // Implicitly, through a write and a read, rather than handshake().
        let (rc, rs) = bounded("implicit handshakes", async {
            tokio::join!(c.write_all(b"hello"), async {
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).await
            })
        })
        .await;
        let ec = rc.expect_err("client accepted a certificate for another name");
        let ec = Error::from_io(&ec).expect("typed").to_string();
        let bad_name = |e: &Error| {
            matches!(
                e,
                Error::Tls(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ))
            )
        };
        let first = c.handshake().await.unwrap_err();
        assert_eq!(
            first.to_string(),
            ec,
            "handshake() differs from the first write"
        );
        assert_sticky(&mut c, &first, bad_name).await;
        let es = rs.expect_err("server did not see the client's alert");
        let es_typed = Error::from_io(&es).expect("typed");
        println!("{}: client {ec}; server {es}", vname(v));
        assert!(
            is_alert(es_typed, Some(AlertDescription::BadCertificate)),
            "{es_typed:?}"
        );
        let first = s.handshake().await.unwrap_err();
        assert_sticky(&mut s, &first, |e| is_alert(e, None)).await;
    }
}

#[tokio::test]
async fn missing_client_certificate_is_sticky_and_alerted() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = duplex_pair(
            Arc::new(pki.client_config_with(v)), // no client certificate
            pki.mtls_server_config(v),
        );
        let (rc, rs) = handshake_both(&mut c, &mut s).await;
        let es = rs.expect_err("server accepted a client without a certificate");
        assert_sticky(&mut s, &es, |e| {
            matches!(e, Error::Tls(rustls::Error::NoCertificatesPresented))
        })
        .await;
        // TLS 1.3: the client finishes its side of the handshake before the server judges
        // its (empty) certificate, so the rejection shows up on its first read. TLS 1.2:
        // the server's Finished never comes, so the handshake itself fails.
        let ec = match rc {
            Err(e) => {
                assert_ne!(v[0].version, rustls::ProtocolVersion::TLSv1_3);
                e
            }
            Ok(()) => {
                assert_eq!(v[0].version, rustls::ProtocolVersion::TLSv1_3);
                let mut buf = [0u8; 16];
                let e = bounded("first read", c.read(&mut buf)).await.unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                let first = c.handshake().await.expect_err("the failure is not sticky");
                assert_eq!(e.to_string(), first.to_string());
                first
            }
        };
        println!("{}: server {es}; client {ec}", vname(v));
        assert_sticky(&mut c, &ec, |e| {
            is_alert(e, Some(AlertDescription::CertificateRequired))
                || is_alert(e, Some(AlertDescription::HandshakeFailure))
        })
        .await;
    }
}

#[tokio::test]
async fn bad_record_after_handshake_is_sticky_and_alerted() {
    bad_record_after_handshake(RecordLayer::Native).await;
}

#[tokio::test]
async fn bad_record_after_handshake_is_sticky_and_alerted_on_rustls_layer() {
    bad_record_after_handshake(RecordLayer::Rustls).await;
}

async fn bad_record_after_handshake(layer: RecordLayer) {
    let pki = Pki::new();
    for v in versions() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut c = TlsConnector::new(Arc::new(pki.client_config_with(v)))
            .record_layer(layer)
            .connect(localhost(), a);
        let mut s = TlsAcceptor::new(Arc::new(pki.server_config_with(v)))
            .record_layer(layer)
            .accept(b);
        let (rc, rs) = handshake_both(&mut c, &mut s).await;
        rc.unwrap();
        rs.unwrap();
        bounded("corrupt record", async {
            s.write_all(b"good data").await.unwrap();
            s.flush().await.unwrap();
            // An application-data record that cannot be decrypted.
            s.get_mut().write_all(&[23, 3, 3, 0, 40]).await.unwrap();
            s.get_mut().write_all(&[0x55; 40]).await.unwrap();
            let mut buf = [0u8; 9];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"good data", "data before the bad record was lost");
        })
        .await;
        let e = bounded("read", c.read(&mut [0u8; 16])).await.unwrap_err();
        let first = Error::from_io(&e).expect("typed").duplicate_for_test();
        assert_sticky(&mut c, &first, |e| {
            matches!(e, Error::Tls(rustls::Error::DecryptError))
        })
        .await;
        // The server receives bad_record_mac.
        let e = bounded("server read", s.read(&mut [0u8; 16]))
            .await
            .unwrap_err();
        let typed = Error::from_io(&e).expect("typed");
        assert!(
            is_alert(typed, Some(AlertDescription::BadRecordMac)),
            "{}: {typed:?}",
            vname(v)
        );
    }
}

/// Feeds `input` to a server as the client's first bytes: the server must fail with a
/// sticky TLS error (no panic) and send a fatal alert before closing the transport.
async fn garbage_first_flight(input: &[u8]) {
    let pki = Pki::new();
    let (mut raw, b) = tokio::io::duplex(64 * 1024);
    let mut s = TlsAcceptor::new(pki.server_config()).accept(b);
    raw.write_all(input).await.unwrap();
    let e = bounded("server handshake", s.handshake())
        .await
        .unwrap_err();
    println!("{input:?}: {e}");
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let msg = e.to_string();
    assert_sticky(&mut s, &e, |x| x.to_string() == msg).await;
    // The peer receives a fatal alert record (content type 21, level fatal), then EOF.
    let got = peer_reads_eof(&mut raw).await;
    assert!(
        got.len() >= 7 && got[0] == 21 && got[5] == 2,
        "no fatal alert for {input:?}: {got:?}"
    );
}

#[tokio::test]
async fn unknown_content_type_in_handshake_is_sticky_and_alerted() {
    // rustls's deframer rejects the record (InvalidMessage, alert decode_error).
    garbage_first_flight(&[99, 3, 3, 0, 5, 1, 2, 3, 4, 5]).await;
}

#[tokio::test]
async fn oversized_record_in_handshake_is_sticky_and_alerted() {
    // A record header announcing more than 2^14 + 2048 bytes (alert record_overflow).
    garbage_first_flight(&[22, 3, 3, 0xff, 0xff, 1]).await;
}

#[tokio::test]
async fn wrong_handshake_message_is_sticky_and_alerted() {
    // A well-formed record carrying a ServerHello header instead of a ClientHello.
    garbage_first_flight(&[22, 3, 1, 0, 4, 2, 0, 0, 0]).await;
}

/// `Error` is not `Clone`; rebuild the variants these tests need.
trait DuplicateForTest {
    fn duplicate_for_test(&self) -> Error;
}

impl DuplicateForTest for Error {
    fn duplicate_for_test(&self) -> Error {
        match self {
            Error::Tls(e) => Error::Tls(e.clone()),
            other => panic!("not needed here: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Deadlines and cancellation
// ---------------------------------------------------------------------------------------

/// Reads the raw peer end to EOF (the stream shut the transport down) and returns what the
/// stream had written before that.
async fn peer_reads_eof(peer: &mut DuplexStream) -> Vec<u8> {
    let mut got = Vec::new();
    bounded("peer reads to EOF", peer.read_to_end(&mut got))
        .await
        .expect("peer read");
    got
}

#[tokio::test(start_paused = true)]
async fn silent_server_hits_handshake_timeout() {
    let pki = Pki::new();
    for v in versions() {
        let (a, mut silent) = tokio::io::duplex(64 * 1024);
        let mut c = TlsConnector::new(Arc::new(pki.client_config_with(v)))
            .handshake_timeout(Duration::from_secs(10))
            .connect(localhost(), a);
        let start = Instant::now();
        let e = bounded("handshake", c.handshake()).await.unwrap_err();
        // Paused (virtual) time: the deadline is exact, not a wall-clock measurement.
        assert!(start.elapsed() >= Duration::from_secs(10));
        assert!(matches!(e, Error::HandshakeTimeout), "{e:?}");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_sticky(&mut c, &e, |e| matches!(e, Error::HandshakeTimeout)).await;
        // The transport was shut down: the silent peer sees the ClientHello, then EOF.
        let hello = peer_reads_eof(&mut silent).await;
        assert_eq!(hello.first(), Some(&22), "{}: no ClientHello", vname(v));
    }
}

#[tokio::test(start_paused = true)]
async fn silent_client_hits_handshake_timeout_on_implicit_handshake() {
    let pki = Pki::new();
    let (mut silent, b) = tokio::io::duplex(64 * 1024);
    let mut s = TlsAcceptor::new(pki.server_config())
        .handshake_timeout(Duration::from_secs(3))
        .accept(b);
    let e = bounded("read", s.read(&mut [0u8; 8])).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    let first = s.handshake().await.unwrap_err();
    assert_sticky(&mut s, &first, |e| matches!(e, Error::HandshakeTimeout)).await;
    assert!(peer_reads_eof(&mut silent).await.is_empty());
}

/// Polls a future once, with a no-op waker, and drops it (the handshake's progress stays in
/// the stream).
fn poll_once<F: std::future::Future>(fut: F) -> bool {
    tokio_test::task::spawn(fut).poll().is_ready()
}

#[tokio::test(start_paused = true)]
async fn deadline_covers_the_whole_handshake() {
    let pki = Pki::new();
    for v in versions() {
        // Server side: the client sends its ClientHello and then never speaks again. The
        // server answers and must hit its deadline while waiting for the client's Finished.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut c = TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), a);
        let mut s = TlsAcceptor::new(Arc::new(pki.server_config_with(v)))
            .handshake_timeout(Duration::from_secs(5))
            .accept(b);
        assert!(!poll_once(c.handshake()), "client handshake finished alone");
        let start = Instant::now();
        let e = bounded("server handshake", s.handshake())
            .await
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_secs(5));
        assert!(matches!(e, Error::HandshakeTimeout), "{}: {e:?}", vname(v));
        assert_sticky(&mut s, &e, |e| matches!(e, Error::HandshakeTimeout)).await;
        // The client sees the server's whole flight, then the transport's end: a TLS 1.2
        // client still waits for the server's Finished; a TLS 1.3 client has it already.
        let r = bounded("client", c.handshake()).await;
        if v[0].version == rustls::ProtocolVersion::TLSv1_2 {
            assert!(matches!(r, Err(Error::HandshakeEof)), "{r:?}");
        } else {
            r.unwrap();
            let e = bounded("client read", c.read(&mut [0u8; 8]))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }

        // Client side, TLS 1.2 only (a TLS 1.3 client is done once it sent Finished): the
        // server answers the ClientHello and then stops before its Finished.
        if v[0].version != rustls::ProtocolVersion::TLSv1_2 {
            continue;
        }
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut c = TlsConnector::new(Arc::new(pki.client_config_with(v)))
            .handshake_timeout(Duration::from_secs(5))
            .connect(localhost(), a);
        let mut s = TlsAcceptor::new(Arc::new(pki.server_config_with(v))).accept(b);
        assert!(!poll_once(c.handshake()));
        assert!(
            !poll_once(s.handshake()),
            "server finished without the client"
        );
        let start = Instant::now();
        let e = bounded("client handshake", c.handshake())
            .await
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_secs(5));
        assert_sticky(&mut c, &e, |e| matches!(e, Error::HandshakeTimeout)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_does_not_outlive_a_completed_handshake() {
    let pki = Pki::new();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut c = TlsConnector::new(pki.client_config())
        .handshake_timeout(Duration::from_secs(1))
        .connect(localhost(), a);
    let mut s = TlsAcceptor::new(pki.server_config())
        .handshake_timeout(Duration::from_secs(1))
        .accept(b);
    let (rc, rs) = handshake_both(&mut c, &mut s).await;
    rc.unwrap();
    rs.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    bounded("transfer after the deadline", async {
        let mut buf = [0u8; 5];
        let (r, ()) = tokio::join!(s.read_exact(&mut buf), async {
            c.write_all(b"later").await.unwrap();
            c.flush().await.unwrap();
        });
        r.unwrap();
        assert_eq!(&buf, b"later");
    })
    .await;
    assert_eq!(c.state(), HandshakeState::Ready);
}

#[tokio::test(start_paused = true)]
async fn connector_token_is_fatal() {
    let pki = Pki::new();
    for v in versions() {
        let token = CancellationToken::new();
        let connector =
            TlsConnector::new(Arc::new(pki.client_config_with(v))).shutdown_token(token.clone());
        let (a, mut silent) = tokio::io::duplex(64 * 1024);
        let mut c = connector.connect(localhost(), a);
        let (r, ()) = bounded("handshake", async {
            tokio::join!(c.handshake(), async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                token.cancel();
            })
        })
        .await;
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e:?}");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert_sticky(&mut c, &e, |e| matches!(e, Error::Cancelled)).await;
        let hello = peer_reads_eof(&mut silent).await;
        assert_eq!(hello.first(), Some(&22), "{}", vname(v));

        // A stream made after the cancellation fails on its first use, implicitly too.
        let (a, mut silent) = tokio::io::duplex(64 * 1024);
        let mut c = connector.connect(localhost(), a);
        let e = bounded("write", c.write(b"x")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        let first = c.handshake().await.unwrap_err();
        assert_sticky(&mut c, &first, |e| matches!(e, Error::Cancelled)).await;
        peer_reads_eof(&mut silent).await;
    }
}

#[tokio::test(start_paused = true)]
async fn acceptor_token_is_fatal_on_implicit_handshake() {
    let pki = Pki::new();
    let token = CancellationToken::new();
    let acceptor = TlsAcceptor::new(pki.server_config()).shutdown_token(token.clone());
    let (mut silent, b) = tokio::io::duplex(64 * 1024);
    let mut s = acceptor.accept(b);
    let mut buf = [0u8; 8];
    let (r, ()) = bounded("read", async {
        tokio::join!(s.read(&mut buf), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            token.cancel();
        })
    })
    .await;
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    let first = s.handshake().await.unwrap_err();
    assert_sticky(&mut s, &first, |e| matches!(e, Error::Cancelled)).await;
    assert!(peer_reads_eof(&mut silent).await.is_empty());
}

#[tokio::test]
async fn connector_token_leaves_completed_connections_alone() {
    let pki = Pki::new();
    let token = CancellationToken::new();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut c = TlsConnector::new(pki.client_config())
        .shutdown_token(token.clone())
        .connect(localhost(), a);
    let mut s = TlsAcceptor::new(pki.server_config())
        .shutdown_token(token.clone())
        .accept(b);
    let (rc, rs) = handshake_both(&mut c, &mut s).await;
    rc.unwrap();
    rs.unwrap();
    token.cancel();
    bounded("transfer after cancel", async {
        let data = pattern(50_000, 1);
        let mut got = vec![0; data.len()];
        let (r, ()) = tokio::join!(s.read_exact(&mut got), async {
            c.write_all(&data).await.unwrap();
            c.flush().await.unwrap();
        });
        r.unwrap();
        assert_eq!(got, data);
        c.handshake().await.unwrap();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn per_call_cancel_is_resumable() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = duplex_pair(
            Arc::new(pki.client_config_with(v)),
            Arc::new(pki.server_config_with(v)),
        );
        let token = CancellationToken::new();
        // The server is not running yet, so the client's handshake waits; cancel the call.
        let (r, ()) = bounded("cancelled handshake", async {
            tokio::join!(c.handshake().cancel_on(&token), async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                token.cancel();
            })
        })
        .await;
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e:?}");
        assert_eq!(
            c.state(),
            HandshakeState::Handshaking,
            "a per-call cancel was fatal"
        );
        // A call with a token that is already cancelled ends at once, still not fatal.
        let e = c.handshake().cancel_on(&token).await.unwrap_err();
        assert!(matches!(e, Error::Cancelled));
        assert_eq!(c.state(), HandshakeState::Handshaking);

        // The server's handshake is cancelled per call too, mid-way.
        let token2 = CancellationToken::new();
        let (r, ()) = bounded("server cancelled", async {
            tokio::join!(s.handshake().cancel_on(&token2), async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                token2.cancel();
            })
        })
        .await;
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        assert_eq!(s.state(), HandshakeState::Handshaking);

        // The next calls resume from the preserved state and complete; then data flows.
        let (rc, rs) = handshake_both(&mut c, &mut s).await;
        rc.unwrap_or_else(|e| panic!("{}: client did not resume: {e:?}", vname(v)));
        rs.unwrap_or_else(|e| panic!("{}: server did not resume: {e:?}", vname(v)));
        bounded("transfer", async {
            let data = pattern(100_000, 2);
            let mut got = vec![0; data.len()];
            let (r, ()) = tokio::join!(c.read_exact(&mut got), async {
                s.write_all(&data).await.unwrap();
                s.flush().await.unwrap();
            });
            r.unwrap();
            assert_eq!(got, data);
            let mut got = [0u8; 4];
            let (r, ()) = tokio::join!(s.read_exact(&mut got), async {
                c.write_all(b"back").await.unwrap();
                c.flush().await.unwrap();
            });
            r.unwrap();
            assert_eq!(&got, b"back");
        })
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn per_call_cancel_after_failure_returns_the_sticky_error() {
    let pki = Pki::new();
    // A stream failed for good (deadline), and one failed by a TLS error.
    let (a, _silent) = tokio::io::duplex(64 * 1024);
    let mut timed_out = TlsConnector::new(pki.client_config())
        .handshake_timeout(Duration::from_secs(1))
        .connect(localhost(), a);
    let first = bounded("handshake", timed_out.handshake())
        .await
        .unwrap_err();
    assert!(matches!(first, Error::HandshakeTimeout));
    let (mut c, mut s) = duplex_pair(Pki::new().client_config(), pki.server_config());
    let (rc, _) = handshake_both(&mut c, &mut s).await;
    let tls_err = rc.unwrap_err().to_string();

    let token = CancellationToken::new();
    token.cancel();
    // Sticky means every later call: a per-call token must not replace the stored error
    // with `Cancelled` (which also has another kind, ConnectionAborted, than TimedOut).
    let e = timed_out.handshake().cancel_on(&token).await.unwrap_err();
    assert!(
        matches!(e, Error::HandshakeTimeout),
        "handshake().cancel_on(cancelled) on a timed-out stream gave {e:?}"
    );
    let e = c.handshake().cancel_on(&token).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        tls_err,
        "handshake().cancel_on(cancelled) on a failed stream gave {e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_call_cancel_then_implicit_resume() {
    let pki = Pki::new();
    let (mut c, mut s) = duplex_pair(pki.client_config(), pki.server_config());
    let token = CancellationToken::new();
    let (r, ()) = tokio::join!(c.handshake().cancel_on(&token), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        token.cancel();
    });
    assert!(matches!(r, Err(Error::Cancelled)));
    // Resume through a write on the client and a read on the server.
    bounded("implicit resume", async {
        let mut buf = [0u8; 6];
        let (r, ()) = tokio::join!(s.read_exact(&mut buf), async {
            c.write_all(b"resume").await.unwrap();
            c.flush().await.unwrap();
        });
        r.unwrap();
        assert_eq!(&buf, b"resume");
    })
    .await;
    assert_eq!(c.state(), HandshakeState::Ready);
}
