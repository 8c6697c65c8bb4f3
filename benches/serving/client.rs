//! The Rust client of the serving benchmark (`bash benches/serving/run` builds and runs
//! it; see `benches/serving/README.md`), for the two rows h2load cannot do: h2load never
//! resumes a TLS session, and it cannot hold thousands of idle connections.
//!
//! - `connect`: new connections for `--secs`, `--concurrency` at a time, each with one
//!   `GET /` (HTTP/1.1, `Connection: close`), read to the server's close. With `--resume`
//!   every worker keeps its own session cache, so each of its connections after the first
//!   resumes from a ticket of its previous one: the tickets are TLS 1.3's single-use ones,
//!   and a shared cache would run dry when the workers outpace the servers (Go and OpenSSL
//!   send one ticket per resumed connection). Prints one JSON line: connections,
//!   resumed, errors, seconds.
//! - `hold`: opens `--conns` connections, each with one keep-alive `GET /` answered in
//!   full, prints `held N` and keeps them open for `--max-secs` (or until killed).
//!
//! The client offers what the servers are restricted to (TLS 1.3, AES-128-GCM, ALPN
//! `http/1.1`) and X25519 only, the key exchange that nginx (OpenSSL 3.0) and Go 1.19 pick,
//! so that the rustls servers do not negotiate the costlier post-quantum hybrid instead.
//! It verifies the server's certificate against `--ca`, as a real client would.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lazytls::rustls::client::Resumption;
use lazytls::rustls::crypto::aws_lc_rs;
use lazytls::rustls::pki_types::pem::PemObject;
use lazytls::rustls::pki_types::{CertificateDer, ServerName};
use lazytls::rustls::{self, ClientConfig, HandshakeKind, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type Result<T, E = Box<dyn StdError + Send + Sync>> = std::result::Result<T, E>;

const USAGE: &str = "\
usage: serving_client connect --addr HOST:PORT --ca PEM [--secs S] [--concurrency C] [--resume]
       serving_client hold --addr HOST:PORT --ca PEM --conns N [--max-secs S]";

/// Bound on one connection's whole exchange, so that a stuck server shows as errors.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight while `hold` opens its connections: enough to keep the server
/// busy, few enough that no server's accept backlog or handshake cap comes into it.
const HOLD_IN_FLIGHT: usize = 64;
const SERVER_NAME: &str = "localhost";

#[derive(Debug, PartialEq)]
enum Mode {
    Connect,
    Hold,
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    addr: String,
    ca: PathBuf,
    secs: f64,
    concurrency: usize,
    resume: bool,
    conns: usize,
    max_secs: f64,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("serving_client: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = match args.mode {
        Mode::Connect => runtime.block_on(connect(&args)),
        Mode::Hold => runtime.block_on(hold(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serving_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mode = match argv.next().as_deref() {
        Some("connect") => Mode::Connect,
        Some("hold") => Mode::Hold,
        Some(other) => return Err(format!("unknown mode: {other}")),
        None => return Err("a mode is required".into()),
    };
    let mut args = Args {
        mode,
        addr: String::new(),
        ca: PathBuf::new(),
        secs: 5.0,
        concurrency: 16,
        resume: false,
        conns: 0,
        max_secs: 300.0,
    };
    let number = |flag: &str, v: String| {
        v.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n > 0.0)
            .ok_or_else(|| format!("{flag}: not a positive number: {v}"))
    };
    while let Some(flag) = argv.next() {
        if flag == "--resume" {
            args.resume = true;
            continue;
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--ca" => args.ca = PathBuf::from(value),
            "--secs" => args.secs = number(&flag, value)?,
            "--concurrency" => args.concurrency = number(&flag, value)? as usize,
            "--conns" => args.conns = number(&flag, value)? as usize,
            "--max-secs" => args.max_secs = number(&flag, value)?,
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if args.addr.is_empty() || args.ca.as_os_str().is_empty() {
        return Err("--addr and --ca are required".into());
    }
    if args.mode == Mode::Hold && args.conns == 0 {
        return Err("hold needs --conns".into());
    }
    Ok(args)
}

/// The client config; `resume` gives it a session cache of its own.
fn client_config(args: &Args, resume: bool) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(cert?)?;
    }
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
    provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if resume {
        Resumption::in_memory_sessions(8)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// Connections of one `connect` worker.
#[derive(Default)]
struct Tally {
    conns: u64,
    resumed: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn connect(args: &Args) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.secs);
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let connector = TlsConnector::from(client_config(args, args.resume)?);
        workers.spawn(connect_worker(args.addr.clone(), connector, deadline));
    }
    let mut total = Tally::default();
    while let Some(tally) = workers.join_next().await {
        let tally = tally?;
        total.conns += tally.conns;
        total.resumed += tally.resumed;
        total.errors += tally.errors;
        total.first_error = total.first_error.or(tally.first_error);
    }
    if let Some(e) = &total.first_error {
        eprintln!("serving_client: {} error(s), the first: {e}", total.errors);
    }
    println!(
        "{{\"conns\": {}, \"resumed\": {}, \"errors\": {}, \"secs\": {:.4}}}",
        total.conns,
        total.resumed,
        total.errors,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn connect_worker(addr: String, connector: TlsConnector, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let exchange = exchange(&connector, &addr, REQUEST_CLOSE);
        match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
            Ok(Ok((mut tls, resumed))) => {
                // Read to the server's close (its close_notify, or EOF), so that the
                // server closes first and its teardown falls inside the measurement.
                let mut rest = [0u8; 512];
                let drained = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
                    while tls.read(&mut rest).await? > 0 {}
                    io::Result::Ok(())
                });
                // An EOF without close_notify is no failure of the request.
                let _ = drained.await;
                tally.conns += 1;
                tally.resumed += u64::from(resumed);
            }
            Ok(Err(e)) => tally.error(e.to_string()),
            Err(_) => tally.error("timed out".into()),
        }
    }
    tally
}

impl Tally {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

async fn hold(args: &Args) -> Result<()> {
    let connector = TlsConnector::from(client_config(args, false)?);
    let mut held = Vec::with_capacity(args.conns);
    let mut pending = JoinSet::new();
    let (mut started, mut errors, mut first_error) = (0, 0, None);
    loop {
        while started < args.conns && pending.len() < HOLD_IN_FLIGHT {
            let (connector, addr) = (connector.clone(), args.addr.clone());
            pending.spawn(async move {
                let exchange = exchange(&connector, &addr, REQUEST_KEEP_ALIVE);
                match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                    Ok(result) => result.map(|(tls, _)| tls),
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
                }
            });
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(tls))) => held.push(tls),
            Some(Ok(Err(e))) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    if let Some(e) = first_error {
        return Err(format!(
            "{errors} of {} connections failed, the first: {e}",
            args.conns
        )
        .into());
    }
    println!("held {}", held.len());
    // Bounded, so that a script that lost track of this process frees the sockets anyway.
    tokio::time::sleep(Duration::from_secs_f64(args.max_secs)).await;
    drop(held);
    Ok(())
}

const REQUEST_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
const REQUEST_KEEP_ALIVE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Connects, completes the handshake, sends `request` and reads a `200` response with a
/// `Content-Length` body. Returns the stream and whether the handshake resumed a session.
async fn exchange(
    connector: &TlsConnector,
    addr: &str,
    request: &[u8],
) -> io::Result<(TlsStream<TcpStream>, bool)> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(SERVER_NAME).expect("a valid server name");
    let mut tls = connector.connect(name, tcp).await?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    tls.write_all(request).await?;
    tls.flush().await?;
    read_response(&mut tls).await?;
    Ok((tls, resumed))
}

/// Reads one response: the head up to its blank line, then `Content-Length` bytes.
async fn read_response(tls: &mut TlsStream<TcpStream>) -> io::Result<()> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(invalid("EOF before the response head"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(invalid("response head too long"));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| invalid("head not UTF-8"))?;
    if !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(invalid(&format!("unexpected status: {status}")));
    }
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .ok_or_else(|| invalid("no Content-Length"))?;
    let mut remaining = length.saturating_sub(buf.len() - head_end);
    while remaining > 0 {
        let n = tls.read(&mut chunk[..remaining.min(16 * 1024)]).await?;
        if n == 0 {
            return Err(invalid("EOF inside the body"));
        }
        remaining -= n;
    }
    Ok(())
}
