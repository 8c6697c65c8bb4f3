//! Small-message round trips (section `latency`): 1 KiB write + flush + read, echoed, over
//! duplex and loopback TCP.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::setup::{lazy_pair_with, tcp_pair, tokio_pair};
use crate::support::{Configs, Figure, Kx, Pki, Version, columns};
use crate::{
    Env, Flavor, Lib, Plan, RTT_MSG, RTT_WARMUP, SMALL_DUPLEX_BUF, Samples, Transport, figure_pair,
    run, three,
};

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
    keep: bool,
    a: IO,
    b: IO,
    budget: Duration,
) -> Result<RttSample, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match lib.layer() {
        Some(layer) => {
            let connector = lazytls::TlsConnector::new(cfg.client.clone())
                .record_layer(layer)
                .keep_idle_buffers(keep);
            let acceptor = lazytls::TlsAcceptor::new(cfg.server.clone())
                .record_layer(layer)
                .keep_idle_buffers(keep);
            let (mut c, mut s) = lazy_pair_with(&connector, &acceptor, layer, a, b).await?;
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
    keep: bool,
    budget: Duration,
) -> Result<RttSample, String> {
    match transport {
        Transport::Duplex => {
            let (a, b) = tokio::io::duplex(SMALL_DUPLEX_BUF);
            rtt_on(env, lib, cfg, keep, a, b, budget).await
        }
        Transport::Tcp => {
            let (a, b) = tcp_pair().await?;
            rtt_on(env, lib, cfg, keep, a, b, budget).await
        }
    }
}

/// The round-trip table: duplex and loopback TCP, TLS 1.3.
pub(crate) fn latency(plan: &Plan, pki: &Pki, env: Env, figures: &mut Vec<Figure>) {
    let rt = Flavor::CurrentThread.runtime();
    let cfg = pki.configs(Version::Tls13, Kx::Default, false);
    println!();
    println!(
        "## 1 KiB write + flush + read round trips per second (echo, one task, current_thread, TLS 1.3); median of {}",
        plan.reps
    );
    println!(
        "{:<11} {:>8} {:>9} {:>8} {:>6} {:>7} {:>28}",
        "io", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio", "allocs/round trip (L/R/T)"
    );
    // `/keep`: lazytls with `keep_idle_buffers(true)`, which skips the release of its
    // buffers at every wait.
    for (transport, keep) in [
        (Transport::Duplex, false),
        (Transport::Tcp, false),
        (Transport::Duplex, true),
        (Transport::Tcp, true),
    ] {
        let row = format!("{}{}", transport.name(), if keep { "/keep" } else { "" });
        let mut per_sec: Samples = Default::default();
        let mut allocs: Samples = Default::default();
        for rep in 0..plan.reps {
            for lib in Lib::order(rep) {
                let what = format!("round trips {row} {}", lib.name());
                let Some(s) = run(
                    &rt,
                    &what,
                    rtt_sample(env, lib, transport, &cfg, keep, plan.rtt_budget),
                ) else {
                    continue;
                };
                per_sec[lib.index()].push(s.per_sec);
                allocs[lib.index()].extend(s.allocs);
            }
        }
        let [n, r] = figure_pair(
            &format!("round_trips_per_sec/{row}/1KiB"),
            "round trips/s",
            &per_sec,
        );
        println!("{:<11} {} {:>28}", row, columns(&n, &r), three(&allocs),);
        figures.extend([n, r]);
        figures.extend(figure_pair(
            &format!("allocs_per_round_trip/{row}/1KiB"),
            "allocs",
            &allocs,
        ));
    }
}
