//! The native record layer carrying real traffic, at the stream level, against rustls's
//! own (buffered) record layer. The sans-IO tests in `src/engine/tests.rs` cover the
//! engine; these go through real `TlsStream`s.
//!
//! Fixture: our native client or server and tokio-rustls in the other role, in one
//! process over `tokio::io::duplex`, each on a record-counting tap
//! ([`common::records::Pair`]), TLS 1.2 and TLS 1.3:
//!
//! - every suite of the provider (an RSA certificate for the `ECDHE_RSA` suites), both
//!   directions at once, random write sizes from 0 to 100 KiB and random read sizes,
//!   every byte checked;
//! - key updates initiated by either side (ours with `refresh_traffic_keys`, rustls's
//!   with its connection's `refresh_traffic_keys`), several times, in the middle of a
//!   transfer, by the writer and by the reader; the KeyUpdate records are counted on the
//!   wire, so a key update that silently did nothing fails; on TLS 1.2 the refusal of a
//!   key update leaves the connection working;
//! - tickets sent to our native client, then a resumed connection; and the reverse;
//! - close_notify both ways, read as a clean `Ok(0)` by both implementations.
//!
//! Every connection asserts `info().record_layer == RecordLayer::Native`, so a silent
//! fallback to rustls's record layer fails. Every step is bounded in time and every loop
//! in count.
//!
//! It runs on the provider lazytls was built with: aws-lc-rs by default, ring under
//! `cargo test --no-default-features --features ring,tls12 --test native_records`.

mod common;

use std::io;
use std::sync::Arc;

use common::records::*;
use common::rng::Rng;
use common::rsa::SuiteConfigs;
use common::*;
use lazytls::rustls::{ProtocolVersion, SupportedCipherSuite};
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Writes `sizes` (0 included: a zero-length write must return `Ok(0)`) of `data`.
async fn write_sizes<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    data: &[u8],
    sizes: &[usize],
) -> io::Result<()> {
    let mut off = 0;
    for &n in sizes {
        if n == 0 {
            assert_eq!(w.write(&[]).await?, 0, "a zero-length write takes nothing");
        } else {
            w.write_all(&data[off..off + n]).await?;
        }
        off += n;
    }
    w.flush().await
}

/// Reads `len` bytes with random buffer sizes (1 byte to 40 KiB).
async fn read_random<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    len: usize,
    seed: u64,
) -> io::Result<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut got = vec![0; len];
    let mut off = 0;
    // Each turn reads at least one byte or fails.
    while off < len {
        let want = rng.range(1, 40 * 1024).min(len - off);
        let n = r.read(&mut got[off..off + want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        off += n;
    }
    Ok(got)
}

/// Both directions at once: each side writes `writes` random sizes from 0 to 100 KiB
/// while reading the other's bytes with random buffer sizes. Every byte is checked.
async fn full_duplex(a: &mut dyn Peer, b: &mut dyn Peer, seed: u64, writes: usize) {
    let what = format!("{} <-> {}", a.name(), b.name());
    let mut rng = Rng::new(seed);
    // The edges first: empty, one byte, exactly one record, one byte more, the maximum.
    let edges = [0, 1, 16 * 1024, 16 * 1024 + 1, 100 * 1024];
    let sizes = |rng: &mut Rng| -> Vec<usize> {
        let mut s: Vec<usize> = edges.to_vec();
        s.extend((0..writes).map(|_| rng.range(0, 100 * 1024)));
        s
    };
    let (sizes_ab, sizes_ba) = (sizes(&mut rng), sizes(&mut rng));
    let ab = rng.bytes(sizes_ab.iter().sum());
    let ba = rng.bytes(sizes_ba.iter().sum());
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (wa, wb, ra, rb) = bounded(&what, async {
        tokio::join!(
            write_sizes(&mut aw, &ab, &sizes_ab),
            write_sizes(&mut bw, &ba, &sizes_ba),
            read_random(&mut ar, ba.len(), seed ^ 1),
            read_random(&mut br, ab.len(), seed ^ 2),
        )
    })
    .await;
    wa.unwrap_or_else(|e| panic!("{what}: first side's write: {e}"));
    wb.unwrap_or_else(|e| panic!("{what}: second side's write: {e}"));
    let got_ba = ra.unwrap_or_else(|e| panic!("{what}: first side's read: {e}"));
    let got_ab = rb.unwrap_or_else(|e| panic!("{what}: second side's read: {e}"));
    assert_bytes(&format!("{what}: first to second"), &got_ab, &ab);
    assert_bytes(&format!("{what}: second to first"), &got_ba, &ba);
}

/// `from` writes `words` and closes; `to` reads them, then a clean end.
async fn last_words(from: &mut dyn Peer, to: &mut dyn Peer, words: &[u8], what: &str) {
    from.write_all(words).await.unwrap();
    from.shutdown().await.unwrap();
    let mut got = Vec::new();
    to.read_to_end(&mut got)
        .await
        .unwrap_or_else(|e| panic!("{what}: {} must read a clean end: {e}", to.name()));
    assert_eq!(got, words, "{what}");
}

/// close_notify from `first`, then from `second`; each reads the other's last words
/// followed by a clean `Ok(0)`.
async fn close_both_ways(first: &mut dyn Peer, second: &mut dyn Peer) {
    let what = format!("{} closes, then {}", first.name(), second.name());
    bounded(&what, async {
        last_words(first, second, b"last words, first", &what).await;
        // Half-closed: the second side still writes, then closes too.
        last_words(second, first, b"last words, second", &what).await;
        // And the end stays clean.
        assert_eq!(first.read(&mut [0; 8]).await.unwrap(), 0, "{what}");
        assert_eq!(second.read(&mut [0; 8]).await.unwrap(), 0, "{what}");
    })
    .await;
}

fn check_suite(pair: &Pair, suite: SupportedCipherSuite) {
    let info = pair.info();
    assert_eq!(info.cipher_suite.map(|s| s.suite()), Some(suite.suite()));
    assert_eq!(info.protocol_version, Some(suite.version().version));
}

/// Every suite, both roles, both directions at once, random write and read sizes.
#[tokio::test]
async fn every_suite_random_sizes_against_tokio_rustls() {
    let configs = SuiteConfigs::new();
    let mut seed = 1;
    let mut tested = Vec::new();
    for v in versions() {
        for suite in suites(version_of(v)) {
            for role in ROLES {
                let (client, server) = configs.for_suite(suite);
                let mut pair = make_pair(role, client, server).await;
                check_suite(&pair, suite);
                seed += 1;
                full_duplex(&mut pair.native, &mut *pair.rustls, seed, 8).await;
                // Once more the other way round, so each side writes first.
                seed += 1;
                full_duplex(&mut *pair.rustls, &mut pair.native, seed, 4).await;
                close_both_ways(&mut pair.native, &mut *pair.rustls).await;
                tested.push(format!("{:?}/{role:?}", suite.suite()));
            }
        }
    }
    println!("tested: {tested:?}");
}

/// `refresh_traffic_keys` on TLS 1.2 is refused (there is no KeyUpdate), and the
/// connection goes on: the refusal is not a connection failure. Both record layers.
#[cfg(feature = "tls12")]
#[tokio::test]
async fn refused_tls12_key_update_leaves_the_connection_working() {
    let pki = Pki::new();
    for layer in [RecordLayer::Native, RecordLayer::Rustls] {
        for role in ROLES {
            let what = format!("{layer:?} {role:?}");
            let client = Arc::new(pki.client_config_with(TLS12));
            let server = Arc::new(pki.server_config_with(TLS12));
            let mut pair = match role {
                Role::NativeClient => {
                    let c = TlsConnector::new(client).record_layer(layer);
                    pair_with_rustls_server(&c, server).await
                }
                Role::NativeServer => {
                    let a = TlsAcceptor::new(server).record_layer(layer);
                    pair_with_rustls_client(client, &a).await
                }
            };
            assert_eq!(pair.info().record_layer, layer, "{what}");
            let refused = pair.native.refresh_traffic_keys();
            assert!(refused.is_err(), "{what}: TLS 1.2 has no KeyUpdate");
            // Data still flows both ways, and the connection closes cleanly.
            send(
                &mut pair.native,
                &mut *pair.rustls,
                b"after the refusal, ours",
            )
            .await;
            send(
                &mut *pair.rustls,
                &mut pair.native,
                b"after the refusal, theirs",
            )
            .await;
            close_both_ways(&mut pair.native, &mut *pair.rustls).await;
        }
    }
}

/// One round of the key-update script: `writer` sends `len` bytes to `reader`, and the
/// writer (`by_writer`) or the reader refreshes its keys `times` times, a third of the
/// way into the transfer.
async fn key_update_round(
    writer: &mut dyn Peer,
    reader: &mut dyn Peer,
    data: &[u8],
    by_writer: bool,
    times: usize,
) {
    let what = format!(
        "{} -> {}, {times} key update(s) by the {}",
        writer.name(),
        reader.name(),
        if by_writer { "writer" } else { "reader" }
    );
    let cut = data.len() / 3;
    let (w, r) = bounded(&what, async {
        tokio::join!(
            async {
                writer.write_all(&data[..cut]).await?;
                if by_writer {
                    for _ in 0..times {
                        writer.refresh();
                    }
                }
                writer.write_all(&data[cut..]).await?;
                writer.flush().await
            },
            async {
                let mut got = vec![0; data.len()];
                reader.read_exact(&mut got[..cut]).await?;
                if !by_writer {
                    for _ in 0..times {
                        reader.refresh();
                    }
                    // The KeyUpdate goes out now, while the writer is still writing.
                    reader.flush().await?;
                }
                reader.read_exact(&mut got[cut..]).await?;
                Ok::<_, io::Error>(got)
            }
        )
    })
    .await;
    w.unwrap_or_else(|e| panic!("{what}: write: {e}"));
    let got = r.unwrap_or_else(|e| panic!("{what}: read: {e}"));
    assert_bytes(&what, &got, data);
}

/// TLS 1.3 key updates initiated by either side, by the writer in the middle of its
/// write and by the reader in the middle of its read, one to three at a time, for every
/// TLS 1.3 suite and both roles. The data stays intact, and the KeyUpdates are counted
/// on the wire: each side sends at least one per update it initiated, and we answer the
/// requests (those that arrive while we are silent with one KeyUpdate).
#[tokio::test]
async fn key_updates_from_either_side_mid_transfer() {
    let configs = SuiteConfigs::new();
    let mut rng = Rng::new(7);
    for suite in suites(ProtocolVersion::TLSv1_3) {
        for role in ROLES {
            let (client, server) = configs.for_suite(suite);
            let mut pair = make_pair(role, client, server).await;
            check_suite(&pair, suite);
            warm_up(&mut pair).await;
            let (tx_base, rx_base) = {
                let ctl = pair.native.get_ref().ctl();
                (ctl.tx.lens.len(), ctl.rx.lens.len())
            };
            let (mut ours, mut theirs) = (0, 0);
            for round in 0..12 {
                let native_writes = round % 2 == 0;
                let by_writer = round % 4 < 2;
                let times = 1 + round / 4;
                let len = rng.range(20 * 1024, 200 * 1024);
                let data = rng.bytes(len);
                if native_writes == by_writer {
                    ours += times;
                } else {
                    theirs += times;
                }
                let (writer, reader) = if native_writes {
                    pair.ends(Dir::NativeToRustls)
                } else {
                    pair.ends(Dir::RustlsToNative)
                };
                key_update_round(writer, reader, &data, by_writer, times).await;
            }
            // Data both ways at once after all that, then a clean close.
            full_duplex(&mut pair.native, &mut *pair.rustls, rng.next(), 4).await;
            let (sent, received) = {
                let ctl = pair.native.get_ref().ctl();
                (
                    ctl.tx.key_updates_since(tx_base),
                    ctl.rx.key_updates_since(rx_base),
                )
            };
            println!(
                "{:?}/{role:?}: we initiated {ours} and sent {sent} KeyUpdates; rustls \
                 initiated {theirs} and sent {received}",
                suite.suite()
            );
            // Ours: one per refresh, plus answers to the requests received. Requests that
            // arrive while we send no data share one answer (RFC 8446, 4.6.3), so there
            // are at least one and at most one per request.
            let answers = usize::from(theirs > 0)..=theirs;
            assert!(
                sent >= ours + answers.start() && sent <= ours + answers.end(),
                "{:?}/{role:?}: we sent {sent} KeyUpdates; want {ours} + {answers:?} answers",
                suite.suite()
            );
            // rustls may answer several requests that arrive together with one KeyUpdate.
            assert!(
                received > theirs,
                "{:?}/{role:?}: rustls sent {received} KeyUpdates; want more than its {theirs}",
                suite.suite()
            );
            assert_eq!(pair.info().record_layer, RecordLayer::Native);
            close_both_ways(&mut *pair.rustls, &mut pair.native).await;
        }
    }
}

/// Our native client takes tickets from a tokio-rustls server through the native layer,
/// then resumes with them; tokio-rustls resumes against our native server.
#[tokio::test]
async fn tickets_and_resumption_against_tokio_rustls() {
    let pki = Pki::new();
    for v in versions() {
        let what = vname(v);
        // Our client, their server. The connector (and its session store) is reused.
        let connector = TlsConnector::new(Arc::new(pki.client_config_with(v)));
        let server = Arc::new(pki.server_config_with(v));
        for round in 0..3 {
            let mut pair = native_client_pair(&connector, server.clone()).await;
            let resumed = pair.info().resumed;
            assert_eq!(
                resumed,
                round > 0,
                "{what}: native client, connection {round}: resumed"
            );
            assert_eq!(pair.rustls_resumed, round > 0, "{what}: rustls server");
            // Reading is what makes the native layer take a TLS 1.3 server's tickets,
            // which follow its handshake flight.
            warm_up(&mut pair).await;
            close_both_ways(&mut pair.native, &mut *pair.rustls).await;
        }

        // Their client, our server. The acceptor's session cache is reused.
        let client = Arc::new(pki.client_config_with(v));
        let acceptor = TlsAcceptor::new(Arc::new(pki.server_config_with(v)));
        for round in 0..3 {
            let mut pair = native_server_pair(client.clone(), &acceptor).await;
            assert_eq!(
                pair.info().resumed,
                round > 0,
                "{what}: native server, connection {round}: resumed"
            );
            assert_eq!(pair.rustls_resumed, round > 0, "{what}: rustls client");
            warm_up(&mut pair).await;
            close_both_ways(&mut *pair.rustls, &mut pair.native).await;
        }
    }
}

/// close_notify both ways, each implementation closing first, in both roles: the
/// reading side sees a clean `Ok(0)` (not `UnexpectedEof`) on both implementations,
/// and the half-closed side can still send.
#[tokio::test]
async fn close_notify_both_ways_with_tokio_rustls() {
    let pki = Pki::new();
    for v in versions() {
        for role in ROLES {
            for native_first in [true, false] {
                let mut pair = warm_pair(&pki, role, v).await;
                if native_first {
                    close_both_ways(&mut pair.native, &mut *pair.rustls).await;
                } else {
                    close_both_ways(&mut *pair.rustls, &mut pair.native).await;
                }
            }
        }
    }
}
