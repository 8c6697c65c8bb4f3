//! The record buffers between bursts and during them. Idle connections hold none: once a
//! read or a flush leaves a buffer empty, or the connection waits in a read with nothing
//! buffered, its receive and send buffers go back to the spares (as OpenSSL's `SSL_MODE_RELEASE_BUFFERS` does), and traffic
//! that resumes takes them again. `buffered_capacity()` is the count asserted;
//! `tests/alloc.rs` keeps asserting that steady streaming still allocates nothing per
//! record. During a bulk transfer, records already queued in the transport come several
//! per transport read.
//!
//! Fixture: a lazytls client and server over loopback TCP, on the native record layer, on
//! rustls's, and with a client on rustls's buffered connection (early data enabled); the
//! whole stream and both halves of a split; for the bulk reads, a pipe that holds the whole
//! transfer, with the server's reads counted.

mod common;

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use common::*;
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

const MIB: usize = 1 << 20;

/// Polls one read: it must wait (the peer sends nothing), which is what makes the
/// connection idle.
async fn park<R: AsyncRead + Unpin>(r: &mut R, what: &str) {
    let mut byte = [0; 1];
    poll_fn(|cx| {
        let mut buf = ReadBuf::new(&mut byte);
        let poll = Pin::new(&mut *r).poll_read(cx, &mut buf);
        assert!(
            poll.is_pending(),
            "{what}: the read should wait, got {poll:?}"
        );
        Poll::Ready(())
    })
    .await
}

/// `data` written (and flushed) to `w` while `r` reads as much into `got`.
async fn one_way<W, R>(what: &str, w: &mut W, r: &mut R, data: &[u8], got: &mut [u8])
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    bounded(what, async {
        let (sent, read) = tokio::join!(
            async {
                w.write_all(data).await?;
                w.flush().await
            },
            r.read_exact(got)
        );
        sent.unwrap();
        read.unwrap();
    })
    .await;
}

/// `size` bytes from `a` to `b`, then back, each side flushing.
async fn round_trip<A, B>(a: &mut A, b: &mut B, size: usize)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let data = pattern(size, 5);
    let mut got = vec![0; size];
    one_way("there", a, b, &data, &mut got).await;
    assert_bytes("there", &got, &data);
    one_way("back", b, a, &data, &mut got).await;
    assert_bytes("back", &got, &data);
}

/// The pairs of each fixture: (what, client, server).
async fn pairs(pki: &Pki) -> Vec<(&'static str, TlsStream<TcpStream>, TlsStream<TcpStream>)> {
    let mut early = pki.client_config();
    Arc::make_mut(&mut early).enable_early_data = true;
    let mut out = Vec::new();
    for (what, client, layer) in [
        ("native layer", pki.client_config(), RecordLayer::Native),
        ("rustls layer", pki.client_config(), RecordLayer::Rustls),
        ("buffered client", early, RecordLayer::Native),
    ] {
        let (c, s) = tcp_pair().await;
        let client = TlsConnector::new(client)
            .record_layer(layer)
            .connect(localhost(), c);
        let server = TlsAcceptor::new(pki.server_config())
            .record_layer(layer)
            .accept(s);
        out.push((what, client, server));
    }
    out
}

/// Round trips of each size on every fixture's whole stream, each end then waiting in a
/// read (`park`) or held with no read pending: both ends must hold no buffers.
async fn streams_hold_no_buffers(sizes: &[usize], park_ends: bool) {
    let pki = Pki::new();
    for (what, mut c, mut s) in pairs(&pki).await {
        for &size in sizes {
            round_trip(&mut c, &mut s, size).await;
            if park_ends {
                park(&mut c, what).await;
                park(&mut s, what).await;
            }
            for (end, capacity) in [
                ("client", c.buffered_capacity()),
                ("server", s.buffered_capacity()),
            ] {
                assert_eq!(
                    capacity, 0,
                    "{what}: {end} after {size} bytes (waiting in a read: {park_ends})"
                );
            }
        }
    }
}

/// The same for the halves of split streams, the read halves then waiting in a read
/// (`park`) or not.
async fn halves_hold_no_buffers(sizes: &[usize], park_ends: bool) {
    let pki = Pki::new();
    for (what, c, s) in pairs(&pki).await {
        let (mut cr, mut cw) = c.into_split();
        let (mut sr, mut sw) = s.into_split();
        for &size in sizes {
            let data = pattern(size, 9);
            let mut got = vec![0; size];
            one_way("halves", &mut cw, &mut sr, &data, &mut got).await;
            one_way("halves", &mut sw, &mut cr, &data, &mut got).await;
            if park_ends {
                park(&mut cr, what).await;
                park(&mut sr, what).await;
            }
            for (half, capacity) in [
                ("client read half", cr.buffered_capacity()),
                ("client write half", cw.buffered_capacity()),
                ("server read half", sr.buffered_capacity()),
                ("server write half", sw.buffered_capacity()),
            ] {
                assert_eq!(
                    capacity, 0,
                    "{what}: {half} after {size} bytes (waiting in a read: {park_ends})"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_idle_stream_holds_no_buffers_after_traffic() {
    streams_hold_no_buffers(&[MIB, 1, 100_000], true).await;
}

#[tokio::test]
async fn idle_halves_hold_no_buffers_after_traffic() {
    halves_hold_no_buffers(&[MIB, 1], true).await;
}

/// A connection its application holds without reading (a pooled client, a server that
/// read a request and awaits something else) holds no buffers either: the read that
/// emptied the receive buffer and the flush that emptied the send buffer gave them back.
#[tokio::test]
async fn a_stream_held_with_no_read_pending_holds_no_buffers() {
    streams_hold_no_buffers(&[MIB, 1, 100_000, 16_384], false).await;
}

#[tokio::test]
async fn halves_held_with_no_read_pending_hold_no_buffers() {
    halves_hold_no_buffers(&[MIB, 1, 100_000], false).await;
}

/// Bulk data already queued in the transport comes in several records per transport read
/// (the receive buffer grows to three records after reads that filled it), and the buffer
/// is back to none once the reader waits.
#[tokio::test]
async fn queued_records_come_several_per_transport_read() {
    const RECORDS: usize = 64;
    let pki = Pki::new();
    for layer in [RecordLayer::Native, RecordLayer::Rustls] {
        // The pipe holds the whole transfer, so it is all queued before the first read.
        let (a, b) = tokio::io::duplex(4 * MIB);
        let mut c = TlsConnector::new(pki.client_config())
            .record_layer(layer)
            .connect(localhost(), a);
        let counting = counting::CountingReads::new(b);
        let counts = counting.counts.clone();
        let mut s = TlsAcceptor::new(pki.server_config())
            .record_layer(layer)
            .accept(counting);
        let (hc, hs) = bounded("handshake", async {
            tokio::join!(c.handshake(), s.handshake())
        })
        .await;
        hc.unwrap();
        hs.unwrap();
        let data = pattern(RECORDS * 16 * 1024, 3);
        bounded("write", async {
            c.write_all(&data).await.unwrap();
            c.flush().await.unwrap();
        })
        .await;
        let before = counts.reads();
        let mut got = vec![0; data.len()];
        bounded("read", s.read_exact(&mut got)).await.unwrap();
        assert_bytes("bulk", &got, &data);
        let reads = counts.reads() - before;
        // One record per read would be 64 or more; three per read, about 22.
        assert!(
            reads <= RECORDS / 2,
            "{layer:?}: {reads} transport reads for {RECORDS} records"
        );
        park(&mut s, "bulk reader").await;
        assert_eq!(
            s.buffered_capacity(),
            0,
            "{layer:?}: idle after the bulk read"
        );
    }
}

/// With `keep_idle_buffers(true)` on both ends, an idle stream and idle halves keep their
/// buffers (the opt-out for latency-critical connections).
#[tokio::test]
async fn keep_idle_buffers_keeps_them() {
    let pki = Pki::new();
    let (a, b) = tcp_pair().await;
    let mut c = TlsConnector::new(pki.client_config())
        .keep_idle_buffers(true)
        .connect(localhost(), a);
    let mut s = TlsAcceptor::new(pki.server_config())
        .keep_idle_buffers(true)
        .accept(b);
    round_trip(&mut c, &mut s, 100_000).await;
    park(&mut c, "kept client").await;
    park(&mut s, "kept server").await;
    assert!(c.buffered_capacity() > 0, "the client kept its buffers");
    assert!(s.buffered_capacity() > 0, "the server kept its buffers");

    let (mut cr, mut cw) = c.into_split();
    let (mut sr, _sw) = s.into_split();
    let data = pattern(100_000, 4);
    let mut got = vec![0; data.len()];
    one_way("halves", &mut cw, &mut sr, &data, &mut got).await;
    park(&mut cr, "kept read half").await;
    park(&mut sr, "kept read half").await;
    assert!(cw.buffered_capacity() > 0, "the write half kept its buffer");
    assert!(sr.buffered_capacity() > 0, "the read half kept its buffer");
}

/// The largest record with its header and the most overhead rustls accepts: the room a
/// connection that waits for the rest of one record may hold.
const ONE_RECORD_ROOM: usize = 16_384 + 2_048 + 5;

/// `sender` sends a bulk transfer that `receiver` reads (its reads fill their room, so its
/// buffer grows to three records), then one more record of which it passes on all but
/// the last 100 bytes. Returns what `capacity` says of the receiver while it waits for
/// them; the record is then completed and read whole.
async fn wait_for_a_record_tail<R: AsyncRead + Unpin>(
    what: &str,
    sender: &mut TlsStream<records::Tap>,
    receiver: &mut R,
    capacity: impl Fn(&R) -> usize,
) -> usize {
    let bulk = pattern(64 * 16 * 1024, 3);
    let mut got = vec![0; bulk.len()];
    one_way(what, sender, receiver, &bulk, &mut got).await;
    assert_bytes("bulk", &got, &bulk);

    sender.get_ref().hold();
    let last = pattern(1_000, 8);
    sender.write_all(&last).await.unwrap();
    sender.flush().await.unwrap();
    let held = sender.get_ref().release();
    let (most, tail) = held.split_at(held.len() - 100);
    sender.get_mut().inner.write_all(most).await.unwrap();
    park(receiver, what).await;
    let waiting = capacity(receiver);
    sender.get_mut().inner.write_all(tail).await.unwrap();
    let mut got = vec![0; last.len()];
    bounded(what, receiver.read_exact(&mut got)).await.unwrap();
    assert_bytes("the completed record", &got, &last);
    waiting
}

/// After a bulk transfer grew the receiver's buffer to three records, the sender's last
/// record arrives but for its last 100 bytes: the receiver, waiting for them, holds at
/// most one record's room (rustls's own bound for this case), on every record layer, on
/// the whole stream and on the read half.
#[tokio::test]
async fn a_connection_waiting_for_the_rest_of_a_record_holds_one_record() {
    let pki = Pki::new();
    let mut early = pki.client_config();
    Arc::make_mut(&mut early).enable_early_data = true;
    for (layer_name, client, layer) in [
        ("native layer", pki.client_config(), RecordLayer::Native),
        ("rustls layer", pki.client_config(), RecordLayer::Rustls),
        ("buffered client", early, RecordLayer::Native),
    ] {
        for split in [false, true] {
            let what = format!(
                "{layer_name}, {}",
                ["whole stream", "read half"][split as usize]
            );
            // The pipe holds the whole transfer, so the receiver's reads fill their room.
            let (a, b) = tokio::io::duplex(4 * MIB);
            let mut s = TlsAcceptor::new(pki.server_config())
                .record_layer(layer)
                .accept(records::Tap::new(a));
            let mut c = TlsConnector::new(client.clone())
                .record_layer(layer)
                .connect(localhost(), b);
            let (hc, hs) = bounded("handshake", async {
                tokio::join!(c.handshake(), s.handshake())
            })
            .await;
            hc.unwrap();
            hs.unwrap();
            let held = if split {
                let (mut r, _w) = c.into_split();
                wait_for_a_record_tail(&what, &mut s, &mut r, |r| r.buffered_capacity()).await
            } else {
                wait_for_a_record_tail(&what, &mut s, &mut c, |c| c.buffered_capacity()).await
            };
            println!("{what}: {held} bytes held while waiting for 100 bytes of a record");
            assert!(
                held <= ONE_RECORD_ROOM,
                "{what}: {held} bytes held while waiting for 100 bytes of a record"
            );
        }
    }
}
