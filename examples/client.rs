//! A TLS client on lazytls, like `openssl s_client`: stdin goes to the server, the
//! server's bytes go to stdout, and the negotiated parameters go to stderr.
//!
//! ```text
//! cargo run --example client -- --connect 127.0.0.1:8443 --ca ca.pem \
//!     [--cert client.pem --key client.key] [--sni NAME] [--alpn h2,http/1.1] \
//!     [--tls12|--tls13] [--early-data STR] [--reconnect]
//! ```
//!
//! `--cert` and `--key` (both or neither, like `openssl s_client -cert/-key`) give the
//! certificate chain, end entity first, and its private key (PKCS#8, PKCS#1 or SEC1 PEM)
//! to present when the server asks for one: try mTLS against
//! `examples/server.rs --client-ca ca.pem`.
//!
//! With `--reconnect`, it first makes a connection that it closes cleanly, keeping the
//! session ticket, and then connects again (resuming). With `--early-data STR` as well,
//! the second connection sends STR as 0-RTT early data (TLS 1.3) before its handshake
//! completes and prints `early_data=accepted` or `early_data=rejected` on stderr (a
//! refused STR is sent again after the handshake; `early_data=not-sent` when no ticket
//! allowed it).
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
use lazytls::rustls::pki_types::pem::PemObject;
use lazytls::rustls::pki_types::{PrivateKeyDer, ServerName};
use lazytls::rustls::{ClientConfig, SupportedProtocolVersion};
use lazytls::{ConnectionInfo, EarlyDataStatus, TlsConnector, TlsStream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const USAGE: &str = "\
usage: client --connect HOST:PORT --ca PEM [--cert PEM --key PEM] [options]

Like openssl s_client: stdin goes to the TLS connection, the connection goes to
stdout, negotiated parameters go to stderr.

  --connect HOST:PORT   server to connect to, e.g. 127.0.0.1:8443 or localhost:443
  --ca PEM              trusted CA certificate(s) that verify the server
  --cert PEM            client certificate chain, end entity first, presented
                        when the server asks for one (needs --key)
  --key PEM             private key of the client certificate (needs --cert)
  --sni NAME            server name to send and verify (default: HOST)
  --alpn LIST           comma-separated ALPN protocols to offer, e.g. h2,http/1.1
  --tls12 | --tls13     allow only this protocol version
  --reconnect           connect, close cleanly keeping the ticket, connect again
  --early-data STR      send STR first, as 0-RTT early data if a ticket allows it
  -h, --help            show this message";

struct Args {
    connect: String,
    ca: PathBuf,
    /// `--cert` and `--key`.
    identity: Option<(PathBuf, PathBuf)>,
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
    version: Option<&'static SupportedProtocolVersion>,
    reconnect: bool,
    early_data: Option<String>,
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

    let connector = TlsConnector::new(config);
    if args.reconnect {
        let mut first = connect(&connector, &args.connect, name.clone()).await?;
        first
            .handshake()
            .await
            .map_err(|e| format!("handshake failed: {e}"))?;
        print_info(
            &args.connect,
            &host,
            first.info().expect("handshake completed"),
        );
        // A clean close: our close_notify, then reading to the server's, which also
        // takes in the tickets it sent after the handshake.
        first.shutdown().await?;
        tokio::io::copy(&mut first, &mut tokio::io::sink()).await?;
        eprintln!("--- closed cleanly; reconnecting");
    }
    let mut tls = connect(&connector, &args.connect, name).await?;
    if let Some(early) = &args.early_data {
        // Before the handshake completes: this goes out as early data if a ticket allows.
        tls.write_all(early.as_bytes()).await?;
    }

    // The first write or read would run the handshake by itself. Running it here lets us
    // report what was negotiated before any data, and means only one task ever drives it.
    tls.handshake()
        .await
        .map_err(|e| format!("handshake with {} failed: {e}", args.connect))?;
    let info = tls.info().expect("handshake completed");
    print_info(&args.connect, &host, info);
    if args.early_data.is_some() {
        let status = match info.early_data {
            EarlyDataStatus::Accepted => "accepted",
            EarlyDataStatus::Rejected => "rejected",
            _ => "not-sent",
        };
        eprintln!("early_data={status}");
    }

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

async fn connect(
    connector: &TlsConnector,
    addr: &str,
    name: ServerName<'static>,
) -> Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    Ok(connector.connect(name, tcp))
}

fn print_info(peer: &str, host: &str, info: &ConnectionInfo) {
    let [version, suite, alpn] = common::negotiated(info);
    let certs = info.peer_certificates.as_ref().map_or(0, Vec::len);
    eprintln!("--- connected to {peer} as {host:?}");
    eprintln!("    protocol:       {version}");
    eprintln!("    cipher suite:   {suite}");
    eprintln!("    key exchange:   {}", common::key_exchange_group(info));
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
    let builder = ClientConfig::builder_with_provider(common::provider())
        .with_protocol_versions(&common::versions(args.version))?
        .with_root_certificates(roots);
    let mut config = match &args.identity {
        Some((cert, key)) => {
            let chain = common::load_certs(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
            // rustls checks here that the key belongs to the certificate, so a mismatch
            // fails before any connection rather than in the server's handshake.
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("--cert {} --key {}: {e}", cert.display(), key.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = args.alpn.clone();
    // 0-RTT is the client's opt-in: rustls's flag, which lazytls honours.
    config.enable_early_data = args.early_data.is_some();
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
    let (mut cert, mut key) = (None, None);
    let mut alpn = Vec::new();
    let mut version = None;
    let (mut reconnect, mut early_data) = (false, None);
    let complete = common::parse_flags(argv, |flag, value| {
        match flag {
            "--connect" => connect = Some(value()?),
            "--ca" => ca = Some(PathBuf::from(value()?)),
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            "--sni" => sni = Some(value()?),
            "--alpn" => alpn = common::parse_alpn(&value()?)?,
            "--tls12" | "--tls13" => common::set_version(&mut version, flag)?,
            "--reconnect" => reconnect = true,
            "--early-data" => early_data = Some(value()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !complete {
        return Ok(None);
    }
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => return Err("--cert needs --key (the certificate's private key)".into()),
        (None, Some(_)) => return Err("--key needs --cert (the certificate it belongs to)".into()),
    };
    Ok(Some(Args {
        connect: connect.ok_or("--connect is required")?,
        ca: ca.ok_or("--ca is required")?,
        identity,
        sni,
        alpn,
        version,
        reconnect,
        early_data,
    }))
}
