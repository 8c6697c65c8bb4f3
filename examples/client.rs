//! A TLS client on lazytls, like `openssl s_client`: stdin goes to the server, the
//! server's bytes go to stdout, and the negotiated parameters go to stderr.
//!
//! ```text
//! cargo run --example client -- --connect 127.0.0.1:8443 --ca ca.pem \
//!     [--sni NAME] [--alpn h2,http/1.1] [--tls12|--tls13]
//! ```
//!
//! When stdin ends, the client sends close_notify and shuts down its write side, then keeps
//! reading until the server closes. It exits 0 after the server's close_notify, and 1 on a
//! handshake failure, a truncated stream (EOF without close_notify) or any other error.
//! Try it against `examples/server.rs` or `openssl s_server`.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use common::Result;
use lazytls::rustls::pki_types::ServerName;
use lazytls::rustls::{ClientConfig, SupportedProtocolVersion};
use lazytls::{ConnectionInfo, TlsConnector};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const USAGE: &str = "\
usage: client --connect HOST:PORT --ca PEM [options]

Like openssl s_client: stdin goes to the TLS connection, the connection goes to
stdout, negotiated parameters go to stderr.

  --connect HOST:PORT   server to connect to, e.g. 127.0.0.1:8443 or localhost:443
  --ca PEM              trusted CA certificate(s) that verify the server
  --sni NAME            server name to send and verify (default: HOST)
  --alpn LIST           comma-separated ALPN protocols to offer, e.g. h2,http/1.1
  --tls12 | --tls13     allow only this protocol version
  -h, --help            show this message";

struct Args {
    connect: String,
    ca: PathBuf,
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
    version: Option<&'static SupportedProtocolVersion>,
}

fn main() -> ExitCode {
    common::run_main("client", USAGE, parse_args, |args| {
        let runtime =
            tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
        let result = runtime.block_on(run(args));
        // tokio reads stdin on a blocking thread that may still wait for a line when the
        // server closes first; don't wait for it.
        runtime.shutdown_background();
        result
    })
}

async fn run(args: Args) -> Result<()> {
    let config = client_config(&args)?;
    let host = args.sni.clone().unwrap_or_else(|| host_of(&args.connect));
    let name = ServerName::try_from(host.clone())
        .map_err(|e| format!("not a valid server name: {host:?}: {e}"))?;

    let tcp = TcpStream::connect(&args.connect)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.connect))?;
    let peer = tcp.peer_addr()?;
    let mut tls = TlsConnector::new(config).connect(name, tcp);

    // The first write or read would run the handshake by itself. Running it here lets us
    // report what was negotiated before any data, and means only one task ever drives it.
    tls.handshake()
        .await
        .map_err(|e| format!("handshake with {peer} failed: {e}"))?;
    print_info(
        &peer.to_string(),
        &host,
        tls.info().expect("handshake completed"),
    );

    let (mut reader, mut writer) = tokio::io::split(tls);

    // stdin -> TLS. At EOF, send close_notify and shut down our write side; the server may
    // still answer.
    let upload = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        tokio::io::copy(&mut stdin, &mut writer).await?;
        writer.shutdown().await?;
        std::io::Result::Ok(())
    });

    // TLS -> stdout, until the server's close_notify (Ok) or an error such as a truncated
    // stream (EOF without close_notify).
    let mut stdout = tokio::io::stdout();
    let downloaded = tokio::io::copy(&mut reader, &mut stdout).await;
    stdout.flush().await?;

    if upload.is_finished() {
        if let Ok(Err(e)) = upload.await {
            eprintln!("client: sending failed: {e}");
        }
    }
    let bytes = downloaded.map_err(|e| format!("receiving failed: {e}"))?;
    eprintln!("--- server closed the connection cleanly ({bytes} bytes received)");
    Ok(())
}

fn print_info(peer: &str, host: &str, info: &ConnectionInfo) {
    let [version, suite, alpn] = common::negotiated(info);
    let certs = info.peer_certificates.as_ref().map_or(0, Vec::len);
    eprintln!("--- connected to {peer} as {host:?}");
    eprintln!("    protocol:       {version}");
    eprintln!("    cipher suite:   {suite}");
    eprintln!("    ALPN:           {alpn}");
    eprintln!("    peer chain:     {certs} certificate(s), verified");
    eprintln!("    resumed:        {}", info.resumed);
    eprintln!(
        "    handshake time: {:.2} ms",
        info.handshake_duration.as_secs_f64() * 1e3
    );
    eprintln!("---");
}

fn client_config(args: &Args) -> Result<Arc<ClientConfig>> {
    let roots = common::load_roots(&args.ca)?;
    let mut config = ClientConfig::builder_with_provider(common::provider())
        .with_protocol_versions(&common::versions(args.version))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = args.alpn.clone();
    Ok(Arc::new(config))
}

/// The host part of `HOST:PORT`, `[V6]:PORT` or a bare host.
fn host_of(connect: &str) -> String {
    if let Some(rest) = connect.strip_prefix('[') {
        if let Some((v6, _)) = rest.split_once(']') {
            return v6.to_string();
        }
    }
    match connect.rsplit_once(':') {
        Some((host, _)) => host.to_string(),
        None => connect.to_string(),
    }
}

/// `Ok(None)` asks for the usage message.
fn parse_args(argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut connect, mut ca, mut sni) = (None, None, None);
    let mut alpn = Vec::new();
    let mut version = None;
    let complete = common::parse_flags(argv, |flag, value| {
        match flag {
            "--connect" => connect = Some(value()?),
            "--ca" => ca = Some(PathBuf::from(value()?)),
            "--sni" => sni = Some(value()?),
            "--alpn" => alpn = common::parse_alpn(&value()?)?,
            "--tls12" | "--tls13" => common::set_version(&mut version, flag)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !complete {
        return Ok(None);
    }
    Ok(Some(Args {
        connect: connect.ok_or("--connect is required")?,
        ca: ca.ok_or("--ca is required")?,
        sni,
        alpn,
        version,
    }))
}
