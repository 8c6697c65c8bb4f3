//! Cancellation at every poll: a handshake, a 256 KiB transfer and a shutdown are each
//! driven by hand (a no-op waker, both ends polled in turn) over an in-memory transport
//! whose reads, writes and flushes yield on every other call, so each operation spans
//! several polls (handshakes 6-7, transfers 17-18, shutdowns 3). For every `k`
//! from 0 to the number of polls the operation needs, its future is dropped after `k`
//! polls; then the stream must finish the operation on a fresh future, with every byte
//! delivered once, in order (dropping a future is never fatal in lazytls). For the
//! handshake, the client is also abandoned after `k` polls: the server, which has a
//! `handshake_timeout`, must end by its deadline (paused clock) and the client, resumed
//! later, must fail cleanly with a typed error. No task is left behind.
//!
//! Fixture: our client and our server over `tokio::io::duplex`, each end wrapped in a
//! [`FaultyIo`] (`tests/common/transport.rs`) with `pending_every_other_shared`: every
//! other call to any of its reads, writes and flushes (one alternation for the three)
//! wakes and returns `Pending`; shutdowns never do (a failing stream polls its transport's
//! shutdown once, best effort, and the tests check that the peer then sees EOF). It counts
//! the bytes the client writes. A current-thread runtime with a paused clock, TLS 1.2 and
//! TLS 1.3.
mod common;

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::forger::{Version, is_tls13};
use common::transport::{FaultyIo, IoStats};
use common::*;
use lazytls::{Error, HandshakeState, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

/// Polls once with a no-op waker: the drivers below poll both ends in turn, so wakeups
/// are not needed (tests/hostile_io.rs checks them).
fn poll<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Turns a driver may take before the test calls it a hang.
const MAX_TURNS: usize = 200_000;
/// The server's handshake deadline in the cancellation tests (on a paused clock).
const DEADLINE: Duration = Duration::from_secs(10);

/// A current-thread runtime with a paused clock: time moves only when every task waits,
/// so deadlines are exact and cost no wall time.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

type YStream = TlsStream<FaultyIo<DuplexStream>>;

struct CPair {
    c: YStream,
    s: YStream,
    /// The client transport's counters (bytes written).
    c_io: Arc<IoStats>,
}

/// A pipe end that yields on every other read, write or flush, counted together.
fn yielding(end: DuplexStream) -> FaultyIo<DuplexStream> {
    FaultyIo::new(end).pending_every_other_shared(true)
}

fn yielding_pair(pki: &Pki, v: Version) -> CPair {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (a, b) = (yielding(a), yielding(b));
    let c_io = a.stats();
    CPair {
        c: TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), a),
        s: TlsAcceptor::new(Arc::new(pki.server_config_with(v)))
            .handshake_timeout(DEADLINE)
            .accept(b),
        c_io,
    }
}

/// Polls `a` and `b` in turn until both are done (each is polled no more once done).
fn drive<A: Future + ?Sized, B: Future + ?Sized>(
    what: &str,
    mut a: Pin<&mut A>,
    mut b: Pin<&mut B>,
    a_out: &mut Option<A::Output>,
    b_out: &mut Option<B::Output>,
) {
    for _ in 0..MAX_TURNS {
        if a_out.is_none() {
            if let Poll::Ready(x) = poll(a.as_mut()) {
                *a_out = Some(x);
            }
        }
        if b_out.is_none() {
            if let Poll::Ready(x) = poll(b.as_mut()) {
                *b_out = Some(x);
            }
        }
        if a_out.is_some() && b_out.is_some() {
            return;
        }
    }
    panic!("{what}: not done after {MAX_TURNS} turns");
}

/// Polls `victim` `k` times (and `other` after each), then drops `victim`. Returns how
/// many polls `victim` took if it completed within them.
fn poll_then_drop<V: Future + ?Sized, O: Future + ?Sized>(
    mut victim: Pin<&mut V>,
    mut other: Pin<&mut O>,
    other_out: &mut Option<O::Output>,
    k: usize,
) -> Option<usize> {
    for i in 0..k {
        if poll(victim.as_mut()).is_ready() {
            return Some(i + 1);
        }
        if other_out.is_none() {
            if let Poll::Ready(x) = poll(other.as_mut()) {
                *other_out = Some(x);
            }
        }
    }
    None
}

/// Completes both handshakes without cancellation.
fn handshake_plain(p: &mut CPair) {
    let (mut rc, mut rs) = (None, None);
    drive(
        "handshake",
        pin!(p.c.handshake()),
        pin!(p.s.handshake()),
        &mut rc,
        &mut rs,
    );
    rc.unwrap().unwrap();
    rs.unwrap().unwrap();
}

/// One message each way, to show a stream is usable.
fn exchange(p: &mut CPair) {
    let mut got = [0u8; 4];
    let (mut w, mut r) = (None, None);
    drive(
        "exchange c->s",
        pin!(async {
            p.c.write_all(b"ping").await?;
            p.c.flush().await
        }),
        pin!(p.s.read_exact(&mut got)),
        &mut w,
        &mut r,
    );
    w.unwrap().unwrap();
    r.unwrap().unwrap();
    assert_eq!(&got, b"ping");
}

/// Polls the client's handshake on a fresh future until it ends (the server is not
/// polled: it is done or gone).
fn client_handshake_alone(c: &mut YStream) -> Result<(), Error> {
    let mut f = pin!(c.handshake());
    for _ in 0..MAX_TURNS {
        if let Poll::Ready(r) = poll(f.as_mut()) {
            return r;
        }
    }
    panic!("the client's handshake did not end");
}

#[test]
fn handshake_cancelled_at_every_poll() {
    let pki = Pki::new();
    let rt = paused_runtime();
    let _guard = rt.enter();
    for v in versions() {
        // How many polls the client's handshake takes when nothing is cancelled.
        let n = {
            let mut p = yielding_pair(&pki, v);
            let mut s_out = None;
            let mut sf = pin!(p.s.handshake());
            let n = poll_then_drop(pin!(p.c.handshake()), sf.as_mut(), &mut s_out, MAX_TURNS)
                .expect("handshake completes");
            drive("rest", pin!(async {}), sf, &mut Some(()), &mut s_out);
            s_out.unwrap().unwrap();
            n
        };
        assert!(
            n >= 4,
            "{}: only {n} polls; the yielding transport did nothing",
            vname(v)
        );
        let (mut resumed, mut timed_out, mut server_done) = (0, 0, 0);
        let mut client_done_alone = 0;
        for k in 0..n {
            // Dropped after k polls, then resumed by a fresh handshake() call.
            let mut p = yielding_pair(&pki, v);
            {
                let mut s_out = None;
                let mut sf = pin!(p.s.handshake());
                let early = poll_then_drop(pin!(p.c.handshake()), sf.as_mut(), &mut s_out, k);
                assert_eq!(early, None, "{} k={k}: done before {n} polls", vname(v));
                let mut c_out = None;
                drive(
                    "resumed handshake",
                    pin!(p.c.handshake()),
                    sf,
                    &mut c_out,
                    &mut s_out,
                );
                c_out
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{} k={k}: client {e:?}", vname(v)));
                s_out
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{} k={k}: server {e:?}", vname(v)));
            }
            assert_eq!(p.c.state(), HandshakeState::Ready);
            exchange(&mut p);
            resumed += 1;

            // Dropped after k polls and abandoned: the server ends by its deadline.
            let mut p = yielding_pair(&pki, v);
            let start = tokio::time::Instant::now();
            let server = {
                let mut s_out = None;
                let mut sf = pin!(p.s.handshake());
                poll_then_drop(pin!(p.c.handshake()), sf.as_mut(), &mut s_out, k);
                match s_out {
                    Some(r) => r,
                    None => rt.block_on(async {
                        tokio::time::timeout(3 * DEADLINE, sf)
                            .await
                            .expect("the server hung past its handshake deadline")
                    }),
                }
            };
            let waited = start.elapsed();
            assert!(
                waited <= DEADLINE + Duration::from_millis(10),
                "{} k={k}: the server waited {waited:?}",
                vname(v)
            );
            match server {
                Ok(()) => {
                    // TLS 1.2: the server may finish first; the client then completes.
                    server_done += 1;
                    client_handshake_alone(&mut p.c).unwrap();
                }
                Err(Error::HandshakeTimeout) => {
                    timed_out += 1;
                    // The server shut the transport down: the client fails cleanly, in
                    // its handshake, or (TLS 1.3, when it already had the server's whole
                    // flight and so completes by itself) on its first read.
                    let e = match client_handshake_alone(&mut p.c) {
                        Err(e) => {
                            assert!(
                                matches!(e, Error::HandshakeEof),
                                "{} k={k}: {e:?}",
                                vname(v)
                            );
                            e
                        }
                        Ok(()) => {
                            assert!(is_tls13(v), "TLS 1.2 client completed alone, k={k}");
                            client_done_alone += 1;
                            let mut r = None;
                            drive(
                                "read",
                                pin!(p.c.read(&mut [0u8; 8])),
                                pin!(async {}),
                                &mut r,
                                &mut Some(()),
                            );
                            let e = r.unwrap().unwrap_err();
                            let typed = Error::from_io(&e).expect("typed");
                            assert!(
                                matches!(typed, Error::Truncated),
                                "{} k={k}: {e:?}",
                                vname(v)
                            );
                            Error::from(e)
                        }
                    };
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                }
                Err(e) => panic!("{} k={k}: server {e:?}", vname(v)),
            }
        }
        println!(
            "{}: handshake of {n} polls; resumed {resumed}; abandoned: server timed out \
             {timed_out} (client then completed alone and failed its first read: \
             {client_done_alone}), server finished first {server_done}",
            vname(v)
        );
        assert_eq!(resumed, n);
        assert!(timed_out > 0);
    }
    // lazytls never spawns: nothing is left on the runtime.
    assert_eq!(rt.metrics().num_alive_tasks(), 0);
}

const TRANSFER: usize = 256 * 1024;

/// `f`, counting its polls in `polls`.
fn counted<'a, F: Future + ?Sized>(
    polls: &'a Cell<usize>,
    mut f: Pin<&'a mut F>,
) -> impl Future<Output = F::Output> + 'a {
    poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        f.as_mut().poll(cx)
    })
}

/// Writes `data[*off..]` and flushes; `off` survives a dropped future, and each `write`
/// call is cancel-safe, so a fresh call continues where the dropped one stopped.
async fn send_all<IO: AsyncRead + AsyncWrite + Unpin>(
    c: &mut TlsStream<IO>,
    data: &[u8],
    off: &mut usize,
) -> io::Result<()> {
    while *off < data.len() {
        let n = c.write(&data[*off..]).await?;
        assert!(n > 0);
        *off += n;
    }
    c.flush().await
}

/// Reads until `got` holds `total` bytes; `got` survives a dropped future.
async fn recv_exact<IO: AsyncRead + AsyncWrite + Unpin>(
    s: &mut TlsStream<IO>,
    got: &mut Vec<u8>,
    total: usize,
) -> io::Result<()> {
    let mut buf = [0u8; 10_000];
    while got.len() < total {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// 256 KiB client to server; the sender's future (or the receiver's) is dropped after `k`
/// polls. Returns the polls the victim took in all.
fn transfer_with_cancel(pki: &Pki, v: Version, victim_is_sender: bool, k: usize) -> usize {
    let data = pattern(TRANSFER, 7);
    let mut p = yielding_pair(pki, v);
    handshake_plain(&mut p);
    let (mut off, mut got) = (0, Vec::new());
    let polls = Cell::new(0);
    let (mut w_out, mut r_out) = (None, None);
    if victim_is_sender {
        let mut rf = pin!(recv_exact(&mut p.s, &mut got, TRANSFER));
        {
            let sf = pin!(send_all(&mut p.c, &data, &mut off));
            if poll_then_drop(pin!(counted(&polls, sf)), rf.as_mut(), &mut r_out, k).is_some() {
                return polls.get();
            }
        }
        let sf = pin!(send_all(&mut p.c, &data, &mut off));
        drive(
            "transfer",
            pin!(counted(&polls, sf)),
            rf,
            &mut w_out,
            &mut r_out,
        );
    } else {
        let mut sf = pin!(send_all(&mut p.c, &data, &mut off));
        {
            let rf = pin!(recv_exact(&mut p.s, &mut got, TRANSFER));
            if poll_then_drop(pin!(counted(&polls, rf)), sf.as_mut(), &mut w_out, k).is_some() {
                return polls.get();
            }
        }
        let rf = pin!(recv_exact(&mut p.s, &mut got, TRANSFER));
        drive(
            "transfer",
            pin!(counted(&polls, rf)),
            sf,
            &mut r_out,
            &mut w_out,
        );
    }
    w_out.unwrap().unwrap();
    r_out.unwrap().unwrap();
    assert!(
        got == data,
        "{} k={k}: bytes lost, repeated or reordered",
        vname(v)
    );
    exchange(&mut p);
    polls.get()
}

#[test]
fn transfer_cancelled_at_every_poll() {
    let pki = Pki::new();
    let rt = paused_runtime();
    let _guard = rt.enter();
    for v in versions() {
        for victim_is_sender in [true, false] {
            let n = transfer_with_cancel(&pki, v, victim_is_sender, MAX_TURNS);
            assert!(n >= 8, "{}: only {n} polls", vname(v));
            for k in 0..n {
                transfer_with_cancel(&pki, v, victim_is_sender, k);
            }
            println!(
                "{}: 256 KiB, {} dropped after each of {n} polls: all bytes once, in order",
                vname(v),
                if victim_is_sender {
                    "sender"
                } else {
                    "receiver"
                }
            );
        }
    }
}

/// The client shuts down, its `shutdown()` future dropped after `k` polls and then called
/// again; returns (polls, bytes the client wrote during shutdown).
fn shutdown_with_cancel(pki: &Pki, v: Version, k: usize) -> (usize, usize) {
    let mut p = yielding_pair(pki, v);
    handshake_plain(&mut p);
    exchange(&mut p);
    let before = p.c_io.bytes_written.load(Ordering::SeqCst);
    let polls = Cell::new(0);
    let mut end = Vec::new();
    {
        let mut r_out = None;
        let mut rf = pin!(p.s.read_to_end(&mut end));
        let mut sd_out = None;
        {
            let f = pin!(p.c.shutdown());
            if poll_then_drop(pin!(counted(&polls, f)), rf.as_mut(), &mut r_out, k).is_some() {
                sd_out = Some(Ok(()));
            }
        }
        // A fresh shutdown() after the dropped one (or nothing, if it had completed).
        if sd_out.is_none() {
            let f = pin!(p.c.shutdown());
            drive(
                "shutdown",
                pin!(counted(&polls, f)),
                rf.as_mut(),
                &mut sd_out,
                &mut r_out,
            );
        } else {
            drive(
                "peer read",
                pin!(async {}),
                rf.as_mut(),
                &mut Some(()),
                &mut r_out,
            );
        }
        sd_out.unwrap().unwrap();
        // The server reads a clean end: our close_notify.
        assert_eq!(r_out.unwrap().unwrap(), 0);
    }
    let wrote = p.c_io.bytes_written.load(Ordering::SeqCst) - before;
    // Later writes fail with a typed error, and reading still works (half-close).
    let mut w = None;
    drive(
        "write after shutdown",
        pin!(p.c.write(b"x")),
        pin!(async {}),
        &mut w,
        &mut Some(()),
    );
    let e = w.unwrap().unwrap_err();
    assert!(
        matches!(Error::from_io(&e), Some(Error::WriteAfterShutdown)),
        "{e:?}"
    );
    let mut got = Vec::new();
    let (mut a, mut b) = (None, None);
    drive(
        "half-close",
        pin!(async {
            p.s.write_all(b"late").await?;
            p.s.shutdown().await
        }),
        pin!(p.c.read_to_end(&mut got)),
        &mut a,
        &mut b,
    );
    a.unwrap().unwrap();
    b.unwrap().unwrap();
    assert_eq!(got, b"late");
    (polls.get(), wrote)
}

#[test]
fn shutdown_cancelled_at_every_poll() {
    let pki = Pki::new();
    let rt = paused_runtime();
    let _guard = rt.enter();
    for v in versions() {
        let (n, wire) = shutdown_with_cancel(&pki, v, MAX_TURNS);
        assert!(n >= 3, "{}: only {n} polls", vname(v));
        for k in 0..n {
            let (_, wrote) = shutdown_with_cancel(&pki, v, k);
            assert_eq!(
                wrote,
                wire,
                "{} k={k}: shutdown wrote {wrote} bytes, not one close_notify ({wire})",
                vname(v)
            );
        }
        println!(
            "{}: shutdown dropped after each of {n} polls: one close_notify ({wire} bytes)",
            vname(v)
        );
    }
}
