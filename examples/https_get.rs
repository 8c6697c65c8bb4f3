//! An HTTPS GET with hyper-util's client over lazytls's connector. Prints the status, the
//! headers, what TLS negotiated and the body's length.
//!
//! ```text
//! cargo run --features hyper --example https_get -- --url https://localhost:8443/ \
//!     [--ca ca.pem] [--http2]
//! ```
//!
//! Without `--ca`, the system's trust roots are used when a roots feature is enabled
//! (`platform-verifier`, `native-roots` or `webpki-roots`, tried in that order).
//! With `--http2`, ALPN offers `[h2, http/1.1]` and the client speaks HTTP/2 if the server
//! agrees. Exits 1 on any failure, naming its cause (an untrusted certificate, a wrong host,
//! a timeout).

mod common;

use std::error::Error as StdError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use common::Result;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lazytls::hyper::{ConnectError, HttpsConnector, TlsInfo};
use lazytls::rustls::pki_types::CertificateDer;
use lazytls::rustls::pki_types::pem::PemObject;
use lazytls::rustls::{self, ClientConfig, RootCertStore};

const USAGE: &str = "\
usage: https_get --url URL [--ca PEM] [--http2]

  --url URL    the URL to fetch, e.g. https://localhost:8443/
  --ca PEM     trusted CA certificate(s); default: the system's roots (needs the
               platform-verifier, native-roots or webpki-roots feature)
  --http2      offer h2 in ALPN (and speak HTTP/2 if the server agrees)
  -h, --help   show this message";

struct Args {
    url: hyper::Uri,
    ca: Option<PathBuf>,
    http2: bool,
}

fn main() -> ExitCode {
    let parse = |argv| parse_args(argv).map_err(|e| e.to_string());
    common::run_main("https_get", USAGE, parse, |args| {
        let runtime =
            tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
        runtime.block_on(run(args)).map_err(|e| explain(&*e).into())
    })
}

/// `Ok(None)` asks for the usage message. Unlike [`common::parse_flags`], it takes no
/// `--flag=value`.
fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let (mut url, mut ca, mut http2) = (None, None, false);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value("--url")?.parse::<hyper::Uri>()?),
            "--ca" => ca = Some(PathBuf::from(value("--ca")?)),
            "--http2" => http2 = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let url = url.ok_or("--url is required")?;
    Ok(Some(Args { url, ca, http2 }))
}

async fn run(args: Args) -> Result<()> {
    let mut builder = HttpsConnector::builder(client_config(&args)?)
        .handshake_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .enable_http1();
    if args.http2 {
        builder = builder.enable_http2();
    }
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(builder.build());

    let res = client.get(args.url.clone()).await?;
    println!("{:?} {}", res.version(), res.status());
    for (name, value) in res.headers() {
        println!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    match res.extensions().get::<TlsInfo>() {
        Some(tls) => print_tls(tls),
        None => println!("\n(no TLS: plain http)"),
    }
    let body = res.into_body().collect().await?.to_bytes();
    println!("body: {} bytes", body.len());
    Ok(())
}

fn print_tls(tls: &TlsInfo) {
    println!();
    println!(
        "tls version:  {}",
        tls.version
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "(none)".into())
    );
    println!(
        "cipher suite: {}",
        tls.suite
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_else(|| "(none)".into())
    );
    println!(
        "alpn:         {}",
        tls.alpn
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| "(none)".into())
    );
    println!(
        "sni:          {}",
        tls.sni.as_deref().unwrap_or("(none: IP address)")
    );
    println!(
        "certificates: {}",
        tls.peer_certificates.as_ref().map_or(0, |c| c.len())
    );
    println!("resumed:      {}", tls.resumed);
    println!("handshake:    {:?}", tls.handshake_duration);
}

/// Names the cause of a failed request: hyper's own error says only "client error
/// (Connect)"; the connector's typed error is in its source chain.
fn explain(err: &(dyn StdError + 'static)) -> String {
    let Some(ce) = ConnectError::find(err) else {
        let mut text = err.to_string();
        let mut next = err.source();
        while let Some(e) = next {
            text.push_str(&format!(": {e}"));
            next = e.source();
        }
        return text;
    };
    let what = if ce.is_timeout() {
        "timeout"
    } else {
        match ce.certificate_error() {
            Some(rustls::CertificateError::UnknownIssuer) => "untrusted certificate",
            Some(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            ) => "wrong host",
            Some(_) => "bad certificate",
            None => "connection failed",
        }
    };
    format!("{what}: {ce}")
}

fn client_config(args: &Args) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(common::provider())
        .with_safe_default_protocol_versions()?;
    let Some(ca) = &args.ca else {
        return system_roots(builder);
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("cannot read {}: {e}", ca.display()))?
    {
        roots.add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificates found", ca.display()).into());
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

#[allow(unreachable_code, unused_variables)]
fn system_roots(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>,
) -> Result<ClientConfig> {
    #[cfg(any(
        feature = "platform-verifier",
        feature = "native-roots",
        feature = "webpki-roots"
    ))]
    use lazytls::hyper::ConfigBuilderExt;
    #[cfg(feature = "platform-verifier")]
    return Ok(builder.with_platform_verifier()?.with_no_client_auth());
    #[cfg(feature = "native-roots")]
    return Ok(builder.with_native_roots()?.with_no_client_auth());
    #[cfg(feature = "webpki-roots")]
    return Ok(builder.with_webpki_roots().with_no_client_auth());
    Err("no --ca given and no roots feature enabled \
         (build with --features platform-verifier, native-roots or webpki-roots)"
        .into())
}
