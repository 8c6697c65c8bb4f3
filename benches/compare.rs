//! `cargo bench --bench compare`: lazytls against tokio-rustls 0.26 (same rustls), side by
//! side in one process.
//!
//! Three contenders: lazytls on its native record layer (the default), lazytls on
//! `RecordLayer::Rustls`, and tokio-rustls. For every figure they run interleaved, one
//! sample each per repetition, the order rotated each repetition, so that drift in the
//! machine's load hits all of them. Each figure is the median of its samples; the ratio is
//! lazytls ÷ tokio-rustls (and, for figures named `.../rustls-layer`, lazytls on the rustls
//! record layer ÷ tokio-rustls).
//!
//! Figures:
//! - one-way throughput of 1–64 MiB, over `tokio::io::duplex` and loopback TCP, TLS 1.2 and
//!   1.3 with AES-128-GCM, on current_thread and multi_thread (2 workers) runtimes;
//! - heap allocations and bytes requested per transfer (the first transfer on a fresh
//!   connection, both ends), and per handshake, counted separately;
//! - full and resumed handshakes per second over duplex (TLS 1.3, ECDSA P-256, X25519 and
//!   the provider's default key exchange);
//! - live heap per idle client+server pair after the handshake and after 1 MiB each way;
//! - 1 KiB write + flush + read round trips per second;
//! - full-duplex throughput over loopback TCP on multi_thread (2 workers): both ends send
//!   at once, each end's reader and writer in their own tasks (lazytls's `into_split`
//!   halves against `tokio::io::split` of tokio-rustls's stream);
//! - Go's `BenchmarkThroughput/MaxPacket/{1..64}MB/TLSv1{2,3}` lines.
//!
//! Allocation counting: the crate forbids unsafe code in all targets, so instead of a
//! `#[global_allocator]` the bench compiles a small malloc shim (`support/alloccount.c`)
//! with the system C compiler and re-runs itself with it in `LD_PRELOAD`. It counts every
//! allocation in the process, the crypto provider's C code included.
//!
//! Modes: `cargo bench --bench compare` (full), `LAZYTLS_BENCH_QUICK=1` (fewer sizes and
//! repetitions). Run without `--bench` (as `cargo test --benches` does) it makes one tiny
//! pass of everything as a smoke test and writes no summary. The summary goes to
//! `target/bench-summary.json`. See BENCHMARKS.md.

mod support;

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lazytls::RecordLayer;
use lazytls::rustls::HandshakeKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

use support::{Configs, Counter, Delta, Figure, Kx, Pki, Version, fmt_ratio, fmt_value, localhost};

const MIB: usize = 1 << 20;
/// Write and read size of the throughput transfers (Go's BenchmarkThroughput uses 32 KiB).
const CHUNK: usize = 32 * 1024;
/// Capacity of each direction of the in-memory pipe in the throughput figures.
const DUPLEX_BUF: usize = 256 * 1024;
/// Capacity of the in-memory pipe in the handshake and round-trip figures.
const SMALL_DUPLEX_BUF: usize = 64 * 1024;
/// Worker threads of the multi_thread runtime.
const WORKERS: usize = 2;
/// Bound on any one sample: a bug shows as a failed figure, not a hang.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Round trips before the timed part of a latency sample.
const RTT_WARMUP: usize = 64;
/// Size of one round-trip message.
const RTT_MSG: usize = 1024;

/// The implementation under test: lazytls on each of its record layers, and the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lib {
    /// lazytls with its default, native record layer.
    Lazy,
    /// lazytls with `RecordLayer::Rustls` (rustls's unbuffered API carries the records).
    LazyRustls,
    Tokio,
}

/// How many implementations are compared; samples are kept in arrays of this size.
const N_LIBS: usize = 3;

impl Lib {
    const ALL: [Lib; N_LIBS] = [Lib::Lazy, Lib::LazyRustls, Lib::Tokio];

    /// The order of the samples in repetition `rep`: rotated each time, so that each goes
    /// first, second and last equally often. `LAZYTLS_BENCH_LIB=<name>` keeps only one,
    /// for profiling.
    fn order(rep: usize) -> Vec<Lib> {
        let only = Lib::only();
        let mut all = Lib::ALL;
        all.rotate_left(rep % N_LIBS);
        all.into_iter()
            .filter(|lib| only.is_none_or(|o| o == lib.name()))
            .collect()
    }

    /// The one contender `LAZYTLS_BENCH_LIB` asks for, if any.
    fn only() -> Option<&'static str> {
        static ONLY: OnceLock<Option<String>> = OnceLock::new();
        ONLY.get_or_init(|| std::env::var("LAZYTLS_BENCH_LIB").ok())
            .as_deref()
    }

    fn index(self) -> usize {
        match self {
            Lib::Lazy => 0,
            Lib::LazyRustls => 1,
            Lib::Tokio => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lib::Lazy => "lazytls",
            Lib::LazyRustls => "lazytls-rustls-layer",
            Lib::Tokio => "tokio-rustls",
        }
    }

    /// The lazytls record layer, for the lazytls variants.
    fn layer(self) -> Option<RecordLayer> {
        match self {
            Lib::Lazy => Some(RecordLayer::Native),
            Lib::LazyRustls => Some(RecordLayer::Rustls),
            Lib::Tokio => None,
        }
    }
}

/// Samples per implementation, indexed by [`Lib::index`].
type Samples = [Vec<f64>; N_LIBS];

/// The two figures of one measurement: lazytls (native layer) against tokio-rustls under
/// `name`, and lazytls on the rustls layer against tokio-rustls under `name/rustls-layer`.
fn figure_pair(name: &str, unit: &'static str, s: &Samples) -> [Figure; 2] {
    [
        Figure::new(name.to_string(), unit, &s[0], &s[2]),
        Figure::new(format!("{name}/rustls-layer"), unit, &s[1], &s[2]),
    ]
}

/// Medians as `native / rustls-layer / tokio-rustls`, for the allocation columns.
fn three(s: &Samples) -> String {
    format!(
        "{} / {} / {}",
        fmt_value(support::median(&s[0])),
        fmt_value(support::median(&s[1])),
        fmt_value(support::median(&s[2]))
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Duplex,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Duplex => "duplex",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::CurrentThread => "current_thread",
            Flavor::MultiThread => "multi_thread",
        }
    }

    fn runtime(self) -> Runtime {
        let mut builder = match self {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(WORKERS);
                b
            }
        };
        builder.enable_all().build().expect("tokio runtime")
    }
}

/// How much to measure.
struct Plan {
    mode: &'static str,
    /// Throughput sizes, in MiB.
    sizes: Vec<usize>,
    /// Samples per implementation for the timed figures.
    reps: usize,
    /// At least this many bytes move in each throughput sample (transfers of `size` are
    /// repeated on one connection); the first transfer alone is counted for allocations.
    volume: usize,
    handshake_budget: Duration,
    rtt_budget: Duration,
    /// Full-duplex sizes, in MiB sent by each end (one transfer per sample).
    duplex_sizes: Vec<usize>,
    memory_reps: usize,
    write_summary: bool,
    /// `LAZYTLS_BENCH_ONLY`: a comma-separated list of sections to run (for development;
    /// a partial run writes no summary).
    only: Option<Vec<String>>,
}

impl Plan {
    fn runs(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }

    fn from_env(bench: bool) -> Plan {
        let mut plan = Plan::base(bench);
        if std::env::var_os("LAZYTLS_BENCH_LIB").is_some() {
            plan.write_summary = false;
        }
        if let Ok(only) = std::env::var("LAZYTLS_BENCH_ONLY") {
            plan.only = Some(only.split(',').map(|s| s.trim().to_string()).collect());
            plan.write_summary = false;
        }
        // Development overrides; any of them makes the run partial (no summary).
        if let Some(sizes) = env_list("LAZYTLS_BENCH_SIZES") {
            plan.duplex_sizes = sizes.clone();
            plan.sizes = sizes;
            plan.write_summary = false;
        }
        if let Some(&[reps]) = env_list("LAZYTLS_BENCH_REPS").as_deref() {
            plan.reps = reps.max(1);
            plan.write_summary = false;
        }
        if let Some(&[volume]) = env_list("LAZYTLS_BENCH_VOLUME_MIB").as_deref() {
            plan.volume = volume.max(1) * MIB;
            plan.write_summary = false;
        }
        plan
    }

    fn base(bench: bool) -> Plan {
        let quick = std::env::var_os("LAZYTLS_BENCH_QUICK").is_some_and(|v| v != "0");
        if !bench {
            Plan {
                mode: "test (smoke run, no summary)",
                sizes: vec![1],
                reps: 1,
                volume: MIB,
                handshake_budget: Duration::from_millis(20),
                rtt_budget: Duration::from_millis(20),
                duplex_sizes: vec![1],
                memory_reps: 1,
                write_summary: false,
                only: None,
            }
        } else if quick {
            Plan {
                mode: "quick (LAZYTLS_BENCH_QUICK=1)",
                sizes: vec![1, 8, 64],
                reps: 3,
                volume: 16 * MIB,
                handshake_budget: Duration::from_millis(200),
                rtt_budget: Duration::from_millis(200),
                duplex_sizes: vec![64],
                memory_reps: 3,
                write_summary: true,
                only: None,
            }
        } else {
            Plan {
                mode: "full",
                sizes: vec![1, 2, 4, 8, 16, 32, 64],
                reps: 11,
                volume: 32 * MIB,
                handshake_budget: Duration::from_millis(500),
                rtt_budget: Duration::from_millis(300),
                duplex_sizes: vec![8, 64],
                memory_reps: 3,
                write_summary: true,
                only: None,
            }
        }
    }
}

/// A comma-separated list of numbers from the environment.
fn env_list(name: &str) -> Option<Vec<usize>> {
    let text = std::env::var(name).ok()?;
    let list: Vec<usize> = text
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Whether `LAZYTLS_BENCH_VERBOSE` asks for every sample on stderr.
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("LAZYTLS_BENCH_VERBOSE").is_some())
}

/// Everything a sample needs besides its own parameters.
#[derive(Clone, Copy)]
struct Env {
    counter: Counter,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if bench {
        // Returns only in the child that has the counter, or if none can be had.
        support::reexec_with_counter();
    }
    let plan = Plan::from_env(bench);
    let env = Env {
        counter: Counter::new(),
    };
    let started = Instant::now();

    println!("# lazytls vs tokio-rustls 0.26 — cargo bench --bench compare");
    println!("mode: {}", plan.mode);
    for line in support::machine() {
        println!("{line}");
    }
    println!(
        "provider: {} (AES-128-GCM suites only); repetitions: {} per implementation, interleaved, order rotated each repetition",
        support::PROVIDER_NAME,
        plan.reps
    );
    println!(
        "allocation counter: {}",
        if env.counter.available() {
            "LD_PRELOAD malloc shim, whole process"
        } else {
            "unavailable (figures n/a)"
        }
    );

    let pki = Pki::new();
    let mut figures = Vec::new();

    if plan.runs("throughput") {
        let rows = throughput(&plan, &pki, env, &mut figures);
        transport_floor(&plan, env);
        go_table(&rows);
    }
    if plan.runs("handshakes") {
        handshakes(&plan, &pki, env, &mut figures);
    }
    if plan.runs("memory") {
        memory(&plan, &pki, env, &mut figures);
    }
    if plan.runs("latency") {
        latency(&plan, &pki, env, &mut figures);
    }
    if plan.runs("duplex") {
        full_duplex(&plan, &pki, &mut figures);
    }

    println!();
    println!(
        "wall time: {:.1} s; load at end: {}",
        started.elapsed().as_secs_f64(),
        support::loadavg()
    );
    if plan.write_summary {
        let path = support::target_dir().join("bench-summary.json");
        let json = serde_json::Value::Array(figures.iter().map(Figure::json).collect());
        let text = serde_json::to_string_pretty(&json).expect("summary serialises");
        match std::fs::write(&path, text) {
            Ok(()) => println!("summary: {} ({} figures)", path.display(), figures.len()),
            Err(e) => eprintln!("compare: cannot write {}: {e}", path.display()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Connection setup
// ---------------------------------------------------------------------------------------

type LazyPair<IO> = (lazytls::TlsStream<IO>, lazytls::TlsStream<IO>);
type TokioPair<IO> = (
    tokio_rustls::client::TlsStream<IO>,
    tokio_rustls::server::TlsStream<IO>,
);

/// A lazytls client and server over `a`/`b` on record layer `layer`, handshaken.
async fn lazy_pair<IO>(
    cfg: &Configs,
    layer: RecordLayer,
    a: IO,
    b: IO,
) -> Result<LazyPair<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut c = lazytls::TlsConnector::new(cfg.client.clone())
        .record_layer(layer)
        .connect(localhost(), a);
    let mut s = lazytls::TlsAcceptor::new(cfg.server.clone())
        .record_layer(layer)
        .accept(b);
    let (rc, rs) = tokio::join!(c.handshake(), s.handshake());
    rc.map_err(|e| format!("lazytls client handshake: {e}"))?;
    rs.map_err(|e| format!("lazytls server handshake: {e}"))?;
    check_layer(layer, &c);
    check_layer(layer, &s);
    Ok((c, s))
}

/// Warns (once) if a connection does not use the record layer it was asked for (the
/// native layer falls back to rustls for suites it does not carry).
fn check_layer<IO>(want: RecordLayer, stream: &lazytls::TlsStream<IO>) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let got = stream.info().map(|i| i.record_layer);
    if got != Some(want) && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!("compare: WARNING: asked for record layer {want:?}, connection uses {got:?}");
    }
}

/// A tokio-rustls client and server over `a`/`b`, handshaken.
async fn tokio_pair<IO>(cfg: &Configs, a: IO, b: IO) -> Result<TokioPair<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let connector = tokio_rustls::TlsConnector::from(cfg.client.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg.server.clone());
    let (c, s) = tokio::join!(connector.connect(localhost(), a), acceptor.accept(b));
    let c = c.map_err(|e| format!("tokio-rustls client handshake: {e}"))?;
    let s = s.map_err(|e| format!("tokio-rustls server handshake: {e}"))?;
    Ok((c, s))
}

/// A connected loopback TCP pair with Nagle off.
async fn tcp_pair() -> Result<(TcpStream, TcpStream), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (c, s) = tokio::try_join!(TcpStream::connect(addr), async {
        listener.accept().await.map(|(s, _)| s)
    })
    .map_err(|e| format!("loopback connect: {e}"))?;
    c.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok((c, s))
}

/// A spawned task that is aborted if the sample is dropped (by its timeout) first.
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Task<T> {
    async fn join(mut self) -> Result<T, String> {
        (&mut self.0).await.map_err(|e| format!("task: {e}"))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one sample on `rt` under [`SAMPLE_TIMEOUT`].
fn run<T>(
    rt: &Runtime,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Option<T> {
    match rt.block_on(async { tokio::time::timeout(SAMPLE_TIMEOUT, fut).await }) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            eprintln!("compare: {what}: failed: {e}");
            None
        }
        Err(_) => {
            eprintln!("compare: {what}: timed out after {SAMPLE_TIMEOUT:?}");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// One-way throughput and allocations per transfer
// ---------------------------------------------------------------------------------------

fn chunk() -> &'static [u8] {
    static CHUNK_DATA: OnceLock<Vec<u8>> = OnceLock::new();
    CHUNK_DATA.get_or_init(|| (0..CHUNK).map(|i| (i * 31 + 7) as u8).collect())
}

async fn write_n<W: AsyncWrite + Unpin>(w: &mut W, size: usize) -> io::Result<()> {
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
    let t0 = Instant::now();
    barrier.wait().await; // start
    barrier.wait().await; // first transfer received in full
    let first = env.counter.since(mark);
    let c = sender.join().await??;
    let s = receiver.join().await??;
    let elapsed = t0.elapsed();
    drop((c, s));
    Ok(XferSample {
        secs: elapsed.as_secs_f64() / k as f64,
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
struct XferRow {
    transport: Transport,
    flavor: Flavor,
    version: Version,
    size_mib: usize,
    /// Transfers timed per sample.
    k: usize,
    mbps: Samples,
    secs: Samples,
    allocs: Samples,
    bytes: Samples,
    hs_allocs: Samples,
    hs_bytes: Samples,
}

impl XferRow {
    fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}MiB",
            self.transport.name(),
            self.flavor.name(),
            self.version.name(),
            self.size_mib
        )
    }
}

fn throughput(plan: &Plan, pki: &Pki, env: Env, figures: &mut Vec<Figure>) -> Vec<XferRow> {
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
                    let size = size_mib * MIB;
                    let k = plan.volume.div_ceil(size).max(1);
                    let mut row = XferRow {
                        transport,
                        flavor,
                        version,
                        size_mib,
                        k,
                        mbps: Default::default(),
                        secs: Default::default(),
                        allocs: Default::default(),
                        bytes: Default::default(),
                        hs_allocs: Default::default(),
                        hs_bytes: Default::default(),
                    };
                    for rep in 0..plan.reps {
                        for lib in Lib::order(rep) {
                            let what = format!("throughput {} {}", row.key(), lib.name());
                            let Some(sample) =
                                run(&rt, &what, xfer_sample(env, lib, transport, &cfg, size, k))
                            else {
                                continue;
                            };
                            let i = lib.index();
                            let mbps = size as f64 / sample.secs / 1e6;
                            if verbose() {
                                eprintln!("    {what}: {mbps:.0} MB/s");
                            }
                            row.mbps[i].push(mbps);
                            row.secs[i].push(sample.secs);
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
                    rows.push(row);
                }
            }
        }
    }

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
    for row in &rows {
        let [n, r] = figure_pair(&format!("throughput/{}", row.key()), "MB/s", &row.mbps);
        println!(
            "{:<7} {:<15} {:<8} {:>4}Mi {:>8} {:>9} {:>8} {:>6} {:>7}",
            row.transport.name(),
            row.flavor.name(),
            row.version.name(),
            row.size_mib,
            fmt_value(n.lazytls),
            fmt_value(r.lazytls),
            fmt_value(n.tokio_rustls),
            fmt_ratio(n.ratio()),
            fmt_ratio(r.ratio()),
        );
        figures.extend([n, r]);
    }

    println!();
    println!(
        "## Heap allocations and bytes requested per transfer: the first transfer on a fresh connection,"
    );
    println!(
        "## both ends, whole process; median of {}; lazytls / lz-rustls / tokio-rustls",
        plan.reps
    );
    println!(
        "{:<7} {:<15} {:<8} {:>6} {:>22} {:>34}",
        "io", "runtime", "version", "size", "allocs/transfer", "bytes/transfer"
    );
    for row in &rows {
        println!(
            "{:<7} {:<15} {:<8} {:>4}Mi {:>22} {:>34}",
            row.transport.name(),
            row.flavor.name(),
            row.version.name(),
            row.size_mib,
            three(&row.allocs),
            three(&row.bytes),
        );
        figures.extend(figure_pair(
            &format!("allocs_per_transfer/{}", row.key()),
            "allocs",
            &row.allocs,
        ));
        figures.extend(figure_pair(
            &format!("bytes_allocated_per_transfer/{}", row.key()),
            "bytes",
            &row.bytes,
        ));
    }

    // Handshake allocations, pooled over the sizes of each configuration.
    println!();
    println!(
        "## Allocations per handshake (client + server, counted apart from the transfer); lazytls / lz-rustls / tokio-rustls"
    );
    println!(
        "{:<7} {:<15} {:<8} {:>22} {:>34}",
        "io", "runtime", "version", "allocs", "bytes"
    );
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        for transport in [Transport::Duplex, Transport::Tcp] {
            for version in Version::all() {
                let mut allocs: Samples = Default::default();
                let mut bytes: Samples = Default::default();
                for row in rows.iter().filter(|r| {
                    r.flavor == flavor && r.transport == transport && r.version == version
                }) {
                    for i in 0..N_LIBS {
                        allocs[i].extend(&row.hs_allocs[i]);
                        bytes[i].extend(&row.hs_bytes[i]);
                    }
                }
                let key = format!("{}/{}/{}", transport.name(), flavor.name(), version.name());
                println!(
                    "{:<7} {:<15} {:<8} {:>22} {:>34}",
                    transport.name(),
                    flavor.name(),
                    version.name(),
                    three(&allocs),
                    three(&bytes),
                );
                figures.extend(figure_pair(
                    &format!("allocs_per_handshake/{key}"),
                    "allocs",
                    &allocs,
                ));
                figures.extend(figure_pair(
                    &format!("bytes_allocated_per_handshake/{key}"),
                    "bytes",
                    &bytes,
                ));
            }
        }
    }
    rows
}

/// The same one-way transfer with no TLS at all: what the transport and the harness cost.
fn transport_floor(plan: &Plan, env: Env) {
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
        }
    }
}

/// Go's BenchmarkThroughput format, from the loopback TCP, multi_thread figures.
fn go_table(rows: &[XferRow]) {
    println!();
    println!(
        "## Go format (loopback TCP, multi_thread with {WORKERS} workers, one-way, handshake excluded; see BENCHMARKS.md)"
    );
    for lib in Lib::ALL {
        println!("impl: {}", lib.name());
        let i = lib.index();
        for version in Version::all() {
            for row in rows.iter().filter(|r| {
                r.transport == Transport::Tcp
                    && r.flavor == Flavor::MultiThread
                    && r.version == version
            }) {
                let (Some(secs), Some(mbps)) =
                    (support::median(&row.secs[i]), support::median(&row.mbps[i]))
                else {
                    continue;
                };
                let iters = row.secs[i].len() * row.k;
                let name = format!(
                    "BenchmarkThroughput/MaxPacket/{}MB/{}-{WORKERS}",
                    row.size_mib,
                    version.go_name()
                );
                println!(
                    "{name:<46} {iters:>8} {:>14.0} ns/op {mbps:>10.2} MB/s {:>12} B/op {:>8} allocs/op",
                    secs * 1e9,
                    fmt_value(support::median(&row.bytes[i])),
                    fmt_value(support::median(&row.allocs[i])),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Handshakes per second
// ---------------------------------------------------------------------------------------

struct HsSample {
    per_sec: f64,
    resumed: usize,
    count: usize,
    allocs: Option<f64>,
    bytes: Option<f64>,
}

/// Handshakes over fresh duplex pairs for `budget`, on one task (one core). Each op: new
/// pipe, both handshakes, the server writes one byte and the client reads it (which also
/// makes the client take the server's session tickets).
async fn handshake_loop(
    env: Env,
    lib: Lib,
    cfg: &Configs,
    budget: Duration,
) -> Result<HsSample, String> {
    const MAX_OPS: usize = 1_000_000;
    let mut one = [0u8; 1];
    let mut resumed = 0;
    let mut count = 0;
    let mark = env.counter.mark();
    let t0 = Instant::now();
    while count < MAX_OPS && (count == 0 || t0.elapsed() < budget) {
        let (a, b) = tokio::io::duplex(SMALL_DUPLEX_BUF);
        let was_resumed = match lib.layer() {
            Some(layer) => {
                let (mut c, mut s) = lazy_pair(cfg, layer, a, b).await?;
                ping_one(&mut c, &mut s, &mut one).await?;
                c.info().is_some_and(|i| i.resumed)
            }
            None => {
                let (mut c, mut s) = tokio_pair(cfg, a, b).await?;
                ping_one(&mut c, &mut s, &mut one).await?;
                c.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed)
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

fn handshakes(plan: &Plan, pki: &Pki, env: Env, figures: &mut Vec<Figure>) {
    let rt = Flavor::CurrentThread.runtime();
    println!();
    println!(
        "## Handshakes per second, duplex, one task on current_thread, TLS 1.3, ECDSA P-256; median of {}",
        plan.reps
    );
    println!(
        "## allocs/op and bytes/op: lazytls / lz-rustls / tokio-rustls (each op: new pipe, handshake, 1-byte read)"
    );
    println!(
        "{:<19} {:>8} {:>9} {:>8} {:>6} {:>7} {:>17} {:>23} {:>9}",
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
    for resumption in [false, true] {
        for kx in [Kx::X25519, Kx::Default] {
            // Separate configurations per implementation, so none uses another's tickets.
            let cfgs: Vec<Configs> = Lib::ALL
                .iter()
                .map(|_| pki.configs(Version::Tls13, kx, resumption))
                .collect();
            let kind = format!(
                "{}/{}",
                if resumption { "resumed" } else { "full" },
                if kx == Kx::X25519 {
                    "x25519"
                } else {
                    "default_kx"
                }
            );
            // Warm-up, which also seeds the ticket caches for the resumed case.
            for lib in Lib::order(0) {
                run(
                    &rt,
                    "handshake warm-up",
                    handshake_loop(env, lib, &cfgs[lib.index()], Duration::from_millis(10)),
                );
            }
            let mut per_sec: Samples = Default::default();
            let mut allocs: Samples = Default::default();
            let mut bytes: Samples = Default::default();
            let mut resumed = [(0, 0); N_LIBS];
            for rep in 0..plan.reps {
                for lib in Lib::order(rep) {
                    let i = lib.index();
                    let what = format!("handshakes {kind} {}", lib.name());
                    let Some(s) = run(
                        &rt,
                        &what,
                        handshake_loop(env, lib, &cfgs[i], plan.handshake_budget),
                    ) else {
                        continue;
                    };
                    per_sec[i].push(s.per_sec);
                    allocs[i].extend(s.allocs);
                    bytes[i].extend(s.bytes);
                    resumed[i].0 += s.resumed;
                    resumed[i].1 += s.count;
                }
            }
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
                "{:<19} {:>8} {:>9} {:>8} {:>6} {:>7} {:>17} {:>23} {:>9}",
                kind,
                fmt_value(n.lazytls),
                fmt_value(r.lazytls),
                fmt_value(n.tokio_rustls),
                fmt_ratio(n.ratio()),
                fmt_ratio(r.ratio()),
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
    }
}

// ---------------------------------------------------------------------------------------
// Live heap per idle pair
// ---------------------------------------------------------------------------------------

struct MemSample {
    after_handshake: Option<Delta>,
    after_mib: Option<Delta>,
    /// lazytls's own buffers (`buffered_capacity`), both ends, in the two states.
    own_buffers: Option<(usize, usize)>,
}

/// Client writes 1 MiB, server reads it and writes 1 MiB back, client reads it.
async fn exchange<C, S>(
    c: &mut C,
    s: &mut S,
    out: &[u8],
    cin: &mut [u8],
    sin: &mut [u8],
) -> Result<(), String>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client = async {
        c.write_all(out).await?;
        c.flush().await?;
        c.read_exact(cin).await?;
        io::Result::Ok(())
    };
    let server = async {
        s.read_exact(sin).await?;
        s.write_all(out).await?;
        s.flush().await?;
        io::Result::Ok(())
    };
    let (a, b) = tokio::join!(client, server);
    a.and(b).map_err(|e| format!("exchange: {e}"))
}

/// Live heap of one pair over loopback TCP (the sockets exist before the first reading, so
/// only TLS state counts; both streams are boxed, so their own structs count too).
async fn memory_sample(env: Env, lib: Lib, cfg: &Configs) -> Result<MemSample, String> {
    let (a, b) = tcp_pair().await?;
    let out = vec![0x5a; MIB];
    let mut cin = vec![0; MIB];
    let mut sin = vec![0; MIB];
    let mark = env.counter.mark();
    match lib.layer() {
        Some(layer) => {
            let mut c = Box::new(
                lazytls::TlsConnector::new(cfg.client.clone())
                    .record_layer(layer)
                    .connect(localhost(), a),
            );
            let mut s = Box::new(
                lazytls::TlsAcceptor::new(cfg.server.clone())
                    .record_layer(layer)
                    .accept(b),
            );
            let (rc, rs) = tokio::join!(c.handshake(), s.handshake());
            rc.map_err(|e| format!("lazytls client handshake: {e}"))?;
            rs.map_err(|e| format!("lazytls server handshake: {e}"))?;
            let after_handshake = env.counter.since(mark);
            let own_hs = c.buffered_capacity() + s.buffered_capacity();
            exchange(&mut *c, &mut *s, &out, &mut cin, &mut sin).await?;
            let after_mib = env.counter.since(mark);
            let own_mib = c.buffered_capacity() + s.buffered_capacity();
            check_layer(layer, &c);
            Ok(MemSample {
                after_handshake,
                after_mib,
                own_buffers: Some((own_hs, own_mib)),
            })
        }
        None => {
            let (c, s) = tokio_pair(cfg, a, b).await?;
            let (mut c, mut s) = (Box::new(c), Box::new(s));
            let after_handshake = env.counter.since(mark);
            exchange(&mut *c, &mut *s, &out, &mut cin, &mut sin).await?;
            let after_mib = env.counter.since(mark);
            Ok(MemSample {
                after_handshake,
                after_mib,
                own_buffers: None,
            })
        }
    }
}

fn memory(plan: &Plan, pki: &Pki, env: Env, figures: &mut Vec<Figure>) {
    let rt = Flavor::CurrentThread.runtime();
    println!();
    println!(
        "## Live heap per idle client+server pair, bytes (loopback TCP, no session tickets); median of {}",
        plan.memory_reps
    );
    println!(
        "{:<8} {:<20} {:>8} {:>9} {:>8} {:>6} {:>7}   own buffers: lazytls / lz-rustls",
        "version", "state", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio"
    );
    for version in Version::all() {
        let cfg = pki.configs(version, Kx::Default, false);
        for lib in Lib::order(0) {
            run(&rt, "memory warm-up", memory_sample(env, lib, &cfg));
        }
        let mut hs: Samples = Default::default();
        let mut mib: Samples = Default::default();
        let mut own_hs: Samples = Default::default();
        let mut own_mib: Samples = Default::default();
        for rep in 0..plan.memory_reps {
            for lib in Lib::order(rep) {
                let what = format!("memory {} {}", version.name(), lib.name());
                let Some(s) = run(&rt, &what, memory_sample(env, lib, &cfg)) else {
                    continue;
                };
                let i = lib.index();
                hs[i].extend(s.after_handshake.map(|d| d.live as f64));
                mib[i].extend(s.after_mib.map(|d| d.live as f64));
                if let Some((a, b)) = s.own_buffers {
                    own_hs[i].push(a as f64);
                    own_mib[i].push(b as f64);
                }
            }
        }
        for (state, samples, own) in [
            ("after_handshake", &hs, &own_hs),
            ("after_1MiB_each_way", &mib, &own_mib),
        ] {
            let [n, r] = figure_pair(
                &format!("live_heap_per_pair/{}/{state}", version.name()),
                "bytes",
                samples,
            );
            println!(
                "{:<8} {:<20} {:>8} {:>9} {:>8} {:>6} {:>7}   {} / {}",
                version.name(),
                state,
                fmt_value(n.lazytls),
                fmt_value(r.lazytls),
                fmt_value(n.tokio_rustls),
                fmt_ratio(n.ratio()),
                fmt_ratio(r.ratio()),
                fmt_value(support::median(&own[0])),
                fmt_value(support::median(&own[1])),
            );
            figures.extend([n, r]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small-message round trips
// ---------------------------------------------------------------------------------------

struct RttSample {
    per_sec: f64,
    allocs: Option<f64>,
}

/// 1 KiB write + flush + read round trips, the server echoing, both on one task. The
/// client marks its last message with a first byte of 1.
async fn pingpong<C, S>(
    env: Env,
    c: &mut C,
    s: &mut S,
    budget: Duration,
) -> Result<RttSample, String>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    const MAX_ROUND_TRIPS: usize = 10_000_000;
    let client = async {
        let mut msg = [0u8; RTT_MSG];
        let mut back = [0u8; RTT_MSG];
        let mut n = 0;
        let mut mark = env.counter.mark();
        let mut t0 = Instant::now();
        loop {
            let last =
                n >= RTT_WARMUP && (n >= RTT_WARMUP + MAX_ROUND_TRIPS || t0.elapsed() >= budget);
            msg[0] = u8::from(last);
            c.write_all(&msg).await?;
            c.flush().await?;
            c.read_exact(&mut back).await?;
            n += 1;
            if n == RTT_WARMUP {
                mark = env.counter.mark();
                t0 = Instant::now();
            }
            if last {
                break;
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let d = env.counter.since(mark);
        let timed = (n - RTT_WARMUP) as f64;
        io::Result::Ok(RttSample {
            per_sec: timed / elapsed,
            allocs: d.map(|d| d.allocs as f64 / timed),
        })
    };
    let server = async {
        let mut buf = [0u8; RTT_MSG];
        for _ in 0..RTT_WARMUP + MAX_ROUND_TRIPS + 1 {
            s.read_exact(&mut buf).await?;
            s.write_all(&buf).await?;
            s.flush().await?;
            if buf[0] == 1 {
                break;
            }
        }
        io::Result::Ok(())
    };
    let (r, done) = tokio::join!(client, server);
    done.map_err(|e| format!("echo: {e}"))?;
    r.map_err(|e| format!("round trip: {e}"))
}

async fn rtt_on<IO>(
    env: Env,
    lib: Lib,
    cfg: &Configs,
    a: IO,
    b: IO,
    budget: Duration,
) -> Result<RttSample, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match lib.layer() {
        Some(layer) => {
            let (mut c, mut s) = lazy_pair(cfg, layer, a, b).await?;
            pingpong(env, &mut c, &mut s, budget).await
        }
        None => {
            let (mut c, mut s) = tokio_pair(cfg, a, b).await?;
            pingpong(env, &mut c, &mut s, budget).await
        }
    }
}

async fn rtt_sample(
    env: Env,
    lib: Lib,
    transport: Transport,
    cfg: &Configs,
    budget: Duration,
) -> Result<RttSample, String> {
    match transport {
        Transport::Duplex => {
            let (a, b) = tokio::io::duplex(SMALL_DUPLEX_BUF);
            rtt_on(env, lib, cfg, a, b, budget).await
        }
        Transport::Tcp => {
            let (a, b) = tcp_pair().await?;
            rtt_on(env, lib, cfg, a, b, budget).await
        }
    }
}

fn latency(plan: &Plan, pki: &Pki, env: Env, figures: &mut Vec<Figure>) {
    let rt = Flavor::CurrentThread.runtime();
    let cfg = pki.configs(Version::Tls13, Kx::Default, false);
    println!();
    println!(
        "## 1 KiB write + flush + read round trips per second (echo, one task, current_thread, TLS 1.3); median of {}",
        plan.reps
    );
    println!(
        "{:<8} {:>8} {:>9} {:>8} {:>6} {:>7} {:>28}",
        "io", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio", "allocs/round trip (L/R/T)"
    );
    for transport in [Transport::Duplex, Transport::Tcp] {
        let mut per_sec: Samples = Default::default();
        let mut allocs: Samples = Default::default();
        for rep in 0..plan.reps {
            for lib in Lib::order(rep) {
                let what = format!("round trips {} {}", transport.name(), lib.name());
                let Some(s) = run(
                    &rt,
                    &what,
                    rtt_sample(env, lib, transport, &cfg, plan.rtt_budget),
                ) else {
                    continue;
                };
                per_sec[lib.index()].push(s.per_sec);
                allocs[lib.index()].extend(s.allocs);
            }
        }
        let [n, r] = figure_pair(
            &format!("round_trips_per_sec/{}/1KiB", transport.name()),
            "round trips/s",
            &per_sec,
        );
        println!(
            "{:<8} {:>8} {:>9} {:>8} {:>6} {:>7} {:>28}",
            transport.name(),
            fmt_value(n.lazytls),
            fmt_value(r.lazytls),
            fmt_value(n.tokio_rustls),
            fmt_ratio(n.ratio()),
            fmt_ratio(r.ratio()),
            three(&allocs),
        );
        figures.extend([n, r]);
        figures.extend(figure_pair(
            &format!("allocs_per_round_trip/{}/1KiB", transport.name()),
            "allocs",
            &allocs,
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Full-duplex throughput
// ---------------------------------------------------------------------------------------

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

fn full_duplex(plan: &Plan, pki: &Pki, figures: &mut Vec<Figure>) {
    let rt = Flavor::MultiThread.runtime();
    let cfg = pki.configs(Version::Tls13, Kx::Default, false);
    // One unrecorded warm-up sample each.
    for lib in Lib::order(0) {
        run(&rt, "duplex warm-up", duplex_sample(Some(lib), &cfg, MIB));
    }
    let mut rows = Vec::new();
    for &size_mib in &plan.duplex_sizes {
        let size = size_mib * MIB;
        let mut mbps: Samples = Default::default();
        let mut cores: Samples = Default::default();
        let mut plain = Vec::new();
        for rep in 0..plan.reps {
            for lib in Lib::order(rep) {
                let what = format!("duplex tcp {size_mib}MiB {}", lib.name());
                let Some(s) = run(&rt, &what, duplex_sample(Some(lib), &cfg, size)) else {
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
                let sample = run(&rt, &what, duplex_sample(None, &cfg, size));
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
        rows.push((size_mib, n, r, support::median(&plain), cores));
    }

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
    for (size_mib, n, r, plain, cores) in rows {
        println!(
            "{:>6}Mi {:>8} {:>9} {:>8} {:>6} {:>7} {:>8} {:>18}",
            size_mib,
            fmt_value(n.lazytls),
            fmt_value(r.lazytls),
            fmt_value(n.tokio_rustls),
            fmt_ratio(n.ratio()),
            fmt_ratio(r.ratio()),
            fmt_value(plain),
            three(&cores),
        );
        figures.extend([n, r]);
    }
}
