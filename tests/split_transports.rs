//! The split over every kind of transport:
//!
//! - **Chaos.** 1,000 small exchanges, both ways at once, over in-memory transports that
//!   return `Pending` at random (waking first) and read and write short ([`FaultyIo`] with
//!   its seeded `chaos` knob, `tests/common/transport.rs`), each under a timeout, so a lost
//!   wake-up shows as a failure, not a hang.
//! - **Transports.** TCP, Unix sockets, `tokio::io::duplex` and a transport type lazytls
//!   does not know (a plain [`FaultyIo`]), each on both record layers.
//! - **Interop.** `openssl s_server` as the peer of a split client.
//!
//! Fixture: `tests/common/split.rs` (pairs, tasks, both ends split with each half in its
//! own task). Every test is bounded in time and every loop in count.

mod common;
#[macro_use]
#[path = "common/split.rs"]
mod fixture;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::rng::Rng;
use common::transport::{FaultyIo, IoStats};
use common::*;
use fixture::*;
use lazytls::RecordLayer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

// ---------------------------------------------------------------------------------------
// Chaos: 1,000 small exchanges with random Pending
// ---------------------------------------------------------------------------------------

/// 1,000 connections over in-memory transports (small pipes, so writers
/// wait for readers) that return `Pending` at random and read and write short. In each,
/// both ends are split before the handshake, and all four halves run in their own tasks
/// at once: a random-sized message each way (0 to 48 KiB), then close_notify both ways.
/// Each iteration has 10 s; a lost wake-up or a deadlock fails it with its seed. Both
/// versions and both record layers take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_chaotic_exchanges_through_split_halves_never_deadlock() {
    const ITERATIONS: u64 = 1000;
    let pki = Pki::new();
    let mut setups = Vec::new();
    for v in versions() {
        for layer in LAYERS {
            setups.push((
                v,
                layer,
                connector(&pki, v, layer),
                acceptor(&pki, v, layer),
            ));
        }
    }
    let stats = Arc::new(IoStats::default());
    let started = Instant::now();
    let mut native = 0;
    for i in 0..ITERATIONS {
        let mut rng = Rng::new(0xC4A0_5000 + i);
        let (v, layer, connector, acceptor) = &setups[i as usize % setups.len()];
        let v: Version = v;
        let what = format!("iteration {i} ({}, {layer:?})", vname(v));
        let (a, b) = tokio::io::duplex(rng.below(64, 8 * 1024));
        let a = FaultyIo::new(a).chaos(rng.next()).with_stats(stats.clone());
        let client = connector.connect(localhost(), a);
        let b = FaultyIo::new(b).chaos(rng.next()).with_stats(stats.clone());
        let server = acceptor.accept(b);
        let up = Arc::new(rng.some_bytes(0, 48 * 1024));
        let down = Arc::new(rng.some_bytes(0, 48 * 1024));
        let (client, server) = within(
            10,
            &what,
            exchange_split(&what, client, server, up, down, true, rng.next()),
        )
        .await;
        let info = client.info().expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)), "{what}");
        assert_eq!(info.record_layer, *layer, "{what}");
        assert_eq!(server.info().unwrap().record_layer, *layer, "{what}");
        native += usize::from(*layer == RecordLayer::Native);
    }
    let pendings = stats.injected_pending.load(Ordering::Relaxed);
    println!(
        "{ITERATIONS} chaotic exchanges ({native} native) in {:?}; {pendings} injected Pending",
        started.elapsed()
    );
    assert!(pendings > ITERATIONS as usize, "the chaos must bite");
}

// ---------------------------------------------------------------------------------------
// Transports and record layers
// ---------------------------------------------------------------------------------------

/// Both ends split before the handshake, 2 MiB each way at once (four tasks), joined,
/// then data through the joined streams and close_notify both ways.
async fn transport_case<IO>(pki: &Pki, v: Version, layer: RecordLayer, name: &str, a: IO, b: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let what = format!("{name}, {}, {layer:?}", vname(v));
    let (client, server) = lazy_pair(pki, v, layer, a, b);
    let mut rng = Rng::new(0x7A);
    let up = Arc::new(rng.bytes(2 << 20));
    let down = Arc::new(rng.bytes(2 << 20));
    let (mut client, mut server) = within(
        60,
        &what,
        exchange_split(&what, client, server, up, down, false, rng.next()),
    )
    .await;
    for tls in [&client, &server] {
        let info = tls.info().expect("info after the handshake");
        assert_eq!(info.record_layer, layer, "{what}");
        assert_eq!(info.protocol_version, Some(version_of(v)), "{what}");
    }
    send_checked(&mut client, &mut server, b"joined, up").await;
    send_checked(&mut server, &mut client, b"joined, down").await;
    close_both_ways(&what, &mut client, &mut server).await;
}

/// The split over TCP (owned halves), Unix sockets (owned halves), a duplex pipe and a
/// transport type lazytls does not know (over TCP: `tokio::io::split`), on both record
/// layers and both versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_works_over_every_transport_and_record_layer() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            let (a, b) = tcp_pair().await;
            transport_case(&pki, v, layer, "TCP", a, b).await;
            #[cfg(unix)]
            {
                let (a, b) = tokio::net::UnixStream::pair().unwrap();
                transport_case(&pki, v, layer, "Unix", a, b).await;
            }
            let (a, b) = tokio::io::duplex(32 * 1024);
            transport_case(&pki, v, layer, "duplex", a, b).await;
            let (a, b) = tcp_pair().await;
            transport_case(&pki, v, layer, "custom", FaultyIo::new(a), FaultyIo::new(b)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Interop
// ---------------------------------------------------------------------------------------

/// Our client, split before the handshake, against `openssl s_server`: 8 MiB each way at
/// once (our bytes come out of its stdout, its stdin comes back to us), each half in its
/// own task; then the write half's close_notify, s_server's answer read as a clean end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_client_with_openssl_s_server() {
    use common::openssl::{Scratch, close_with_s_server, feed, s_server_once, version_flag};
    const STEP: Duration = Duration::from_secs(30);
    const SIZE: usize = 8 << 20;
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("split-s_server", &pki);
        let (mut server, tcp) = s_server_once(&scratch, &["-quiet", version_flag(v)], STEP).await;
        let client = connector(&pki, v, RecordLayer::Native).connect(localhost(), tcp);
        let up = pattern(SIZE, 11);
        let down = pattern(SIZE, 12);
        let feeder = feed(server.stdin(), down.clone());
        let (r, w) = client.into_split();
        let up_task = {
            let up = up.clone();
            Task::spawn(async move {
                let mut w = w;
                w.write_all(&up).await?;
                w.flush().await?;
                Ok::<_, io::Error>(w)
            })
        };
        let down_task = Task::spawn(async move {
            let mut r = r;
            let mut got = vec![0; SIZE];
            r.read_exact(&mut got).await?;
            Ok::<_, io::Error>((r, got))
        });
        let exchanged = tokio::time::timeout(STEP, async {
            tokio::join!(up_task.join(), down_task.join())
        })
        .await;
        let (w, rd) = match exchanged {
            Ok(both) => both,
            Err(_) => server.fail("8 MiB each way did not finish").await,
        };
        let mut w = match w {
            Ok(w) => w,
            Err(e) => server.fail(&format!("write to s_server: {e}")).await,
        };
        let (mut r, got) = match rd {
            Ok(both) => both,
            Err(e) => server.fail(&format!("read from s_server: {e}")).await,
        };
        assert_bytes("from s_server's stdin", &got, &down);

        // Our close_notify from the write half; s_server answers with its own and exits.
        close_with_s_server(&mut server, feeder, &mut w, &mut r, &up).await;
        let joined = r.unsplit(w).expect("matching halves");
        let info = joined.info().expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)));
        assert_eq!(info.record_layer, RecordLayer::Native);
    }
}
