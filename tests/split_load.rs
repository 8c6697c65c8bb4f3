//! The split under load, on loopback TCP (the transport divided into its owned halves):
//!
//! - **Both ways at once.** 8 connections, each moving 256 MiB both ways at once, every
//!   half in its own task on a two-thread runtime, every byte checked by a checksum
//!   ([`Blocks`]).
//! - **One direction only.** A read half reading 16 MiB after its write half was dropped,
//!   and the reverse.
//!
//! Fixture: `tests/common/split.rs` (pairs, tasks, transfers in random pieces). Every test
//! is bounded in time and every loop in count.

mod common;
#[macro_use]
#[path = "common/split.rs"]
mod fixture;

use std::io;
use std::sync::Arc;
use std::time::Instant;

use common::rng::Rng;
use common::*;
use fixture::*;
use lazytls::rustls::ProtocolVersion;
use lazytls::{
    Error, RecordLayer, TlsAcceptor, TlsConnector, TlsReadHalf, TlsStream, TlsWriteHalf,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------
// Load: 8 connections × 256 MiB each way
// ---------------------------------------------------------------------------------------

const BLOCK: usize = 1 << 20;
const BIG_BLOCKS: u64 = 256;
const BIG_CONNS: u64 = 8;
const HASH_SEED: u64 = 0x243F_6A88_85A3_08D3;

/// One order-sensitive step of the checksum. For a fixed state it is a bijection of the
/// word, so a single changed word always changes the result.
fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The checksum of `bytes` (a multiple of 8 long), word by word.
fn hash_words(mut h: u64, bytes: &[u8]) -> u64 {
    for word in bytes.chunks_exact(8) {
        h = mix(h, u64::from_le_bytes(word.try_into().unwrap()));
    }
    h
}

/// The data of the load test, cheap to make and to check in a debug build: one
/// pseudo-random 1 MiB block, sent again and again with a stamp (connection, direction,
/// block number) in its last 8 bytes. The checksum of a stamped block is then
/// `mix(prefix, stamp)`, with `prefix` the checksum of the unstamped part, computed once.
struct Blocks {
    base: Vec<u8>,
    prefix: u64,
}

impl Blocks {
    fn new() -> Blocks {
        let mut base = Rng::new(0xB10C).bytes(BLOCK);
        base[BLOCK - 8..].fill(0);
        let prefix = hash_words(HASH_SEED, &base[..BLOCK - 8]);
        Blocks { base, prefix }
    }

    fn stamp(conn: u64, dir: u64, block: u64) -> u64 {
        (0x5A << 56) | (conn << 40) | (dir << 32) | block
    }
}

/// Sends `BIG_BLOCKS` stamped blocks, then close_notify. Returns the checksum of what
/// it sent.
async fn big_writer<IO>(
    mut w: TlsWriteHalf<IO>,
    blocks: Arc<Blocks>,
    conn: u64,
    dir: u64,
) -> io::Result<(TlsWriteHalf<IO>, u64)>
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut buf = blocks.base.clone();
    let mut sum = HASH_SEED;
    for i in 0..BIG_BLOCKS {
        let stamp = Blocks::stamp(conn, dir, i);
        buf[BLOCK - 8..].copy_from_slice(&stamp.to_le_bytes());
        w.write_all(&buf).await?;
        sum = mix(sum, mix(blocks.prefix, stamp));
    }
    w.shutdown().await?;
    Ok((w, sum))
}

/// Receives `BIG_BLOCKS` blocks, checks each one's stamp and checksum (every byte goes
/// through the checksum), then a clean end. Returns the checksum of what it received.
async fn big_reader<IO>(
    mut r: TlsReadHalf<IO>,
    blocks: Arc<Blocks>,
    conn: u64,
    dir: u64,
) -> io::Result<(TlsReadHalf<IO>, u64)>
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut buf = vec![0u8; BLOCK];
    let mut sum = HASH_SEED;
    for i in 0..BIG_BLOCKS {
        r.read_exact(&mut buf).await?;
        let h = hash_words(HASH_SEED, &buf);
        let stamp = u64::from_le_bytes(buf[BLOCK - 8..].try_into().unwrap());
        let want = Blocks::stamp(conn, dir, i);
        if stamp != want {
            return Err(bad(format!("block {i}: stamp {stamp:#x}, want {want:#x}")));
        }
        if h != mix(blocks.prefix, stamp) {
            return Err(bad(format!("block {i}: checksum mismatch")));
        }
        sum = mix(sum, h);
    }
    if r.read(&mut buf[..1]).await? != 0 {
        return Err(bad("bytes after the last block".into()));
    }
    Ok((r, sum))
}

/// 8 loopback TCP connections (the owned-halves path), each moving 256 MiB
/// both ways at once; each side's read and write halves run in their own tasks (32 tasks
/// on two worker threads) and drive the lazy handshakes themselves. Every byte goes through
/// a checksum; every stream ends with close_notify, and each end is joined again
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tcp_connections_move_256_mib_both_ways_through_split_halves() {
    const UP: u64 = 1;
    const DOWN: u64 = 2;
    let pki = Pki::new();
    let blocks = Arc::new(Blocks::new());
    let connector = TlsConnector::new(pki.client_config());
    let acceptor = TlsAcceptor::new(pki.server_config());
    let started = Instant::now();
    let mut conns = Vec::new();
    for conn in 0..BIG_CONNS {
        let (a, b) = tcp_pair().await;
        let (cr, cw) = connector.connect(localhost(), a).into_split();
        let (sr, sw) = acceptor.accept(b).into_split();
        conns.push((
            Task::spawn(big_writer(cw, blocks.clone(), conn, UP)),
            Task::spawn(big_reader(sr, blocks.clone(), conn, UP)),
            Task::spawn(big_writer(sw, blocks.clone(), conn, DOWN)),
            Task::spawn(big_reader(cr, blocks.clone(), conn, DOWN)),
        ));
    }
    within(600, "8 × 256 MiB each way", async {
        for (conn, (cw, sr, sw, cr)) in conns.into_iter().enumerate() {
            let (cw, sr, sw, cr) = tokio::join!(cw.join(), sr.join(), sw.join(), cr.join());
            let (cw, sent_up) = ok_or_panic(cw, format_args!("connection {conn}, client write"));
            let (sr, got_up) = ok_or_panic(sr, format_args!("connection {conn}, server read"));
            let (sw, sent_down) = ok_or_panic(sw, format_args!("connection {conn}, server write"));
            let (cr, got_down) = ok_or_panic(cr, format_args!("connection {conn}, client read"));
            assert_eq!(got_up, sent_up, "connection {conn}: checksum up");
            assert_eq!(got_down, sent_down, "connection {conn}: checksum down");
            for (side, tls) in [("client", cr.unsplit(cw)), ("server", sr.unsplit(sw))] {
                let tls = tls.expect("matching halves");
                let info = tls.info().expect("info after the handshake");
                assert_eq!(info.record_layer, RecordLayer::Native, "{side} {conn}");
                assert_eq!(
                    info.protocol_version,
                    Some(ProtocolVersion::TLSv1_3),
                    "{side} {conn}"
                );
            }
        }
    })
    .await;
    let took = started.elapsed();
    let total = 2 * BIG_CONNS * BIG_BLOCKS * BLOCK as u64;
    println!(
        "8 connections × 256 MiB each way: {} MiB in {took:?} ({:.0} MiB/s)",
        total >> 20,
        (total >> 20) as f64 / took.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// One direction only
// ---------------------------------------------------------------------------------------

const ONE_WAY: usize = 16 << 20;

/// 16 MiB of test data, made cheaply from stamped copies of one random block.
fn one_way_data() -> Arc<Vec<u8>> {
    let blocks = Blocks::new();
    let mut data = Vec::with_capacity(ONE_WAY);
    for i in 0..(ONE_WAY / BLOCK) as u64 {
        data.extend_from_slice(&blocks.base[..BLOCK - 8]);
        data.extend_from_slice(&Blocks::stamp(0, 3, i).to_le_bytes());
    }
    Arc::new(data)
}

/// A one-way case's name and its ends over loopback TCP, `(ours, the peer)`: before the
/// handshake if the unused half (`dropped`) is dropped before it, else ready.
async fn one_way_pair(
    pki: &Pki,
    v: Version,
    dropped: &str,
    before_handshake: bool,
) -> (String, TlsStream<TcpStream>, TlsStream<TcpStream>) {
    let when = if before_handshake { "before" } else { "after" };
    let what = format!("{}, {dropped} half dropped {when} the handshake", vname(v));
    let (a, b) = tcp_pair().await;
    let (ours, peer) = if before_handshake {
        lazy_pair(pki, v, RecordLayer::Native, a, b)
    } else {
        ready_pair(pki, v, RecordLayer::Native, a, b).await
    };
    (what, ours, peer)
}

/// Only the read half is used: its write half is dropped before the handshake or after
/// it. The peer sends 16 MiB (on TLS 1.3 with key updates that ask for an answer on the
/// way, which the read half sends on its own) and closes; the read half reads it all and
/// the clean end. When our end is gone, the peer reads our KeyUpdate answers without
/// error and then a truncation (no close_notify was ever sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_half_alone_after_the_write_half_was_dropped() {
    let pki = Pki::new();
    let data = one_way_data();
    for v in versions() {
        for drop_before_handshake in [true, false] {
            let (what, ours, mut peer) =
                one_way_pair(&pki, v, "write", drop_before_handshake).await;
            let (mut r, w) = ours.into_split();
            drop(w);
            let tls13 = version_of(v) == ProtocolVersion::TLSv1_3;
            let sent = data.clone();
            let peer_task = Task::spawn(async move {
                peer.handshake().await?;
                for (i, chunk) in sent.chunks(4 << 20).enumerate() {
                    if tls13 && i % 2 == 1 {
                        peer.refresh_traffic_keys().unwrap();
                    }
                    peer.write_all(chunk).await?;
                }
                peer.shutdown().await?;
                Ok::<_, io::Error>(peer)
            });
            let got = within(60, &what, read_random(&mut r, ONE_WAY, &mut Rng::new(2)))
                .await
                .unwrap_or_else(|e| panic!("{what}: read: {e}"));
            assert_bytes(&what, &got, &data);
            expect_clean_end(&mut r, &what).await;
            let mut peer = within(20, &what, peer_task.join()).await.unwrap();
            drop(r);
            // Everything of ours is gone: the peer reads our answers, then EOF without
            // close_notify.
            let e = bounded(&what, peer.read(&mut [0; 16]))
                .await
                .expect_err("no close_notify was sent");
            assert!(matches!(typed(&e), Error::Truncated), "{what}: {e:?}");
        }
    }
}

/// Only the write half is used: its read half is dropped before the handshake or after it.
/// The write half writes 16 MiB, then shuts down; the peer reads every byte and a clean
/// end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_half_alone_after_the_read_half_was_dropped() {
    let pki = Pki::new();
    let data = one_way_data();
    for v in versions() {
        for drop_before_handshake in [true, false] {
            let (what, ours, mut peer) = one_way_pair(&pki, v, "read", drop_before_handshake).await;
            let (r, mut w) = ours.into_split();
            drop(r);
            let sent = data.clone();
            let writer = Task::spawn(async move {
                write_random(&mut w, &sent, &mut Rng::new(3)).await?;
                w.shutdown().await?;
                Ok::<_, io::Error>(w)
            });
            let got = within(60, &what, async {
                peer.handshake().await?;
                read_random(&mut peer, ONE_WAY, &mut Rng::new(4)).await
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: peer read: {e}"));
            assert_bytes(&what, &got, &data);
            expect_clean_end(&mut peer, &what).await;
            within(20, &what, writer.join())
                .await
                .unwrap_or_else(|e| panic!("{what}: write: {e}"));
        }
    }
}
