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
//! - full and resumed handshakes per second over duplex and loopback TCP (TLS 1.3, ECDSA
//!   P-256, X25519 and the provider's default key exchange), and the handshake floor: the
//!   provider's raw crypto for one handshake pair, with each stack's rate as a fraction of
//!   it;
//! - live heap per idle client+server pair after the handshake and after 1 MiB each way;
//! - 1 KiB write + flush + read round trips per second;
//! - full-duplex throughput over loopback TCP on multi_thread (2 workers): both ends send
//!   at once, each end's reader and writer in their own tasks (lazytls's `into_split`
//!   halves against `tokio::io::split` of tokio-rustls's stream);
//! - Go's `BenchmarkThroughput/MaxPacket/{1..64}MB/TLSv1{2,3}` lines;
//! - the limits: the same transfer without TLS, the AEAD floor (sealing and opening 16 KiB
//!   records on one core), CPU time per GB over TCP, and the one-core figures as fractions
//!   of those limits;
//! - at scale, over loopback TCP: RSS and live heap per idle pair with 1,000 and 8,000
//!   pairs open (one child process per sample), and 64 connections streaming at once on
//!   multi_thread (aggregate MB/s, CPU seconds per GB); handshakes per second over TCP are
//!   in the handshake table.
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
//!
//! Layout: this file has the plan (modes and environment variables), the contenders and
//! their interleaving, the sample runner and the summary; [`setup`] makes the connections;
//! each figure family has its own module, named after its `LAZYTLS_BENCH_ONLY` section
//! ([`throughput`] with [`allocations`], [`limits`] and [`go_lines`], [`handshakes`] with
//! [`handshake_floor`],
//! [`memory`], [`latency`], [`duplex`], [`scale`]); [`support`] has the allocation
//! counter, the PKI and the statistics.

mod allocations;
mod duplex;
mod go_lines;
mod handshake_floor;
mod handshakes;
mod latency;
mod limits;
mod memory;
mod scale;
mod setup;
mod support;
mod throughput;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lazytls::RecordLayer;
use tokio::runtime::Runtime;

use support::{Counter, Figure, Pki, fmt_value};

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
    /// Idle pairs open at once in the scale section, and samples per contender there.
    scale_pairs: Vec<usize>,
    scale_reps: usize,
    /// MiB each of the concurrent streams moves.
    stream_mib: usize,
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
        if ["LAZYTLS_BENCH_LIB", "LAZYTLS_BENCH_HS_OPS"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
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
                scale_pairs: vec![20],
                scale_reps: 1,
                stream_mib: 1,
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
                scale_pairs: vec![1000],
                scale_reps: 1,
                stream_mib: 4,
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
                scale_pairs: vec![1000, 8000],
                scale_reps: 3,
                stream_mib: 16,
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
    // A child process of the scale section measures its sample and exits here.
    scale::child_main(env);
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
        let rows = throughput::throughput(&plan, &pki, env, &mut figures);
        allocations::tables(&plan, &rows, &mut figures);
        let plain = throughput::transport_floor(&plan, env);
        let floor = limits::aead_floor(&plan, &mut figures);
        limits::cpu_per_gb(&plan, &rows, &mut figures);
        limits::fractions(&plan, &rows, &floor, &plain);
        go_lines::go_table(&rows);
    }
    if plan.runs("handshakes") {
        handshakes::handshakes(&plan, &pki, env, &mut figures);
    }
    if plan.runs("memory") {
        memory::memory(&plan, &pki, env, &mut figures);
    }
    if plan.runs("latency") {
        latency::latency(&plan, &pki, env, &mut figures);
    }
    if plan.runs("duplex") {
        duplex::full_duplex(&plan, &pki, &mut figures);
    }
    if plan.runs("scale") {
        scale::scale(&plan, &pki, &mut figures);
    }

    println!();
    println!(
        "wall time: {:.1} s; load at end: {}",
        started.elapsed().as_secs_f64(),
        support::loadavg()
    );
    if plan.write_summary {
        let path = support::target_dir().join("bench-summary.json");
        let mut all: Vec<_> = figures.iter().map(Figure::json).collect();
        // The serving benchmark (benches/serving/run) adds its figures to this file: an
        // earlier run's stay, since this run does not measure them.
        all.extend(serving_figures(&path));
        let json = serde_json::Value::Array(all);
        let text = serde_json::to_string_pretty(&json).expect("summary serialises");
        match std::fs::write(&path, text) {
            Ok(()) => println!("summary: {} ({} figures)", path.display(), figures.len()),
            Err(e) => eprintln!("compare: cannot write {}: {e}", path.display()),
        }
    }
}

/// The figures named `serving/...` in the summary at `path`, if there is one.
fn serving_figures(path: &std::path::Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(old)) = serde_json::from_str(&text) else {
        return Vec::new();
    };
    old.into_iter()
        .filter(|f| {
            f["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("serving/"))
        })
        .collect()
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
