//! Shared by the examples (the servers `server`, `hyper_server` and `axum_server`, the
//! clients `client` and `https_get`): `main`'s frame, flag parsing, PEM loading, the
//! server config from certificate files (reloaded on SIGHUP), the listener set-up, and the
//! HTTP page, `/tls` and echo endpoint, served by hyper ([`http`], which also redirects
//! plaintext HTTP) or axum ([`axum_app`]). `tests/serving.rs` runs the servers built from
//! it.
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
use lazytls::rustls::pki_types::CertificateDer;
use lazytls::rustls::pki_types::pem::PemObject;
use lazytls::rustls::server::WebPkiClientVerifier;
use lazytls::rustls::{
    self, ProtocolVersion, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use lazytls::{
    CancellationToken, ConnectionInfo, ServerCertificateFiles, TlsAcceptor, TlsListener,
    TransportListener,
};
use tokio::sync::Semaphore;

pub type Result<T, E = Box<dyn StdError + Send + Sync>> = std::result::Result<T, E>;

/// What an HTTP server offers by default: `curl --http1.0` offers `http/1.0` through ALPN.
pub const HTTP_ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0"];

/// The flags every server example takes, for its usage text.
pub const SERVER_FLAGS: &str =
    "  --addr HOST:PORT           address to listen on, e.g. 127.0.0.1:8443
  --cert PEM                 certificate chain, end entity first
  --key PEM                  private key of the end-entity certificate
  --client-ca PEM            ask clients for a certificate and verify it against
                             these CAs; clients without one are still served
  --alpn LIST                comma-separated ALPN protocols, e.g. h2,http/1.1
  --handshake-timeout SECS   fail handshakes that take longer (default 10)
  --tls12 | --tls13          allow only this protocol version
  -h, --help                 show this message

SIGHUP reloads --cert and --key: new connections get the new certificate, established
ones go on, and a failed reload keeps the old certificate serving.";

/// The shared flags.
#[derive(Debug)]
pub struct ServerArgs {
    pub addr: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
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
    let (mut addr, mut cert, mut key, mut client_ca) = (None, None, None, None);
    let mut alpn = None;
    let mut handshake_timeout = None;
    let mut version = None;
    let complete = parse_flags(argv, |flag, value| {
        match flag {
            "--addr" => addr = Some(value()?),
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--client-ca" => client_ca = Some(PathBuf::from(value()?)),
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
        client_ca,
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

/// The certificate files of the flags, and how to build the server config from them:
/// the protocol versions, ALPN (`default_alpn` without `--alpn`), client certificates
/// (`--client-ca`: asked for, verified, optional), and `max_early_data` (0 refuses 0-RTT).
/// The CA file is read once, here; a reload reads the certificate and key again.
pub fn certificate_files(
    args: &ServerArgs,
    default_alpn: &[&[u8]],
    max_early_data: u32,
) -> Result<ServerCertificateFiles> {
    let versions = versions(args.version);
    let alpn = match &args.alpn {
        Some(alpn) => alpn.clone(),
        None => default_alpn.iter().map(|p| p.to_vec()).collect(),
    };
    let client_verifier = match &args.client_ca {
        Some(path) => Some(
            WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(path)?), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("--client-ca {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let files =
        ServerCertificateFiles::new(&args.cert, &args.key).with_builder(move |chain, key| {
            let builder = ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&versions)?;
            let builder = match &client_verifier {
                Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
                None => builder.with_no_client_auth(),
            };
            let mut config = builder.with_single_cert(chain, key)?;
            config.alpn_protocols = alpn.clone();
            config.max_early_data_size = max_early_data;
            Ok(config)
        });
    Ok(files)
}

/// An acceptor with the config the files give, reloaded from them on every SIGHUP (a
/// failed reload is logged and changes nothing). `http`: answer plaintext HTTP with a 400.
pub fn reloading_acceptor(files: ServerCertificateFiles, http: bool) -> Result<TlsAcceptor> {
    let acceptor = files
        .acceptor()
        .map_err(|e| format!("cannot load the certificate: {e}"))?
        .plaintext_http_response(http);
    reload_on_sighup(files, acceptor.clone());
    Ok(acceptor)
}

/// Reloads the certificate files into `acceptor` (and so into the listener made from it)
/// on each SIGHUP, and logs the outcome.
#[cfg(unix)]
fn reload_on_sighup(files: ServerCertificateFiles, acceptor: TlsAcceptor) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).expect("a SIGHUP handler");
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match files.reload(&acceptor) {
                Ok(()) => eprintln!(
                    "SIGHUP: reloaded the certificate from {}",
                    files.cert_chain_path().display()
                ),
                Err(e) => eprintln!("SIGHUP: reload failed, the old certificate goes on: {e}"),
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_files: ServerCertificateFiles, _acceptor: TlsAcceptor) {}

/// Binds the TCP listener of `--addr` for an acceptor of [`reloading_acceptor`].
pub async fn bind(
    args: &ServerArgs,
    acceptor: TlsAcceptor,
    shutdown: CancellationToken,
) -> Result<TlsListener> {
    let listener = TlsListener::bind(&args.addr, acceptor)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    eprintln!("listening on {}", listener.local_addr()?);
    Ok(configure(listener, args, shutdown))
}

/// The listener settings of the examples: `--handshake-timeout` (10 s by default), a cap
/// of 1024 handshakes in flight, `TCP_NODELAY`, and a shutdown token.
pub fn configure<L: TransportListener>(
    listener: TlsListener<L>,
    args: &ServerArgs,
    shutdown: CancellationToken,
) -> TlsListener<L> {
    let mut listener = listener
        .handshake_permits(Arc::new(Semaphore::new(1024)))
        .nodelay(true)
        .shutdown_token(shutdown);
    if let Some(timeout) = args.handshake_timeout {
        listener = listener.handshake_timeout(timeout);
    }
    listener
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

/// The key-exchange group (`X25519MLKEM768` when the post-quantum hybrid was negotiated),
/// or `-`.
pub fn key_exchange_group(info: &ConnectionInfo) -> String {
    (info.key_exchange_group).map_or_else(|| "-".into(), |g| format!("{g:?}"))
}

/// One line about a completed handshake, for the logs and the page.
pub fn describe(info: &ConnectionInfo) -> String {
    let [version, suite, alpn] = negotiated(info);
    format!(
        "{} {suite} group={} alpn={alpn} sni={} ({:.1} ms)",
        version.replace(' ', ""),
        key_exchange_group(info),
        info.sni.as_deref().unwrap_or("-"),
        info.handshake_duration.as_secs_f64() * 1e3,
    )
}

/// `GET /tls`: the connection's TLS parameters as JSON, the client certificate's subject
/// (or `null`) included.
pub fn tls_json(info: Option<&ConnectionInfo>) -> String {
    let Some(info) = info else {
        return serde_json::json!({ "error": "no completed handshake" }).to_string();
    };
    let [version, suite, _] = negotiated(info);
    let alpn = (info.alpn.as_deref()).map(|p| String::from_utf8_lossy(p).into_owned());
    let json = serde_json::json!({
        "version": version,
        "cipher_suite": suite,
        "key_exchange_group": key_exchange_group(info),
        "alpn": alpn,
        "sni": info.sni,
        "client_cert": client_subject(info),
    });
    format!("{json}\n")
}

/// The subject of the client's end-entity certificate (`CN=client, O=...`), parsed with
/// x509-parser; `None` when the client sent none.
pub fn client_subject(info: &ConnectionInfo) -> Option<String> {
    let end_entity = info.peer_certificates.as_ref()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref()).ok()?;
    Some(cert.subject().to_string())
}

/// The page at `/`.
pub fn page(http_version: hyper::Version, tls: &str) -> String {
    format!(
        "Hello from lazytls.\n\nHTTP: {http_version:?}\nTLS: {tls}\n\n\
         GET /tls for the TLS parameters as JSON; POST a body to /echo to get it back.\n"
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
    use lazytls::{ConnectionInfoHandle, PlaintextStream, TlsListener, TlsStream};
    use tokio::net::TcpStream;

    type Body = BoxBody<Bytes, hyper::Error>;

    /// Serves until the listener's shutdown token fires. A client that speaks plaintext
    /// HTTP is redirected to `https://` if the acceptor leaves such clients to us (no
    /// `plaintext_http_response`). It then stops accepting, closes the
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

    /// One connection: the handshake (to read ALPN), then HTTP/2 or HTTP/1.x; or, for a
    /// plaintext client, the redirect.
    async fn connection(
        mut tls: TlsStream<TcpStream>,
        peer: SocketAddr,
        watcher: Watcher,
    ) -> super::Result<()> {
        // The listener's deadline and shutdown token bound this.
        if let Err(e) = tls.handshake().await {
            return match tls.into_plaintext() {
                Ok(plaintext) => redirect_to_https(plaintext, peer).await,
                Err(_) => Err(format!("handshake failed: {e}").into()),
            };
        }
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
        // Each request carries its connection's TLS parameters, for `/tls`.
        let tls_info = tls.info_handle();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(tls_info.clone());
            handle(req, summary.clone())
        });
        let conn = builder.serve_connection(TokioIo::new(tls), service);
        watcher.watch(conn.into_owned()).await?;
        Ok(())
    }

    /// Answers a client that spoke plaintext HTTP to the TLS port with a redirect to the
    /// same URL over https (its first request only, within 10 s).
    async fn redirect_to_https(
        plaintext: PlaintextStream<TcpStream>,
        peer: SocketAddr,
    ) -> super::Result<()> {
        eprintln!("{peer}: plaintext HTTP; redirecting to https");
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let host = (req.headers().get(hyper::header::HOST))
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let mut response = status(StatusCode::PERMANENT_REDIRECT);
            let location = format!("https://{host}{path}");
            if let Ok(location) = location.parse() {
                response
                    .headers_mut()
                    .insert(hyper::header::LOCATION, location);
            }
            Ok::<_, Infallible>(response)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(plaintext), service);
        tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .map_err(|_| "plaintext client too slow")??;
        Ok(())
    }

    /// `GET /`: the page. `GET /tls`: the TLS parameters as JSON. `POST /echo`: the
    /// request body, streamed back.
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
            (&Method::GET, "/tls") => {
                let info = req.extensions().get::<ConnectionInfoHandle>();
                json(super::tls_json(info.and_then(ConnectionInfoHandle::get)))
            }
            (&Method::POST, "/echo") => Response::new(req.into_body().boxed()),
            (_, "/" | "/echo" | "/tls") => status(StatusCode::METHOD_NOT_ALLOWED),
            _ => status(StatusCode::NOT_FOUND),
        };
        Ok(response)
    }

    fn json(text: String) -> Response<Body> {
        let mut response = Response::new(full(text));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        response
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

/// The same page, `/tls` and echo endpoint as an axum `Router`, for a listener whose
/// peers have addresses of type `A` (`SocketAddr` over TCP). Serve it with
/// `into_make_service_with_connect_info::<TlsConnectInfo<A>>()`: `/tls` reads the
/// connection's TLS parameters from it.
#[cfg(feature = "axum")]
pub fn axum_app<A: Clone + Send + Sync + 'static>() -> axum::Router {
    use axum::body::Body;
    use axum::extract::{ConnectInfo, Request};
    use axum::routing::{get, post};
    use lazytls::axum::TlsConnectInfo;

    axum::Router::new()
        .route(
            "/",
            get(|req: Request| async move {
                page(req.version(), "served by axum::serve over a TlsListener")
            }),
        )
        .route(
            "/tls",
            get(
                |ConnectInfo(conn): ConnectInfo<TlsConnectInfo<A>>| async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        tls_json(conn.tls()),
                    )
                },
            ),
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
