//! The lazy handshake: `connect`/`accept` do no I/O (seen through a [`FaultyIo`] that
//! records every call), the handshake is driven from every starting point, `handshake()`
//! is idempotent and fills `info()`, and EOF, truncation and close behave like Go's
//! `tls.Conn`.
mod common;

use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use common::transport::{FaultyIo, PollLog};
use common::*;
use lazytls::rustls::{self, SupportedProtocolVersion};
use lazytls::{Error, HandshakeState, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

// ---------------------------------------------------------------------------------------
// Support
// ---------------------------------------------------------------------------------------

type Version = &'static [&'static SupportedProtocolVersion];
type Stream = TlsStream<DuplexStream>;

fn pair(pki: &Pki, v: Version) -> (Stream, Stream) {
    duplex_pair(
        Arc::new(pki.client_config_with(v)),
        Arc::new(pki.server_config_with(v)),
    )
}

/// Completes both handshakes concurrently.
async fn handshake_both<C, S>(c: &mut TlsStream<C>, s: &mut TlsStream<S>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rc, rs) = bounded("handshake", async {
        tokio::join!(c.handshake(), s.handshake())
    })
    .await;
    rc.expect("client handshake");
    rs.expect("server handshake");
}

/// Reads until an error or a clean end; returns the bytes and how it ended.
async fn read_until_end<R: AsyncRead + Unpin>(
    r: &mut R,
    chunk: usize,
) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = vec![0; chunk];
    // Bounded: far more iterations than any test transfers bytes.
    for _ in 0..1_000_000 {
        match r.read(&mut buf).await {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
    panic!("read loop did not end");
}

/// `writer` sends `data`, then hangs up its transport without a close_notify; `reader`
/// reads (in `chunk`s) until an error or a clean end.
async fn hang_up_after(
    data: &[u8],
    writer: &mut Stream,
    reader: &mut Stream,
    chunk: usize,
) -> (Vec<u8>, io::Result<()>) {
    writer.write_all(data).await.unwrap();
    writer.flush().await.unwrap();
    writer.get_mut().shutdown().await.unwrap();
    read_until_end(reader, chunk).await
}

/// Reads `want` from `stream` in a task, checks it, and hands the stream back.
fn spawn_read_exact(mut stream: Stream, want: Vec<u8>) -> tokio::task::JoinHandle<Stream> {
    tokio::spawn(async move {
        let mut got = vec![0; want.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
        stream
    })
}

/// `msg` from `writer` to a read of `reader` that was started first.
async fn deliver_to_waiting_read(
    writer: &mut Stream,
    reader: &mut Stream,
    buf: &mut [u8],
    msg: &[u8],
) {
    let (n, ()) = tokio::join!(reader.read(buf), async {
        tokio::task::yield_now().await;
        writer.write_all(msg).await.unwrap();
        writer.flush().await.unwrap();
    });
    assert_eq!(&buf[..n.unwrap()], msg);
}

/// A client that accepts an EOF on a record boundary (`allow_truncation`), and a server,
/// on `v`, after their handshakes.
async fn truncation_pair(pki: &Pki, v: Version) -> (Stream, Stream) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut c = TlsConnector::new(Arc::new(pki.client_config_with(v)))
        .allow_truncation(true)
        .connect(localhost(), a);
    let mut s = TlsAcceptor::new(Arc::new(pki.server_config_with(v))).accept(b);
    handshake_both(&mut c, &mut s).await;
    (c, s)
}

fn assert_typed(err: &io::Error, kind: io::ErrorKind, check: impl Fn(&Error) -> bool) {
    assert_eq!(err.kind(), kind, "unexpected kind for {err}");
    let typed = Error::from_io(err).unwrap_or_else(|| panic!("no typed error inside {err:?}"));
    assert!(check(typed), "unexpected typed error {typed:?}");
}

// ---------------------------------------------------------------------------------------
// connect and accept do no I/O
// ---------------------------------------------------------------------------------------

#[test]
fn stream_is_unpin_and_send() {
    fn check<T: Unpin + Send>() {}
    check::<TlsStream<DuplexStream>>();
    check::<TlsStream<tokio::net::TcpStream>>();
}

#[tokio::test]
async fn connect_and_accept_do_no_io() {
    let pki = Pki::new();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (clog, slog) = (PollLog::default(), PollLog::default());
    let mut c = TlsConnector::new(pki.client_config())
        .connect(localhost(), FaultyIo::new(a).record_calls(clog.clone()));
    let mut s =
        TlsAcceptor::new(pki.server_config()).accept(FaultyIo::new(b).record_calls(slog.clone()));

    // Everything that is not a read, a write or a handshake leaves the transport alone.
    assert_eq!(c.state(), HandshakeState::Idle);
    assert_eq!(s.state(), HandshakeState::Idle);
    assert!(c.info().is_none() && s.info().is_none());
    assert!(c.is_client() && !s.is_client());
    let _ = format!("{c:?} {s:?}");
    let _ = (c.get_ref(), s.get_mut());
    // A handshake future that is built but never polled does nothing either.
    drop(c.handshake());
    drop(s.handshake());
    // Nor does waiting: nothing runs in the background.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(clog.calls(), Vec::<&str>::new(), "connect() touched the IO");
    assert_eq!(slog.calls(), Vec::<&str>::new(), "accept() touched the IO");
    assert_eq!(c.state(), HandshakeState::Idle);
    assert_eq!(s.state(), HandshakeState::Idle);

    // The recorder works: the handshake shows up in it.
    handshake_both(&mut c, &mut s).await;
    assert!(clog.calls().contains(&"poll_write"), "{:?}", clog.calls());
    assert!(slog.calls().contains(&"poll_read"), "{:?}", slog.calls());
    assert_eq!(c.state(), HandshakeState::Ready);
    assert_eq!(s.state(), HandshakeState::Ready);
}

// ---------------------------------------------------------------------------------------
// The lazy handshake from each starting point
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn lazy_client_writes_first() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, s) = pair(&pki, v);
        let data = pattern(100_000, 3);
        let srv = spawn_read_exact(s, data.clone());
        bounded("client write", async {
            assert_eq!(c.state(), HandshakeState::Idle);
            // The first write drives the whole handshake before it takes any data.
            c.write_all(&data[..1]).await.unwrap();
            assert_eq!(c.state(), HandshakeState::Ready);
            c.write_all(&data[1..]).await.unwrap();
            c.flush().await.unwrap();
        })
        .await;
        let s = bounded("server", srv).await.unwrap();
        assert_eq!(s.state(), HandshakeState::Ready);
        let info = c.info().expect("client info");
        assert_eq!(info.protocol_version, Some(v[0].version), "{}", vname(v));
    }
}

#[tokio::test]
async fn lazy_client_reads_first_server_writes_first() {
    let pki = Pki::new();
    for v in versions() {
        let (c, mut s) = pair(&pki, v);
        let data = pattern(70_000, 9);
        let cli = spawn_read_exact(c, data.clone());
        bounded("server write", async {
            assert_eq!(s.state(), HandshakeState::Idle);
            s.write_all(&data).await.unwrap();
            assert_eq!(s.state(), HandshakeState::Ready);
            s.flush().await.unwrap();
        })
        .await;
        let c = bounded("client", cli).await.unwrap();
        assert_eq!(c.state(), HandshakeState::Ready);
        assert_eq!(
            s.info().unwrap().protocol_version,
            Some(v[0].version),
            "{}",
            vname(v)
        );
    }
}

#[tokio::test]
async fn lazy_both_read_first() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = pair(&pki, v);
        let mut cbuf = [0u8; 64];
        let mut sbuf = [0u8; 64];
        bounded("both read", async {
            // Both sides only read. Each round gives both reads a moment and then drops them
            // (reads are cancel-safe; the handshake's progress lives in the stream). No data
            // is ever sent, so every read must still be waiting when its round ends.
            let mut rounds = 0;
            while c.state() != HandshakeState::Ready || s.state() != HandshakeState::Ready {
                rounds += 1;
                assert!(rounds <= 1000, "handshake did not complete under reads");
                let wait = Duration::from_millis(10);
                let (rc, rs) = tokio::join!(
                    tokio::time::timeout(wait, c.read(&mut cbuf)),
                    tokio::time::timeout(wait, s.read(&mut sbuf)),
                );
                assert!(rc.is_err(), "client read ended with no data sent: {rc:?}");
                assert!(rs.is_err(), "server read ended with no data sent: {rs:?}");
            }
            assert!(c.info().is_some() && s.info().is_some());

            // The handshake is complete and the reads wait for data.
            let wait = Duration::from_millis(50);
            let (rc, rs) = tokio::join!(
                tokio::time::timeout(wait, c.read(&mut cbuf)),
                tokio::time::timeout(wait, s.read(&mut sbuf)),
            );
            assert!(rc.is_err(), "client read did not wait: {rc:?}");
            assert!(rs.is_err(), "server read did not wait: {rs:?}");

            // Now deliver data both ways to reads that were started first.
            deliver_to_waiting_read(&mut s, &mut c, &mut cbuf, b"from server").await;
            deliver_to_waiting_read(&mut c, &mut s, &mut sbuf, b"from client").await;
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// Explicit handshake(), idempotent, info() filled in
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn explicit_handshake_is_idempotent_and_fills_info() {
    let pki = Pki::new();
    for v in versions() {
        let mut cc = pki.client_config_with(v);
        cc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut sc = pki.server_config_with(v);
        sc.alpn_protocols = vec![b"http/1.1".to_vec(), b"spdy/1".to_vec()];
        let (cc, sc) = (Arc::new(cc), Arc::new(sc));
        let (mut c, mut s) = duplex_pair(cc.clone(), sc.clone());

        handshake_both(&mut c, &mut s).await;
        assert_eq!(c.state(), HandshakeState::Ready);
        assert_eq!(s.state(), HandshakeState::Ready);

        // Idempotent: ready on the first poll, every time, on both sides.
        for _ in 0..3 {
            let mut fut = tokio_test::task::spawn(c.handshake());
            assert!(matches!(fut.poll(), Poll::Ready(Ok(()))));
            drop(fut);
            let mut fut = tokio_test::task::spawn(s.handshake());
            assert!(matches!(fut.poll(), Poll::Ready(Ok(()))));
            drop(fut);
            let mut fut = tokio_test::task::spawn(std::future::poll_fn(|cx| c.poll_handshake(cx)));
            assert!(matches!(fut.poll(), Poll::Ready(Ok(()))));
        }
        // A cancelled per-call token does not matter once the handshake is complete.
        let token = lazytls::CancellationToken::new();
        token.cancel();
        c.handshake().cancel_on(&token).await.unwrap();

        let ci = c.info().expect("client info").clone();
        let si = s.info().expect("server info").clone();
        for (side, info) in [("client", &ci), ("server", &si)] {
            assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]), "{side} alpn");
            assert_eq!(info.protocol_version, Some(v[0].version), "{side} version");
            let suite = info.cipher_suite.expect("cipher suite");
            assert_eq!(
                suite.version().version,
                v[0].version,
                "{side} suite version"
            );
            assert_eq!(info.sni.as_deref(), Some("localhost"), "{side} sni");
            assert!(!info.resumed, "{side}: first connection cannot resume");
            assert!(info.handshake_duration < Duration::from_secs(3600));
        }
        assert_eq!(
            ci.cipher_suite.unwrap().suite(),
            si.cipher_suite.unwrap().suite()
        );
        println!("{}: {ci:?}", vname(v));
        assert_eq!(ci.peer_certificates.as_deref(), Some(&pki.server_chain[..]));
        assert!(
            si.peer_certificates.as_ref().is_none_or(Vec::is_empty),
            "no client auth, yet the server has peer certificates"
        );

        // Exchange data so the client takes in its session tickets, then resume.
        bounded("exchange", async {
            let mut buf = [0u8; 4];
            let (r, ()) = tokio::join!(c.read_exact(&mut buf), async {
                s.write_all(b"ping").await.unwrap();
                s.flush().await.unwrap();
            });
            r.unwrap();
        })
        .await;
        let (mut c2, mut s2) = duplex_pair(cc, sc);
        handshake_both(&mut c2, &mut s2).await;
        assert!(
            c2.info().unwrap().resumed,
            "{}: client did not resume",
            vname(v)
        );
        assert!(
            s2.info().unwrap().resumed,
            "{}: server did not resume",
            vname(v)
        );
        assert_eq!(c2.info().unwrap().alpn.as_deref(), Some(&b"http/1.1"[..]));
    }
}

#[tokio::test]
async fn info_under_mutual_tls() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = duplex_pair(pki.mtls_client_config(v), pki.mtls_server_config(v));
        handshake_both(&mut c, &mut s).await;
        let si = s.info().unwrap();
        assert_eq!(si.peer_certificates.as_deref(), Some(&pki.client_chain[..]));
        assert_eq!(si.alpn, None);
        assert_eq!(
            c.info().unwrap().peer_certificates.as_deref(),
            Some(&pki.server_chain[..])
        );
    }
}

#[tokio::test]
async fn info_sni_absent_for_ip_address() {
    let pki = Pki::new();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let ip = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut c = TlsConnector::new(pki.client_config()).connect(ip, a);
    let mut s = TlsAcceptor::new(pki.server_config()).accept(b);
    handshake_both(&mut c, &mut s).await;
    assert_eq!(c.info().unwrap().sni, None);
    assert_eq!(s.info().unwrap().sni, None);
}

// ---------------------------------------------------------------------------------------
// EOF, truncation and close
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn eof_mid_handshake_client() {
    let pki = Pki::new();
    for v in versions() {
        let (a, mut raw) = tokio::io::duplex(64 * 1024);
        let mut c = TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), a);
        let (r, ()) = bounded("client handshake", async {
            tokio::join!(c.handshake(), async {
                // Take the start of the ClientHello, then hang up.
                let mut hello = [0u8; 5];
                raw.read_exact(&mut hello).await.unwrap();
                assert_eq!(hello[0], 22, "not a handshake record");
                raw.shutdown().await.unwrap();
            })
        })
        .await;
        let e = r.expect_err("handshake succeeded against a closed peer");
        assert!(matches!(e, Error::HandshakeEof), "{}: {e:?}", vname(v));
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(c.state(), HandshakeState::Failed);
        // The same answer from every later call.
        let mut buf = [0u8; 8];
        let e = bounded("read", c.read(&mut buf)).await.unwrap_err();
        assert_typed(&e, io::ErrorKind::UnexpectedEof, |e| {
            matches!(e, Error::HandshakeEof)
        });
        let e = bounded("write", c.write(b"x")).await.unwrap_err();
        assert_typed(&e, io::ErrorKind::UnexpectedEof, |e| {
            matches!(e, Error::HandshakeEof)
        });
        assert!(matches!(c.handshake().await, Err(Error::HandshakeEof)));
    }
}

#[tokio::test]
async fn eof_mid_handshake_server() {
    let pki = Pki::new();
    // Nothing at all, then the start of a record, then most of a ClientHello record.
    let partial: [&[u8]; 3] = [
        b"",
        &[22, 3, 1],
        &[22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3, 0, 0],
    ];
    for bytes in partial {
        let (mut raw, b) = tokio::io::duplex(64 * 1024);
        let mut s = TlsAcceptor::new(pki.server_config()).accept(b);
        raw.write_all(bytes).await.unwrap();
        raw.shutdown().await.unwrap();
        let mut buf = [0u8; 8];
        // Implicit: the first read drives the handshake and meets the EOF.
        let e = bounded("server read", s.read(&mut buf)).await.unwrap_err();
        assert_typed(&e, io::ErrorKind::UnexpectedEof, |e| {
            matches!(e, Error::HandshakeEof)
        });
        assert!(matches!(s.handshake().await, Err(Error::HandshakeEof)));
        assert_eq!(s.state(), HandshakeState::Failed);
        drop(raw);
    }
}

#[tokio::test]
async fn eof_without_close_notify_after_data() {
    let pki = Pki::new();
    for v in versions() {
        for chunk in [1000, 100_000] {
            let (mut c, mut s) = pair(&pki, v);
            let data = pattern(50_000, 7);
            handshake_both(&mut c, &mut s).await;
            let (got, end) = bounded(
                "read to truncation",
                hang_up_after(&data, &mut s, &mut c, chunk),
            )
            .await;
            assert_eq!(
                got.len(),
                data.len(),
                "{}: data lost before the error",
                vname(v)
            );
            assert_eq!(got, data);
            let e = end.expect_err("EOF without close_notify read as a clean end");
            assert_typed(&e, io::ErrorKind::UnexpectedEof, |e| {
                matches!(e, Error::Truncated)
            });
            // It stays that way.
            let mut buf = [0u8; 16];
            let e = bounded("read again", c.read(&mut buf)).await.unwrap_err();
            assert_typed(&e, io::ErrorKind::UnexpectedEof, |e| {
                matches!(e, Error::Truncated)
            });
        }
    }
}

#[tokio::test]
async fn truncation_opt_in_accepts_eof_at_record_boundary() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = truncation_pair(&pki, v).await;
        let data = pattern(40_000, 11);
        let (got, end) = bounded("read to eof", hang_up_after(&data, &mut s, &mut c, 4096)).await;
        end.unwrap_or_else(|e| panic!("{}: opt-in still reported {e:?}", vname(v)));
        assert_eq!(got, data);
        let mut buf = [0u8; 16];
        assert_eq!(bounded("read again", c.read(&mut buf)).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn truncation_opt_in_still_rejects_eof_inside_a_record() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = truncation_pair(&pki, v).await;
        let data = pattern(20_000, 13);
        let (got, end) = bounded("read to eof", async {
            s.write_all(&data).await.unwrap();
            s.flush().await.unwrap();
            // The header of an application-data record and a few of its bytes, then EOF.
            let raw = s.get_mut();
            raw.write_all(&[23, 3, 3, 0x01, 0x00]).await.unwrap();
            raw.write_all(&[0xAA; 40]).await.unwrap();
            raw.shutdown().await.unwrap();
            read_until_end(&mut c, 4096).await
        })
        .await;
        assert_eq!(got, data, "{}: data lost before the error", vname(v));
        let e = end.expect_err("EOF inside a record accepted as clean");
        assert_typed(&e, io::ErrorKind::UnexpectedEof, |e| {
            matches!(e, Error::Truncated)
        });
    }
}

#[tokio::test]
async fn clean_close_notify_both_directions() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = pair(&pki, v);
        let request = pattern(30_000, 21);
        let reply = pattern(45_000, 22);
        let (req, rep) = (request.clone(), reply.clone());
        bounded("close both ways", async {
            let client = async {
                c.write_all(&req).await.unwrap();
                // close_notify; our write side is done, our read side is not.
                c.shutdown().await.unwrap();
                let (got, end) = read_until_end(&mut c, 8192).await;
                end.unwrap_or_else(|e| panic!("client: peer's close_notify gave {e:?}"));
                assert_eq!(got, rep, "client read after its own shutdown");
                // A clean end stays clean.
                assert_eq!(c.read(&mut [0u8; 8]).await.unwrap(), 0);
            };
            let server = async {
                let (got, end) = read_until_end(&mut s, 8192).await;
                end.unwrap_or_else(|e| panic!("server: peer's close_notify gave {e:?}"));
                assert_eq!(got, req);
                assert_eq!(s.read(&mut [0u8; 8]).await.unwrap(), 0);
                // Half-closed: the server still writes after the client's close_notify.
                s.write_all(&rep).await.unwrap();
                s.shutdown().await.unwrap();
            };
            tokio::join!(client, server);
        })
        .await;
        // Writes after our own shutdown are refused with a typed error, on both sides.
        for stream in [&mut c, &mut s] {
            let e = bounded("write after shutdown", stream.write(b"late"))
                .await
                .unwrap_err();
            assert_typed(&e, io::ErrorKind::BrokenPipe, |e| {
                matches!(e, Error::WriteAfterShutdown)
            });
            assert_eq!(stream.state(), HandshakeState::Ready);
        }
        let _ = (request, reply);
    }
}

#[tokio::test]
async fn reads_keep_working_after_own_shutdown() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = pair(&pki, v);
        handshake_both(&mut c, &mut s).await;
        bounded("half close", async {
            c.shutdown().await.unwrap();
            // The server sees the close_notify, the client can still read many records.
            let mut buf = [0u8; 8];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
            let data = pattern(100_000, 5);
            let (r, ()) = tokio::join!(read_until_end(&mut c, 16_384), async {
                s.write_all(&data).await.unwrap();
                s.shutdown().await.unwrap();
            });
            r.1.unwrap();
            assert_eq!(r.0, data, "{}", vname(v));
            let e = c.write_all(b"x").await.unwrap_err();
            assert_typed(&e, io::ErrorKind::BrokenPipe, |e| {
                matches!(e, Error::WriteAfterShutdown)
            });
        })
        .await;
    }
}

#[tokio::test]
async fn write_after_shutdown_before_any_handshake() {
    let pki = Pki::new();
    let (mut c, mut s) = duplex_pair(pki.client_config(), pki.server_config());
    bounded("shutdown idle", c.shutdown()).await.unwrap();
    assert_eq!(
        c.state(),
        HandshakeState::Idle,
        "shutdown started a handshake"
    );
    let e = bounded("write", c.write(b"x")).await.unwrap_err();
    assert_typed(&e, io::ErrorKind::BrokenPipe, |e| {
        matches!(e, Error::WriteAfterShutdown)
    });
    let e = bounded("write_all", c.write_all(b"xyz")).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    // The server saw the transport close before any ClientHello.
    let e = bounded("server", s.handshake()).await.unwrap_err();
    assert!(matches!(e, Error::HandshakeEof), "{e:?}");
}

// ---------------------------------------------------------------------------------------
// A stream shared by tasks
// ---------------------------------------------------------------------------------------

/// One task waits in `poll_handshake` on a stream that it shares (behind a lock taken for
/// each poll) with a second task, whose write drives the handshake further and takes the
/// transport's read slot. When the server's flight completes the handshake in the
/// writer's task, the waiting task is woken. (It was not: only reads and writes left
/// their wakers with the stream. Found by the API-level checker, `api_sequences`, with a
/// lazytls peer.)
#[tokio::test]
async fn a_task_waiting_in_handshake_is_woken_when_another_completes_it() {
    let pki = Pki::new();
    let (client, mut server) = pair(&pki, TLS13);
    let shared = Arc::new(std::sync::Mutex::new(client));
    let waiter = shared.clone();
    let waiting = tokio::spawn(async move {
        std::future::poll_fn(|cx| waiter.lock().unwrap().poll_handshake(cx)).await
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let writer = shared.clone();
    let write = tokio::spawn(async move {
        std::future::poll_fn(|cx| {
            let mut stream = writer.lock().unwrap();
            std::pin::Pin::new(&mut *stream).poll_write(cx, b"ping")
        })
        .await
    });
    let serve = tokio::spawn(async move {
        server.handshake().await.unwrap();
        let mut ping = [0; 4];
        server.read_exact(&mut ping).await.unwrap();
        server
    });
    within(10, "the write", write).await.unwrap().unwrap();
    let done = within(3, "the waiting task's wake-up", waiting).await;
    done.unwrap().expect("the handshake");
    let flushed = std::future::poll_fn(|cx| {
        let mut stream = shared.lock().unwrap();
        std::pin::Pin::new(&mut *stream).poll_flush(cx)
    });
    within(10, "flush", flushed).await.unwrap();
    drop(within(10, "server", serve).await.unwrap());
}
