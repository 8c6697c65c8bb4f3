//! The native record layer against OpenSSL 3's `s_server` and `s_client` on loopback TCP,
//! TLS 1.3, with key updates from both sides in the middle of a 10 MiB transfer each way.
//!
//! Fixture: our native client (or server) on a record-counting tap over TCP
//! ([`common::records::Tap`]), and the OpenSSL tool as a child process
//! ([`common::openssl`]), killed on every path; every step is bounded in time.
//!
//! # How OpenSSL is made to send KeyUpdates
//!
//! Neither tool has a key-update flag; both take command letters on stdin (OpenSSL 3.0,
//! `apps/s_client.c` and `apps/s_server.c`). A `read()` of stdin whose *first byte* is:
//!
//! - `s_client`: `k` or `K` — a KeyUpdate (`K` with `update_requested`), sent at once;
//!   `Q` quits and `R` renegotiates. Commands work only when stdin EOF is not ignored:
//!   `-quiet` alone turns them off (it implies `-ign_eof`), so we run
//!   `-quiet -no_ign_eof`, which keeps stdout clean (only the received bytes) and keeps
//!   the commands on. Each command prints `KEYUPDATE` on stderr.
//! - `s_server`: `k` or `K` followed by a newline — a KeyUpdate sent at once
//!   (`SSL_do_handshake`); `q`/`Q` close, `r`/`R`/`c` renegotiate or ask for a
//!   certificate, `P` writes plaintext garbage, `S` prints statistics. Commands work only
//!   without `-quiet` and `-brief`, so its stdout also carries the connection summary,
//!   `SSL_do_handshake -> 1` after each command and `Read BLOCK` after each KeyUpdate it
//!   receives; those known lines are removed before the received bytes are compared.
//!
//! The whole `read()` chunk that starts with a command is consumed by it (its other bytes
//! are dropped, not sent). So:
//!
//! - the payload read from stdin is printable text with no command letter *anywhere*
//!   ([`SAFE`]), since a read chunk may start at any byte, not only at a line start;
//! - a command is written only when the tool has consumed all earlier stdin bytes (our
//!   side has received them all), and the next bytes only once it has acted on the
//!   command: the tap on our transport sees one more KeyUpdate-sized record (22 bytes)
//!   arrive. The payload moves in segments of whole pages (multiples of 4 KiB through the
//!   pipe, 16 KiB records), so no data record has that size.
//!
//! Our side calls `refresh_traffic_keys` in the middle of each 1 MiB segment it sends
//! (`update_requested`, so OpenSSL must answer), and answers every `K` from OpenSSL: the
//! KeyUpdates we send are counted exactly.
//!
//! Observed OpenSSL 3.0 behaviour: `s_client` answers our `update_requested` with its next
//! write, so the test feeds its stdin only once it has read our request, then waits for
//! every answer before each command and counts them exactly (fed at the same time, a
//! loaded machine could let s_client write all its data before our request arrived, and
//! the answer waited for the next command).
//! `s_server` answers only with its next write (or merged into the KeyUpdate of its next
//! command), so the test neither waits for its answers nor counts them exactly.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::openssl::{Proc, Scratch, s_client, s_server_once};
use common::records::Tap;
use common::rng::Rng;
use common::*;
use lazytls::rustls::ProtocolVersion;
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::process::ChildStdin;
use tokio::task::JoinHandle;

const OSSL_SIZE: usize = 10 * 1024 * 1024;
const OSSL_SEGMENTS: usize = 10;
const OSSL_SEGMENT: usize = OSSL_SIZE / OSSL_SEGMENTS;
/// Bound on one step that involves a child process.
const STEP: Duration = Duration::from_secs(60);

/// The bytes the payload fed to OpenSSL's stdin is made of: no command letter of either
/// tool (`Q q R r K k c P S`, nor any other capital), no `\r`.
const SAFE: &[u8] = b"0123456789abdefghijlmnopstuvwxyz-+=.,:;/_";

/// `len` bytes of printable lines (64 bytes each, ending in `\n`) from [`SAFE`].
fn safe_text(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                SAFE[(rng.next() % SAFE.len() as u64) as usize]
            }
        })
        .collect()
}

/// One stream shared by a reading and a writing task, like `tokio::io::split`, but the
/// writer can still reach the stream to call `refresh_traffic_keys`. The lock is held
/// only inside each poll.
struct Shared<T>(Arc<Mutex<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Shared<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Shared<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.lock().unwrap()).poll_shutdown(cx)
    }
}

type TcpNative = TlsStream<Tap<TcpStream>>;

/// KeyUpdate-sized records (sent, received) through our stream's tap.
fn key_update_counts(stream: &Shared<TcpNative>) -> (usize, usize) {
    let stream = stream.0.lock().unwrap();
    let ctl = stream.get_ref().ctl();
    (ctl.tx.key_updates_since(0), ctl.rx.key_updates_since(0))
}

/// Polls `cond` every 5 ms for at most [`STEP`]; false if it never held.
async fn wait_until(cond: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + STEP;
    // At most STEP / 5 ms turns.
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Reads everything our side receives: `want` bytes (counted in `got` as they come),
/// then the peer's close_notify, which must read as a clean end.
async fn read_all(
    mut r: Shared<TcpNative>,
    want: usize,
    got: Arc<AtomicUsize>,
) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; want];
    let mut off = 0;
    // Each turn reads at least one byte or ends.
    while off < want {
        let end = (off + 64 * 1024).min(want);
        let n = r.read(&mut out[off..end]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("clean end after {off} of {want} bytes"),
            ));
        }
        off += n;
        got.store(off, Ordering::Release);
    }
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        return Err(io::Error::other(format!(
            "{} bytes more than expected",
            rest.len()
        )));
    }
    Ok(out)
}

/// The command sent to OpenSSL after segment `i` (none after the last).
fn command_after(i: usize) -> Option<&'static [u8]> {
    match i {
        _ if i + 1 == OSSL_SEGMENTS => None,
        _ if i % 2 == 0 => Some(b"K\n"),
        _ => Some(b"k\n"),
    }
}

/// The transfer both OpenSSL tests share: segment by segment, our side sends `ours` with a
/// key update in the middle of each segment while OpenSSL's stdin gets `theirs`; between
/// segments a command makes OpenSSL send a KeyUpdate. `sent_to_openssl` tells how far
/// OpenSSL has taken our bytes (`None`: not observable). Returns the number of `K`
/// commands, or why it stopped.
#[allow(clippy::too_many_arguments)]
async fn keyupdate_transfer(
    stream: &Shared<TcpNative>,
    stdin: &mut ChildStdin,
    ours: &[u8],
    theirs: &[u8],
    received: &AtomicUsize,
    sent_to_openssl: Option<&AtomicUsize>,
    openssl_answers_at_once: bool,
) -> Result<usize, String> {
    let mut writer = stream.clone();
    let (mut commands, mut requests, mut refreshes) = (0, 0, 0);
    for i in 0..OSSL_SEGMENTS {
        let seg = i * OSSL_SEGMENT..(i + 1) * OSSL_SEGMENT;
        let half = seg.start + OSSL_SEGMENT / 2;
        let ours_with_request = async {
            writer.write_all(&ours[seg.start..half]).await?;
            stream
                .0
                .lock()
                .unwrap()
                .refresh_traffic_keys()
                .map_err(io::Error::from)?;
            writer.write_all(&ours[half..seg.end]).await?;
            writer.flush().await
        };
        let feed_stdin = async {
            stdin.write_all(&theirs[seg.clone()]).await?;
            stdin.flush().await
        };
        let (w, f) = match sent_to_openssl.filter(|_| openssl_answers_at_once) {
            // OpenSSL sends its answer with its next write, so its stdin is fed only once it
            // has read all of ours, the request included: the answer then goes out first,
            // however the two tools are scheduled.
            Some(sent) => {
                let w = ours_with_request.await;
                if w.is_ok() && !wait_until(|| sent.load(Ordering::Acquire) >= seg.end).await {
                    return Err(format!("segment {i}: OpenSSL did not read our segment"));
                }
                (w, feed_stdin.await)
            }
            None => tokio::join!(ours_with_request, feed_stdin),
        };
        w.map_err(|e| format!("segment {i}: our write: {e}"))?;
        f.map_err(|e| format!("segment {i}: feeding stdin: {e}"))?;
        refreshes += 1;
        // OpenSSL has read all its stdin so far once we have received it all.
        if !wait_until(|| received.load(Ordering::Acquire) >= seg.end).await {
            return Err(format!(
                "segment {i}: received {} of {} bytes",
                received.load(Ordering::Acquire),
                seg.end
            ));
        }
        if let Some(sent) = sent_to_openssl {
            if !wait_until(|| sent.load(Ordering::Acquire) >= seg.end).await {
                return Err(format!("segment {i}: OpenSSL output stalled"));
            }
        }
        if openssl_answers_at_once {
            // Every request of ours is answered; nothing else of OpenSSL's is in flight.
            let want = commands + refreshes;
            if !wait_until(|| key_update_counts(stream).1 >= want).await {
                return Err(format!(
                    "segment {i}: OpenSSL sent {} KeyUpdates, want {want}",
                    key_update_counts(stream).1
                ));
            }
        }
        let Some(command) = command_after(i) else {
            break;
        };
        let before = key_update_counts(stream).1;
        stdin
            .write_all(command)
            .await
            .map_err(|e| format!("command: {e}"))?;
        stdin.flush().await.map_err(|e| format!("command: {e}"))?;
        commands += 1;
        if command == b"K\n" {
            requests += 1;
        }
        if !wait_until(|| key_update_counts(stream).1 > before).await {
            return Err(format!(
                "segment {i}: no KeyUpdate from OpenSSL after {:?}",
                String::from_utf8_lossy(command)
            ));
        }
    }
    let (sent, got) = key_update_counts(stream);
    println!(
        "KeyUpdates: we refreshed {refreshes} times and answered {requests} requests, {sent} \
         sent; OpenSSL got {commands} commands and sent {got}"
    );
    if sent != refreshes + requests {
        return Err(format!(
            "we sent {sent} KeyUpdates, want {refreshes} + {requests} answers"
        ));
    }
    if got < commands || (openssl_answers_at_once && got != commands + refreshes) {
        return Err(format!(
            "OpenSSL sent {got} KeyUpdates for {commands} commands and {refreshes} requests"
        ));
    }
    Ok(requests)
}

/// Checks what our side negotiated with OpenSSL (TLS 1.3, on the native layer), then
/// starts reading everything OpenSSL sends (see [`read_all`]) in a task.
fn start_reading(tls: TcpNative) -> (Shared<TcpNative>, Arc<AtomicUsize>, Reader) {
    let info = tls.info().unwrap();
    assert_eq!(info.protocol_version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(info.record_layer, RecordLayer::Native, "no silent fallback");
    let stream = Shared(Arc::new(Mutex::new(tls)));
    let received = Arc::new(AtomicUsize::new(0));
    let reader = tokio::spawn(read_all(stream.clone(), OSSL_SIZE, received.clone()));
    (stream, received, reader)
}

type Reader = JoinHandle<io::Result<Vec<u8>>>;

/// The end of both OpenSSL tests, once all bytes are across: we close, and OpenSSL answers
/// with its own close_notify and exits; `reader` must have received `want`. OpenSSL's
/// stdin stays open until then (its EOF would make it drop the connection at once).
/// Returns OpenSSL's stdout.
async fn close_and_collect(
    openssl: &mut Proc,
    stream: &Shared<TcpNative>,
    reader: Reader,
    stdin: ChildStdin,
    what: &str,
    want: &[u8],
) -> Vec<u8> {
    if let Err(e) = tokio::time::timeout(STEP, stream.clone().shutdown()).await {
        openssl.fail(&format!("close: {e}")).await;
    }
    let got = match tokio::time::timeout(STEP, reader).await {
        Ok(joined) => joined.unwrap(),
        Err(_) => openssl.fail("our reader did not finish").await,
    };
    match got {
        Ok(got) => assert_bytes(what, &got, want),
        Err(e) => openssl.fail(&format!("our read: {e}")).await,
    }
    openssl.wait_success().await;
    drop(stdin);
    openssl.stdout().await
}

/// Removes every occurrence of each of `noise` from `bytes`.
fn strip(mut bytes: Vec<u8>, noise: &[&[u8]]) -> Vec<u8> {
    for n in noise {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i..].starts_with(n) {
                i += n.len();
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        bytes = out;
    }
    bytes
}

/// Our native client and `openssl s_server` (TLS 1.3): 10 MiB each way, with key updates
/// from both sides in the middle (see this file's header).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssl_s_server_key_updates_with_native_client() {
    let pki = Pki::new();
    let scratch = Scratch::new("native-s_server-ku", &pki);
    // Not -quiet: that would turn the command letters off.
    let (mut server, tcp) = s_server_once(&scratch, &["-tls1_3"], STEP).await;
    let mut client = TlsConnector::new(Arc::new(pki.client_config_with(TLS13)))
        .connect(localhost(), Tap::new(tcp));
    server.handshake(&mut client, "s_server").await;
    let (stream, received, reader) = start_reading(client);

    let up = safe_text(OSSL_SIZE, 11); // to s_server, out of its stdout
    let down = safe_text(OSSL_SIZE, 12); // into its stdin, to us
    let mut stdin = server.stdin();
    let transfer =
        keyupdate_transfer(&stream, &mut stdin, &up, &down, &received, None, false).await;
    if let Err(e) = transfer {
        server.fail(&e).await;
    }
    // s_server exits after one connection (-naccept 1).
    let what = "from s_server's stdin";
    let out = close_and_collect(&mut server, &stream, reader, stdin, what, &down).await;
    // s_server took each command (it prints this after each KeyUpdate it sends).
    let taken = out
        .windows(b"SSL_do_handshake -> 1\n".len())
        .filter(|w| w == b"SSL_do_handshake -> 1\n")
        .count();
    assert_eq!(taken, OSSL_SEGMENTS - 1, "commands s_server acted on");
    // The lines s_server prints between the bytes it received (see this file's header).
    let out = strip(out, &[b"SSL_do_handshake -> 1\n", b"Read BLOCK\n"]);
    let start = out
        .windows(64)
        .position(|w| w == &up[..64])
        .unwrap_or_else(|| panic!("our first line is not in s_server's stdout"));
    let end = (start + OSSL_SIZE).min(out.len());
    assert_bytes("s_server's stdout", &out[start..end], &up);
    let tail = String::from_utf8_lossy(&out[end..]);
    assert!(tail.starts_with("DONE\n"), "after our bytes: {tail:?}");
    let stream = stream.0.lock().unwrap();
    assert_eq!(stream.info().unwrap().record_layer, RecordLayer::Native);
}

/// `openssl s_client` and our native server (TLS 1.3): 10 MiB each way, with key updates
/// from both sides in the middle (see this file's header).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssl_s_client_key_updates_with_native_server() {
    let pki = Pki::new();
    let scratch = Scratch::new("native-s_client-ku", &pki);
    let args = [
        "-verify_hostname",
        "localhost",
        // -quiet implies -ign_eof, which turns the command letters off: -no_ign_eof
        // turns them back on.
        "-quiet",
        "-no_ign_eof",
        "-tls1_3",
    ];
    let (mut client, tcp) = s_client(&scratch, &args, STEP).await;
    let mut server =
        TlsAcceptor::new(Arc::new(pki.server_config_with(TLS13))).accept(Tap::new(tcp));
    client.handshake(&mut server, "s_client").await;
    let (stream, received, reader) = start_reading(server);

    let down = safe_text(OSSL_SIZE, 21); // from us, out of s_client's stdout
    let up = safe_text(OSSL_SIZE, 22); // into its stdin, to us
    let mut stdin = client.stdin();
    let stdout_seen = client.stdout_seen();
    let transfer = keyupdate_transfer(
        &stream,
        &mut stdin,
        &down,
        &up,
        &received,
        Some(&stdout_seen),
        true,
    )
    .await;
    let commands = match transfer {
        Ok(_) => (1..OSSL_SEGMENTS).count(),
        Err(e) => client.fail(&e).await,
    };
    let what = "from s_client's stdin";
    let out = close_and_collect(&mut client, &stream, reader, stdin, what, &up).await;
    assert_bytes("s_client's stdout", &out, &down);
    let stderr = client.stderr().await;
    assert_eq!(
        stderr.matches("KEYUPDATE").count(),
        commands,
        "s_client's stderr:\n{stderr}"
    );
    let stream = stream.0.lock().unwrap();
    assert_eq!(stream.info().unwrap().record_layer, RecordLayer::Native);
}
