//! The Rust server of the serving benchmark (`bash benches/serving/run` builds and runs
//! it; see `benches/serving/README.md`).
//!
//! One hyper app behind hyper-util's auto server (HTTP/2 or HTTP/1.1, as ALPN chose),
//! over either lazytls's `TlsListener` or tokio-rustls's `TlsAcceptor`, so that the two
//! rustls contenders share everything but the TLS stack: the same `ServerConfig`, the same
//! accept loop shape, the same service. `GET /` answers the `--small` file and `GET /64k`
//! the `--large` one; both are read once at start, so every contender of the benchmark
//! serves the same bytes. No logging per connection or request.
//!
//! The runtime is tokio's current_thread: the script pins the process to one core, where a
//! multi_thread runtime would only add a thread hand-off.
//!
//! ```text
//! serving_server --stack lazytls|tokio-rustls --addr 127.0.0.1:8443 \
//!     --cert server.pem --key server.key --small small.txt --large 64k.bin
//! ```

use std::convert::Infallible;
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use lazytls::rustls::crypto::aws_lc_rs;
use lazytls::rustls::pki_types::pem::PemObject;
use lazytls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use lazytls::rustls::{self, ServerConfig};
use lazytls::{TlsAcceptor, TlsListener};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

type Result<T, E = Box<dyn StdError + Send + Sync>> = std::result::Result<T, E>;

const USAGE: &str = "\
usage: serving_server --stack lazytls|tokio-rustls --addr HOST:PORT --cert PEM --key PEM
                      --small FILE --large FILE

Serves GET / (the --small file) and GET /64k (the --large file) over TLS 1.3 with
AES-128-GCM, HTTP/2 or HTTP/1.1 by ALPN, on a current_thread runtime.";

/// lazytls's `TlsListener` applies this deadline by default; the tokio-rustls loop applies
/// the same one, so that neither keeps a stalled handshake longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stack {
    Lazytls,
    TokioRustls,
}

#[derive(Debug)]
struct Args {
    stack: Stack,
    addr: String,
    cert: PathBuf,
    key: PathBuf,
    small: PathBuf,
    large: PathBuf,
}

/// The two response bodies; `Bytes` clones share the buffer, so a response copies nothing.
#[derive(Clone)]
struct Bodies {
    small: Bytes,
    large: Bytes,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("serving_server: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serving_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` asks for the usage message.
fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut stack, mut addr, mut cert, mut key, mut small, mut large) =
        (None, None, None, None, None, None);
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--stack" => {
                stack = Some(match value.as_str() {
                    "lazytls" => Stack::Lazytls,
                    "tokio-rustls" => Stack::TokioRustls,
                    other => return Err(format!("--stack: unknown stack {other}")),
                })
            }
            "--addr" => addr = Some(value),
            "--cert" => cert = Some(PathBuf::from(value)),
            "--key" => key = Some(PathBuf::from(value)),
            "--small" => small = Some(PathBuf::from(value)),
            "--large" => large = Some(PathBuf::from(value)),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Some(Args {
        stack: stack.ok_or("--stack is required")?,
        addr: addr.ok_or("--addr is required")?,
        cert: cert.ok_or("--cert is required")?,
        key: key.ok_or("--key is required")?,
        small: small.ok_or("--small is required")?,
        large: large.ok_or("--large is required")?,
    }))
}

async fn run(args: Args) -> Result<()> {
    let config = server_config(&args.cert, &args.key)?;
    let read = |path: &Path| {
        std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let bodies = Bodies {
        small: read(&args.small)?,
        large: read(&args.large)?,
    };
    match args.stack {
        Stack::Lazytls => serve_lazytls(&args.addr, config, bodies).await,
        Stack::TokioRustls => serve_tokio_rustls(&args.addr, config, bodies).await,
    }
}

/// The settings every contender of the benchmark shares: aws-lc-rs, TLS 1.3 with
/// AES-128-GCM only, one ECDSA P-256 certificate, ALPN `h2` then `http/1.1`, and stateless
/// session tickets (aws-lc-rs's `Ticketer`) so that the resumption row resumes from
/// tickets, as nginx and Go do, rather than from a server-side session cache.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}

async fn serve_lazytls(addr: &str, config: Arc<ServerConfig>, bodies: Bodies) -> Result<()> {
    let listener = TlsListener::bind(addr, TlsAcceptor::new(config))
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .nodelay(true);
    eprintln!("lazytls: listening on {}", listener.local_addr()?);
    loop {
        // Errors of single connections, and a full descriptor table, are handled inside.
        let (mut tls, _peer) = listener.accept().await?;
        let bodies = bodies.clone();
        tokio::spawn(async move {
            // Explicit, to read ALPN before choosing the HTTP version (as the tokio-rustls
            // loop, whose `accept` completes the handshake).
            if tls.handshake().await.is_err() {
                return;
            }
            let h2 = tls.info().and_then(|i| i.alpn.as_deref()) == Some(b"h2");
            serve_http(tls, h2, bodies).await;
        });
    }
}

async fn serve_tokio_rustls(addr: &str, config: Arc<ServerConfig>, bodies: Bodies) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    eprintln!("tokio-rustls: listening on {}", listener.local_addr()?);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _peer)) => tcp,
            Err(_) => {
                // A full descriptor table (the idle-connection row may reach it) would
                // otherwise spin this loop; lazytls's listener backs off likewise.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, bodies) = (acceptor.clone(), bodies.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_http(tls, h2, bodies).await;
        });
    }
}

/// One connection of the app. ALPN decides the version, so hyper-util's auto server skips
/// its preface sniffing, as it does in `examples/hyper_server.rs`.
async fn serve_http<IO>(io: IO, h2: bool, bodies: Bodies)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        std::future::ready(Ok::<_, Infallible>(respond(&req, &bodies)))
    });
    // A client that goes away mid-request is no news in a load test.
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

fn respond(req: &Request<Incoming>, bodies: &Bodies) -> Response<Full<Bytes>> {
    let body = match req.uri().path() {
        "/" => bodies.small.clone(),
        "/64k" => bodies.large.clone(),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
    };
    let mut response = Response::new(Full::new(body));
    (response.headers_mut()).insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
