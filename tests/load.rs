//! Load on loopback TCP.
//!
//! - **Concurrent connections.** N clients connect at once to one server: an accept loop
//!   that spawns a task per `TlsAcceptor::accept(tcp)` stream (the handshake runs lazily in
//!   that task, under the acceptor's deadline). Every client completes its handshake, then
//!   waits at a barrier until all N have, so N TLS connections (2N sockets) are open at the
//!   same moment; then each echoes 64 KiB through the server (full duplex, through
//!   `tokio::io::split`) and closes with close_notify. Every byte is checked. The peak RSS
//!   of the process (`VmHWM`) is printed.
//! - **Sequential handshakes.** One server; N connections one after another (handshake,
//!   a small echo, close), alternately full handshakes and resumed sessions. After a warm-up (a tenth of the run, so that session caches and
//!   buffers reach their steady size), the resident set is sampled ten times; it must not
//!   grow by more than a small bound, which a leak of a few hundred bytes per connection
//!   would exceed.
//!
//! The variants that run in CI (200 concurrent, 2,000 sequential) take a few seconds in a
//! debug build. The heavier ones are `#[ignore]`d; run them (release is faster; the figures
//! printed are then those of an optimized build) with:
//!
//! ```sh
//! cargo test --release --test load -- --ignored --nocapture --test-threads 1
//! ```
//!
//! The concurrent variant needs about 2N + 100 file descriptors (`ulimit -n`). Tests in this
//! file run one at a time (a lock), so each one's memory figures are its own as far as a
//! process allows (`VmHWM` is a high-water mark since the process started).
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use lazytls::{TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;

/// One load test at a time in this process.
static SERIAL: Mutex<()> = Mutex::new(());

const ECHO: usize = 64 * 1024;

/// A field of `/proc/self/status`, in KiB (Linux); 0 elsewhere.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Accepts forever; each connection is served in its own task: the handshake happens on
/// the first read (lazily), then everything read is written back until the client's
/// close_notify, then our close_notify.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tcp.set_nodelay(true).unwrap();
        let mut tls = acceptor.accept(tcp);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if tls.write_all(&buf[..n]).await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
            let _ = tls.shutdown().await;
        });
    }
}

async fn server(pki: &Pki) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(pki.server_config()).handshake_timeout(Duration::from_secs(60));
    tokio::spawn(serve(listener, acceptor));
    addr
}

/// One client of the concurrent test: handshake, wait for everyone, echo 64 KiB.
async fn echo_client(
    connector: TlsConnector,
    addr: std::net::SocketAddr,
    barrier: Arc<Barrier>,
    seed: u8,
) -> Result<(), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).unwrap();
    let mut tls = connector.connect(localhost(), tcp);
    tls.handshake()
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    barrier.wait().await;
    let data = pattern(ECHO, seed);
    let (mut r, mut w) = tokio::io::split(tls);
    let writer = async {
        w.write_all(&data).await?;
        w.shutdown().await
    };
    let reader = async {
        let mut got = Vec::with_capacity(ECHO);
        r.read_to_end(&mut got).await.map(|_| got)
    };
    let (wr, got) = tokio::join!(writer, reader);
    wr.map_err(|e| format!("write: {e}"))?;
    let got = got.map_err(|e| format!("read: {e}"))?;
    if got != data {
        return Err(format!("echo differs ({} bytes back)", got.len()));
    }
    Ok(())
}

fn concurrent_echo(n: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(limit) = open_files_limit() {
        let need = 2 * n as u64 + 100;
        assert!(
            limit >= need,
            "{n} connections need about {need} file descriptors; the limit is {limit} \
             (raise it with `ulimit -n {need}`)"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pki = Pki::new();
    let rss_before = status_kib("VmRSS");
    let started = Instant::now();
    let (ok, failures) = rt.block_on(async {
        let addr = server(&pki).await;
        let connector = TlsConnector::new(pki.client_config());
        let barrier = Arc::new(Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                tokio::spawn(echo_client(
                    connector.clone(),
                    addr,
                    barrier.clone(),
                    i as u8,
                ))
            })
            .collect();
        let all = async {
            let mut failures = Vec::new();
            let mut ok = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(()) => ok += 1,
                    Err(e) => failures.push(e),
                }
            }
            (ok, failures)
        };
        tokio::time::timeout(Duration::from_secs(300), all)
            .await
            .expect("the load did not finish within 300 s")
    });
    let took = started.elapsed();
    let hwm = status_kib("VmHWM");
    println!(
        "{n} concurrent connections, handshake + 64 KiB echo each: {ok} ok in {took:.1?}; \
         RSS before {} MiB, peak RSS (VmHWM) {} MiB",
        rss_before / 1024,
        hwm / 1024
    );
    assert!(
        failures.is_empty(),
        "{} of {n} failed, first: {}",
        failures.len(),
        failures[0]
    );
    assert_eq!(ok, n);
}

/// 200 connections at once; each a handshake and a 64 KiB echo.
#[test]
fn concurrent_200_connections_echo() {
    concurrent_echo(200);
}

/// 1,000 connections at once (2,000 sockets); each a handshake and a 64 KiB echo.
#[test]
#[ignore = "heavy: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn concurrent_1000_connections_echo() {
    concurrent_echo(1000);
}

/// `n` connections in a row on one server; the resident set must level off after the
/// warm-up. Returns (RSS after the warm-up, the largest RSS after it), in KiB.
fn sequential_handshakes(n: usize, max_growth_kib: u64) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // One thread: the client, the server and their tasks share one allocator arena, so
    // the figures are steady.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = Pki::new();
    let warm_up = n / 10;
    let started = Instant::now();
    let samples = rt.block_on(async {
        let addr = server(&pki).await;
        // Every other connection resumes a session; the others make full handshakes.
        let resuming = TlsConnector::new(pki.client_config());
        let mut config = pki.client_config_with(lazytls::rustls::DEFAULT_VERSIONS);
        config.resumption = lazytls::rustls::client::Resumption::disabled();
        let full = TlsConnector::new(Arc::new(config));
        let mut samples = Vec::new();
        let mut resumed = 0;
        for i in 0..n {
            let connector = if i % 2 == 0 { &full } else { &resuming };
            let one = async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let mut tls = connector.connect(localhost(), tcp);
                tls.write_all(b"ping").await.unwrap();
                tls.flush().await.unwrap();
                let mut got = [0u8; 4];
                tls.read_exact(&mut got).await.unwrap();
                assert_eq!(&got, b"ping");
                tls.shutdown().await.unwrap();
                let mut rest = Vec::new();
                tls.read_to_end(&mut rest).await.unwrap();
                assert!(rest.is_empty());
                tls.info().unwrap().resumed
            };
            if tokio::time::timeout(Duration::from_secs(30), one)
                .await
                .unwrap_or_else(|_| panic!("connection {i} did not finish within 30 s"))
            {
                resumed += 1;
            }
            // Let the server task finish and free this connection.
            tokio::task::yield_now().await;
            if i + 1 >= warm_up && (i + 1 - warm_up) % ((n - warm_up) / 10).max(1) == 0 {
                samples.push((i + 1, status_kib("VmRSS")));
            }
        }
        println!("{resumed} of {n} connections resumed a session");
        samples
    });
    let took = started.elapsed();
    let base = samples[0].1;
    let peak = samples.iter().map(|s| s.1).max().unwrap();
    let last = samples.last().unwrap();
    println!(
        "{n} sequential handshakes in {took:.1?} ({:.0}/s); RSS after {warm_up} (warm-up) {base} KiB, \
         then max {peak} KiB, at the end {} KiB; samples {samples:?}",
        n as f64 / took.as_secs_f64(),
        last.1
    );
    let growth = peak.saturating_sub(base);
    let per_conn = growth as f64 * 1024.0 / (n - warm_up) as f64;
    println!("growth after warm-up: {growth} KiB ({per_conn:.1} bytes per connection)");
    assert!(
        growth <= max_growth_kib,
        "RSS grew by {growth} KiB over {} connections after the warm-up (bound {max_growth_kib} \
         KiB): a leak of about {per_conn:.0} bytes per connection",
        n - warm_up
    );
}

/// 2,000 connections one after another; no growth after the first 200.
#[test]
fn sequential_2000_handshakes_level_off() {
    sequential_handshakes(2000, 1024);
}

/// 10,000 connections one after another; no growth after the first 1,000.
#[test]
#[ignore = "heavy: cargo test --release --test load -- --ignored --nocapture --test-threads 1"]
fn sequential_10000_handshakes_level_off() {
    sequential_handshakes(10_000, 2048);
}
