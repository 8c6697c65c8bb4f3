//! A peer's KeyUpdate answered by the read half while our write half is idle. The peer (a
//! whole lazytls stream, and tokio-rustls) asks for a key update with update_requested: on
//! the native layer the read half's answer is seen on the wire as exactly one 27-byte
//! record (counted by the [`FaultyIo`] under our end, `tests/common/transport.rs`); on both
//! layers data keeps flowing both ways afterwards, so both ends moved their keys
//! consistently.
//!
//! Fixture: `tests/common/split.rs` (checked transfers in random pieces), over a
//! `tokio::io::duplex` pipe, TLS 1.3 only. Every test is bounded in time and every loop in
//! count.

mod common;
#[macro_use]
#[path = "common/split.rs"]
mod fixture;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::rng::Rng;
use common::transport::{FaultyIo, IoStats};
use common::*;
use fixture::*;
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};

// ---------------------------------------------------------------------------------------
// A peer's KeyUpdate answered while the write half is idle
// ---------------------------------------------------------------------------------------

/// A TLS 1.3 peer that can send a KeyUpdate with update_requested.
trait Rekeying: AsyncRead + AsyncWrite + Unpin + Send {
    fn request_key_update(&mut self);
}

impl Rekeying for TlsStream<DuplexStream> {
    fn request_key_update(&mut self) {
        self.refresh_traffic_keys()
            .expect("lazytls refresh_traffic_keys");
    }
}

impl Rekeying for tokio_rustls::client::TlsStream<DuplexStream> {
    fn request_key_update(&mut self) {
        self.get_mut()
            .1
            .refresh_traffic_keys()
            .expect("rustls refresh_traffic_keys");
    }
}

impl Rekeying for tokio_rustls::server::TlsStream<DuplexStream> {
    fn request_key_update(&mut self) {
        self.get_mut()
            .1
            .refresh_traffic_keys()
            .expect("rustls refresh_traffic_keys");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerKind {
    Lazytls,
    TokioRustls,
}

type Counted = TlsStream<FaultyIo<DuplexStream>>;

/// Our end (client or server) on a counting transport and a TLS 1.3 peer, handshake done.
async fn rekeying_pair(
    pki: &Pki,
    kind: PeerKind,
    ours_client: bool,
    layer: RecordLayer,
) -> (Counted, Arc<IoStats>, Box<dyn Rekeying>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let a = FaultyIo::new(a);
    let stats = a.stats();
    let client_config = Arc::new(pki.client_config_with(TLS13));
    let server_config = Arc::new(pki.server_config_with(TLS13));
    let mut ours = if ours_client {
        TlsConnector::new(client_config.clone())
            .record_layer(layer)
            .connect(localhost(), a)
    } else {
        TlsAcceptor::new(server_config.clone())
            .record_layer(layer)
            .accept(a)
    };
    let peer: Box<dyn Rekeying> = bounded("handshake", async {
        match (kind, ours_client) {
            (PeerKind::Lazytls, true) => {
                let mut peer = TlsAcceptor::new(server_config).accept(b);
                let (o, p) = tokio::join!(ours.handshake(), peer.handshake());
                o.expect("our handshake");
                p.expect("peer handshake");
                Box::new(peer) as Box<dyn Rekeying>
            }
            (PeerKind::Lazytls, false) => {
                let mut peer = TlsConnector::new(client_config).connect(localhost(), b);
                let (o, p) = tokio::join!(ours.handshake(), peer.handshake());
                o.expect("our handshake");
                p.expect("peer handshake");
                Box::new(peer)
            }
            (PeerKind::TokioRustls, true) => {
                let accept = tokio_rustls::TlsAcceptor::from(server_config).accept(b);
                let (o, p) = tokio::join!(ours.handshake(), accept);
                o.expect("our handshake");
                Box::new(p.expect("tokio-rustls handshake"))
            }
            (PeerKind::TokioRustls, false) => {
                let connect =
                    tokio_rustls::TlsConnector::from(client_config).connect(localhost(), b);
                let (o, p) = tokio::join!(ours.handshake(), connect);
                o.expect("our handshake");
                Box::new(p.expect("tokio-rustls handshake"))
            }
        }
    })
    .await;
    assert_eq!(ours.info().unwrap().record_layer, layer);
    (ours, stats, peer)
}

/// A TLS 1.3 KeyUpdate record: 5-byte header, 4-byte handshake header and 1-byte body,
/// 1-byte content type, 16-byte tag.
const KEY_UPDATE_RECORD: usize = 27;

/// Waits (bounded) until `written` is `base + want`, then a moment more to see that
/// nothing else follows.
async fn expect_written(what: &str, written: &AtomicUsize, base: usize, want: usize) {
    wait_for(what, || written.load(Ordering::SeqCst) >= base + want).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        written.load(Ordering::SeqCst) - base,
        want,
        "{what}: bytes written to our transport"
    );
}

async fn key_update_with_idle_write_half(kind: PeerKind) {
    let pki = Pki::new();
    for ours_client in [true, false] {
        for layer in LAYERS {
            let what = format!(
                "{kind:?} peer, our {} on {layer:?}",
                if ours_client { "client" } else { "server" }
            );
            let (ours, stats, mut peer) = rekeying_pair(&pki, kind, ours_client, layer).await;
            let written = &stats.bytes_written;
            let (mut r, mut w) = ours.into_split();
            // Through the halves, so that everything the handshake left is delivered.
            send_checked(&mut w, &mut peer, b"warm-up: ours to peer").await;
            send_checked(&mut peer, &mut r, b"warm-up: peer to ours").await;

            let mut rng = Rng::new(0x4B55);
            for round in 0..2 {
                // The peer asks for a key update and sends data after it. Our write half
                // does nothing; our read half reads the data.
                let base = written.load(Ordering::SeqCst);
                peer.request_key_update();
                let data = rng.some_bytes(1, 64 * 1024);
                send_checked(&mut peer, &mut r, &data).await;
                let step = format!("{what}, key update {round}");
                let answered = if layer == RecordLayer::Native {
                    // Our answer went out from the read half: one KeyUpdate record, no
                    // more. The idle write half keeps no buffer for it.
                    expect_written(&step, written, base, KEY_UPDATE_RECORD).await;
                    assert_eq!(w.buffered_capacity(), 0, "{step}: the idle write half");
                    KEY_UPDATE_RECORD
                } else {
                    // rustls's own record layer holds the answer until our next write
                    // (RFC 8446, 4.6.3 allows that: "prior to sending its next
                    // Application Data record"). Seen, not required.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let n = written.load(Ordering::SeqCst) - base;
                    println!("{step}: {n} bytes written with the write half idle");
                    assert!(n == 0 || n == KEY_UPDATE_RECORD, "{step}: {n} bytes");
                    n
                };
                // The peer keeps sending under its new key; we keep reading.
                for _ in 0..3 {
                    let data = rng.some_bytes(1, 64 * 1024);
                    send_checked(&mut peer, &mut r, &data).await;
                }
                assert_eq!(
                    written.load(Ordering::SeqCst) - base,
                    answered,
                    "{step}: nothing else was written"
                );
                // Our data ends the silence, so the next request gets an answer of its
                // own: requests that arrive while we send nothing share one (RFC 8446,
                // 4.6.3).
                send_checked(&mut w, &mut peer, b"between key updates").await;
            }
            // Now our write half writes: the peer reads our KeyUpdates, then data under
            // our new key, so both sides moved their keys consistently.
            let data = rng.bytes(200 * 1024);
            send_checked(&mut w, &mut peer, &data).await;
            // Both ways at once, then joined, then closed both ways.
            let up = rng.bytes(300 * 1024);
            let down = rng.bytes(300 * 1024);
            bounded(&what, async {
                let (mut pr, mut pw) = tokio::io::split(&mut peer);
                let mut rngs = [1, 2, 3, 4].map(Rng::new);
                let [r1, r2, r3, r4] = &mut rngs;
                let (wu, rd, wd, ru) = tokio::join!(
                    write_random(&mut w, &up, r1),
                    read_random(&mut r, down.len(), r2),
                    write_random(&mut pw, &down, r3),
                    read_random(&mut pr, up.len(), r4),
                );
                wu.unwrap();
                wd.unwrap();
                assert_bytes(&what, &rd.unwrap(), &down);
                assert_bytes(&what, &ru.unwrap(), &up);
            })
            .await;
            let mut ours = r.unsplit(w).expect("matching halves");
            send_checked(&mut ours, &mut peer, b"after unsplit, ours to peer").await;
            send_checked(&mut peer, &mut ours, b"after unsplit, peer to ours").await;
            close_both_ways(&what, &mut ours, &mut peer).await;
        }
    }
}

/// A whole lazytls stream (`refresh_traffic_keys`, which sets
/// update_requested) asks for a key update while our write half is idle. The read half
/// answers: exactly one 27-byte record reaches our transport with no application write;
/// the peer keeps sending and we keep reading; then our write half's data reaches the
/// peer. Twice in a row, for our client and our server, on both record layers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_update_request_is_answered_by_the_read_half_lazytls_peer() {
    key_update_with_idle_write_half(PeerKind::Lazytls).await;
}

/// The same with a tokio-rustls peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_update_request_is_answered_by_the_read_half_tokio_rustls_peer() {
    key_update_with_idle_write_half(PeerKind::TokioRustls).await;
}
