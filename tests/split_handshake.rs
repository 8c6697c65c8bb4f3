//! Who drives the handshake of a split stream: the read half alone, the write half alone,
//! or both at once (released together by a barrier), for our client and our server, both
//! record layers and both protocol versions, against a whole lazytls stream on loopback
//! TCP; then both halves and the joined stream know what was negotiated.
//!
//! Fixture: `tests/common/split.rs` (lazy pairs, tasks). Every test is bounded in time and
//! every loop in count.

mod common;
#[macro_use]
#[path = "common/split.rs"]
mod fixture;

use std::io;
use std::sync::Arc;

use common::*;
use fixture::*;
use lazytls::{HandshakeState, RecordLayer, TlsReadHalf, TlsStream, TlsWriteHalf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------------------
// Who drives the handshake
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The read half starts (and completes) the handshake; the write half is untouched.
    Read,
    /// The write half does.
    Write,
    /// Both poll at the same instant, released by a barrier.
    Both,
}

/// The peer's side of a handshake-start case: a whole stream that completes its
/// handshake, then writes `send` while it reads `recv_len` bytes.
async fn whole_peer<IO: AsyncRead + AsyncWrite + Unpin>(
    mut peer: TlsStream<IO>,
    send: Vec<u8>,
    recv_len: usize,
) -> io::Result<(TlsStream<IO>, Vec<u8>)> {
    peer.handshake().await?;
    let (mut r, mut w) = tokio::io::split(peer);
    let (wr, rr) = tokio::join!(
        async {
            w.write_all(&send).await?;
            w.flush().await
        },
        async {
            let mut got = vec![0; recv_len];
            r.read_exact(&mut got).await.map(|_| got)
        }
    );
    wr?;
    Ok((r.unsplit(w), rr?))
}

async fn read_half_reads<IO>(
    mut r: TlsReadHalf<IO>,
    len: usize,
    barrier: Option<Arc<Barrier>>,
) -> (TlsReadHalf<IO>, io::Result<Vec<u8>>)
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    if let Some(barrier) = barrier {
        barrier.wait().await;
    }
    let mut got = vec![0; len];
    let res = r.read_exact(&mut got).await.map(|_| got);
    (r, res)
}

async fn write_half_writes<IO>(
    mut w: TlsWriteHalf<IO>,
    data: Vec<u8>,
    barrier: Option<Arc<Barrier>>,
) -> (TlsWriteHalf<IO>, io::Result<()>)
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    if let Some(barrier) = barrier {
        barrier.wait().await;
    }
    let res = async {
        w.write_all(&data).await?;
        w.flush().await
    }
    .await;
    (w, res)
}

/// One case: our end (client or server, split before any I/O) against a whole lazytls
/// stream on loopback TCP.
async fn handshake_case(
    pki: &Pki,
    v: Version,
    layer: RecordLayer,
    ours_client: bool,
    start: Start,
) {
    let what = format!(
        "{} {}, {layer:?}, {start:?} first",
        vname(v),
        if ours_client { "client" } else { "server" }
    );
    let (a, b) = tcp_pair().await;
    let (ours, peer) = ours_first(ours_client, lazy_pair(pki, v, layer, a, b));
    assert_eq!(ours.state(), HandshakeState::Idle, "{what}");
    let to_us = pattern(100 * 1024, 1);
    let from_us = pattern(70 * 1024 + 3, 2);
    let peer = Task::spawn(whole_peer(peer, to_us.clone(), from_us.len()));
    let (r, w) = ours.into_split();
    assert!(
        r.info().is_none() && w.info().is_none(),
        "{what}: info before"
    );
    let ((r, read), (w, written)) = within(20, &what, async {
        match start {
            Start::Read => {
                let read = Task::spawn(read_half_reads(r, to_us.len(), None))
                    .join()
                    .await;
                let written = Task::spawn(write_half_writes(w, from_us.clone(), None))
                    .join()
                    .await;
                (read, written)
            }
            Start::Write => {
                let written = Task::spawn(write_half_writes(w, from_us.clone(), None))
                    .join()
                    .await;
                let read = Task::spawn(read_half_reads(r, to_us.len(), None))
                    .join()
                    .await;
                (read, written)
            }
            Start::Both => {
                let barrier = Arc::new(Barrier::new(2));
                let read = Task::spawn(read_half_reads(r, to_us.len(), Some(barrier.clone())));
                let written = Task::spawn(write_half_writes(w, from_us.clone(), Some(barrier)));
                tokio::join!(read.join(), written.join())
            }
        }
    })
    .await;
    assert_bytes(
        &what,
        &read.unwrap_or_else(|e| panic!("{what}: read: {e}")),
        &to_us,
    );
    written.unwrap_or_else(|e| panic!("{what}: write: {e}"));
    let (mut peer, got) = within(20, &what, peer.join())
        .await
        .unwrap_or_else(|e| panic!("{what}: peer: {e}"));
    assert_bytes(&what, &got, &from_us);

    // Both halves know what was negotiated, whichever drove the handshake.
    let (r_info, w_info) = (
        r.info().expect("read half info"),
        w.info().expect("write half info"),
    );
    assert_eq!(r_info.alpn, w_info.alpn, "{what}");
    assert_eq!(r_info.cipher_suite, w_info.cipher_suite, "{what}");
    assert_eq!(r_info.record_layer, layer, "{what}");
    let mut ours = r.unsplit(w).expect("matching halves");
    assert_eq!(ours.state(), HandshakeState::Ready, "{what}");
    let info = ours.info().expect("info after the handshake");
    assert_eq!(info.protocol_version, Some(version_of(v)), "{what}");
    assert_eq!(info.record_layer, layer, "{what}");
    assert_eq!(info.sni.as_deref(), Some("localhost"), "{what}");
    assert_eq!(info.peer_certificates.is_some(), ours_client, "{what}");
    // The joined stream carries on.
    send_checked(&mut ours, &mut peer, b"after unsplit, ours to peer").await;
    send_checked(&mut peer, &mut ours, b"after unsplit, peer to ours").await;
}

/// The read half starts the handshake (the write half untouched until the
/// read is done), the write half does, and both do at the same instant (two tasks on a
/// two-thread runtime, released by a barrier; 8 times each). Data goes both ways and the
/// joined stream's `info()` is checked, for our client and our server, both record layers
/// and both protocol versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_half_or_both_at_once_drive_the_handshake() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            for ours_client in [true, false] {
                handshake_case(&pki, v, layer, ours_client, Start::Read).await;
                handshake_case(&pki, v, layer, ours_client, Start::Write).await;
                for _ in 0..8 {
                    handshake_case(&pki, v, layer, ours_client, Start::Both).await;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A write that gives up during the handshake
// ---------------------------------------------------------------------------------------

/// The read half waits in the handshake; the write half polls a write once (it drives the
/// handshake too, and waits) and then drops that write, as a `select!` or a timeout would,
/// and goes on with something else. The server's flight must still wake the reader. (The
/// transport keeps one waker per direction: the write's poll left the writer's there,
/// and nothing woke the reader. Found by the API-level checker, `api_sequences`.)
#[tokio::test]
async fn a_write_dropped_in_the_handshake_leaves_the_reader_woken() {
    let pki = Pki::new();
    for how in ["into_split", "tokio::io::split"] {
        let (c, s) = tokio::io::duplex(64 * 1024);
        let client = lazytls::TlsConnector::new(pki.client_config()).connect(localhost(), c);
        let (mut reader, mut writer): (
            Box<dyn AsyncRead + Unpin + Send>,
            Box<dyn AsyncWrite + Unpin + Send>,
        ) = if how == "into_split" {
            let (r, w) = client.into_split();
            (Box::new(r), Box::new(w))
        } else {
            let (r, w) = tokio::io::split(client);
            (Box::new(r), Box::new(w))
        };
        let read = tokio::spawn(async move {
            let mut pong = [0; 4];
            reader.read_exact(&mut pong).await.map(|_| pong)
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // One poll of a write, which drives the handshake and waits; then it is dropped.
        let polled = std::future::poll_fn(|cx| {
            let poll = std::pin::Pin::new(&mut writer).poll_write(cx, b"ping");
            std::task::Poll::Ready(poll.is_pending())
        })
        .await;
        assert!(polled, "{how}: the write waits for the handshake");
        let acceptor = lazytls::TlsAcceptor::new(pki.server_config());
        let serve = tokio::spawn(async move {
            let mut server = acceptor.accept(s);
            server.handshake().await.unwrap();
            server.write_all(b"pong").await.unwrap();
            server.flush().await.unwrap();
            server
        });
        let pong = within(3, &format!("{how}: the reader's wake-up"), read).await;
        assert_eq!(&pong.unwrap().unwrap(), b"pong", "{how}");
        drop(bounded("server", serve).await.unwrap());
        drop(writer);
    }
}
