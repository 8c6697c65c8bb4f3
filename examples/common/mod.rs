//! Shared by the examples (the servers `server`, `hyper_server` and `axum_server`, the
//! clients `client` and `https_get`) and by `tests/listener.rs`: `main`'s frame, flag
//! parsing, PEM loading, the listener set-up, and the HTTP page plus echo endpoint, served
//! by hyper ([`http`]) or axum ([`axum_app`]).
//!
//! It is a directory module (`examples/common/mod.rs`), so cargo does not take it for an
//! example of its own.
#![allow(dead_code, unreachable_pub)]

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::pki_types::pem::PemObject;
use lazytls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use lazytls::rustls::{
    self, ProtocolVersion, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use lazytls::{CancellationToken, ConnectionInfo, TlsAcceptor, TlsListener};

pub type Result<T, E = Box<dyn StdError + Send + Sync>> = std::result::Result<T, E>;

/// What an HTTP server offers by default: `curl --http1.0` offers `http/1.0` through ALPN.
pub const HTTP_ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0"];

/// The flags every server example takes, for its usage text.
pub const SERVER_FLAGS: &str =
    "  --addr HOST:PORT           address to listen on, e.g. 127.0.0.1:8443
  --cert PEM                 certificate chain, end entity first
  --key PEM                  private key of the end-entity certificate
  --alpn LIST                comma-separated ALPN protocols, e.g. h2,http/1.1
  --handshake-timeout SECS   fail handshakes that take longer (default 10)
  --tls12 | --tls13          allow only this protocol version
  -h, --help                 show this message";

/// The shared flags.
#[derive(Debug)]
pub struct ServerArgs {
    pub addr: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `None`: the example's default.
    pub alpn: Option<Vec<Vec<u8>>>,
    pub handshake_timeout: Option<Duration>,
    pub version: Option<&'static SupportedProtocolVersion>,
}

/// Reads the value of a flag: `--flag=value` or `--flag value`.
pub type Value<'a> = &'a mut dyn FnMut() -> Result<String, String>;

/// A server example's `main`: [`run_main`] with the shared flags.
///
/// `extra(flag, value)` handles the example's own flags; it returns `Ok(false)` for a flag
/// it does not know.
pub fn main_with<E, R>(name: &str, usage: &str, extra: E, run: R) -> ExitCode
where
    E: FnMut(&str, Value<'_>) -> Result<bool, String>,
    R: FnOnce(ServerArgs) -> Result<()>,
{
    run_main(name, usage, |argv| parse_server_args(argv, extra), run)
}

/// Parses `main`'s arguments with `parse` (`Ok(None)` asks for the usage message), prints
/// the usage or the error (exit code 2), and runs `run` (exit code 1 on an error).
pub fn run_main<A, P, R>(name: &str, usage: &str, parse: P, run: R) -> ExitCode
where
    P: FnOnce(std::iter::Skip<std::env::Args>) -> Result<Option<A>, String>,
    R: FnOnce(A) -> Result<()>,
{
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{name}: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Walks the flags, `--flag=value` or `--flag value`, and hands each to `handle(flag,
/// value)`, which returns `Ok(false)` for a flag it does not know. `Ok(false)` asks for the
/// usage message (`-h`, `--help`).
pub fn parse_flags<H>(mut argv: impl Iterator<Item = String>, mut handle: H) -> Result<bool, String>
where
    H: FnMut(&str, Value<'_>) -> Result<bool, String>,
{
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(false),
            other => {
                if !handle(other, &mut value)? {
                    return Err(format!("unknown argument: {other}"));
                }
            }
        }
    }
    Ok(true)
}

/// `Ok(None)` asks for the usage message.
pub fn parse_server_args<E>(
    argv: impl Iterator<Item = String>,
    mut extra: E,
) -> Result<Option<ServerArgs>, String>
where
    E: FnMut(&str, Value<'_>) -> Result<bool, String>,
{
    let (mut addr, mut cert, mut key) = (None, None, None);
    let mut alpn = None;
    let mut handshake_timeout = None;
    let mut version = None;
    let complete = parse_flags(argv, |flag, value| {
        match flag {
            "--addr" => addr = Some(value()?),
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--alpn" => alpn = Some(parse_alpn(&value()?)?),
            "--handshake-timeout" => {
                let v = value()?;
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--handshake-timeout: not a positive number: {v}"))?;
                handshake_timeout = Some(Duration::from_secs_f64(secs));
            }
            "--tls12" | "--tls13" => set_version(&mut version, flag)?,
            other => return extra(other, value),
        }
        Ok(true)
    })?;
    if !complete {
        return Ok(None);
    }
    Ok(Some(ServerArgs {
        addr: addr.ok_or("--addr is required")?,
        cert: cert.ok_or("--cert is required")?,
        key: key.ok_or("--key is required")?,
        alpn,
        handshake_timeout,
        version,
    }))
}

/// `--alpn LIST`: comma-separated protocol names.
pub fn parse_alpn(list: &str) -> Result<Vec<Vec<u8>>, String> {
    list.split(',')
        .map(|p| match p.trim() {
            "" => Err(format!("--alpn: empty protocol name in {list:?}")),
            p if p.len() > 255 => Err(format!("--alpn: protocol name too long: {p}")),
            p => Ok(p.as_bytes().to_vec()),
        })
        .collect()
}

/// `--tls12` or `--tls13` (`flag`), at most one of them.
pub fn set_version(
    version: &mut Option<&'static SupportedProtocolVersion>,
    flag: &str,
) -> Result<(), String> {
    if version.is_some() {
        return Err("give at most one of --tls12 and --tls13".into());
    }
    *version = Some(version_flag(flag)?);
    Ok(())
}

fn version_flag(flag: &str) -> Result<&'static SupportedProtocolVersion, String> {
    match flag {
        #[cfg(feature = "tls12")]
        "--tls12" => Ok(&rustls::version::TLS12),
        #[cfg(not(feature = "tls12"))]
        "--tls12" => Err("--tls12: this build has no TLS 1.2 (enable the tls12 feature)".into()),
        _ => Ok(&rustls::version::TLS13),
    }
}

/// The protocol versions to allow: the one `--tls12` or `--tls13` gave, or rustls's
/// defaults.
pub fn versions(
    version: Option<&'static SupportedProtocolVersion>,
) -> Vec<&'static SupportedProtocolVersion> {
    match version {
        Some(v) => vec![v],
        None => rustls::DEFAULT_VERSIONS.to_vec(),
    }
}

/// The certificates of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()).into());
    }
    Ok(certs)
}

/// Trust roots: the CA certificates of a PEM file (at least one).
pub fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// Loads the PEM files and builds the server config; `default_alpn` applies without
/// `--alpn`.
pub fn server_config(args: &ServerArgs, default_alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
    let certs = load_certs(&args.cert)?;
    let key = PrivateKeyDer::from_pem_file(&args.key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", args.key.display()))?;

    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(args.version))?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = match &args.alpn {
        Some(alpn) => alpn.clone(),
        None => default_alpn.iter().map(|p| p.to_vec()).collect(),
    };
    Ok(Arc::new(config))
}

/// Binds the listener: the config from the flags, `--handshake-timeout` (10 s by
/// default), a cap of 1024 handshakes in flight, and a shutdown token. An HTTP server
/// answers plaintext HTTP on the TLS port with a 400 naming https.
pub async fn bind(
    args: &ServerArgs,
    default_alpn: &[&[u8]],
    shutdown: CancellationToken,
) -> Result<TlsListener> {
    let http = !default_alpn.is_empty();
    bind_config(args, server_config(args, default_alpn)?, http, shutdown).await
}

/// [`bind`] with a config of the caller's; `http`: answer plaintext HTTP with a 400.
pub async fn bind_config(
    args: &ServerArgs,
    config: Arc<ServerConfig>,
    http: bool,
    shutdown: CancellationToken,
) -> Result<TlsListener> {
    let acceptor = TlsAcceptor::new(config).plaintext_http_response(http);
    let mut listener = TlsListener::bind(&args.addr, acceptor)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?
        .max_handshakes(1024)
        .nodelay(true)
        .shutdown_token(shutdown);
    if let Some(timeout) = args.handshake_timeout {
        listener = listener.handshake_timeout(Some(timeout));
    }
    eprintln!("listening on {}", listener.local_addr()?);
    Ok(listener)
}

/// A token cancelled by the first Ctrl-C (SIGINT).
pub fn shutdown_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("Ctrl-C: shutting down (Ctrl-C again to quit at once)");
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    token
}

/// The negotiated version, suite and ALPN protocol of a completed handshake, as text
/// (`-` where there is none).
pub fn negotiated(info: &ConnectionInfo) -> [String; 3] {
    let version = match info.protocol_version {
        Some(ProtocolVersion::TLSv1_3) => "TLS 1.3".into(),
        Some(ProtocolVersion::TLSv1_2) => "TLS 1.2".into(),
        Some(other) => format!("{other:?}"),
        None => "-".into(),
    };
    let suite = info
        .cipher_suite
        .map_or_else(|| "-".into(), |s| format!("{:?}", s.suite()));
    let alpn = info
        .alpn
        .as_deref()
        .map_or_else(|| "-".into(), |p| String::from_utf8_lossy(p).into_owned());
    [version, suite, alpn]
}

/// One line about a completed handshake, for the logs and the page.
pub fn describe(info: &ConnectionInfo) -> String {
    let [version, suite, alpn] = negotiated(info);
    format!(
        "{} {suite} alpn={alpn} sni={} ({:.1} ms)",
        version.replace(' ', ""),
        info.sni.as_deref().unwrap_or("-"),
        info.handshake_duration.as_secs_f64() * 1e3,
    )
}

/// The page at `/`.
pub fn page(http_version: hyper::Version, tls: &str) -> String {
    format!(
        "Hello from lazytls.\n\nHTTP: {http_version:?}\nTLS: {tls}\n\n\
         POST a body to /echo to get it back.\n"
    )
}

/// The page and the echo endpoint, served by hyper-util's `auto::Builder` with the HTTP
/// version chosen by ALPN, and graceful shutdown by hyper-util's `GracefulShutdown`.
pub mod http {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Method, Request, Response, StatusCode};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::{GracefulShutdown, Watcher};
    use lazytls::{TlsListener, TlsStream};
    use tokio::net::TcpStream;

    type Body = BoxBody<Bytes, hyper::Error>;

    /// Serves until the listener's shutdown token fires, then stops accepting, closes the
    /// listening socket and lets the established connections finish (for at most
    /// `drain`): each finishes its request in flight, then closes.
    pub async fn serve(listener: TlsListener, drain: Duration) -> super::Result<()> {
        let graceful = GracefulShutdown::new();
        while let Some((tls, peer)) = listener.accept_until_shutdown().await? {
            // Subscribed here, before the task runs, so that no connection escapes the
            // shutdown.
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                match connection(tls, peer, watcher).await {
                    Ok(()) => eprintln!("{peer}: closed"),
                    Err(e) => eprintln!("{peer}: {e}"),
                }
            });
        }
        // The token also failed the handshakes in flight. Refuse new connections.
        drop(listener);
        eprintln!(
            "not accepting; waiting for {} connection(s)",
            graceful.count()
        );
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!("gave up waiting after {drain:?}");
        }
        Ok(())
    }

    /// One connection: the handshake (to read ALPN), then HTTP/2 or HTTP/1.x.
    async fn connection(
        mut tls: TlsStream<TcpStream>,
        peer: SocketAddr,
        watcher: Watcher,
    ) -> super::Result<()> {
        // The listener's deadline and shutdown token bound this.
        tls.handshake()
            .await
            .map_err(|e| format!("handshake failed: {e}"))?;
        let info = tls.info().expect("the handshake completed");
        let summary: Arc<str> = super::describe(info).into();
        eprintln!("{peer}: {summary}");

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder = match info.alpn.as_deref() {
            Some(b"h2") => builder.http2_only(),
            Some(b"http/1.1" | b"http/1.0") => builder.http1_only(),
            // No ALPN: auto::Builder tells HTTP/2 by its preface.
            _ => builder,
        };
        let service = hyper::service::service_fn(move |req| handle(req, summary.clone()));
        let conn = builder.serve_connection(TokioIo::new(tls), service);
        watcher.watch(conn.into_owned()).await?;
        Ok(())
    }

    /// `GET /`: the page. `POST /echo`: the request body, streamed back.
    pub async fn handle(
        req: Request<Incoming>,
        tls: Arc<str>,
    ) -> Result<Response<Body>, Infallible> {
        let response = match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/") => {
                let page = super::page(req.version(), &tls);
                let mut response = Response::new(full(page));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".parse().unwrap(),
                );
                response
            }
            (&Method::POST, "/echo") => Response::new(req.into_body().boxed()),
            (_, "/" | "/echo") => status(StatusCode::METHOD_NOT_ALLOWED),
            _ => status(StatusCode::NOT_FOUND),
        };
        Ok(response)
    }

    fn full(text: impl Into<Bytes>) -> Body {
        Full::new(text.into())
            .map_err(|never| match never {})
            .boxed()
    }

    fn status(code: StatusCode) -> Response<Body> {
        let mut response = Response::new(full(format!("{code}\n")));
        *response.status_mut() = code;
        response
    }
}

/// The same page and echo endpoint as an axum `Router`.
#[cfg(feature = "axum")]
pub fn axum_app() -> axum::Router {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::routing::{get, post};

    axum::Router::new()
        .route(
            "/",
            get(|req: Request| async move {
                page(req.version(), "served by axum::serve over a TlsListener")
            }),
        )
        // The body streams back as it arrives: no size limit, nothing buffered.
        .route("/echo", post(|body: Body| async move { body }))
}

/// The provider of the enabled crypto feature, aws-lc-rs first. Asked for explicitly: with
/// both features on, rustls cannot pick a process default by itself.
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Arc::new(rustls::crypto::ring::default_provider());
}
