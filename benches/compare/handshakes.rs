//! Handshakes per second (section `handshakes`): full and resumed TLS 1.3 handshakes over
//! fresh duplex pairs and fresh loopback TCP connections on one task, with the
//! allocations per op.

use std::time::{Duration, Instant};

use lazytls::rustls::HandshakeKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use crate::setup::{LazyEnds, connect_on, lazy_ends, lazy_pair_with, tokio_pair};
use crate::support::{Configs, Figure, Kx, Pki, Version, columns};
use crate::{
    Env, Flavor, Lib, N_LIBS, Plan, SMALL_DUPLEX_BUF, Samples, Transport, figure_pair, run, three,
};

/// One handshake sample: ops per second, how many resumed, allocations per op.
struct HsSample {
    per_sec: f64,
    resumed: usize,
    count: usize,
    allocs: Option<f64>,
    bytes: Option<f64>,
}

/// Handshakes over fresh connections of `transport` for `budget`, on one task (one core).
/// Each op: a new pipe (or a new loopback TCP connection, accepted by one listener), both
/// handshakes, the server writes one byte and the client reads it (which also makes the
/// client take the server's session tickets).
async fn handshake_loop(
    env: Env,
    lib: Lib,
    cfg: &Configs,
    transport: Transport,
    budget: Duration,
) -> Result<HsSample, String> {
    // `LAZYTLS_BENCH_HS_OPS=N` makes every sample exactly N ops, for heap profiles that
    // compare allocation sites per handshake.
    let fixed_ops = std::env::var("LAZYTLS_BENCH_HS_OPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let (max_ops, budget) = match fixed_ops {
        Some(n) => (n.max(1), Duration::MAX),
        None => (1_000_000, budget),
    };
    let mut one = [0u8; 1];
    let mut resumed = 0;
    let mut count = 0;
    // Made once, as a client or server makes them; tokio-rustls's are an `Arc` each.
    let lazy = lazy_ends(lib, cfg);
    let listener = match transport {
        Transport::Tcp => Some(
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("bind: {e}"))?,
        ),
        Transport::Duplex => None,
    };
    let mark = env.counter.mark();
    let t0 = Instant::now();
    while count < max_ops && (count == 0 || t0.elapsed() < budget) {
        let was_resumed = match &listener {
            None => {
                let (a, b) = tokio::io::duplex(SMALL_DUPLEX_BUF);
                one_op(lazy.as_ref(), cfg, a, b, &mut one).await?
            }
            Some(listener) => {
                let (a, b) = connect_on(listener).await?;
                one_op(lazy.as_ref(), cfg, a, b, &mut one).await?
            }
        };
        resumed += usize::from(was_resumed);
        count += 1;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let d = env.counter.since(mark);
    Ok(HsSample {
        per_sec: count as f64 / elapsed,
        resumed,
        count,
        allocs: d.map(|d| d.allocs as f64 / count as f64),
        bytes: d.map(|d| d.bytes as f64 / count as f64),
    })
}

/// One handshake op over `a`/`b`: lazytls with `lazy`'s connector and acceptor, or
/// tokio-rustls. Returns whether the session was resumed.
async fn one_op<IO>(
    lazy: Option<&LazyEnds>,
    cfg: &Configs,
    a: IO,
    b: IO,
    one: &mut [u8; 1],
) -> Result<bool, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    Ok(match lazy {
        Some((connector, acceptor, layer)) => {
            let (mut c, mut s) = lazy_pair_with(connector, acceptor, *layer, a, b).await?;
            ping_one(&mut c, &mut s, one).await?;
            c.info().is_some_and(|i| i.resumed)
        }
        None => {
            let (mut c, mut s) = tokio_pair(cfg, a, b).await?;
            ping_one(&mut c, &mut s, one).await?;
            c.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed)
        }
    })
}

async fn ping_one<C, S>(c: &mut C, s: &mut S, one: &mut [u8; 1]) -> Result<(), String>
where
    C: AsyncRead + Unpin,
    S: AsyncWrite + Unpin,
{
    s.write_all(b"x").await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    c.read_exact(one).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The handshake table: full and resumed, X25519 and the default key exchange.
pub(crate) fn handshakes(plan: &Plan, pki: &Pki, env: Env, figures: &mut Vec<Figure>) {
    let rt = Flavor::CurrentThread.runtime();
    println!();
    println!(
        "## Handshakes per second, one task on current_thread, TLS 1.3, ECDSA P-256; median of {}",
        plan.reps
    );
    println!(
        "## allocs/op and bytes/op: lazytls / lz-rustls / tokio-rustls (each op: new pipe or TCP connection, handshake, 1-byte read)"
    );
    println!(
        "{:<23} {:>8} {:>9} {:>8} {:>6} {:>7} {:>17} {:>23} {:>9}",
        "kind",
        "lazytls",
        "lz-rustls",
        "tokio-r",
        "ratio",
        "r-ratio",
        "allocs/op",
        "bytes/op",
        "resumed"
    );
    let kinds = [
        (Transport::Duplex, Kx::X25519),
        (Transport::Duplex, Kx::Default),
        (Transport::Tcp, Kx::Default),
    ];
    let mut floor_kinds = Vec::new();
    for resumption in [false, true] {
        for (transport, kx) in kinds {
            // Separate configurations per implementation, so none uses another's tickets.
            let cfgs: Vec<Configs> = Lib::ALL
                .iter()
                .map(|_| pki.configs(Version::Tls13, kx, resumption))
                .collect();
            let kind = format!(
                "{}{}/{}",
                if transport == Transport::Tcp {
                    "tcp/"
                } else {
                    ""
                },
                if resumption { "resumed" } else { "full" },
                if kx == Kx::X25519 {
                    "x25519"
                } else {
                    "default_kx"
                }
            );
            let row = measure_kind(plan, env, &rt, &cfgs, transport, &kind);
            report_kind(&kind, row, figures);
            floor_kinds.push((kind, kx, resumption));
        }
    }
    let floor_kinds: Vec<_> = (floor_kinds.iter())
        .map(|(kind, kx, resumed)| (kind.as_str(), *kx, *resumed))
        .collect();
    crate::handshake_floor::handshake_floor(plan, pki, figures, &floor_kinds);
}

/// The samples of one kind of handshake, per implementation.
struct HsRow {
    per_sec: Samples,
    allocs: Samples,
    bytes: Samples,
    /// Resumed ops and all ops.
    resumed: [(usize, usize); N_LIBS],
}

/// A warm-up, then `plan.reps` interleaved samples per implementation, each on its own
/// configuration in `cfgs`.
fn measure_kind(
    plan: &Plan,
    env: Env,
    rt: &Runtime,
    cfgs: &[Configs],
    transport: Transport,
    kind: &str,
) -> HsRow {
    // Warm-up, which also seeds the ticket caches for the resumed case.
    for lib in Lib::order(0) {
        run(
            rt,
            "handshake warm-up",
            handshake_loop(
                env,
                lib,
                &cfgs[lib.index()],
                transport,
                Duration::from_millis(10),
            ),
        );
    }
    let mut row = HsRow {
        per_sec: Default::default(),
        allocs: Default::default(),
        bytes: Default::default(),
        resumed: [(0, 0); N_LIBS],
    };
    for rep in 0..plan.reps {
        for lib in Lib::order(rep) {
            let i = lib.index();
            let what = format!("handshakes {kind} {}", lib.name());
            let Some(s) = run(
                rt,
                &what,
                handshake_loop(env, lib, &cfgs[i], transport, plan.handshake_budget),
            ) else {
                continue;
            };
            row.per_sec[i].push(s.per_sec);
            row.allocs[i].extend(s.allocs);
            row.bytes[i].extend(s.bytes);
            row.resumed[i].0 += s.resumed;
            row.resumed[i].1 += s.count;
        }
    }
    row
}

/// One kind's line of the table, and its figures.
fn report_kind(kind: &str, row: HsRow, figures: &mut Vec<Figure>) {
    let HsRow {
        per_sec,
        allocs,
        bytes,
        resumed,
    } = row;
    let [n, r] = figure_pair(
        &format!("handshakes_per_sec/{kind}"),
        "handshakes/s",
        &per_sec,
    );
    // Whether every op resumed (or none did), per implementation.
    let all_resumed = resumed
        .iter()
        .map(|&(r, n)| match (r, n) {
            (_, 0) => "n/a",
            (0, _) => "none",
            (r, n) if r == n => "all",
            _ => "some",
        })
        .collect::<Vec<_>>()
        .join("/");
    println!(
        "{:<23} {} {:>17} {:>23} {:>9}",
        kind,
        columns(&n, &r),
        three(&allocs),
        three(&bytes),
        all_resumed,
    );
    figures.extend([n, r]);
    figures.extend(figure_pair(
        &format!("allocs_per_handshake_op/{kind}"),
        "allocs",
        &allocs,
    ));
    figures.extend(figure_pair(
        &format!("bytes_allocated_per_handshake_op/{kind}"),
        "bytes",
        &bytes,
    ));
}
