//! Full-duplex throughput (section `duplex`): over loopback TCP on multi_thread, both ends
//! send at once, each end's reader and writer in their own tasks (lazytls's `into_split`
//! halves against `tokio::io::split` of tokio-rustls's stream), and the same without TLS.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

use crate::setup::{Task, lazy_pair, tcp_pair, tokio_pair};
use crate::support::{self, Configs, Figure, Kx, Pki, Version, columns, fmt_ratio, fmt_value};
use crate::throughput::write_n;
use crate::{CHUNK, Flavor, Lib, MIB, Plan, Samples, WORKERS, figure_pair, run, three, verbose};

/// One end's writer in the full-duplex figure: `size` bytes in [`CHUNK`] writes, a flush,
/// then shutdown (close_notify and the transport's write side), so that the peer's reader
/// can check it got exactly `size` bytes.
async fn duplex_writer<W>(mut w: W, barrier: Arc<Barrier>, size: usize) -> Result<W, String>
where
    W: AsyncWrite + Unpin,
{
    barrier.wait().await;
    write_n(&mut w, size)
        .await
        .map_err(|e| format!("write: {e}"))?;
    w.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    Ok(w)
}

/// One end's reader in the full-duplex figure: reads to the end of the stream, counting
/// bytes, and gives the moment the `size`-th byte arrived.
async fn duplex_reader<R>(
    mut r: R,
    mut buf: Vec<u8>,
    barrier: Arc<Barrier>,
    size: usize,
) -> Result<(R, Instant), String>
where
    R: AsyncRead + Unpin,
{
    barrier.wait().await;
    let mut got = 0;
    let mut done = None;
    loop {
        match r.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got >= size && done.is_none() {
                    done = Some(Instant::now());
                }
            }
            Err(e) => return Err(format!("read after {got} bytes: {e}")),
        }
    }
    match done {
        Some(at) if got == size => Ok((r, at)),
        _ => Err(format!("received {got} bytes, expected {size}")),
    }
}

/// One full-duplex sample's results.
struct DuplexSample {
    /// From the start until both ends have received all bytes.
    secs: f64,
    /// CPU time of the whole process over the same interval ÷ its length: how many of the
    /// cores the transfer kept busy.
    cores: Option<f64>,
}

/// Both ends send `size` bytes to each other at once, each end's reader and writer in its
/// own spawned task.
async fn exchange_both_ways<CR, CW, SR, SW>(
    (cr, cw): (CR, CW),
    (sr, sw): (SR, SW),
    size: usize,
) -> Result<DuplexSample, String>
where
    CR: AsyncRead + Unpin + Send + 'static,
    CW: AsyncWrite + Unpin + Send + 'static,
    SR: AsyncRead + Unpin + Send + 'static,
    SW: AsyncWrite + Unpin + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(5));
    let c_writer = Task(tokio::spawn(duplex_writer(cw, barrier.clone(), size)));
    let s_writer = Task(tokio::spawn(duplex_writer(sw, barrier.clone(), size)));
    let c_reader = Task(tokio::spawn(duplex_reader(
        cr,
        vec![0u8; CHUNK],
        barrier.clone(),
        size,
    )));
    let s_reader = Task(tokio::spawn(duplex_reader(
        sr,
        vec![0u8; CHUNK],
        barrier.clone(),
        size,
    )));
    let cpu0 = support::cpu_time();
    let t0 = Instant::now();
    barrier.wait().await;
    let (cr, c_done) = c_reader.join().await??;
    let (sr, s_done) = s_reader.join().await??;
    let (cpu1, t1) = (support::cpu_time(), Instant::now());
    let cw = c_writer.join().await??;
    let sw = s_writer.join().await??;
    drop((cr, cw, sr, sw));
    let cores = cpu0
        .zip(cpu1)
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64() / t1.duration_since(t0).as_secs_f64());
    Ok(DuplexSample {
        secs: c_done.max(s_done).duration_since(t0).as_secs_f64(),
        cores,
    })
}

/// One full-duplex sample on a fresh, handshaken loopback TCP connection; `None` runs it
/// without TLS (the split `TcpStream`s), for scale.
async fn duplex_sample(
    lib: Option<Lib>,
    cfg: &Configs,
    size: usize,
) -> Result<DuplexSample, String> {
    let (a, b) = tcp_pair().await?;
    let Some(lib) = lib else {
        return exchange_both_ways(a.into_split(), b.into_split(), size).await;
    };
    match lib.layer() {
        Some(layer) => {
            let (c, s) = lazy_pair(cfg, layer, a, b).await?;
            exchange_both_ways(c.into_split(), s.into_split(), size).await
        }
        None => {
            let (c, s) = tokio_pair(cfg, a, b).await?;
            exchange_both_ways(tokio::io::split(c), tokio::io::split(s), size).await
        }
    }
}

/// The full-duplex table: each size in `plan.duplex_sizes`, with TLS and without.
pub(crate) fn full_duplex(plan: &Plan, pki: &Pki, figures: &mut Vec<Figure>) {
    let rt = Flavor::MultiThread.runtime();
    let cfg = pki.configs(Version::Tls13, Kx::Default, false);
    // One unrecorded warm-up sample each.
    for lib in Lib::order(0) {
        run(&rt, "duplex warm-up", duplex_sample(Some(lib), &cfg, MIB));
    }
    let rows: Vec<DuplexRow> = plan
        .duplex_sizes
        .iter()
        .map(|&size_mib| measure_size(plan, &rt, &cfg, size_mib))
        .collect();
    print_table(plan, rows, figures);
}

/// The figures of one size: lazytls and its rustls layer against tokio-rustls, the median
/// without TLS, and the cores busy per implementation.
struct DuplexRow {
    size_mib: usize,
    native: Figure,
    rustls_layer: Figure,
    plain: Option<f64>,
    cores: Samples,
}

/// `plan.reps` interleaved samples per implementation (and one without TLS per repetition)
/// of `size_mib` MiB each way, reported on stderr.
fn measure_size(plan: &Plan, rt: &Runtime, cfg: &Configs, size_mib: usize) -> DuplexRow {
    let size = size_mib * MIB;
    let mut mbps: Samples = Default::default();
    let mut cores: Samples = Default::default();
    let mut plain = Vec::new();
    for rep in 0..plan.reps {
        for lib in Lib::order(rep) {
            let what = format!("duplex tcp {size_mib}MiB {}", lib.name());
            let Some(s) = run(rt, &what, duplex_sample(Some(lib), cfg, size)) else {
                continue;
            };
            let v = 2.0 * size as f64 / s.secs / 1e6;
            if verbose() {
                let cores = s.cores.map_or("n/a".to_string(), |c| format!("{c:.2}"));
                eprintln!("    {what}: {v:.0} MB/s, {cores} cores");
            }
            mbps[lib.index()].push(v);
            cores[lib.index()].extend(s.cores);
        }
        // Not when profiling one contender, so that its profile is its own.
        if Lib::only().is_none() {
            let what = format!("duplex tcp {size_mib}MiB plain");
            let sample = run(rt, &what, duplex_sample(None, cfg, size));
            plain.extend(sample.map(|s| 2.0 * size as f64 / s.secs / 1e6));
        }
    }
    let [n, r] = figure_pair(&format!("duplex/tcp/{size_mib}MiB"), "MB/s", &mbps);
    eprintln!(
        "  {:<36} {:>6} {:>6} {:>6} MB/s  ratios {} {}",
        n.name,
        fmt_value(n.lazytls),
        fmt_value(r.lazytls),
        fmt_value(n.tokio_rustls),
        fmt_ratio(n.ratio()),
        fmt_ratio(r.ratio())
    );
    DuplexRow {
        size_mib,
        native: n,
        rustls_layer: r,
        plain: support::median(&plain),
        cores,
    }
}

/// The full-duplex table, and its figures.
fn print_table(plan: &Plan, rows: Vec<DuplexRow>, figures: &mut Vec<Figure>) {
    println!();
    println!(
        "## Full-duplex throughput, loopback TCP, multi_thread ({WORKERS} workers), TLS 1.3: both ends send `size` at once,"
    );
    println!(
        "## reader and writer of each end in their own tasks (lazytls, lz-rustls: into_split; tokio-rustls: tokio::io::split);"
    );
    println!(
        "## MB/s = 2 × size ÷ time until both ends received all bytes; median of {}; plain = split TcpStream without TLS;",
        plan.reps
    );
    println!(
        "## cores = process CPU time ÷ wall time during the transfer (of {}), lazytls / lz-rustls / tokio-rustls",
        support::cores()
    );
    println!(
        "{:<8} {:>8} {:>9} {:>8} {:>6} {:>7} {:>8} {:>18}",
        "size", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio", "plain", "cores"
    );
    for row in rows {
        let (n, r) = (row.native, row.rustls_layer);
        println!(
            "{:>6}Mi {} {:>8} {:>18}",
            row.size_mib,
            columns(&n, &r),
            fmt_value(row.plain),
            three(&row.cores),
        );
        figures.extend([n, r]);
    }
}
