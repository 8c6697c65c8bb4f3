//! Joining the halves again, and closing through them:
//!
//! - **unsplit** of mismatched halves (both given back, still usable), and of matched
//!   halves before the handshake, after it, on both record layers, with bytes still
//!   buffered in either direction.
//! - **Close.** The write half's shutdown sends close_notify while the read half keeps
//!   reading; the peer's close_notify reads as `Ok(0)`; a write after shutdown fails, also
//!   on the joined stream.
//!
//! Fixture: `tests/common/split.rs` (lazy and ready pairs over loopback TCP and
//! `tokio::io::duplex`, tasks). Every test is bounded in time and every loop in count.

mod common;
#[macro_use]
#[path = "common/split.rs"]
mod fixture;

use std::io;

use common::rng::Rng;
use common::*;
use fixture::*;
use lazytls::{Error, HandshakeState, ReuniteError, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

// ---------------------------------------------------------------------------------------
// unsplit
// ---------------------------------------------------------------------------------------

/// Halves of two different streams (one before its handshake, one after) do not join:
/// both come back in the `ReuniteError`, and both still work afterwards; each then joins
/// its own partner, and the joined streams work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsplit_of_mismatched_halves_gives_both_back_usable() {
    const ONE: &[u8] = b"one, read after a failed unsplit";
    const TWO: &[u8] = b"two, written after a failed unsplit";
    let pki = Pki::new();
    for layer in LAYERS {
        let v = versions()[0];
        let (a, b) = tcp_pair().await;
        let (one, mut one_peer) = ready_pair(&pki, v, layer, a, b).await;
        let (a, b) = tcp_pair().await;
        let (two, mut two_peer) = lazy_pair(&pki, v, layer, a, b);
        let (one_r, one_w) = one.into_split();
        let (two_r, two_w) = two.into_split();
        assert!(!one_r.is_pair_of(&two_w) && !two_w.is_pair_of(&one_r));

        let Err(ReuniteError(mut one_r, mut two_w)) = one_r.unsplit(two_w) else {
            panic!("halves of two streams must not join");
        };
        let err = two_r
            .unsplit(one_w)
            .expect_err("halves of two streams must not join");
        assert!(err.to_string().contains("not from the same"), "{err}");
        let ReuniteError(mut two_r, mut one_w) = err;

        // Every half still works: stream one's read half reads its peer; stream two's
        // write half drives stream two's handshake and writes.
        bounded("after ReuniteError", async {
            let (w2, p2, r1) = tokio::join!(
                async {
                    two_w.write_all(TWO).await?;
                    two_w.flush().await
                },
                async {
                    two_peer.handshake().await?;
                    let mut got = vec![0; TWO.len()];
                    two_peer.read_exact(&mut got).await?;
                    Ok::<_, io::Error>(got)
                },
                async {
                    one_peer.write_all(ONE).await?;
                    one_peer.flush().await?;
                    let mut got = vec![0; ONE.len()];
                    one_r.read_exact(&mut got).await?;
                    Ok::<_, io::Error>(got)
                }
            );
            w2.unwrap();
            assert_eq!(p2.unwrap(), TWO);
            assert_eq!(r1.unwrap(), ONE);
        })
        .await;
        send_checked(&mut one_w, &mut one_peer, b"one's write half").await;
        send_checked(&mut two_peer, &mut two_r, b"two's read half").await;

        let mut one = one_r.unsplit(one_w).expect("one's own halves");
        let mut two = two_r.unsplit(two_w).expect("two's own halves");
        assert_eq!(one.info().unwrap().record_layer, layer);
        assert_eq!(two.info().unwrap().record_layer, layer);
        send_checked(&mut one, &mut one_peer, b"one joined").await;
        send_checked(&mut one_peer, &mut one, b"one joined, back").await;
        send_checked(&mut two, &mut two_peer, b"two joined").await;
        send_checked(&mut two_peer, &mut two, b"two joined, back").await;
    }
}

/// Matched halves join: before the handshake (the joined stream is still idle and
/// handshakes itself), right after the handshake, after data through the halves, and on
/// both record layers; the joined stream keeps working both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsplit_before_and_after_the_handshake_on_both_layers() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            let what = format!("{}, {layer:?}", vname(v));
            // Before the handshake.
            let (a, b) = tcp_pair().await;
            let (client, mut server) = lazy_pair(&pki, v, layer, a, b);
            let (r, w) = client.into_split();
            let mut client = r.unsplit(w).expect("matching halves");
            assert_eq!(client.state(), HandshakeState::Idle, "{what}");
            assert!(client.info().is_none());
            send_checked(&mut client, &mut server, b"joined before the handshake").await;
            send_checked(&mut server, &mut client, b"and back").await;
            assert_eq!(client.info().unwrap().record_layer, layer, "{what}");

            // After the handshake (split again, now divided on the native layer), with
            // data through the halves first.
            let (mut r, mut w) = client.into_split();
            send_checked(&mut w, &mut server, b"through the write half").await;
            send_checked(&mut server, &mut r, b"through the read half").await;
            let mut client = r.unsplit(w).expect("matching halves");
            assert_eq!(client.state(), HandshakeState::Ready, "{what}");
            assert_eq!(client.info().unwrap().record_layer, layer, "{what}");
            assert_eq!(
                client.info().unwrap().protocol_version,
                Some(version_of(v)),
                "{what}"
            );
            let big = Rng::new(5).bytes(1 << 20);
            send_checked(&mut client, &mut server, &big).await;
            send_checked(&mut server, &mut client, &big).await;

            // Split and joined with no call in between, after the handshake.
            let (r, w) = client.into_split();
            let mut client = r.unsplit(w).expect("matching halves");
            send_checked(&mut client, &mut server, b"split and joined at once").await;
            close_both_ways(&what, &mut client, &mut server).await;
        }
    }
}

/// What the halves hold survives `unsplit`: the rest of a record the read half opened but
/// did not deliver yet, and ciphertext the write half sealed but the transport has not
/// taken yet (a tiny pipe that the peer does not read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsplit_keeps_bytes_buffered_in_either_half() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            let what = format!("{}, {layer:?}", vname(v));
            let (a, b) = tokio::io::duplex(1024);
            let (ours, mut peer) = ready_pair(&pki, v, layer, a, b).await;
            let (mut r, mut w) = ours.into_split();

            // Half a record read through the read half.
            let message = pattern(600, 9);
            bounded(&what, async {
                peer.write_all(&message).await?;
                peer.flush().await
            })
            .await
            .unwrap();
            let mut first = vec![0; 100];
            bounded(&what, r.read_exact(&mut first)).await.unwrap();
            assert_eq!(first, message[..100], "{what}");

            // One write call: sealed, only partly taken by the 1 KiB pipe.
            let data = pattern(40 * 1024, 3);
            let n = bounded(&what, w.write(&data)).await.unwrap();
            assert!(n > 2048, "{what}: one write took only {n} bytes");

            let mut ours = r.unsplit(w).expect("matching halves");
            let mut rest = vec![0; 500];
            bounded(&what, ours.read_exact(&mut rest)).await.unwrap();
            assert_eq!(rest, message[100..], "{what}: the rest of the record");
            let (flushed, got) = bounded(&what, async {
                tokio::join!(ours.flush(), async {
                    let mut got = vec![0; n];
                    peer.read_exact(&mut got).await.map(|_| got)
                })
            })
            .await;
            flushed.unwrap();
            assert_bytes(&what, &got.unwrap(), &data[..n]);
            send_checked(&mut ours, &mut peer, b"and more").await;
            send_checked(&mut peer, &mut ours, b"and back").await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Close through the write half
// ---------------------------------------------------------------------------------------

/// The write half's shutdown sends close_notify while the read half, parked in a read,
/// keeps reading: the peer reads a clean end, then writes; the read half gets the data,
/// then the peer's close_notify as `Ok(0)` (twice). A write after shutdown fails with
/// `WriteAfterShutdown`; a flush succeeds. The joined stream keeps both ends closed.
async fn shutdown_case<IO>(what: &str, ours: TlsStream<IO>, mut peer: TlsStream<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut r, mut w) = ours.into_split();
    let late = pattern(150 * 1024, 4);
    let want = late.clone();
    let reader = Task::spawn(async move {
        let mut got = vec![0; want.len()];
        r.read_exact(&mut got).await.map(|_| (r, got))
    });
    bounded(what, w.write_all(b"last words")).await.unwrap();
    bounded(what, w.shutdown()).await.unwrap();
    let mut last = Vec::new();
    bounded(what, peer.read_to_end(&mut last))
        .await
        .unwrap_or_else(|e| panic!("{what}: the peer must read a clean end: {e}"));
    assert_eq!(last, b"last words", "{what}");

    let e = bounded(what, w.write(b"too late"))
        .await
        .expect_err("write after shutdown");
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{what}");
    assert!(
        matches!(typed(&e), Error::WriteAfterShutdown),
        "{what}: {e:?}"
    );
    bounded(what, w.flush())
        .await
        .expect("a flush after shutdown succeeds");

    // The peer writes after our close; the parked read half gets it.
    bounded(what, async {
        peer.write_all(&late).await?;
        peer.flush().await
    })
    .await
    .unwrap();
    let (mut r, got) = within(20, what, reader.join())
        .await
        .unwrap_or_else(|e| panic!("{what}: read after our shutdown: {e}"));
    assert_bytes(what, &got, &late);
    bounded(what, peer.shutdown()).await.unwrap();
    assert_eq!(
        bounded(what, r.read(&mut [0; 16])).await.unwrap(),
        0,
        "{what}"
    );
    assert_eq!(
        bounded(what, r.read(&mut [0; 16])).await.unwrap(),
        0,
        "{what}"
    );

    let mut joined = r.unsplit(w).expect("matching halves");
    assert_eq!(
        bounded(what, joined.read(&mut [0; 16])).await.unwrap(),
        0,
        "{what}"
    );
    let e = bounded(what, joined.write(b"x"))
        .await
        .expect_err("joined write");
    assert!(
        matches!(typed(&e), Error::WriteAfterShutdown),
        "{what}: {e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_half_shutdown_sends_close_notify_while_the_read_half_reads() {
    let pki = Pki::new();
    on_every_ready_end!(&pki, [Wire::Tcp, Wire::Duplex(16 * 1024)], shutdown_case);
}
