//! Live heap per idle client+server pair (section `memory`), after the handshake and after
//! 1 MiB each way, over loopback TCP: the mean over [`PAIRS`] pairs open at once, each end
//! waiting in a read or held with no read pending ([`Idle`]).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::setup::{LazyEnds, lazy_ends, lazy_pair_with, tcp_pair, tokio_pair};
use crate::support::{self, Configs, Delta, Figure, Kx, Pki, Version, columns, fmt_value};
use crate::{Env, Flavor, Lib, MIB, Plan, Samples, figure_pair, run};

use tokio::net::TcpStream;

/// Idle pairs measured together in one sample.
const PAIRS: usize = 50;

struct MemSample {
    after_handshake: Option<Delta>,
    after_mib: Option<Delta>,
    /// lazytls's own buffers (`buffered_capacity`), both ends, in the two states.
    own_buffers: Option<(usize, usize)>,
}

/// The client writes `out`, the server reads it and writes `out` back, the client reads
/// it.
pub(crate) async fn exchange<C, S>(
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

/// Polls one read of `r` and drops it: a connection waiting in a read is what an idle
/// connection is (lazytls releases its buffers then).
pub(crate) async fn park<R: AsyncRead + Unpin>(r: &mut R) {
    let mut byte = [0; 1];
    std::future::poll_fn(|cx| {
        let mut buf = tokio::io::ReadBuf::new(&mut byte);
        let _ = std::pin::Pin::new(&mut *r).poll_read(cx, &mut buf);
        std::task::Poll::Ready(())
    })
    .await
}

/// How an idle connection is left after its traffic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Idle {
    /// Each end waits in a read, as a server's connection between requests does.
    Waiting,
    /// Neither end has a read pending: a pooled client connection, a server that read a
    /// request and awaits something else.
    Held,
}

impl Idle {
    pub(crate) const ALL: [Idle; 2] = [Idle::Waiting, Idle::Held];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Idle::Waiting => "read_waiting",
            Idle::Held => "no_read_pending",
        }
    }
}

/// One pair of either contender over loopback TCP, boxed (so that the streams' own
/// structs count, as a server that keeps its connections in tasks pays for them on the
/// heap).
pub(crate) enum Pair {
    Lazy(Box<Lazy>, Box<Lazy>),
    Tokio(Box<TokioClient>, Box<TokioServer>),
}
type Lazy = lazytls::TlsStream<tokio::net::TcpStream>;
type TokioClient = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;
type TokioServer = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

impl Pair {
    /// Opens and handshakes one pair: lazytls with `lazy`'s ends, or tokio-rustls.
    pub(crate) async fn open(
        lazy: Option<&LazyEnds>,
        cfg: &Configs,
        a: TcpStream,
        b: TcpStream,
    ) -> Result<Pair, String> {
        Ok(match lazy {
            Some((connector, acceptor, layer)) => {
                let (c, s) = lazy_pair_with(connector, acceptor, *layer, a, b).await?;
                Pair::Lazy(Box::new(c), Box::new(s))
            }
            None => {
                let (c, s) = tokio_pair(cfg, a, b).await?;
                Pair::Tokio(Box::new(c), Box::new(s))
            }
        })
    }

    /// [`exchange`], then each end is left as `idle` says.
    pub(crate) async fn exchange_and_idle(
        &mut self,
        out: &[u8],
        cin: &mut [u8],
        sin: &mut [u8],
        idle: Idle,
    ) -> Result<(), String> {
        match self {
            Pair::Lazy(c, s) => {
                exchange(&mut **c, &mut **s, out, cin, sin).await?;
                if idle == Idle::Waiting {
                    park(&mut **c).await;
                    park(&mut **s).await;
                }
            }
            Pair::Tokio(c, s) => {
                exchange(&mut **c, &mut **s, out, cin, sin).await?;
                if idle == Idle::Waiting {
                    park(&mut **c).await;
                    park(&mut **s).await;
                }
            }
        }
        Ok(())
    }

    fn own_buffers(&self) -> usize {
        match self {
            Pair::Lazy(c, s) => c.buffered_capacity() + s.buffered_capacity(),
            Pair::Tokio(..) => 0,
        }
    }
}

/// Live heap of [`PAIRS`] idle pairs over loopback TCP, per pair (the sockets exist before
/// the first reading, so only TLS state counts). Measuring many pairs at once spreads
/// what is shared over them, as a server would: lazytls's per-thread spare buffers.
async fn memory_sample(env: Env, lib: Lib, cfg: &Configs, idle: Idle) -> Result<MemSample, String> {
    let mut tcp = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        tcp.push(tcp_pair().await?);
    }
    let out = vec![0x5a; MIB];
    let mut cin = vec![0; MIB];
    let mut sin = vec![0; MIB];
    let mut pairs = Vec::with_capacity(PAIRS);
    let lazy = lazy_ends(lib, cfg);
    let mark = env.counter.mark();
    for (a, b) in tcp {
        pairs.push(Pair::open(lazy.as_ref(), cfg, a, b).await?);
    }
    let after_handshake = env.counter.since(mark);
    let own_hs = pairs.iter().map(Pair::own_buffers).sum::<usize>();
    for pair in &mut pairs {
        pair.exchange_and_idle(&out, &mut cin, &mut sin, idle)
            .await?;
    }
    let after_mib = env.counter.since(mark);
    let own_mib = pairs.iter().map(Pair::own_buffers).sum::<usize>();
    let per_pair = |d: Option<Delta>| {
        d.map(|d| Delta {
            live: d.live / PAIRS as i64,
            ..d
        })
    };
    Ok(MemSample {
        after_handshake: per_pair(after_handshake),
        after_mib: per_pair(after_mib),
        own_buffers: lib.layer().map(|_| (own_hs / PAIRS, own_mib / PAIRS)),
    })
}

/// The live-heap table: each TLS version, after the handshake and after 1 MiB each way,
/// with each end then waiting in a read or held with no read pending.
pub(crate) fn memory(plan: &Plan, pki: &Pki, env: Env, figures: &mut Vec<Figure>) {
    let rt = Flavor::CurrentThread.runtime();
    println!();
    println!(
        "## Live heap per idle client+server pair, bytes (loopback TCP, no session tickets; mean of {PAIRS} pairs open at once, each waiting in a read or held with no read pending); median of {}",
        plan.memory_reps
    );
    println!(
        "{:<8} {:<27} {:>8} {:>9} {:>8} {:>6} {:>7}   own buffers: lazytls / lz-rustls",
        "version", "state", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio"
    );
    for version in Version::all() {
        let cfg = pki.configs(version, Kx::Default, false);
        for lib in Lib::order(0) {
            run(
                &rt,
                "memory warm-up",
                memory_sample(env, lib, &cfg, Idle::Waiting),
            );
        }
        for idle in Idle::ALL {
            let mut hs: Samples = Default::default();
            let mut mib: Samples = Default::default();
            let mut own_hs: Samples = Default::default();
            let mut own_mib: Samples = Default::default();
            for rep in 0..plan.memory_reps {
                for lib in Lib::order(rep) {
                    let what = format!("memory {} {} {}", version.name(), lib.name(), idle.name());
                    let Some(s) = run(&rt, &what, memory_sample(env, lib, &cfg, idle)) else {
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
            let rows: &[(&str, &Samples, &Samples)] = match idle {
                Idle::Waiting => &[
                    ("after_handshake", &hs, &own_hs),
                    ("after_1MiB_each_way", &mib, &own_mib),
                ],
                Idle::Held => &[("after_1MiB_no_read_pending", &mib, &own_mib)],
            };
            for &(state, samples, own) in rows {
                let [n, r] = figure_pair(
                    &format!("live_heap_per_pair/{}/{state}", version.name()),
                    "bytes",
                    samples,
                );
                println!(
                    "{:<8} {:<27} {}   {} / {}",
                    version.name(),
                    state,
                    columns(&n, &r),
                    fmt_value(support::median(&own[0])),
                    fmt_value(support::median(&own[1])),
                );
                figures.extend([n, r]);
            }
        }
    }
}
