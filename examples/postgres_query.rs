//! A query to PostgreSQL over lazytls, with tokio-postgres: prints the rows as text.
//!
//! ```text
//! cargo run --features postgres --example postgres_query -- \
//!     'postgres://user:pass@localhost/db?sslmode=require&channel_binding=require' \
//!     [--ca ca.pem] ['SELECT version()']
//! ```
//!
//! Without `--ca`, the system's trust roots are used when a roots feature is enabled
//! (`platform-verifier`, `native-roots` or `webpki-roots`, tried in that order). Exits 1 on
//! any failure, naming its cause.

mod common;

use std::error::Error as StdError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use common::Result;
use lazytls::TlsConnector;
use lazytls::postgres::{ConnectError, MakeTlsConnector};
use lazytls::rustls::{self, ClientConfig};
use tokio_postgres::SimpleQueryMessage;

const USAGE: &str = "\
usage: postgres_query URL [QUERY] [--ca PEM]

  URL          a connection URL, e.g.
               postgres://user:pass@host/db?sslmode=require&channel_binding=require
  QUERY        the SQL to run (default: SELECT version())
  --ca PEM     trusted CA certificate(s); default: the system's roots (needs the
               platform-verifier, native-roots or webpki-roots feature)
  -h, --help   show this message";

struct Args {
    url: String,
    query: String,
    ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    let parse = |argv| parse_args(argv).map_err(|e| e.to_string());
    common::run_main("postgres_query", USAGE, parse, |args| {
        let runtime =
            tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
        runtime.block_on(run(args)).map_err(|e| explain(&*e).into())
    })
}

/// `Ok(None)` asks for the usage message.
fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let (mut positional, mut ca) = (Vec::new(), None);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--ca" => ca = Some(PathBuf::from(it.next().ok_or("--ca needs a value")?)),
            "-h" | "--help" => return Ok(None),
            flag if flag.starts_with("--") => return Err(format!("unknown flag `{flag}`").into()),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let url = positional.next().ok_or("the URL is required")?;
    let query = positional
        .next()
        .unwrap_or_else(|| "SELECT version()".into());
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument `{extra}` (quote the query)").into());
    }
    Ok(Some(Args { url, query, ca }))
}

async fn run(args: Args) -> Result<()> {
    let connector =
        TlsConnector::new(client_config(&args)?.into()).handshake_timeout(Duration::from_secs(10));
    let (client, connection) =
        tokio_postgres::connect(&args.url, MakeTlsConnector::new(connector)).await?;
    // The connection object carries the I/O; it ends when the client is dropped.
    let io = tokio::spawn(connection);

    for message in client.simple_query(&args.query).await? {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                let names: Vec<_> = columns.iter().map(|c| c.name()).collect();
                println!("{}", names.join("\t"));
            }
            SimpleQueryMessage::Row(row) => {
                let values: Vec<_> = (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL"))
                    .collect();
                println!("{}", values.join("\t"));
            }
            SimpleQueryMessage::CommandComplete(n) => println!("({n} rows)"),
            _ => {}
        }
    }
    drop(client);
    io.await??;
    Ok(())
}

/// tokio-postgres's message leaves its cause to the source chain. lazytls's typed error,
/// if there is one, already names its own causes.
fn explain(err: &(dyn StdError + 'static)) -> String {
    let Some(tls) = ConnectError::find(err) else {
        let mut text = err.to_string();
        let mut next = err.source();
        while let Some(e) = next {
            text.push_str(&format!(": {e}"));
            next = e.source();
        }
        return text;
    };
    let hint = match tls.certificate_error() {
        Some(rustls::CertificateError::UnknownIssuer) => {
            " (is the server's CA in --ca, or in the system's roots?)"
        }
        _ => "",
    };
    format!("{err}: {tls}{hint}")
}

fn client_config(args: &Args) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(common::provider())
        .with_safe_default_protocol_versions()?;
    match &args.ca {
        Some(ca) => Ok(builder
            .with_root_certificates(common::load_roots(ca)?)
            .with_no_client_auth()),
        None => system_roots(builder),
    }
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
    use lazytls::roots::ConfigBuilderExt;
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
