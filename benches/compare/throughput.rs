//! One-way throughput (section `throughput`): `k` transfers of each size per sample over
//! `tokio::io::duplex` and loopback TCP, on both runtimes and TLS versions. The rows also
//! carry the allocation counts ([`crate::allocations`]) and feed the Go lines
//! ([`crate::go_lines`]); [`transport_floor`] gives the same transfer without TLS.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

use crate::setup::{Task, lazy_pair, tcp_pair, tokio_pair};
use crate::support::{
    self, Configs, Delta, Figure, Kx, Pki, Version, columns, fmt_ratio, fmt_value,
};
use crate::{
    CHUNK, DUPLEX_BUF, Env, Flavor, Lib, MIB, Plan, Samples, Transport, figure_pair, run, verbose,
};

fn chunk() -> &'static [u8] {
    static CHUNK_DATA: OnceLock<Vec<u8>> = OnceLock::new();
    CHUNK_DATA.get_or_init(|| (0..CHUNK).map(|i| (i * 31 + 7) as u8).collect())
}

pub(crate) async fn write_n<W: AsyncWrite + Unpin>(w: &mut W, size: usize) -> io::Result<()> {
    let data = chunk();
    let mut left = size;
    while left > 0 {
        let n = left.min(data.len());
        w.write_all(&data[..n]).await?;
        left -= n;
    }
    w.flush().await
}

async fn read_n<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8], size: usize) -> io::Result<()> {
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len());
        match r.read(&mut buf[..want]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => left -= n,
        }
    }
    Ok(())
}

/// The sending end: `k` transfers of `size` bytes; a barrier before and after the first.
async fn send_side<C>(mut c: C, barrier: Arc<Barrier>, size: usize, k: usize) -> Result<C, String>
where
    C: AsyncWrite + Unpin,
{
    barrier.wait().await;
    let first = write_n(&mut c, size).await;
    barrier.wait().await;
    first.map_err(|e| format!("write: {e}"))?;
    for _ in 1..k {
        write_n(&mut c, size)
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
    Ok(c)
}

/// The receiving end, mirroring [`send_side`].
async fn recv_side<S>(
    mut s: S,
    mut buf: Vec<u8>,
    barrier: Arc<Barrier>,
    size: usize,
    k: usize,
) -> Result<S, String>
where
    S: AsyncRead + Unpin,
{
    barrier.wait().await;
    let first = read_n(&mut s, &mut buf, size).await;
    barrier.wait().await;
    first.map_err(|e| format!("read: {e}"))?;
    for _ in 1..k {
        read_n(&mut s, &mut buf, size)
            .await
            .map_err(|e| format!("read: {e}"))?;
    }
    Ok(s)
}

/// One throughput sample's results.
struct XferSample {
    /// Mean time of one transfer over the sample.
    secs: f64,
    /// Mean process CPU time of one transfer (both ends, all threads); `None` where it
    /// cannot be read.
    cpu_secs: Option<f64>,
    /// Allocations during the first transfer (both ends, whole process).
    transfer: Option<Delta>,
    /// Allocations during the handshake (both ends).
    handshake: Option<Delta>,
}

/// Moves `k` × `size` bytes from `c` to `s`, each end in its own task.
async fn transfer<C, S>(
    env: Env,
    c: C,
    s: S,
    size: usize,
    k: usize,
    handshake: Option<Delta>,
) -> Result<XferSample, String>
where
    C: AsyncWrite + Unpin + Send + 'static,
    S: AsyncRead + Unpin + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(3));
    // Everything the tasks need is allocated here, before the counted interval.
    let buf = vec![0u8; CHUNK];
    let sender = Task(tokio::spawn(send_side(c, barrier.clone(), size, k)));
    let receiver = Task(tokio::spawn(recv_side(s, buf, barrier.clone(), size, k)));
    let mark = env.counter.mark();
    let cpu0 = support::cpu_time();
    let t0 = Instant::now();
    barrier.wait().await; // start
    barrier.wait().await; // first transfer received in full
    let first = env.counter.since(mark);
    let c = sender.join().await??;
    let s = receiver.join().await??;
    let elapsed = t0.elapsed();
    let cpu = cpu0
        .zip(support::cpu_time())
        .map(|(a, b)| (b - a).as_secs_f64());
    drop((c, s));
    Ok(XferSample {
        secs: elapsed.as_secs_f64() / k as f64,
        cpu_secs: cpu.map(|c| c / k as f64),
        transfer: first,
        handshake,
    })
}

async fn xfer_on<IO>(
    env: Env,
    lib: Lib,
    cfg: &Configs,
    a: IO,
    b: IO,
    size: usize,
    k: usize,
) -> Result<XferSample, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mark = env.counter.mark();
    match lib.layer() {
        Some(layer) => {
            let (c, s) = lazy_pair(cfg, layer, a, b).await?;
            let hs = env.counter.since(mark);
            transfer(env, c, s, size, k, hs).await
        }
        None => {
            let (c, s) = tokio_pair(cfg, a, b).await?;
            let hs = env.counter.since(mark);
            transfer(env, c, s, size, k, hs).await
        }
    }
}

async fn xfer_sample(
    env: Env,
    lib: Lib,
    transport: Transport,
    cfg: &Configs,
    size: usize,
    k: usize,
) -> Result<XferSample, String> {
    match transport {
        Transport::Duplex => {
            let (a, b) = tokio::io::duplex(DUPLEX_BUF);
            xfer_on(env, lib, cfg, a, b, size, k).await
        }
        Transport::Tcp => {
            let (a, b) = tcp_pair().await?;
            xfer_on(env, lib, cfg, a, b, size, k).await
        }
    }
}

/// The samples of one throughput configuration, per implementation.
pub(crate) struct XferRow {
    pub(crate) transport: Transport,
    pub(crate) flavor: Flavor,
    pub(crate) version: Version,
    pub(crate) size_mib: usize,
    /// Transfers timed per sample.
    pub(crate) k: usize,
    pub(crate) mbps: Samples,
    pub(crate) secs: Samples,
    /// Process CPU seconds per transfer.
    pub(crate) cpu: Samples,
    pub(crate) allocs: Samples,
    pub(crate) bytes: Samples,
    pub(crate) hs_allocs: Samples,
    pub(crate) hs_bytes: Samples,
}

impl XferRow {
    /// An empty row; each sample makes at least `volume` bytes move.
    fn new(
        transport: Transport,
        flavor: Flavor,
        version: Version,
        size_mib: usize,
        volume: usize,
    ) -> XferRow {
        XferRow {
            transport,
            flavor,
            version,
            size_mib,
            k: volume.div_ceil(size_mib * MIB).max(1),
            mbps: Default::default(),
            secs: Default::default(),
            cpu: Default::default(),
            allocs: Default::default(),
            bytes: Default::default(),
            hs_allocs: Default::default(),
            hs_bytes: Default::default(),
        }
    }

    pub(crate) fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}MiB",
            self.transport.name(),
            self.flavor.name(),
            self.version.name(),
            self.size_mib
        )
    }
}
/// Measures every throughput row and prints their table; the rows are kept for the
/// allocation tables and the Go lines.
pub(crate) fn throughput(
    plan: &Plan,
    pki: &Pki,
    env: Env,
    figures: &mut Vec<Figure>,
) -> Vec<XferRow> {
    let mut rows = Vec::new();
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        let rt = flavor.runtime();
        for transport in [Transport::Duplex, Transport::Tcp] {
            for version in Version::all() {
                let cfg = pki.configs(version, Kx::Default, false);
                // One unrecorded warm-up sample each.
                for lib in Lib::order(0) {
                    run(
                        &rt,
                        "warm-up",
                        xfer_sample(env, lib, transport, &cfg, MIB, 1),
                    );
                }
                for &size_mib in &plan.sizes {
                    let row = XferRow::new(transport, flavor, version, size_mib, plan.volume);
                    rows.push(measure_row(plan, env, &rt, &cfg, row));
                }
            }
        }
    }
    print_table(plan, &rows, figures);
    rows
}

/// Takes `plan.reps` samples per implementation for `row`, interleaved, and reports its
/// medians on stderr.
fn measure_row(plan: &Plan, env: Env, rt: &Runtime, cfg: &Configs, mut row: XferRow) -> XferRow {
    let size = row.size_mib * MIB;
    for rep in 0..plan.reps {
        for lib in Lib::order(rep) {
            let what = format!("throughput {} {}", row.key(), lib.name());
            let Some(sample) = run(
                rt,
                &what,
                xfer_sample(env, lib, row.transport, cfg, size, row.k),
            ) else {
                continue;
            };
            let i = lib.index();
            let mbps = size as f64 / sample.secs / 1e6;
            if verbose() {
                eprintln!("    {what}: {mbps:.0} MB/s");
            }
            row.mbps[i].push(mbps);
            row.secs[i].push(sample.secs);
            row.cpu[i].extend(sample.cpu_secs);
            if let Some(d) = sample.transfer {
                row.allocs[i].push(d.allocs as f64);
                row.bytes[i].push(d.bytes as f64);
            }
            if let Some(d) = sample.handshake {
                row.hs_allocs[i].push(d.allocs as f64);
                row.hs_bytes[i].push(d.bytes as f64);
            }
        }
    }
    let [n, r] = figure_pair(&row.key(), "MB/s", &row.mbps);
    eprintln!(
        "  {:<36} {:>6} {:>6} {:>6} MB/s  ratios {} {}",
        row.key(),
        fmt_value(n.lazytls),
        fmt_value(r.lazytls),
        fmt_value(n.tokio_rustls),
        fmt_ratio(n.ratio()),
        fmt_ratio(r.ratio())
    );
    row
}

/// The one-way throughput table, and its figures.
fn print_table(plan: &Plan, rows: &[XferRow], figures: &mut Vec<Figure>) {
    println!();
    println!(
        "## One-way throughput, MB/s (10^6 bytes/s), median of {}. lazytls = native record layer,",
        plan.reps
    );
    println!(
        "## lz-rustls = lazytls on RecordLayer::Rustls; ratio = lazytls ÷ tokio-rustls, r-ratio = lz-rustls ÷ tokio-rustls"
    );
    println!(
        "{:<7} {:<15} {:<8} {:>6} {:>8} {:>9} {:>8} {:>6} {:>7}",
        "io", "runtime", "version", "size", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio"
    );
    for row in rows {
        let [n, r] = figure_pair(&format!("throughput/{}", row.key()), "MB/s", &row.mbps);
        println!(
            "{:<7} {:<15} {:<8} {:>4}Mi {}",
            row.transport.name(),
            row.flavor.name(),
            row.version.name(),
            row.size_mib,
            columns(&n, &r),
        );
        figures.extend([n, r]);
    }
}

/// The same one-way transfer with no TLS at all: what the transport and the harness cost.
/// Returns the medians, MB/s, by transport and runtime.
pub(crate) fn transport_floor(plan: &Plan, env: Env) -> Vec<(Transport, Flavor, Option<f64>)> {
    let mut floors = Vec::new();
    let size_mib = *plan.sizes.last().expect("at least one size");
    let size = size_mib * MIB;
    let k = plan.volume.div_ceil(size).max(1);
    println!();
    println!(
        "## For scale: the same {size_mib} MiB one-way transfer without TLS (plain transport), MB/s, median of {}",
        plan.reps
    );
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        let rt = flavor.runtime();
        for transport in [Transport::Duplex, Transport::Tcp] {
            let mut mbps = Vec::new();
            for _ in 0..plan.reps {
                let what = format!("plain {} {}", transport.name(), flavor.name());
                let sample = run(&rt, &what, async {
                    match transport {
                        Transport::Duplex => {
                            let (a, b) = tokio::io::duplex(DUPLEX_BUF);
                            transfer(env, a, b, size, k, None).await
                        }
                        Transport::Tcp => {
                            let (a, b) = tcp_pair().await?;
                            transfer(env, a, b, size, k, None).await
                        }
                    }
                });
                mbps.extend(sample.map(|s| size as f64 / s.secs / 1e6));
            }
            println!(
                "{:<7} {:<15} {:>9}",
                transport.name(),
                flavor.name(),
                fmt_value(support::median(&mbps))
            );
            floors.push((transport, flavor, support::median(&mbps)));
        }
    }
    floors
}
