//! A TLS echo server on lazytls.
//!
//! Every connection runs in its own task. It echoes every byte until the peer closes,
//! then sends close_notify. Errors on one connection are logged to stderr and never stop
//! the accept loop. Runs until killed.
//!
//! ```text
//! cargo run --example server -- --addr 127.0.0.1:8443 --cert server.pem --key server.key \
//!     [--alpn h2,http/1.1] [--handshake-timeout SECS] [--tls12|--tls13]
//! ```
//!
//! `--cert` is a PEM file with the certificate chain, end entity first; `--key` is a PEM
//! file with its private key (PKCS#8, PKCS#1 or SEC1). Try it with `examples/client.rs`
//! or `openssl s_client -connect 127.0.0.1:8443 -CAfile ca.pem`.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::pki_types::pem::PemObject;
use lazytls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use lazytls::rustls::{self, ProtocolVersion, ServerConfig, SupportedProtocolVersion};
use lazytls::{TlsAcceptor, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Result<T, E = Box<dyn StdError + Send + Sync>> = std::result::Result<T, E>;

const USAGE: &str = "\
usage: server --addr HOST:PORT --cert PEM --key PEM [options]

A TLS echo server: echoes every byte on each connection until the peer closes,
then sends close_notify.

  --addr HOST:PORT           address to listen on, e.g. 127.0.0.1:8443
  --cert PEM                 certificate chain, end entity first
  --key PEM                  private key of the end-entity certificate
  --alpn LIST                comma-separated ALPN protocols, e.g. h2,http/1.1
  --handshake-timeout SECS   fail handshakes that take longer (e.g. 10 or 0.5)
  --tls12 | --tls13          allow only this protocol version
  -h, --help                 show this message";

struct Args {
    addr: String,
    cert: PathBuf,
    key: PathBuf,
    alpn: Vec<Vec<u8>>,
    handshake_timeout: Option<Duration>,
    version: Option<&'static SupportedProtocolVersion>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("server: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let mut acceptor = TlsAcceptor::new(server_config(&args)?);
    if let Some(timeout) = args.handshake_timeout {
        acceptor = acceptor.handshake_timeout(timeout);
    }
    let listener = TcpListener::bind(&args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    eprintln!("listening on {}", listener.local_addr()?);

    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // For example, out of file descriptors: wait a little, keep serving.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // No I/O here: the handshake runs in the connection's own task.
        let tls = acceptor.accept(tcp);
        tokio::spawn(async move {
            match echo(tls, peer).await {
                Ok(bytes) => eprintln!("{peer}: closed cleanly after echoing {bytes} bytes"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    }
}

/// Echoes until the peer closes, then sends close_notify. Returns the bytes echoed.
async fn echo(mut tls: TlsStream<TcpStream>, peer: SocketAddr) -> Result<u64> {
    // The first read would drive the handshake by itself; doing it explicitly lets us log
    // what was negotiated before any data flows.
    tls.handshake()
        .await
        .map_err(|e| format!("handshake failed: {e}"))?;
    let info = tls.info().expect("handshake completed");
    eprintln!(
        "{peer}: {} {} alpn={} sni={} ({:.1} ms)",
        version_name(info.protocol_version),
        info.cipher_suite
            .map_or_else(|| "-".into(), |s| format!("{:?}", s.suite())),
        info.alpn
            .as_deref()
            .map_or_else(|| "-".into(), |p| String::from_utf8_lossy(p).into_owned()),
        info.sni.as_deref().unwrap_or("-"),
        info.handshake_duration.as_secs_f64() * 1e3,
    );

    let mut buf = vec![0; 16 * 1024];
    let mut total = 0_u64;
    loop {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            break; // the peer's close_notify
        }
        tls.write_all(&buf[..n]).await?;
        tls.flush().await?;
        total += n as u64;
    }
    tls.shutdown().await?; // our close_notify, then the TCP write side
    Ok(total)
}

fn server_config(args: &Args) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&args.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", args.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", args.cert.display()).into());
    }
    let key = PrivateKeyDer::from_pem_file(&args.key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", args.key.display()))?;

    let versions = match args.version {
        Some(v) => vec![v],
        None => rustls::DEFAULT_VERSIONS.to_vec(),
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = args.alpn.clone();
    Ok(Arc::new(config))
}

/// `Ok(None)` asks for the usage message.
fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut addr, mut cert, mut key) = (None, None, None);
    let mut alpn = Vec::new();
    let mut handshake_timeout = None;
    let mut version = None;
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
            "-h" | "--help" => return Ok(None),
            "--addr" => addr = Some(value()?),
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--alpn" => alpn = parse_alpn(&value()?)?,
            "--handshake-timeout" => {
                let v = value()?;
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--handshake-timeout: not a positive number: {v}"))?;
                handshake_timeout = Some(Duration::from_secs_f64(secs));
            }
            "--tls12" | "--tls13" => {
                if version.is_some() {
                    return Err("give at most one of --tls12 and --tls13".into());
                }
                version = Some(version_flag(&flag)?);
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Some(Args {
        addr: addr.ok_or("--addr is required")?,
        cert: cert.ok_or("--cert is required")?,
        key: key.ok_or("--key is required")?,
        alpn,
        handshake_timeout,
        version,
    }))
}

fn parse_alpn(list: &str) -> Result<Vec<Vec<u8>>, String> {
    list.split(',')
        .map(|p| match p.trim() {
            "" => Err(format!("--alpn: empty protocol name in {list:?}")),
            p if p.len() > 255 => Err(format!("--alpn: protocol name too long: {p}")),
            p => Ok(p.as_bytes().to_vec()),
        })
        .collect()
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

fn version_name(v: Option<ProtocolVersion>) -> String {
    match v {
        Some(ProtocolVersion::TLSv1_3) => "TLS1.3".into(),
        Some(ProtocolVersion::TLSv1_2) => "TLS1.2".into(),
        Some(other) => format!("{other:?}"),
        None => "-".into(),
    }
}

/// The provider of the enabled crypto feature, aws-lc-rs first. Asked for explicitly: with
/// both features on, rustls cannot pick a process default by itself.
fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Arc::new(rustls::crypto::ring::default_provider());
}
