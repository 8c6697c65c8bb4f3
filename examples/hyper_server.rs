//! An HTTPS server with hyper over a `TlsListener`.
//!
//! hyper-util's `auto::Builder` serves HTTP/2 or HTTP/1.x as ALPN chose; the server offers
//! `h2, http/1.1, http/1.0` (`curl --http1.0` offers `http/1.0`). `GET /` returns a small
//! page naming the negotiated versions; `GET /tls` returns the connection's TLS parameters
//! as JSON (the client certificate's subject with `--client-ca`); `POST /echo` streams the
//! request body back. Plaintext HTTP on the port is redirected to https: the server takes
//! the transport back (`TlsStream::into_plaintext`) and answers with a `308`. SIGHUP
//! reloads the certificate.
//!
//! Ctrl-C shuts down gracefully: the listener stops accepting and closes, handshakes in
//! flight are cancelled, and established connections finish their requests in flight
//! (hyper-util's `GracefulShutdown`, for at most 10 s).
//!
//! ```text
//! cargo run --example hyper_server -- --addr 127.0.0.1:8443 --cert server.pem --key server.key
//! curl --cacert ca.pem https://localhost:8443/            # also --http2, --http1.0
//! curl --cacert ca.pem --data-binary @file https://localhost:8443/echo
//! curl -i http://localhost:8443/some/path                 # 308 to https://localhost:8443/some/path
//! ```

mod common;

use std::process::ExitCode;
use std::time::Duration;

const USAGE_HEAD: &str = "\
usage: hyper_server --addr HOST:PORT --cert PEM --key PEM [options]

An HTTPS server (hyper, HTTP/1.x and HTTP/2 by ALPN): GET / returns a page,
GET /tls the TLS parameters as JSON, POST /echo the body. Plaintext HTTP is
redirected to https. Ctrl-C shuts down gracefully.
";

fn main() -> ExitCode {
    let usage = format!("{USAGE_HEAD}\n{}", common::SERVER_FLAGS);
    common::main_with("hyper_server", &usage, |_, _| Ok(false), run)
}

#[tokio::main]
async fn run(args: common::ServerArgs) -> common::Result<()> {
    let shutdown = common::shutdown_on_ctrl_c();
    let files = common::certificate_files(&args, common::HTTP_ALPN, 0)?;
    // Plaintext HTTP is left to `common::http`, which redirects it to https.
    let acceptor = common::reloading_acceptor(files, false)?;
    let listener = common::bind(&args, acceptor, shutdown).await?;
    common::http::serve(listener, Duration::from_secs(10)).await
}
