//! Hostile transports: an in-memory duplex wrapped in [`FaultyIo`]
//! (`tests/common/transport.rs`) that returns `Pending` every other call (and wakes the
//! waker), reads and writes one byte at a time, returns `Ok(0)` from a write, or fails.
//! Every handshake and 1 MiB transfer runs on a small executor that polls a task only after
//! its waker fired, so a lost wakeup is detected at once, and the number of polls is
//! bounded, so a busy loop fails the test.
mod common;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use common::transport::{Faults, FaultyIo, IoStats};
use common::*;
use lazytls::rustls::SupportedProtocolVersion;
use lazytls::{Error, HandshakeState, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

type Version = &'static [&'static SupportedProtocolVersion];

// ---------------------------------------------------------------------------------------
// How the transports misbehave
// ---------------------------------------------------------------------------------------

/// How both ends' transports misbehave in one case: the knobs of [`FaultyIo`] this suite
/// turns.
#[derive(Debug, Clone, Copy)]
struct Hostility {
    /// Every other call to each of poll_read, poll_write and poll_flush returns `Pending`
    /// (after waking the waker, as a well-behaved transport that is "not ready yet" would).
    pending_every_other: bool,
    /// At most this many bytes per read (0: no limit).
    max_read: usize,
    /// At most this many bytes per write (0: no limit).
    max_write: usize,
}

const PLAIN: Hostility = Hostility {
    pending_every_other: false,
    max_read: 0,
    max_write: 0,
};

impl Hostility {
    fn wrap(self, inner: DuplexStream) -> FaultyIo<DuplexStream> {
        FaultyIo::new(inner)
            .pending_every_other(self.pending_every_other)
            .max_read(self.max_read)
            .max_write(self.max_write)
    }
}

// ---------------------------------------------------------------------------------------
// A two-task executor that polls only woken tasks and counts everything
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct WakeFlag {
    woken: AtomicBool,
    wakes: AtomicUsize,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.woken.store(true, Ordering::Release);
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct RunStats {
    polls: usize,
    wakes: usize,
}

/// Runs `a` and `b` to completion on this thread. A task is polled only when its waker
/// fired, so a `Pending` without a registered waker stops the run with a "lost wakeup"
/// error instead of a hang. More than `max_polls` polls in all is reported as a busy loop,
/// and `guard` (asked every 256 turns) can stop a run that is going wrong.
fn try_run2<A: Future, B: Future>(
    what: &str,
    max_polls: usize,
    guard: impl Fn() -> Result<(), String>,
    a: A,
    b: B,
) -> Result<(A::Output, B::Output, RunStats), String> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (fa, fb) = (Arc::new(WakeFlag::default()), Arc::new(WakeFlag::default()));
    fa.woken.store(true, Ordering::Relaxed);
    fb.woken.store(true, Ordering::Relaxed);
    let (wa, wb) = (Waker::from(fa.clone()), Waker::from(fb.clone()));
    let (mut out_a, mut out_b) = (None, None);
    let mut polls = 0;
    let mut turns = 0u64;
    while out_a.is_none() || out_b.is_none() {
        turns += 1;
        let mut polled = false;
        if out_a.is_none() && fa.woken.swap(false, Ordering::AcqRel) {
            polled = true;
            polls += 1;
            if let Poll::Ready(x) = a.as_mut().poll(&mut Context::from_waker(&wa)) {
                out_a = Some(x);
            }
        }
        if out_b.is_none() && fb.woken.swap(false, Ordering::AcqRel) {
            polled = true;
            polls += 1;
            if let Poll::Ready(x) = b.as_mut().poll(&mut Context::from_waker(&wb)) {
                out_b = Some(x);
            }
        }
        if !polled {
            return Err(format!(
                "{what}: lost wakeup: every unfinished task is pending and none was woken \
                 (after {polls} polls)"
            ));
        }
        if polls > max_polls {
            return Err(format!(
                "{what}: more than {max_polls} polls: busy loop or runaway record expansion"
            ));
        }
        if turns % 256 == 0 {
            guard()?;
        }
    }
    let stats = RunStats {
        polls,
        wakes: fa.wakes.load(Ordering::Relaxed) + fb.wakes.load(Ordering::Relaxed),
    };
    Ok((out_a.unwrap(), out_b.unwrap(), stats))
}

fn run2<A: Future, B: Future>(
    what: &str,
    max_polls: usize,
    a: A,
    b: B,
) -> (A::Output, B::Output, RunStats) {
    try_run2(what, max_polls, || Ok(()), a, b).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one future alone under the same rules.
fn run1<A: Future>(what: &str, max_polls: usize, a: A) -> (A::Output, RunStats) {
    let (out, (), stats) = run2(what, max_polls, a, async {});
    (out, stats)
}

// ---------------------------------------------------------------------------------------
// Pairs over hostile transports
// ---------------------------------------------------------------------------------------

struct Pair {
    c: TlsStream<FaultyIo<DuplexStream>>,
    s: TlsStream<FaultyIo<DuplexStream>>,
    c_faults: Arc<Faults>,
    s_faults: Arc<Faults>,
    c_stats: Arc<IoStats>,
    s_stats: Arc<IoStats>,
}

fn hostile_pair(pki: &Pki, v: Version, client: Hostility, server: Hostility) -> Pair {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (a, b) = (client.wrap(a), server.wrap(b));
    let (c_faults, s_faults) = (a.faults(), b.faults());
    let (c_stats, s_stats) = (a.stats(), b.stats());
    Pair {
        c: TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), a),
        s: TlsAcceptor::new(Arc::new(pki.server_config_with(v))).accept(b),
        c_faults,
        s_faults,
        c_stats,
        s_stats,
    }
}

/// The smallest unit a transport moves per call.
fn unit(h: Hostility) -> usize {
    [h.max_read, h.max_write]
        .into_iter()
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(16 * 1024)
}

/// A generous poll budget for moving `bytes` over transports that move `unit` bytes per
/// call: a handful of polls per transport call, plus a constant for the handshake.
fn budget(bytes: usize, unit: usize) -> usize {
    8 * (bytes / unit + 1) + 4_000
}

const HOSTILITIES: [(&str, Hostility); 4] = [
    (
        "pending every other call",
        Hostility {
            pending_every_other: true,
            max_read: 0,
            max_write: 0,
        },
    ),
    (
        "1-byte reads and writes",
        Hostility {
            pending_every_other: false,
            max_read: 1,
            max_write: 1,
        },
    ),
    (
        "1-byte and pending",
        Hostility {
            pending_every_other: true,
            max_read: 1,
            max_write: 1,
        },
    ),
    (
        "7-byte reads, 3-byte writes, pending",
        Hostility {
            pending_every_other: true,
            max_read: 7,
            max_write: 3,
        },
    ),
];

const TRANSFER: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Handshakes and transfers finish within a bounded number of polls
// ---------------------------------------------------------------------------------------

#[test]
fn handshake_over_hostile_io_is_bounded() {
    let pki = Pki::new();
    for v in versions() {
        for (label, how) in HOSTILITIES {
            let mut p = hostile_pair(&pki, v, how, how);
            let what = format!("{} handshake, {label}", vname(v));
            let (rc, rs, stats) = run2(
                &what,
                budget(16 * 1024, unit(how)),
                p.c.handshake(),
                p.s.handshake(),
            );
            rc.unwrap_or_else(|e| panic!("{what}: client: {e}"));
            rs.unwrap_or_else(|e| panic!("{what}: server: {e}"));
            assert_eq!(p.c.state(), HandshakeState::Ready);
            assert_eq!(p.s.state(), HandshakeState::Ready);
            let wire = p.c_stats.bytes_written.load(Ordering::Relaxed)
                + p.s_stats.bytes_written.load(Ordering::Relaxed);
            println!(
                "{what}: {} polls, {} wakes, {wire} bytes on the wire, {} injected pendings",
                stats.polls,
                stats.wakes,
                p.c_stats.injected_pending.load(Ordering::Relaxed)
                    + p.s_stats.injected_pending.load(Ordering::Relaxed),
            );
        }
    }
}

/// One side writes `TRANSFER` bytes and closes; the other reads to the clean end. Returns
/// an error when the run needs too many polls or puts too many bytes on the wire.
fn transfer(
    pki: &Pki,
    v: Version,
    label: &str,
    how: Hostility,
    client_writes: bool,
) -> Result<(), String> {
    let mut p = hostile_pair(pki, v, how, how);
    let data = pattern(TRANSFER, 42);
    let what = format!(
        "{} {} 1 MiB, {label}",
        vname(v),
        if client_writes {
            "client->server"
        } else {
            "server->client"
        }
    );
    let (writer, reader) = if client_writes {
        (&mut p.c, &mut p.s)
    } else {
        (&mut p.s, &mut p.c)
    };
    // The wire carries the data, the handshake and one record header and tag per record
    // (under 1 % for full records); allow 10 %.
    let wire_budget = TRANSFER + TRANSFER / 10 + 16 * 1024;
    let (c_stats, s_stats) = (p.c_stats.clone(), p.s_stats.clone());
    let wire = move || {
        c_stats.bytes_written.load(Ordering::Relaxed)
            + s_stats.bytes_written.load(Ordering::Relaxed)
    };
    let delivered = AtomicUsize::new(0);
    let guard = || match wire() {
        n if n > wire_budget => Err(format!(
            "{what}: {n} bytes on the wire after only {} of {TRANSFER} bytes were delivered: \
             the writer makes tiny records",
            delivered.load(Ordering::Relaxed)
        )),
        _ => Ok(()),
    };
    let (wrote, read, stats) = try_run2(
        &what,
        budget(wire_budget, unit(how)),
        guard,
        async {
            // Lazy: the first write drives the handshake.
            writer.write_all(&data).await?;
            writer.flush().await?;
            writer.shutdown().await
        },
        async {
            let mut got = Vec::with_capacity(TRANSFER);
            let mut buf = vec![0u8; 8192];
            loop {
                match reader.read(&mut buf).await? {
                    0 => return Ok::<_, io::Error>(got),
                    n => got.extend_from_slice(&buf[..n]),
                }
                delivered.store(got.len(), Ordering::Relaxed);
            }
        },
    )?;
    wrote.unwrap_or_else(|e| panic!("{what}: writer: {e}"));
    let got = read.unwrap_or_else(|e| panic!("{what}: reader: {e}"));
    assert!(got == data, "{what}: data corrupted ({} bytes)", got.len());
    let calls = p.c_stats.read_calls.load(Ordering::Relaxed)
        + p.c_stats.write_calls.load(Ordering::Relaxed)
        + p.s_stats.read_calls.load(Ordering::Relaxed)
        + p.s_stats.write_calls.load(Ordering::Relaxed);
    let wire = wire();
    println!(
        "{what}: {} polls, {} wakes, {calls} transport calls, {wire} bytes on the wire",
        stats.polls, stats.wakes
    );
    if wire > wire_budget {
        return Err(format!(
            "{what}: {wire} bytes on the wire for {TRANSFER} bytes of data: tiny records"
        ));
    }
    Ok(())
}

/// Runs every hostility on both versions and reports all failures together.
fn transfers(client_writes: bool, cases: &[(&str, Hostility)]) {
    let pki = Pki::new();
    let mut failures = Vec::new();
    for v in versions() {
        for &(label, how) in cases {
            if let Err(e) = transfer(&pki, v, label, how, client_writes) {
                println!("FAILED: {e}");
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn transfer_client_to_server_over_hostile_io_is_bounded() {
    transfers(true, &HOSTILITIES);
}

#[test]
fn transfer_server_to_client_over_hostile_io_is_bounded() {
    transfers(false, &HOSTILITIES);
}

/// The same on a plain duplex, as the baseline the budgets above are measured against.
#[test]
fn transfer_over_plain_duplex_is_bounded() {
    transfers(true, &[("plain duplex", PLAIN)]);
    transfers(false, &[("plain duplex", PLAIN)]);
}

// ---------------------------------------------------------------------------------------
// Writes that return 0, and I/O errors
// ---------------------------------------------------------------------------------------

fn assert_io_kind(e: &io::Error, kind: io::ErrorKind) {
    assert_eq!(e.kind(), kind, "{e:?}");
    match Error::from_io(e) {
        Some(Error::Io(inner)) => assert_eq!(inner.kind(), kind),
        other => panic!("expected a typed Error::Io inside, got {other:?}"),
    }
}

#[test]
fn write_zero_during_handshake_is_write_zero() {
    let pki = Pki::new();
    for v in versions() {
        let p = hostile_pair(&pki, v, PLAIN, PLAIN);
        let (mut c, mut s) = (p.c, p.s);
        p.c_faults.write_zero.store(true, Ordering::Relaxed);
        let (r, _) = run1("client handshake", 100, c.handshake());
        let e = r.expect_err("a transport that takes no bytes completed a handshake");
        assert!(
            matches!(&e, Error::Io(i) if i.kind() == io::ErrorKind::WriteZero),
            "{e:?}"
        );
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
        assert_eq!(c.state(), HandshakeState::Failed);
        // Sticky, through the trait methods too.
        let (r, _) = run1("write", 100, c.write(b"x"));
        assert_io_kind(&r.unwrap_err(), io::ErrorKind::WriteZero);
        let (r, _) = run1("read", 100, c.read(&mut [0u8; 4]));
        assert_io_kind(&r.unwrap_err(), io::ErrorKind::WriteZero);
        // The server, whose transport is fine, gets no ClientHello and waits; it is not
        // hung by the client's failure beyond that: dropping the client ends it.
        drop(c);
        let (r, _) = run1("server", 100, s.handshake());
        assert!(matches!(r, Err(Error::HandshakeEof)), "{r:?}");
        let _ = p.s_faults;
    }
}

#[test]
fn write_zero_after_handshake_is_write_zero() {
    let pki = Pki::new();
    for v in versions() {
        let mut p = hostile_pair(&pki, v, PLAIN, PLAIN);
        let (rc, rs, _) = run2("handshake", 1_000, p.c.handshake(), p.s.handshake());
        rc.unwrap();
        rs.unwrap();
        p.c_faults.write_zero.store(true, Ordering::Relaxed);
        let data = pattern(100_000, 3);
        let (r, stats) = run1("write", 1_000, async {
            p.c.write_all(&data).await?;
            p.c.flush().await
        });
        let e = r.expect_err("write_all succeeded over a transport that takes nothing");
        assert_io_kind(&e, io::ErrorKind::WriteZero);
        println!("{}: WriteZero after {} polls", vname(v), stats.polls);
        // Still WriteZero on later calls, even with the transport healthy again.
        p.c_faults.write_zero.store(false, Ordering::Relaxed);
        let (r, _) = run1("write again", 100, p.c.write(b"x"));
        assert_io_kind(&r.unwrap_err(), io::ErrorKind::WriteZero);
    }
}

#[test]
fn io_errors_during_handshake_are_sticky() {
    let pki = Pki::new();
    for v in versions() {
        // The server's transport fails on read.
        let p = hostile_pair(&pki, v, PLAIN, PLAIN);
        let (mut c, mut s) = (p.c, p.s);
        p.s_faults.read_error.store(true, Ordering::Relaxed);
        let (rc, rs, _) = run2("handshakes", 1_000, c.handshake(), async {
            let r = s.handshake().await;
            // Let the client see the end rather than wait for a server that gave up.
            let _ = s.get_mut().get_mut().shutdown().await;
            r
        });
        let e = rs.expect_err("server handshake survived a failing transport");
        assert!(
            matches!(&e, Error::Io(i) if i.kind() == io::ErrorKind::ConnectionReset),
            "{e:?}"
        );
        p.s_faults.read_error.store(false, Ordering::Relaxed);
        let (r, _) = run1("server read", 100, s.read(&mut [0u8; 4]));
        let again = r.unwrap_err();
        assert_io_kind(&again, io::ErrorKind::ConnectionReset);
        assert_eq!(
            again.to_string(),
            e.to_string(),
            "the sticky message changed"
        );
        assert!(matches!(rc, Err(Error::HandshakeEof)), "client: {rc:?}");

        // The client's transport fails on write.
        let p = hostile_pair(&pki, v, PLAIN, PLAIN);
        let mut c = p.c;
        p.c_faults.write_error.store(true, Ordering::Relaxed);
        let (r, _) = run1("client handshake", 100, c.handshake());
        let e = r.unwrap_err();
        assert!(
            matches!(&e, Error::Io(i) if i.kind() == io::ErrorKind::BrokenPipe),
            "{e:?}"
        );
        p.c_faults.write_error.store(false, Ordering::Relaxed);
        let (r, _) = run1("client write", 100, c.write(b"x"));
        assert_io_kind(&r.unwrap_err(), io::ErrorKind::BrokenPipe);
        assert_eq!(c.state(), HandshakeState::Failed);
    }
}

#[test]
fn io_errors_after_handshake_keep_delivered_data() {
    let pki = Pki::new();
    for v in versions() {
        let mut p = hostile_pair(&pki, v, PLAIN, PLAIN);
        let (rc, rs, _) = run2("handshake", 1_000, p.c.handshake(), p.s.handshake());
        rc.unwrap();
        rs.unwrap();
        // Data arrives, then the transport fails on read: the data is delivered first.
        let data = pattern(30_000, 8);
        let (w, _) = run1("server write", 1_000, async {
            p.s.write_all(&data).await?;
            p.s.flush().await
        });
        w.unwrap();
        let mut got = vec![0u8; data.len()];
        let (r, _) = run1("client read", 1_000, p.c.read_exact(&mut got));
        r.unwrap();
        assert_eq!(got, data);
        p.c_faults.read_error.store(true, Ordering::Relaxed);
        let (r, _) = run1("client read error", 100, p.c.read(&mut [0u8; 16]));
        assert_io_kind(&r.unwrap_err(), io::ErrorKind::ConnectionReset);
        // Write errors surface with their kind.
        p.s_faults.write_error.store(true, Ordering::Relaxed);
        let (r, _) = run1("server write error", 100, async {
            p.s.write_all(&data).await?;
            p.s.flush().await
        });
        assert_io_kind(&r.unwrap_err(), io::ErrorKind::BrokenPipe);
    }
}
