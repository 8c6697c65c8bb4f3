//! Post-handshake records (KeyUpdate, close_notify, TLS 1.3 padding, fatal alerts) on the
//! whole `TlsStream` and on its `into_split()` halves. The peers are tokio-rustls and the
//! forging peer of `common::forger`, whose wire checks (nothing after a close_notify or a
//! fatal alert of ours, no repeated nonce) apply to every forged case.
//!
//! - **KeyUpdate requests coalesce.** A peer that sends a KeyUpdate asking for one back
//!   before every byte, thousands of times, and never reads, must cost our reader bounded
//!   memory and get one KeyUpdate back: requests that arrive while we send nothing share
//!   one answer (RFC 8446, 4.6.3). Answering each one queues bytes the peer never takes.
//! - **Nothing is sealed after our close_notify.** A KeyUpdate request that arrives after
//!   our shutdown gets no answer: sealing one would break the close (and writing it to a
//!   shut-down socket fails the read side, losing the data around it).
//! - **TLS 1.3 padding past 2^14 + 1.** The limit is on the whole inner plaintext (content,
//!   type byte and padding; RFC 8446, 5.2 and 5.4), not on the content alone; both
//!   record layers reject it with `record_overflow`, and accept it at the boundary.
//! - **No close_notify after a fatal alert.** When a read sends a fatal alert but returns
//!   the data before the bad record first, a shutdown before the next read must return
//!   the read side's error, not seal a close_notify behind the alert.
mod common;

use std::io;
use std::sync::Arc;

use common::forger::*;
use common::*;
use lazytls::rustls::{self, AlertDescription};
use lazytls::{Error, RecordLayer, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Our end as one stream, or as the halves of `into_split()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Whole,
    Split,
}

const SHAPES: [Shape; 2] = [Shape::Whole, Shape::Split];

const LAYERS: [RecordLayer; 2] = [RecordLayer::Native, RecordLayer::Rustls];

/// A read loop gives up after this many reads without an end.
const MAX_READS: usize = 10_000;

/// A read's outcome as text, with the typed error if there is one, for comparisons.
fn outcome(r: &io::Result<usize>) -> String {
    match r {
        Ok(n) => format!("Ok({n})"),
        Err(e) => match Error::from_io(e) {
            Some(typed) => format!("Err({typed:?})"),
            None => format!("Err(untyped {:?}: {e})", e.kind()),
        },
    }
}

/// How [`outcome`] shows a read (or shutdown) that failed with `e`.
fn failed_with(e: rustls::Error) -> String {
    format!("Err({:?})", Error::Tls(e))
}

/// What a reader got before its first `Ok(0)` or error, that end, and the next read.
struct Drained {
    data: Vec<u8>,
    end: String,
    again: String,
}

async fn drain<R: AsyncRead + Unpin>(r: &mut R) -> Drained {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut end = format!("no end after {MAX_READS} reads");
    for _ in 0..MAX_READS {
        let got = r.read(&mut buf).await;
        match got {
            Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => {
                end = outcome(&got);
                break;
            }
        }
    }
    let again = outcome(&r.read(&mut buf).await);
    Drained { data, end, again }
}

/// Reads exactly `n` bytes (each read returns at least one, so at most `n` reads),
/// calling `probe` after each read.
async fn read_n<R: AsyncRead + Unpin>(
    r: &mut R,
    n: usize,
    mut probe: impl FnMut(&R),
) -> Result<Vec<u8>, String> {
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0u8; 16 * 1024];
    while got.len() < n {
        let want = (n - got.len()).min(buf.len());
        let read = r.read(&mut buf[..want]).await;
        match read {
            Ok(k) if k > 0 => got.extend_from_slice(&buf[..k]),
            _ => {
                return Err(format!(
                    "{} after {} of {n} bytes",
                    outcome(&read),
                    got.len()
                ));
            }
        }
        probe(r);
    }
    Ok(got)
}

fn count(sent: &[Sent], want: &Sent) -> usize {
    sent.iter().filter(|s| *s == want).count()
}

fn tls13_client(pki: &Pki) -> TlsConnector {
    TlsConnector::new(Arc::new(pki.client_config_with(TLS13)))
}

fn tokio_rustls_server(pki: &Pki) -> tokio_rustls::TlsAcceptor {
    tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config_with(TLS13)))
}

// =======================================================================================
// KeyUpdate requests coalesce
// =======================================================================================

/// KeyUpdates asking for one back, each followed by one byte of data.
const KEY_UPDATE_REQUESTS: usize = 5_000;

/// The peer's pipe: small, so that what we send and the peer never reads fills it early.
const SMALL_PIPE: usize = 16 * 1024;

/// What the whole stream's buffers may hold through the flood. An answer queued for each
/// request would take 27 bytes a request, 135 KB in all.
const CAPACITY_BOUND: usize = 64 * 1024;

/// The flood must end well within this (seconds); a deadlock fails instead of hanging.
const FLOOD_SECS: u64 = 60;

fn flood_byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn flood() -> Vec<u8> {
    (0..KEY_UPDATE_REQUESTS).map(flood_byte).collect()
}

/// The forger floods our client; it reads what we sent only after our shutdown.
async fn flood_from_forger(pki: &Pki, shape: Shape) -> Vec<String> {
    let what = format!("forger / {shape:?}");
    let (ours, theirs) = tokio::io::duplex(SMALL_PIPE);
    let (mut f, c) = forged_server_over(
        pki,
        TLS13,
        Box::new(ours),
        Box::new(theirs),
        RecordLayer::Native,
        false,
    )
    .await;
    let mut wire = Vec::new();
    for i in 0..KEY_UPDATE_REQUESTS {
        wire.extend(f.key_update(true));
        wire.extend(f.data(&[flood_byte(i)]));
    }
    let want = flood();
    let mut bad = Vec::new();
    let mut peak = 0;
    let (got, sent, shut) = match shape {
        Shape::Whole => {
            let mut c = c;
            let probe = |c: &TlsStream<BoxIo>| peak = peak.max(c.buffered_capacity());
            let (wrote, got) =
                tokio::join!(f.io.write_all(&wire), read_n(&mut c, want.len(), probe));
            wrote.unwrap();
            peak = peak.max(c.buffered_capacity());
            let (sent, shut) = tokio::join!(f.read_to_eof_checked(), async {
                let shut = c.shutdown().await;
                drop(c);
                shut
            });
            (got, sent, shut)
        }
        Shape::Split => {
            let (mut r, mut w) = c.into_split();
            let (wrote, got) =
                tokio::join!(f.io.write_all(&wire), read_n(&mut r, want.len(), |_| {}));
            wrote.unwrap();
            let (sent, shut) = tokio::join!(f.read_to_eof_checked(), async {
                let shut = w.shutdown().await;
                drop((r, w));
                shut
            });
            (got, sent, shut)
        }
    };
    match got {
        Ok(got) if got == want => {}
        Ok(got) => bad.push(format!("{what}: read the wrong {} bytes", got.len())),
        Err(e) => bad.push(format!("{what}: {e}")),
    }
    if shape == Shape::Whole && peak > CAPACITY_BOUND {
        bad.push(format!(
            "{what}: buffered_capacity() reached {peak} bytes (bound {CAPACITY_BOUND})"
        ));
    }
    if let Err(e) = shut {
        bad.push(format!("{what}: shutdown failed: {}", outcome(&Err(e))));
    }
    let sent = match sent {
        Ok(sent) => sent,
        Err(broken) => {
            bad.push(format!("{what}: {broken}"));
            return bad;
        }
    };
    let answers = count(&sent, &Sent::KeyUpdate);
    if answers != 1 {
        bad.push(format!(
            "{what}: sent {answers} KeyUpdates for {KEY_UPDATE_REQUESTS} requests, want one"
        ));
    }
    let closes = count(&sent, &Sent::Alert(WARNING, AlertDescription::CloseNotify));
    if closes != 1 || sent.last() != Some(&Sent::Alert(WARNING, AlertDescription::CloseNotify)) {
        bad.push(format!(
            "{what}: {closes} close_notify, last record {:?}",
            sent.last()
        ));
    }
    bad
}

#[tokio::test]
async fn key_update_requests_coalesce_into_one_answer() {
    let pki = Pki::new();
    let mut bad = Vec::new();
    for shape in SHAPES {
        let what = format!("KeyUpdate flood from the forger / {shape:?}");
        bad.extend(within(FLOOD_SECS, &what, flood_from_forger(&pki, shape)).await);
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

/// tokio-rustls floods our client: before each byte it refreshes its keys, which sends a
/// KeyUpdate asking for one back. It never reads.
async fn flood_from_tokio_rustls(pki: &Pki, shape: Shape) -> Vec<String> {
    let what = format!("tokio-rustls / {shape:?}");
    let (ours, theirs) = tokio::io::duplex(SMALL_PIPE);
    let mut c = tls13_client(pki).connect(localhost(), ours);
    let (hs, s) = tokio::join!(c.handshake(), tokio_rustls_server(pki).accept(theirs));
    hs.unwrap();
    let mut s = s.unwrap();
    let peer = async {
        for i in 0..KEY_UPDATE_REQUESTS {
            s.get_mut()
                .1
                .refresh_traffic_keys()
                .map_err(io::Error::other)?;
            s.write_all(&[flood_byte(i)]).await?;
            s.flush().await?;
        }
        Ok::<_, io::Error>(())
    };
    let want = flood();
    let mut peak = 0;
    let (flooded, got) = match shape {
        Shape::Whole => {
            let probe = |c: &TlsStream<_>| peak = peak.max(c.buffered_capacity());
            let out = tokio::join!(peer, read_n(&mut c, want.len(), probe));
            peak = peak.max(c.buffered_capacity());
            out
        }
        Shape::Split => {
            let (mut r, _w) = c.into_split();
            tokio::join!(peer, read_n(&mut r, want.len(), |_| {}))
        }
    };
    let mut bad = Vec::new();
    if let Err(e) = flooded {
        bad.push(format!("{what}: the peer failed: {e}"));
    }
    match got {
        Ok(got) if got == want => {}
        Ok(got) => bad.push(format!("{what}: read the wrong {} bytes", got.len())),
        Err(e) => bad.push(format!("{what}: {e}")),
    }
    if shape == Shape::Whole && peak > CAPACITY_BOUND {
        bad.push(format!(
            "{what}: buffered_capacity() reached {peak} bytes (bound {CAPACITY_BOUND})"
        ));
    }
    bad
}

#[tokio::test]
async fn key_update_requests_from_tokio_rustls_keep_memory_bounded() {
    let pki = Pki::new();
    let mut bad = Vec::new();
    for shape in SHAPES {
        let what = format!("KeyUpdate flood from tokio-rustls / {shape:?}");
        bad.extend(within(FLOOD_SECS, &what, flood_from_tokio_rustls(&pki, shape)).await);
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

// =======================================================================================
// Nothing is sealed after our close_notify
// =======================================================================================

/// Our client shuts down; then tokio-rustls (over TCP) sends data, a KeyUpdate asking for
/// one back, more data and its close_notify. We must read it all and end cleanly.
async fn peer_rekeys_after_our_close(pki: &Pki, shape: Shape) -> Vec<String> {
    let what = format!("tokio-rustls over TCP / {shape:?}");
    let (ours, theirs) = tcp_pair().await;
    let mut c = tls13_client(pki).connect(localhost(), ours);
    let (hs, s) = tokio::join!(c.handshake(), tokio_rustls_server(pki).accept(theirs));
    hs.unwrap();
    let mut s = s.unwrap();
    let peer = async {
        // Our close_notify first, so that the request below reaches a closed writer.
        let mut early = Vec::new();
        s.read_to_end(&mut early).await?;
        assert!(early.is_empty(), "{what}: data before our close_notify");
        s.write_all(b"before").await?;
        s.get_mut()
            .1
            .refresh_traffic_keys()
            .map_err(io::Error::other)?;
        s.write_all(b"after").await?;
        s.flush().await?;
        s.shutdown().await
    };
    let (shut, (peer, drained)) = match shape {
        Shape::Whole => {
            let shut = c.shutdown().await;
            (shut, tokio::join!(peer, drain(&mut c)))
        }
        Shape::Split => {
            let (mut r, mut w) = c.into_split();
            let shut = w.shutdown().await;
            (shut, tokio::join!(peer, drain(&mut r)))
        }
    };
    let mut bad = Vec::new();
    if let Err(e) = shut {
        bad.push(format!("{what}: shutdown failed: {}", outcome(&Err(e))));
    }
    if let Err(e) = peer {
        bad.push(format!("{what}: the peer failed: {e}"));
    }
    if drained.data != b"beforeafter" || drained.end != "Ok(0)" || drained.again != "Ok(0)" {
        bad.push(format!(
            "{what}: read {:?}, then {}, then {}; want \"beforeafter\", then Ok(0) twice",
            String::from_utf8_lossy(&drained.data),
            drained.end,
            drained.again
        ));
    }
    bad
}

#[tokio::test]
async fn nothing_is_sealed_after_our_close_notify() {
    let pki = Pki::new();
    let mut bad = Vec::new();
    for shape in SHAPES {
        let what = format!("a KeyUpdate request after our close_notify / {shape:?}");
        bad.extend(bounded(&what, peer_rekeys_after_our_close(&pki, shape)).await);
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

/// The same with the forger as the peer, on a transport that lets a record sealed after
/// our close_notify reach the wire: the forger's wire check would see it.
async fn forger_rekeys_after_our_close(pki: &Pki, layer: RecordLayer, shape: Shape) -> Vec<String> {
    let what = format!("forger / {layer:?} / {shape:?}");
    let (mut f, c) = forged_server(pki, TLS13, Transport::KeepOpen, layer, false).await;
    let mut wire = f.data(b"before");
    wire.extend(f.key_update(true));
    wire.extend(f.data(b"after"));
    wire.extend(f.close_notify());
    let mut bad = Vec::new();
    let (shut, first, drained) = match shape {
        Shape::Whole => {
            let mut c = c;
            let shut = c.shutdown().await;
            let first = f.read_records(1).await;
            f.io.write_all(&wire).await.unwrap();
            let drained = drain(&mut c).await;
            drop(c);
            (shut, first, drained)
        }
        Shape::Split => {
            let (mut r, mut w) = c.into_split();
            let shut = w.shutdown().await;
            let first = f.read_records(1).await;
            f.io.write_all(&wire).await.unwrap();
            let drained = drain(&mut r).await;
            drop((r, w));
            (shut, first, drained)
        }
    };
    if let Err(e) = shut {
        bad.push(format!("{what}: shutdown failed: {}", outcome(&Err(e))));
    }
    if first != [Sent::Alert(WARNING, AlertDescription::CloseNotify)] {
        bad.push(format!("{what}: our shutdown sent {first:?}"));
    }
    if drained.data != b"beforeafter" || drained.end != "Ok(0)" || drained.again != "Ok(0)" {
        bad.push(format!(
            "{what}: read {:?}, then {}, then {}; want \"beforeafter\", then Ok(0) twice",
            String::from_utf8_lossy(&drained.data),
            drained.end,
            drained.again
        ));
    }
    match f.read_to_eof_checked().await {
        Ok(rest) if rest.is_empty() => {}
        Ok(rest) => bad.push(format!("{what}: sent {rest:?} after our close_notify")),
        Err(broken) => bad.push(format!("{what}: {broken}")),
    }
    bad
}

#[tokio::test]
async fn nothing_follows_our_close_notify_on_the_wire() {
    let pki = Pki::new();
    let mut bad = Vec::new();
    for layer in LAYERS {
        for shape in SHAPES {
            let what = format!("after our close_notify / {layer:?} / {shape:?}");
            bad.extend(bounded(&what, forger_rekeys_after_our_close(&pki, layer, shape)).await);
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

// =======================================================================================
// TLS 1.3 padding past 2^14 + 1
// =======================================================================================

/// A record's inner plaintext: content bytes and zeros of padding after the type byte.
struct Inner {
    content: usize,
    padding: usize,
    accepted: bool,
}

const INNERS: [Inner; 4] = [
    // 16,585 bytes: under the ciphertext limit (2^14 + 256), over the plaintext one.
    Inner {
        content: 16_384,
        padding: 200,
        accepted: false,
    },
    Inner {
        content: 16_384,
        padding: 1,
        accepted: false,
    },
    Inner {
        content: 16_384,
        padding: 0,
        accepted: true,
    },
    // Exactly 2^14 + 1.
    Inner {
        content: 16_383,
        padding: 1,
        accepted: true,
    },
];

/// The forger sends "head", then one record with `inner`, then close_notify.
async fn padded_record(pki: &Pki, t: Transport, layer: RecordLayer, inner: &Inner) -> Vec<String> {
    let what = format!(
        "{} content + type + {} zeros / {t:?} / {layer:?}",
        inner.content, inner.padding
    );
    let (mut f, mut c) = forged_server(pki, TLS13, t, layer, false).await;
    let content = pattern(inner.content, 7);
    let mut wire = f.data(b"head");
    wire.extend(f.padded_data(&content, inner.padding));
    wire.extend(f.close_notify());
    let forger = async {
        f.io.write_all(&wire).await.unwrap();
        f.io.flush().await.unwrap();
        f.read_to_eof_checked().await
    };
    let ours = async {
        let drained = drain(&mut c).await;
        let shut = if drained.end == "Ok(0)" {
            Some(c.shutdown().await)
        } else {
            None
        };
        drop(c);
        (drained, shut)
    };
    let (sent, (drained, shut)) = tokio::join!(forger, ours);
    let mut bad = Vec::new();
    let (want_data, want_end, want_sent) = if inner.accepted {
        let mut data = b"head".to_vec();
        data.extend_from_slice(&content);
        let close = Sent::Alert(WARNING, AlertDescription::CloseNotify);
        (data, "Ok(0)".to_string(), vec![close])
    } else {
        let overflow = Sent::Alert(FATAL, AlertDescription::RecordOverflow);
        let e = failed_with(rustls::Error::PeerSentOversizedRecord);
        (b"head".to_vec(), e, vec![overflow])
    };
    if drained.data != want_data {
        bad.push(format!(
            "{what}: delivered {} bytes, want {}",
            drained.data.len(),
            want_data.len()
        ));
    }
    if drained.end != want_end || drained.again != want_end {
        bad.push(format!(
            "{what}: ended with {}, then {}; want {want_end} twice",
            drained.end, drained.again
        ));
    }
    if let Some(Err(e)) = shut {
        bad.push(format!("{what}: shutdown failed: {}", outcome(&Err(e))));
    }
    match sent {
        Ok(sent) if sent == want_sent => {}
        Ok(sent) => bad.push(format!("{what}: sent {sent:?}, want {want_sent:?}")),
        Err(broken) => bad.push(format!("{what}: {broken}")),
    }
    bad
}

#[tokio::test]
async fn tls13_padding_past_the_plaintext_limit_is_rejected() {
    let pki = Pki::new();
    let mut bad = Vec::new();
    for inner in &INNERS {
        for t in TRANSPORTS {
            for layer in LAYERS {
                let what = format!(
                    "padding {} + {} / {t:?} / {layer:?}",
                    inner.content, inner.padding
                );
                bad.extend(bounded(&what, padded_record(&pki, t, layer, inner)).await);
            }
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

// =======================================================================================
// No close_notify after a fatal alert
// =======================================================================================

/// In one transport write, the forger sends "hello" and a record with one bit of its
/// ciphertext flipped. We read "hello" (our bad_record_mac alert goes out, the error waits
/// for the next read), then shut down before reading again.
async fn shutdown_after_a_deferred_error(
    pki: &Pki,
    v: Version,
    t: Transport,
    layer: RecordLayer,
    shape: Shape,
) -> Vec<String> {
    let what = format!("{} / {t:?} / {layer:?} / {shape:?}", vname(v));
    let (mut f, c) = forged_server(pki, v, t, layer, false).await;
    let mut wire = f.data(b"hello");
    let mut tampered = f.data(b"tampered");
    // The last ciphertext byte before the 16-byte tag, in every framing.
    let at = tampered.len() - 17;
    tampered[at] ^= 0x01;
    wire.extend(tampered);
    f.io.write_all(&wire).await.unwrap();
    f.io.flush().await.unwrap();
    let mut buf = [0u8; 64];
    let (first, shut, again, again2) = match shape {
        Shape::Whole => {
            let mut c = c;
            let first = c.read(&mut buf).await;
            let first = first.map(|n| buf[..n].to_vec());
            let shut = c.shutdown().await.map(|()| 0);
            let again = c.read(&mut buf).await;
            let again2 = c.read(&mut buf).await;
            drop(c);
            (first, shut, again, again2)
        }
        Shape::Split => {
            let (mut r, mut w) = c.into_split();
            let first = r.read(&mut buf).await;
            let first = first.map(|n| buf[..n].to_vec());
            let shut = w.shutdown().await.map(|()| 0);
            let again = r.read(&mut buf).await;
            let again2 = r.read(&mut buf).await;
            drop((r, w));
            (first, shut, again, again2)
        }
    };
    let mut bad = Vec::new();
    match &first {
        Ok(got) if got == b"hello" => {}
        Ok(got) => bad.push(format!(
            "{what}: first read got {:?}, want \"hello\"",
            String::from_utf8_lossy(got)
        )),
        Err(e) => bad.push(format!("{what}: first read {}", outcome(&Err(clone(e))))),
    }
    let want = failed_with(rustls::Error::DecryptError);
    for (call, got) in [
        ("shutdown", &shut),
        ("the next read", &again),
        ("a later read", &again2),
    ] {
        if outcome(got) != want {
            bad.push(format!("{what}: {call} gave {}, want {want}", outcome(got)));
        }
    }
    let alert = Sent::Alert(FATAL, AlertDescription::BadRecordMac);
    match f.read_to_eof_checked().await {
        Ok(sent) if sent == [alert.clone()] => {}
        Ok(sent) => bad.push(format!("{what}: sent {sent:?}, want [{alert:?}]")),
        Err(broken) => bad.push(format!("{what}: {broken}")),
    }
    bad
}

/// `io::Error` is not `Clone`; enough of it for [`outcome`].
fn clone(e: &io::Error) -> io::Error {
    match Error::from_io(e) {
        Some(Error::Tls(t)) => Error::Tls(t.clone()).into(),
        _ => io::Error::new(e.kind(), e.to_string()),
    }
}

#[tokio::test]
async fn no_close_notify_after_a_fatal_alert() {
    let pki = Pki::new();
    let mut bad = Vec::new();
    for v in versions() {
        // One write of the forger's must reach us as one read: a pipe, not TCP.
        for t in [Transport::Duplex, Transport::KeepOpen] {
            for layer in LAYERS {
                for shape in SHAPES {
                    let what = format!("{} / {t:?} / {layer:?} / {shape:?}", vname(v));
                    let run = shutdown_after_a_deferred_error(&pki, v, t, layer, shape);
                    bad.extend(bounded(&what, run).await);
                }
            }
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}
