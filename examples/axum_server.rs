//! An HTTPS server with `axum::serve` over a `TlsListener` (needs the `axum` feature).
//!
//! `GET /` returns a small page; `POST /echo` streams the request body back. The server
//! offers `h2, http/1.1, http/1.0` through ALPN. Every handshake runs in its connection's
//! own task under the listener's deadline, so slow clients never hold up `accept`.
//!
//! Ctrl-C shuts down gracefully: axum stops accepting and drains its connections, and
//! the listener's token cancels the handshakes in flight.
//!
//! ```text
//! cargo run --example axum_server --features axum -- --addr 127.0.0.1:8443 \
//!     --cert server.pem --key server.key
//! curl --cacert ca.pem https://localhost:8443/            # also --http2, --http1.0
//! ```

mod common;

use std::process::ExitCode;

const USAGE_HEAD: &str = "\
usage: axum_server --addr HOST:PORT --cert PEM --key PEM [options]

An HTTPS server (axum::serve over lazytls::TlsListener): GET / returns a page,
POST /echo returns the body. Ctrl-C shuts down gracefully.
";

fn main() -> ExitCode {
    let usage = format!("{USAGE_HEAD}\n{}", common::SERVER_FLAGS);
    common::main_with("axum_server", &usage, |_, _| Ok(false), run)
}

#[tokio::main]
async fn run(args: common::ServerArgs) -> common::Result<()> {
    let shutdown = common::shutdown_on_ctrl_c();
    let listener = common::bind(&args, common::HTTP_ALPN, shutdown.clone()).await?;
    axum::serve(listener, common::axum_app())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
