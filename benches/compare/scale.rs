//! Many connections at once (section `scale`), over loopback TCP:
//!
//! - idle pairs: `N` client+server pairs open at once after 16 KiB each way, each end
//!   waiting in a read or held with no read pending; RSS and live heap per pair. Each sample runs in a child process of
//!   its own (this bench run again with [`CHILD_VAR`]), so that no contender inherits
//!   another's freed heap in its RSS; the child raises its soft `RLIMIT_NOFILE` to the
//!   hard limit (`prlimit`), as 8,000 pairs are 16,000 sockets;
//! - concurrent streams: [`STREAMS`] connections streaming one way at once on the
//!   multi_thread runtime; aggregate MB/s and process CPU time per GB.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use crate::memory::{Idle, Pair};
use crate::setup::{Task, connect_on, lazy_ends, lazy_pair_with, tcp_pair, tokio_pair};
use crate::support::{self, Configs, Figure, Kx, Pki, Version, columns};
use crate::throughput::write_n;
use crate::{CHUNK, Env, Flavor, Lib, MIB, Plan, Samples, figure_pair, run};

/// Set in a child process that measures one idle-pairs sample: `<lib>:<pairs>`.
pub(crate) const CHILD_VAR: &str = "LAZYTLS_BENCH_SCALE_CHILD";
/// Bytes each way before the pairs go idle.
const EXCHANGE: usize = 16 * 1024;
/// Connections streaming at once.
const STREAMS: usize = 64;

/// Runs the idle-pairs sample this process was started for, if it was, prints its result
/// line and exits.
pub(crate) fn child_main(env: Env) {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let result = child_sample(env, &spec);
    match result {
        Ok((rss, heap)) => {
            let heap = heap.map_or_else(|| "n/a".to_string(), |h| h.to_string());
            println!("SCALE {rss} {heap}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("compare: scale child {spec}: {e}");
            std::process::exit(1);
        }
    }
}

/// RSS and live heap per idle pair, bytes, for `<lib>:<pairs>:<idle pattern>`.
fn child_sample(env: Env, spec: &str) -> Result<(i64, Option<i64>), String> {
    let mut fields = spec.split(':');
    let (Some(name), Some(pairs), Some(idle)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("bad spec".into());
    };
    let lib = (Lib::ALL.into_iter().find(|l| l.name() == name)).ok_or("unknown contender")?;
    let pairs: usize = pairs.parse().map_err(|_| "bad pair count")?;
    let idle = (Idle::ALL.into_iter().find(|i| i.name() == idle)).ok_or("unknown pattern")?;
    raise_nofile()?;
    let pki = Pki::new();
    let cfg = pki.configs(Version::Tls13, Kx::Default, false);
    let rt = Flavor::CurrentThread.runtime();
    rt.block_on(idle_pairs(env, lib, &cfg, pairs, idle))
}

/// Sets this process's soft limit on open files to its hard limit.
fn raise_nofile() -> Result<(), String> {
    let pid = std::process::id().to_string();
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=unlimited:"])
        .output();
    // `unlimited` for the soft value means "as high as the hard limit" only on some
    // versions; fall back to reading the hard limit.
    if out.as_ref().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    let hard = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--noheadings",
            "--raw",
            "--output=HARD",
        ])
        .output()
        .map_err(|e| format!("prlimit: {e}"))?;
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
    let set = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:")])
        .output()
        .map_err(|e| format!("prlimit: {e}"))?;
    match set.status.success() {
        true => Ok(()),
        false => Err(format!(
            "prlimit --nofile={hard}: {}",
            String::from_utf8_lossy(&set.stderr).trim()
        )),
    }
}

/// This process's resident set, bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> Result<i64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .ok_or("no VmRSS")?;
    Ok(kib * 1024)
}

/// `n` connected loopback TCP pairs on one listener, Nagle off.
async fn tcp_pairs(n: usize) -> Result<Vec<(TcpStream, TcpStream)>, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let pair = connect_on(&listener).await;
        pairs.push(pair.map_err(|e| format!("connection {i} of {n}: {e}"))?);
    }
    Ok(pairs)
}

/// `pairs` TCP pairs first (so that only TLS counts), then a handshake and 16 KiB each
/// way on each, every end left as `idle` says: RSS and live heap per pair.
async fn idle_pairs(
    env: Env,
    lib: Lib,
    cfg: &Configs,
    pairs: usize,
    idle: Idle,
) -> Result<(i64, Option<i64>), String> {
    let tcp = tcp_pairs(pairs).await?;
    let lazy = lazy_ends(lib, cfg);
    let out = vec![0x5a; EXCHANGE];
    let (mut cin, mut sin) = (vec![0; EXCHANGE], vec![0; EXCHANGE]);
    let mut open = Vec::with_capacity(pairs);
    let rss_before = rss()?;
    let mark = env.counter.mark();
    for (a, b) in tcp {
        let mut pair = Pair::open(lazy.as_ref(), cfg, a, b).await?;
        pair.exchange_and_idle(&out, &mut cin, &mut sin, idle)
            .await?;
        open.push(pair);
    }
    let heap = env.counter.since(mark).map(|d| d.live / pairs as i64);
    let rss_per_pair = (rss()? - rss_before) / pairs as i64;
    drop(open);
    Ok((rss_per_pair, heap))
}

/// One idle-pairs sample in a child process: RSS and live heap per pair.
fn spawn_child(lib: Lib, pairs: usize, idle: Idle) -> Result<(f64, Option<f64>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .arg("--bench")
        .env(CHILD_VAR, format!("{}:{pairs}:{}", lib.name(), idle.name()))
        .output()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = (stdout.lines().find_map(|l| l.strip_prefix("SCALE "))).ok_or_else(|| {
        format!(
            "no result ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let mut fields = line.split(' ');
    let rss = fields
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or("bad rss")?;
    let heap = fields.next().and_then(|v| v.parse().ok());
    Ok((rss, heap))
}

/// The idle-pairs table, for each way of leaving a connection idle.
fn idle_table(plan: &Plan, figures: &mut Vec<Figure>) {
    println!();
    println!(
        "## Idle pairs over loopback TCP (TLS 1.3, after 16 KiB each way, every end waiting in a read or held with no read pending): per pair, bytes; one child process per sample, median of {}",
        plan.scale_reps
    );
    println!(
        "{:<6} {:<16} {:<9} {:>8} {:>9} {:>8} {:>6} {:>7}",
        "pairs", "idle", "measure", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio"
    );
    for &pairs in &plan.scale_pairs {
        for idle in Idle::ALL {
            let mut rss: Samples = Default::default();
            let mut heap: Samples = Default::default();
            for rep in 0..plan.scale_reps {
                for lib in Lib::order(rep) {
                    match spawn_child(lib, pairs, idle) {
                        Ok((r, h)) => {
                            rss[lib.index()].push(r);
                            heap[lib.index()].extend(h);
                        }
                        Err(e) => {
                            eprintln!(
                                "compare: idle pairs {pairs} {} {}: {e}",
                                lib.name(),
                                idle.name()
                            );
                        }
                    }
                }
            }
            for (measure, samples) in [("rss", &rss), ("heap", &heap)] {
                // The waiting pattern keeps its earlier figure names.
                let name = match idle {
                    Idle::Waiting => format!("idle_{measure}_per_pair/{pairs}"),
                    Idle::Held => format!("idle_{measure}_per_pair/{pairs}/{}", idle.name()),
                };
                let [n, r] = figure_pair(&name, "bytes", samples);
                println!(
                    "{:<6} {:<16} {:<9} {}",
                    pairs,
                    idle.name(),
                    measure,
                    columns(&n, &r)
                );
                figures.extend([n, r]);
            }
        }
    }
}

/// [`STREAMS`] connections of `lib`, each moving `per_stream` bytes one way at once:
/// wall seconds and process CPU seconds.
async fn streams_sample(lib: Lib, cfg: &Configs, per_stream: usize) -> Result<(f64, f64), String> {
    let mut senders = Vec::with_capacity(STREAMS);
    let mut receivers = Vec::with_capacity(STREAMS);
    let lazy = lazy_ends(lib, cfg);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2 * STREAMS + 1));
    for _ in 0..STREAMS {
        let (a, b) = tcp_pair().await?;
        let barrier = (barrier.clone(), barrier.clone());
        match &lazy {
            Some((connector, acceptor, layer)) => {
                let (c, s) = lazy_pair_with(connector, acceptor, *layer, a, b).await?;
                senders.push(Task(tokio::spawn(send(c, barrier.0, per_stream))));
                receivers.push(Task(tokio::spawn(recv(s, barrier.1, per_stream))));
            }
            None => {
                let (c, s) = tokio_pair(cfg, a, b).await?;
                senders.push(Task(tokio::spawn(send(c, barrier.0, per_stream))));
                receivers.push(Task(tokio::spawn(recv(s, barrier.1, per_stream))));
            }
        }
    }
    let cpu0 = support::cpu_time().ok_or("no CPU time")?;
    let t0 = Instant::now();
    barrier.wait().await;
    for task in senders.into_iter().chain(receivers) {
        task.join().await??;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (support::cpu_time().ok_or("no CPU time")? - cpu0).as_secs_f64();
    Ok((wall, cpu))
}

async fn send<W: AsyncWrite + Unpin>(
    mut w: W,
    barrier: std::sync::Arc<tokio::sync::Barrier>,
    size: usize,
) -> Result<(), String> {
    barrier.wait().await;
    write_n(&mut w, size)
        .await
        .map_err(|e| format!("write: {e}"))
}

async fn recv<R: AsyncRead + Unpin>(
    mut r: R,
    barrier: std::sync::Arc<tokio::sync::Barrier>,
    size: usize,
) -> Result<(), String> {
    let mut buf = vec![0u8; CHUNK];
    barrier.wait().await;
    let mut left = size;
    while left > 0 {
        match r.read(&mut buf[..left.min(CHUNK)]).await {
            Ok(0) => return Err("early EOF".into()),
            Ok(n) => left -= n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(())
}

/// The concurrent-streams table.
fn streams_table(plan: &Plan, pki: &Pki, figures: &mut Vec<Figure>) {
    let rt = Flavor::MultiThread.runtime();
    let cfg = pki.configs(Version::Tls13, Kx::Default, false);
    let per_stream = plan.stream_mib * MIB;
    println!();
    println!(
        "## {STREAMS} connections streaming one way at once, {} MiB each, loopback TCP, multi_thread ({} workers), TLS 1.3; median of {}",
        plan.stream_mib,
        crate::WORKERS,
        plan.reps
    );
    println!(
        "{:<14} {:>8} {:>9} {:>8} {:>6} {:>7}",
        "measure", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio"
    );
    let mut mbps: Samples = Default::default();
    let mut cpu_per_gb: Samples = Default::default();
    for lib in Lib::order(0) {
        run(&rt, "streams warm-up", streams_sample(lib, &cfg, MIB));
    }
    for rep in 0..plan.reps {
        for lib in Lib::order(rep) {
            let what = format!("streams {}", lib.name());
            let Some((wall, cpu)) = run(&rt, &what, streams_sample(lib, &cfg, per_stream)) else {
                continue;
            };
            let bytes = (STREAMS * per_stream) as f64;
            mbps[lib.index()].push(bytes / wall / 1e6);
            cpu_per_gb[lib.index()].push(cpu / (bytes / 1e9));
        }
    }
    for (measure, unit, samples) in [
        ("MB/s", "MB/s", &mbps),
        ("CPU s per GB", "s/GB", &cpu_per_gb),
    ] {
        let [n, r] = figure_pair(&format!("streams_{STREAMS}/{unit}"), unit, samples);
        println!("{:<14} {}", measure, columns(&n, &r),);
        figures.extend([n, r]);
    }
}

/// Both tables of the section.
pub(crate) fn scale(plan: &Plan, pki: &Pki, figures: &mut Vec<Figure>) {
    idle_table(plan, figures);
    streams_table(plan, pki, figures);
}
