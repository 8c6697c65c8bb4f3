//! Sticky errors across the halves of a split stream: a TLS error of the read half is
//! returned by the write half (also one that is parked on a full transport), a transport
//! error of the write half by the read half (also one that is parked in a read), and an
//! error stored before the split by both. The read half's own TLS error is not replaced by
//! a writer it woke. Each for both record layers and both protocol versions.
//!
//! Fixture: `tests/common/split.rs` (ready pairs over loopback TCP and `tokio::io::duplex`,
//! junk records, same-error checks), and a [`FaultyIo`] (`tests/common/transport.rs`) whose
//! writes are made to fail. Every test is bounded in time and every loop in count.

mod common;
#[macro_use]
#[path = "common/split.rs"]
mod fixture;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::transport::{Faults, FaultyIo};
use common::*;
use fixture::*;
use lazytls::rustls::{self, AlertDescription};
use lazytls::{Error, HandshakeState, RecordLayer, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

// ---------------------------------------------------------------------------------------
// A TLS error of the read half
// ---------------------------------------------------------------------------------------

/// The read half opens a junk record: its TLS error (bad_record_mac) comes back from the
/// write half's next write, flush and shutdown, and from the read half again; the peer gets
/// the alert; the joined stream keeps the error.
async fn read_error_reaches_write_half<IO>(what: &str, ours: TlsStream<IO>, mut peer: TlsStream<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut r, mut w) = ours.into_split();
    // Split after the handshake: the halves have its info from the start.
    assert!(r.info().is_some() && w.info().is_some(), "{what}: info");
    let first = read_junk(what, &mut peer, &mut r).await;
    assert!(is_decrypt_error(&first), "{what}: read: {first:?}");
    assert_eq!(first.kind(), io::ErrorKind::InvalidData);

    let step = "write (the write half must fail too)";
    expect_same_error(what, step, w.write(b"after the failure"), &first).await;
    expect_same_error(what, "flush", w.flush(), &first).await;
    expect_same_error(what, "read again", r.read(&mut [0; 64]), &first).await;

    // The peer was told.
    let e = bounded(what, peer.read(&mut [0; 64]))
        .await
        .expect_err("the peer must get our alert");
    assert!(
        matches!(
            Error::from_io(&e),
            Some(Error::Tls(rustls::Error::AlertReceived(
                AlertDescription::BadRecordMac
            )))
        ),
        "{what}: the peer got {e:?}"
    );

    // Shutting down after the failure is sticky too, on both record layers.
    expect_same_error(what, "shutdown", w.shutdown(), &first).await;

    let mut joined = r.unsplit(w).expect("matching halves");
    expect_same_error(what, "joined read", joined.read(&mut [0; 8]), &first).await;
    expect_same_error(what, "joined write", joined.write(b"x"), &first).await;
    expect_same_error(what, "joined shutdown", joined.shutdown(), &first).await;
}

/// A TLS error of the read half is returned by the write half's
/// next call. Over TCP and a duplex pipe, for our client and our server, both record
/// layers and both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_half_tls_error_is_returned_by_the_write_half() {
    let pki = Pki::new();
    on_every_ready_end!(
        &pki,
        [Wire::Tcp, Wire::Duplex(64 * 1024)],
        read_error_reaches_write_half
    );
}

/// Where the parked-writer cases run: the duplex pipe is small, so that it fills soon.
const PARKED_WIRES: [Wire; 2] = [Wire::Tcp, Wire::Duplex(16 * 1024)];

/// A write half parked on a full transport (the peer reads nothing) when the read half
/// fails: it is woken, and both halves return one and the same sticky error. Returns that
/// error.
async fn parked_writer_sees_read_failure<IO>(
    what: &str,
    ours: TlsStream<IO>,
    mut peer: TlsStream<IO>,
) -> io::Error
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut r, mut w) = ours.into_split();
    let writer = Task::spawn(async move {
        let chunk = vec![7u8; 1 << 20];
        // At most 1 GiB: far more than any transport buffers.
        for _ in 0..1024 {
            if let Err(e) = w.write_all(&chunk).await {
                return (w, e);
            }
        }
        panic!("1 GiB went into a transport that nobody reads");
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished(), "{what}: the writer must be parked");
    let first = read_junk(what, &mut peer, &mut r).await;
    let (w, e) = within(5, &format!("{what}: the parked writer"), writer.join()).await;
    assert_same_error(&format!("{what}: parked write"), &e, &first);
    expect_same_error(what, "read again", r.read(&mut [0; 64]), &first).await;
    drop((r, w));
    first
}

/// A parked write half is woken by the read half's failure and returns the same sticky
/// error as the read half. (Which error that is, is the subject of
/// [`parked_writer_does_not_replace_the_read_half_tls_error`].)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_write_half_is_woken_by_the_read_half_failure() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            for wire in PARKED_WIRES {
                let what = format!("{wire}, {}, {layer:?}", vname(v));
                on_ready_pair!(&pki, v, layer, wire, true, |ours, peer| {
                    parked_writer_sees_read_failure(&what, ours, peer).await
                });
            }
        }
    }
}

/// Regression: when the read half opens a bad record while the write half is parked on
/// a full transport, the read half's TLS error must be stored before its fatal alert shuts
/// the transport's write side down; otherwise the woken writer could store its own
/// `BrokenPipe` first and both halves would report that. 10 tries per case; every one
/// must report the TLS error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_writer_does_not_replace_the_read_half_tls_error() {
    let pki = Pki::new();
    let mut lost = Vec::new();
    for v in versions() {
        for layer in LAYERS {
            for wire in PARKED_WIRES {
                let what = format!("{wire}, {}, {layer:?}", vname(v));
                let mut bad = 0;
                for _ in 0..10 {
                    let first = on_ready_pair!(&pki, v, layer, wire, true, |ours, peer| {
                        parked_writer_sees_read_failure(&what, ours, peer).await
                    });
                    if !is_decrypt_error(&first) {
                        bad += 1;
                        if bad == 1 {
                            lost.push(format!("{what}: {first}"));
                        }
                    }
                }
                if bad > 0 {
                    lost.push(format!("{what}: the TLS error was lost {bad} times in 10"));
                }
            }
        }
    }
    assert!(lost.is_empty(), "{}", lost.join("\n"));
}

// ---------------------------------------------------------------------------------------
// A transport error of the write half
// ---------------------------------------------------------------------------------------

/// Our client on a transport whose writes can be made to fail, and a whole lazytls server,
/// ready (warmed up).
async fn faulty_pair(
    pki: &Pki,
    v: Version,
    layer: RecordLayer,
) -> (
    TlsStream<FaultyIo<DuplexStream>>,
    Arc<Faults>,
    TlsStream<DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let a = FaultyIo::new(a);
    let faults = a.faults();
    let (ours, peer) = ready_pair(pki, v, layer, a, b).await;
    (ours, faults, peer)
}

/// Fails every write of the transport from now on (see [`faulty_pair`]), then writes and
/// flushes through `w`: that must fail. Returns the error.
async fn fail_write<W>(what: &str, faults: &Faults, w: &mut W) -> io::Error
where
    W: AsyncWrite + Unpin + ?Sized,
{
    faults.reset_writes.store(true, Ordering::SeqCst);
    bounded(what, async {
        w.write_all(b"doomed").await?;
        w.flush().await
    })
    .await
    .expect_err("the write must fail")
}

fn assert_injected(what: &str, e: &io::Error) {
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{what}: {e:?}");
    assert!(
        matches!(typed(e), Error::Io(inner) if inner.kind() == io::ErrorKind::ConnectionReset),
        "{what}: {e:?}"
    );
}

/// The transport fails a write; the write half returns the
/// error, and the read half's next call returns it too (even with the peer's data
/// waiting), as does the write half's next call and the joined stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_half_transport_error_is_returned_by_the_read_half() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            let what = format!("{}, {layer:?}", vname(v));
            let (ours, faults, mut peer) = faulty_pair(&pki, v, layer).await;
            let (mut r, mut w) = ours.into_split();
            send_checked(&mut w, &mut peer, b"before the failure").await;
            let first = fail_write(&what, &faults, &mut w).await;
            assert_injected(&what, &first);
            // The peer's data is there; the read half still returns the error.
            bounded(&what, async {
                peer.write_all(b"data the read half will not see").await?;
                peer.flush().await
            })
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let step = "read (the read half must return the write half's error)";
            expect_same_error(&what, step, r.read(&mut [0; 64]), &first).await;
            expect_same_error(&what, "read again", r.read(&mut [0; 64]), &first).await;
            expect_same_error(&what, "write again", w.write(b"x"), &first).await;
            let mut joined = r.unsplit(w).expect("matching halves");
            expect_same_error(&what, "joined read", joined.read(&mut [0; 8]), &first).await;
        }
    }
}

/// A read half parked in a read (nothing coming) when the write half fails is woken and
/// returns the write half's error: on the native layer it waits on its own transport, so
/// it registers with the hub to hear of a failure (`TlsReadHalf::watch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_read_half_is_woken_by_the_write_half_failure() {
    let pki = Pki::new();
    let mut failures = Vec::new();
    for v in versions() {
        for layer in LAYERS {
            let what = format!("{}, {layer:?}", vname(v));
            let (ours, faults, _peer) = faulty_pair(&pki, v, layer).await;
            let (mut r, mut w) = ours.into_split();
            let reader = Task::spawn(async move { r.read(&mut [0; 64]).await.map(|_| r) });
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!reader.is_finished(), "{what}: the reader must be parked");
            let first = fail_write(&what, &faults, &mut w).await;
            match tokio::time::timeout(Duration::from_secs(2), reader.join()).await {
                Ok(Ok(_)) => failures.push(format!("{what}: the parked read returned data")),
                Ok(Err(e)) => assert_same_error(&format!("{what}: parked read"), &e, &first),
                Err(_) => failures.push(format!("{what}: the parked read was not woken in 2 s")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// An error stored before the split
// ---------------------------------------------------------------------------------------

/// A stream whose handshake failed, and one that failed
/// after its handshake (a junk record), are split: both halves return the stored error,
/// and so does the joined stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_stored_before_the_split_is_returned_by_both_halves() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            // A handshake failure: the "server" answers the ClientHello with HTTP.
            let what = format!("failed handshake, {}, {layer:?}", vname(v));
            let (a, mut b) = tokio::io::duplex(64 * 1024);
            let mut ours = connector(&pki, v, layer).connect(localhost(), a);
            let (hs, _) = bounded(&what, async {
                tokio::join!(ours.handshake(), async {
                    let mut hello = [0u8; 1];
                    b.read_exact(&mut hello).await.unwrap();
                    b.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                        .await
                        .unwrap();
                })
            })
            .await;
            let first: io::Error = hs.expect_err("the handshake must fail").into();
            assert_eq!(ours.state(), HandshakeState::Failed);
            check_failed_halves(&what, ours, &first).await;

            // A failure after the handshake.
            let what = format!("failed read, {}, {layer:?}", vname(v));
            let (a, b) = tokio::io::duplex(64 * 1024);
            let (mut ours, mut peer) = ready_pair(&pki, v, layer, a, b).await;
            let first = read_junk(&what, &mut peer, &mut ours).await;
            assert!(is_decrypt_error(&first), "{what}: {first:?}");
            check_failed_halves(&what, ours, &first).await;
        }
    }
}

async fn check_failed_halves<IO>(what: &str, ours: TlsStream<IO>, first: &io::Error)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut r, mut w) = ours.into_split();
    expect_same_error(what, "read half", r.read(&mut [0; 8]), first).await;
    expect_same_error(what, "write half", w.write(b"x"), first).await;
    expect_same_error(what, "write half flush", w.flush(), first).await;
    expect_same_error(what, "read half again", r.read(&mut [0; 8]), first).await;
    let mut joined = r.unsplit(w).expect("matching halves");
    assert_eq!(joined.state(), HandshakeState::Failed, "{what}");
    let handshake = async { joined.handshake().await.map_err(io::Error::from) };
    expect_same_error(what, "joined handshake", handshake, first).await;
}
