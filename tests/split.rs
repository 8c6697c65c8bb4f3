//! The full-duplex split: [`TlsStream::into_split`] gives a `TlsReadHalf` and a
//! `TlsWriteHalf` that run in different tasks, and `TlsReadHalf::unsplit` joins them again.
//!
//! - **Load.** 8 loopback TCP connections (the transport is divided into its owned halves),
//!   each moving 256 MiB both ways at once, every half in its own task on a two-thread
//!   runtime, every byte checked by a checksum ([`Blocks`]).
//! - **Chaos.** 1,000 small exchanges, both ways at once, over transports that return
//!   `Pending` at random (waking first) and read and write short ([`Chaos`]), each under a
//!   timeout, so a lost wake-up shows as a failure, not a hang.
//! - **The handshake** driven by the read half alone, by the write half alone, and by both
//!   at once (released together by a barrier), for our client and our server, both record
//!   layers and both protocol versions.
//! - **KeyUpdate.** A peer (a whole lazytls stream, and tokio-rustls) asks for a key update
//!   while our write half is idle: on the native layer the read half's answer is seen on the
//!   wire as exactly one 27-byte record (counted by a [`Probe`]); on both layers data keeps
//!   flowing both ways afterwards, so both ends moved their keys consistently.
//! - **Sticky errors.** A TLS error of the read half is returned by the write half (also
//!   one that is parked on a full transport), a transport error of the write half by the
//!   read half (also one that is parked in a read), and an error stored before the split
//!   by both. The read half's own TLS error is not replaced by a writer it woke.
//! - **unsplit** of mismatched halves (both given back, still usable), and of matched
//!   halves before the handshake, after it, on the rustls record layer, with bytes still
//!   buffered in either direction, and after a shutdown.
//! - **Close.** The write half's shutdown sends close_notify while the read half keeps
//!   reading; the peer's close_notify reads as `Ok(0)`; a write after shutdown fails.
//! - **Transports.** TCP, Unix sockets, `tokio::io::duplex`, a transport type lazytls does
//!   not know, each on both record layers; and `openssl s_server` as the peer.
//! - **One direction only.** A read half reading 16 MiB after its write half was dropped,
//!   and the reverse.
//!
//! Every test is bounded in time and every loop in count.

mod common;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use common::*;
use lazytls::rustls::{self, AlertDescription, ProtocolVersion, SupportedProtocolVersion};
use lazytls::{
    Error, HandshakeState, RecordLayer, ReuniteError, TlsAcceptor, TlsConnector, TlsReadHalf,
    TlsStream, TlsWriteHalf,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

type Version = &'static [&'static SupportedProtocolVersion];

const LAYERS: [RecordLayer; 2] = [RecordLayer::Native, RecordLayer::Rustls];

// ---------------------------------------------------------------------------------------
// Plumbing: random numbers, tasks, peers
// ---------------------------------------------------------------------------------------

/// xorshift64*: seeded, cheap, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    /// True once in `n` calls, on average.
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }

    /// Random bytes, a random count in `lo..hi` of them.
    fn some_bytes(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let len = self.range(lo, hi);
        self.bytes(len)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }
}

/// A spawned task, aborted if its handle is dropped first: a failed or timed-out test
/// leaves nothing running. `join` re-raises the task's panic with its own message.
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    fn spawn(fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task(tokio::spawn(fut))
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    async fn join(mut self) -> T {
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
async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}

fn connector(pki: &Pki, v: Version, layer: RecordLayer) -> TlsConnector {
    TlsConnector::new(Arc::new(pki.client_config_with(v))).record_layer(layer)
}

fn acceptor(pki: &Pki, v: Version, layer: RecordLayer) -> TlsAcceptor {
    TlsAcceptor::new(Arc::new(pki.server_config_with(v))).record_layer(layer)
}

/// Our client and our server over `(a, b)`, lazily: no I/O yet.
fn lazy_pair<A, B>(
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
async fn ready_pair<A, B>(
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
fn ours_first<T>(ours_client: bool, (client, server): (T, T)) -> (T, T) {
    if ours_client {
        (client, server)
    } else {
        (server, client)
    }
}

/// Where a case runs: loopback TCP (divided into its owned halves), or a
/// `tokio::io::duplex` pipe of this many bytes (divided with `tokio::io::split`).
#[derive(Debug, Clone, Copy)]
enum Wire {
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
/// for each.
macro_rules! on_ready_pair {
    ($pki:expr, $v:expr, $layer:expr, $wire:expr, $ours_client:expr,
     |$ours:ident, $peer:ident| $body:expr) => {
        match $wire {
            Wire::Tcp => {
                let (a, b) = tcp_pair().await;
                let ($ours, $peer) =
                    ours_first($ours_client, ready_pair($pki, $v, $layer, a, b).await);
                $body
            }
            Wire::Duplex(size) => {
                let (a, b) = tokio::io::duplex(size);
                let ($ours, $peer) =
                    ours_first($ours_client, ready_pair($pki, $v, $layer, a, b).await);
                $body
            }
        }
    };
}

/// `$case(&what, ours, peer)` on a [`ready_pair`] for every version, both record layers,
/// our client and our server, over each of `$wires` in turn.
macro_rules! on_every_ready_end {
    ($pki:expr, $wires:expr, $case:path) => {
        for v in versions() {
            for layer in LAYERS {
                for ours_client in [true, false] {
                    let side = if ours_client { "client" } else { "server" };
                    for wire in $wires {
                        let what = format!("{wire}, our {side}, {}, {layer:?}", vname(v));
                        on_ready_pair!($pki, v, layer, wire, ours_client, |ours, peer| {
                            $case(&what, ours, peer).await
                        });
                    }
                }
            }
        }
    };
}

/// One short message each way.
async fn warm_up<A, B>(a: &mut A, b: &mut B)
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
async fn send_checked<W, R>(w: &mut W, r: &mut R, data: &[u8])
where
    W: AsyncWrite + Unpin + ?Sized,
    R: AsyncRead + Unpin + ?Sized,
{
    let (wr, rr) = bounded("send", write_while_reading(w, r, data)).await;
    wr.expect("write");
    assert_bytes("send", &rr.expect("read"), data);
}

/// Reads `len` bytes with random buffer sizes (1 byte to 20 KiB).
async fn read_random<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    len: usize,
    rng: &mut Rng,
) -> io::Result<Vec<u8>> {
    let mut got = vec![0; len];
    let mut off = 0;
    // Each turn reads at least one byte or fails: at most `len` turns.
    while off < len {
        let want = rng.range(1, 20 * 1024).min(len - off);
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
async fn write_random<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    data: &[u8],
    rng: &mut Rng,
) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let n = rng.range(1, 40 * 1024).min(data.len() - off);
        w.write_all(&data[off..off + n]).await?;
        off += n;
    }
    w.flush().await
}

/// Reads to the end: it must be clean (close_notify) and bring no more bytes.
async fn expect_clean_end<R: AsyncRead + Unpin + ?Sized>(r: &mut R, what: &str) {
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
async fn close_both_ways<A, B>(what: &str, a: &mut A, b: &mut B)
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    bounded(what, a.shutdown()).await.unwrap();
    expect_clean_end(b, what).await;
    bounded(what, b.shutdown()).await.unwrap();
    expect_clean_end(a, what).await;
}

fn ok_or_panic<T>(r: io::Result<T>, what: std::fmt::Arguments<'_>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `e` is the same error as `first`: same kind, same typed variant, same message.
fn assert_same_error(what: &str, e: &io::Error, first: &io::Error) {
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
async fn expect_same_error<T: std::fmt::Debug>(
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

fn is_decrypt_error(e: &io::Error) -> bool {
    matches!(
        Error::from_io(e),
        Some(Error::Tls(rustls::Error::DecryptError))
    )
}

/// The peer writes, under its TLS, a record that no key opens (application data with 32
/// bytes of junk); our read from `r` must fail on it. Returns that error.
async fn read_junk<IO, R>(what: &str, peer: &mut TlsStream<IO>, r: &mut R) -> io::Error
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
// Transports
// ---------------------------------------------------------------------------------------

/// Returns `Pending` at random (after waking the task, as a transport that is "not ready
/// yet" would), and reads and writes short at random. Seeded: a failure can be replayed.
struct Chaos<IO> {
    inner: IO,
    rng: Rng,
    pendings: Arc<AtomicUsize>,
}

impl<IO> Chaos<IO> {
    fn new(inner: IO, seed: u64, pendings: Arc<AtomicUsize>) -> Chaos<IO> {
        Chaos {
            inner,
            rng: Rng::new(seed),
            pendings,
        }
    }

    /// One call in four: wake, and say `Pending`.
    fn stall(&mut self, cx: &Context<'_>) -> bool {
        if self.rng.one_in(4) {
            self.pendings.fetch_add(1, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            return true;
        }
        false
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Chaos<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stall(cx) {
            return Poll::Pending;
        }
        if buf.remaining() > 1 && this.rng.one_in(3) {
            let k = this.rng.range(1, 700).min(buf.remaining());
            let mut short = ReadBuf::new(buf.initialize_unfilled_to(k));
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut short))?;
            let n = short.filled().len();
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Chaos<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.stall(cx) {
            return Poll::Pending;
        }
        let n = if buf.len() > 1 && this.rng.one_in(3) {
            this.rng.range(1, buf.len().min(700))
        } else {
            buf.len()
        };
        Pin::new(&mut this.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stall(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stall(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A transport type lazytls does not recognize (so the split divides it with
/// `tokio::io::split`), forwarding to `IO`. It counts the bytes written through it and,
/// once `fail` is set, fails every write, flush and shutdown with `ConnectionReset`.
struct Probe<IO> {
    inner: IO,
    written: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
}

impl<IO> Probe<IO> {
    fn new(inner: IO) -> Probe<IO> {
        Probe {
            inner,
            written: Arc::default(),
            fail: Arc::default(),
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "injected write failure",
            ));
        }
        Ok(())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Probe<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Probe<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.written.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------
// Both ends split, each half in its own task
// ---------------------------------------------------------------------------------------

/// A read half's job: `want.len()` bytes, checked, then (`close`) a clean end.
async fn reader_job<IO>(
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
async fn writer_job<IO>(
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
async fn exchange_split<IO>(
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

// ---------------------------------------------------------------------------------------
// 1. Load: 8 connections × 256 MiB each way, on loopback TCP
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

/// Issue test 1: 8 loopback TCP connections (the owned-halves path), each moving 256 MiB
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
// 2. Chaos: 1,000 small exchanges with random Pending
// ---------------------------------------------------------------------------------------

/// Issue test 2: 1,000 connections over in-memory transports (small pipes, so writers
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
    let pendings = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut native = 0;
    for i in 0..ITERATIONS {
        let mut rng = Rng::new(0xC4A0_5000 + i);
        let (v, layer, connector, acceptor) = &setups[i as usize % setups.len()];
        let v: Version = v;
        let what = format!("iteration {i} ({}, {layer:?})", vname(v));
        let (a, b) = tokio::io::duplex(rng.range(64, 8 * 1024));
        let client = connector.connect(localhost(), Chaos::new(a, rng.next(), pendings.clone()));
        let server = acceptor.accept(Chaos::new(b, rng.next(), pendings.clone()));
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
    let pendings = pendings.load(Ordering::Relaxed);
    println!(
        "{ITERATIONS} chaotic exchanges ({native} native) in {:?}; {pendings} injected Pending",
        started.elapsed()
    );
    assert!(pendings > ITERATIONS as usize, "the chaos must bite");
}

// ---------------------------------------------------------------------------------------
// 3. Who drives the handshake
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

/// Issue test 3: the read half starts the handshake (the write half untouched until the
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
// 4. A peer's KeyUpdate answered while the write half is idle
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

type Counted = TlsStream<Probe<DuplexStream>>;

/// Our end (client or server) on a counting transport and a TLS 1.3 peer, handshake done.
async fn rekeying_pair(
    pki: &Pki,
    kind: PeerKind,
    ours_client: bool,
    layer: RecordLayer,
) -> (Counted, Arc<AtomicUsize>, Box<dyn Rekeying>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let a = Probe::new(a);
    let written = a.written.clone();
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
    (ours, written, peer)
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
            let (ours, written, mut peer) = rekeying_pair(&pki, kind, ours_client, layer).await;
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
                    // more.
                    expect_written(&step, &written, base, KEY_UPDATE_RECORD).await;
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

/// Issue test 4a: a whole lazytls stream (`refresh_traffic_keys`, which sets
/// update_requested) asks for a key update while our write half is idle. The read half
/// answers: exactly one 27-byte record reaches our transport with no application write;
/// the peer keeps sending and we keep reading; then our write half's data reaches the
/// peer. Twice in a row, for our client and our server, on both record layers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_update_request_is_answered_by_the_read_half_lazytls_peer() {
    key_update_with_idle_write_half(PeerKind::Lazytls).await;
}

/// Issue test 4b: the same with a tokio-rustls peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_update_request_is_answered_by_the_read_half_tokio_rustls_peer() {
    key_update_with_idle_write_half(PeerKind::TokioRustls).await;
}

// ---------------------------------------------------------------------------------------
// 5. Sticky errors across the halves
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

/// Issue test 5, read side: a TLS error of the read half is returned by the write half's
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

/// Issue test 5, a parked write half: it is woken by the read half's failure and returns
/// the same sticky error as the read half. (Which error that is, is the subject of
/// [`bug_parked_writer_replaces_the_read_half_tls_error`].)
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

/// Our client on a transport whose writes can be made to fail, and a whole lazytls server,
/// ready (warmed up).
async fn faulty_pair(
    pki: &Pki,
    v: Version,
    layer: RecordLayer,
) -> (
    TlsStream<Probe<DuplexStream>>,
    Arc<AtomicBool>,
    TlsStream<DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let a = Probe::new(a);
    let fail = a.fail.clone();
    let (ours, peer) = ready_pair(pki, v, layer, a, b).await;
    (ours, fail, peer)
}

/// Sets `fail` (see [`faulty_pair`]), then writes and flushes through `w`: that must
/// fail. Returns the error.
async fn fail_write<W>(what: &str, fail: &AtomicBool, w: &mut W) -> io::Error
where
    W: AsyncWrite + Unpin + ?Sized,
{
    fail.store(true, Ordering::SeqCst);
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

/// Issue test 5, write side: the transport fails a write; the write half returns the
/// error, and the read half's next call returns it too (even with the peer's data
/// waiting), as does the write half's next call and the joined stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_half_transport_error_is_returned_by_the_read_half() {
    let pki = Pki::new();
    for v in versions() {
        for layer in LAYERS {
            let what = format!("{}, {layer:?}", vname(v));
            let (ours, fail, mut peer) = faulty_pair(&pki, v, layer).await;
            let (mut r, mut w) = ours.into_split();
            send_checked(&mut w, &mut peer, b"before the failure").await;
            let first = fail_write(&what, &fail, &mut w).await;
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
            let (ours, fail, _peer) = faulty_pair(&pki, v, layer).await;
            let (mut r, mut w) = ours.into_split();
            let reader = Task::spawn(async move { r.read(&mut [0; 64]).await.map(|_| r) });
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!reader.is_finished(), "{what}: the reader must be parked");
            let first = fail_write(&what, &fail, &mut w).await;
            match tokio::time::timeout(Duration::from_secs(2), reader.join()).await {
                Ok(Ok(_)) => failures.push(format!("{what}: the parked read returned data")),
                Ok(Err(e)) => assert_same_error(&format!("{what}: parked read"), &e, &first),
                Err(_) => failures.push(format!("{what}: the parked read was not woken in 2 s")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue test 5, before the split: a stream whose handshake failed, and one that failed
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
// Close
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
            transport_case(&pki, v, layer, "custom", Probe::new(a), Probe::new(b)).await;
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
