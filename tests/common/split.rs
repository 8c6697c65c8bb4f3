//! The fixture of the split suites (`split_*.rs`): our client and our server over a pair
//! of transports, lazily ([`lazy_pair`]) or with the handshake done and one message each
//! way ([`ready_pair`]), on either record layer; the wires a case runs over ([`Wire`], and
//! the macros [`on_ready_pair!`] and [`on_every_ready_end!`]); tasks that are aborted when
//! dropped ([`Task`]); checked transfers in random pieces; both ends split, each half in
//! its own task ([`exchange_split`]); and the checks of sticky errors.
//!
//! Only the split suites use it, so it is not part of `common`'s module tree: each suite
//! declares it with `#[macro_use] #[path = "common/split.rs"] mod fixture;`, after
//! `mod common;`.
#![allow(dead_code, unreachable_pub, missing_docs, unused_macros)]

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::common::rng::Rng;
use crate::common::*;
use lazytls::rustls::{self, SupportedProtocolVersion};
use lazytls::{
    Error, RecordLayer, TlsAcceptor, TlsConnector, TlsReadHalf, TlsStream, TlsWriteHalf,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub type Version = &'static [&'static SupportedProtocolVersion];

pub const LAYERS: [RecordLayer; 2] = [RecordLayer::Native, RecordLayer::Rustls];

// ---------------------------------------------------------------------------------------
// Tasks and pairs
// ---------------------------------------------------------------------------------------

/// A spawned task, aborted if its handle is dropped first: a failed or timed-out test
/// leaves nothing running. `join` re-raises the task's panic with its own message.
pub struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    pub fn spawn(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task(tokio::spawn(fut))
    }

    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    pub async fn join(mut self) -> T {
        match (&mut self.0).await {
            Ok(out) => out,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("task did not finish: {e}"),
            },
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls `cond` every 10 ms, at most 500 times.
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}

pub fn connector(pki: &Pki, v: Version, layer: RecordLayer) -> TlsConnector {
    TlsConnector::new(Arc::new(pki.client_config_with(v))).record_layer(layer)
}

pub fn acceptor(pki: &Pki, v: Version, layer: RecordLayer) -> TlsAcceptor {
    TlsAcceptor::new(Arc::new(pki.server_config_with(v))).record_layer(layer)
}

/// Our client and our server over `(a, b)`, lazily: no I/O yet.
pub fn lazy_pair<A, B>(
    pki: &Pki,
    v: Version,
    layer: RecordLayer,
    a: A,
    b: B,
) -> (TlsStream<A>, TlsStream<B>) {
    (
        connector(pki, v, layer).connect(localhost(), a),
        acceptor(pki, v, layer).accept(b),
    )
}

/// [`lazy_pair`] with the handshake done on both ends, and one short message each way, so
/// that nothing the handshake left in flight (TLS 1.3 tickets) is still on the wire.
pub async fn ready_pair<A, B>(
    pki: &Pki,
    v: Version,
    layer: RecordLayer,
    a: A,
    b: B,
) -> (TlsStream<A>, TlsStream<B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client, mut server) = lazy_pair(pki, v, layer, a, b);
    let (c, s) = bounded("handshake", async {
        tokio::join!(client.handshake(), server.handshake())
    })
    .await;
    c.expect("client handshake");
    s.expect("server handshake");
    assert_eq!(client.info().unwrap().record_layer, layer);
    assert_eq!(server.info().unwrap().record_layer, layer);
    warm_up(&mut client, &mut server).await;
    (client, server)
}

/// `(ours, the peer)` from `(client, server)`: ours is the client if `ours_client`.
pub fn ours_first<T>(ours_client: bool, (client, server): (T, T)) -> (T, T) {
    if ours_client {
        (client, server)
    } else {
        (server, client)
    }
}

/// Where a case runs: loopback TCP (divided into its owned halves), or a
/// `tokio::io::duplex` pipe of this many bytes (divided with `tokio::io::split`).
#[derive(Debug, Clone, Copy)]
pub enum Wire {
    Tcp,
    Duplex(usize),
}

impl std::fmt::Display for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wire::Tcp => "TCP",
            Wire::Duplex(_) => "duplex",
        })
    }
}

/// `$body`, with `$ours` and `$peer` the ends of a [`ready_pair`] over `$wire` (see
/// [`ours_first`]). A macro: the wires are two transport types, and `$body` is compiled
/// for each. (The suite declares this file as its module `fixture`.)
macro_rules! on_ready_pair {
    ($pki:expr, $v:expr, $layer:expr, $wire:expr, $ours_client:expr,
     |$ours:ident, $peer:ident| $body:expr) => {
        match $wire {
            $crate::fixture::Wire::Tcp => {
                let (a, b) = $crate::common::tcp_pair().await;
                let ($ours, $peer) = $crate::fixture::ours_first(
                    $ours_client,
                    $crate::fixture::ready_pair($pki, $v, $layer, a, b).await,
                );
                $body
            }
            $crate::fixture::Wire::Duplex(size) => {
                let (a, b) = tokio::io::duplex(size);
                let ($ours, $peer) = $crate::fixture::ours_first(
                    $ours_client,
                    $crate::fixture::ready_pair($pki, $v, $layer, a, b).await,
                );
                $body
            }
        }
    };
}

/// `$case(&what, ours, peer)` on a [`ready_pair`] for every version, both record layers,
/// our client and our server, over each of `$wires` in turn.
macro_rules! on_every_ready_end {
    ($pki:expr, $wires:expr, $case:path) => {
        for v in $crate::common::versions() {
            for layer in $crate::fixture::LAYERS {
                for ours_client in [true, false] {
                    let side = if ours_client { "client" } else { "server" };
                    for wire in $wires {
                        let what = format!(
                            "{wire}, our {side}, {}, {layer:?}",
                            $crate::common::vname(v)
                        );
                        on_ready_pair!($pki, v, layer, wire, ours_client, |ours, peer| {
                            $case(&what, ours, peer).await
                        });
                    }
                }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// Checked transfers and sticky errors
// ---------------------------------------------------------------------------------------

/// One short message each way.
pub async fn warm_up<A, B>(a: &mut A, b: &mut B)
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    bounded("warm-up", async {
        send_checked(a, b, b"warm-up, one way").await;
        send_checked(b, a, b"warm-up, the other way").await;
    })
    .await;
}

/// `data` from `w` (written and flushed) to `r`, at once, checked.
pub async fn send_checked<W, R>(w: &mut W, r: &mut R, data: &[u8])
where
    W: AsyncWrite + Unpin + ?Sized,
    R: AsyncRead + Unpin + ?Sized,
{
    let (wr, rr) = bounded("send", write_while_reading(w, r, data)).await;
    wr.expect("write");
    assert_bytes("send", &rr.expect("read"), data);
}

/// Reads `len` bytes with random buffer sizes (1 byte to 20 KiB).
pub async fn read_random<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    len: usize,
    rng: &mut Rng,
) -> io::Result<Vec<u8>> {
    let mut got = vec![0; len];
    let mut off = 0;
    // Each turn reads at least one byte or fails: at most `len` turns.
    while off < len {
        let want = rng.below(1, 20 * 1024).min(len - off);
        let n = r.read(&mut got[off..off + want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("EOF after {off} of {len} bytes"),
            ));
        }
        off += n;
    }
    Ok(got)
}

/// Writes `data` in random pieces (1 byte to 40 KiB), then flushes.
pub async fn write_random<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    data: &[u8],
    rng: &mut Rng,
) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let n = rng.below(1, 40 * 1024).min(data.len() - off);
        w.write_all(&data[off..off + n]).await?;
        off += n;
    }
    w.flush().await
}

/// Reads to the end: it must be clean (close_notify) and bring no more bytes.
pub async fn expect_clean_end<R: AsyncRead + Unpin + ?Sized>(r: &mut R, what: &str) {
    let mut rest = Vec::new();
    bounded(what, r.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|e| panic!("{what}: want a clean end, got {e}"));
    assert!(
        rest.is_empty(),
        "{what}: {} bytes before the end",
        rest.len()
    );
}

/// close_notify from `a`, read by `b` as a clean end; then the same from `b` to `a`.
pub async fn close_both_ways<A, B>(what: &str, a: &mut A, b: &mut B)
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    bounded(what, a.shutdown()).await.unwrap();
    expect_clean_end(b, what).await;
    bounded(what, b.shutdown()).await.unwrap();
    expect_clean_end(a, what).await;
}

pub fn ok_or_panic<T>(r: io::Result<T>, what: std::fmt::Arguments<'_>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `e` is the same error as `first`: same kind, same typed variant, same message.
pub fn assert_same_error(what: &str, e: &io::Error, first: &io::Error) {
    assert_eq!(e.kind(), first.kind(), "{what}: {e} vs {first}");
    assert_eq!(
        std::mem::discriminant(typed(e)),
        std::mem::discriminant(typed(first)),
        "{what}: {e} vs {first}"
    );
    assert_eq!(e.to_string(), first.to_string(), "{what}");
}

/// `op` (bounded) fails with the same error as `first` (see [`assert_same_error`]);
/// `step` names it.
pub async fn expect_same_error<T: std::fmt::Debug>(
    what: &str,
    step: &str,
    op: impl Future<Output = io::Result<T>>,
    first: &io::Error,
) {
    let what = format!("{what}: {step}");
    match bounded(&what, op).await {
        Ok(out) => panic!("{what}: want the error {first}, got Ok({out:?})"),
        Err(e) => assert_same_error(&what, &e, first),
    }
}

pub fn is_decrypt_error(e: &io::Error) -> bool {
    matches!(
        Error::from_io(e),
        Some(Error::Tls(rustls::Error::DecryptError))
    )
}

/// The peer writes, under its TLS, a record that no key opens (application data with 32
/// bytes of junk); our read from `r` must fail on it. Returns that error.
pub async fn read_junk<IO, R>(what: &str, peer: &mut TlsStream<IO>, r: &mut R) -> io::Error
where
    IO: AsyncWrite + Unpin,
    R: AsyncRead + Unpin + ?Sized,
{
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    record.extend([0xA5; 32]);
    bounded(what, peer.get_mut().write_all(&record))
        .await
        .unwrap();
    bounded(what, r.read(&mut [0; 64]))
        .await
        .expect_err("a junk record must fail the read")
}

// ---------------------------------------------------------------------------------------
// Both ends split, each half in its own task
// ---------------------------------------------------------------------------------------

/// A read half's job: `want.len()` bytes, checked, then (`close`) a clean end.
pub async fn reader_job<IO>(
    mut r: TlsReadHalf<IO>,
    want: Arc<Vec<u8>>,
    close: bool,
    seed: u64,
    what: String,
) -> TlsReadHalf<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let got = read_random(&mut r, want.len(), &mut Rng::new(seed))
        .await
        .unwrap_or_else(|e| panic!("{what}: read: {e}"));
    assert_bytes(&what, &got, &want);
    if close {
        expect_clean_end(&mut r, &what).await;
    }
    r
}

/// A write half's job: `data` in random pieces, flushed, then (`close`) shut down.
pub async fn writer_job<IO>(
    mut w: TlsWriteHalf<IO>,
    data: Arc<Vec<u8>>,
    close: bool,
    seed: u64,
    what: String,
) -> TlsWriteHalf<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    write_random(&mut w, &data, &mut Rng::new(seed))
        .await
        .unwrap_or_else(|e| panic!("{what}: write: {e}"));
    if close {
        w.shutdown()
            .await
            .unwrap_or_else(|e| panic!("{what}: shutdown: {e}"));
    }
    w
}

/// Splits both ends and moves `up` (client to server) and `down` at once, each half in
/// its own task; with `close`, both write halves then shut down and both read halves read
/// a clean end. The halves are joined again.
pub async fn exchange_split<IO>(
    what: &str,
    client: TlsStream<IO>,
    server: TlsStream<IO>,
    up: Arc<Vec<u8>>,
    down: Arc<Vec<u8>>,
    close: bool,
    seed: u64,
) -> (TlsStream<IO>, TlsStream<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    assert!(cr.is_pair_of(&cw) && sw.is_pair_of(&sr));
    assert!(!cr.is_pair_of(&sw) && !sr.is_pair_of(&cw));
    let cw = Task::spawn(writer_job(
        cw,
        up.clone(),
        close,
        seed,
        format!("{what}: up"),
    ));
    let sr = Task::spawn(reader_job(sr, up, close, seed ^ 1, format!("{what}: up")));
    let sw = Task::spawn(writer_job(
        sw,
        down.clone(),
        close,
        seed ^ 2,
        format!("{what}: down"),
    ));
    let cr = Task::spawn(reader_job(
        cr,
        down,
        close,
        seed ^ 3,
        format!("{what}: down"),
    ));
    let (cw, sr, sw, cr) = tokio::join!(cw.join(), sr.join(), sw.join(), cr.join());
    let client = cr.unsplit(cw).expect("the client's own halves");
    let server = sr.unsplit(sw).expect("the server's own halves");
    (client, server)
}
