//! An HTTPS server with `axum::serve` over a `TlsListener` (needs the `axum` feature).
//!
//! `GET /` returns a small page; `GET /tls` returns the connection's TLS parameters as
//! JSON, read through axum's `ConnectInfo<lazytls::axum::TlsConnectInfo>` (the client
//! certificate's subject with `--client-ca`); `POST /echo` streams the request body back.
//! The server offers `h2, http/1.1, http/1.0` through ALPN. `--addr unix:PATH` serves a
//! Unix socket. SIGHUP reloads the certificate. Every handshake runs in its connection's
//! own task under the listener's deadline, so slow clients never hold up `accept`.
//!
//! Ctrl-C shuts down gracefully: axum stops accepting and drains its connections, and
//! the listener's token cancels the handshakes in flight.
//!
//! ```text
//! cargo run --example axum_server --features axum -- --addr 127.0.0.1:8443 \
//!     --cert server.pem --key server.key
//! curl --cacert ca.pem https://localhost:8443/            # also --http2, --http1.0
//! curl --cacert ca.pem https://localhost:8443/tls
//! cargo run --example axum_server --features axum -- --addr unix:/tmp/lazytls.sock \
//!     --cert server.pem --key server.key
//! curl --cacert ca.pem --unix-socket /tmp/lazytls.sock https://localhost/tls
//! ```

mod common;

use std::process::ExitCode;

use lazytls::TlsListener;
use lazytls::axum::TlsConnectInfo;

const USAGE_HEAD: &str = "\
usage: axum_server --addr HOST:PORT --cert PEM --key PEM [options]

An HTTPS server (axum::serve over lazytls::TlsListener): GET / returns a page,
GET /tls the TLS parameters as JSON, POST /echo the body. --addr unix:PATH
serves a Unix socket. Ctrl-C shuts down gracefully.
";

fn main() -> ExitCode {
    let usage = format!("{USAGE_HEAD}\n{}", common::SERVER_FLAGS);
    common::main_with("axum_server", &usage, |_, _| Ok(false), run)
}

#[tokio::main]
async fn run(args: common::ServerArgs) -> common::Result<()> {
    let shutdown = common::shutdown_on_ctrl_c();
    let files = common::certificate_files(&args, common::HTTP_ALPN, 0)?;
    // axum::serve has no hook for a plaintext client: the acceptor answers it with a 400.
    let acceptor = common::reloading_acceptor(files, true)?;
    let drained = shutdown.clone().cancelled_owned();
    if let Some(path) = args.addr.strip_prefix("unix:") {
        let listener = TlsListener::bind_unix(path, acceptor)
            .map_err(|e| format!("--addr {}: {e}", args.addr))?;
        eprintln!("listening on {path}");
        let listener = common::configure(listener, &args, shutdown);
        let app = common::axum_app::<tokio::net::unix::SocketAddr>();
        let app = app.into_make_service_with_connect_info::<TlsConnectInfo<_>>();
        axum::serve(listener, app)
            .with_graceful_shutdown(drained)
            .await?;
        // The socket file stays after the listener closes; remove it for the next run.
        let _ = std::fs::remove_file(path);
    } else {
        let listener = common::bind(&args, acceptor, shutdown).await?;
        let app = common::axum_app::<std::net::SocketAddr>();
        let app = app.into_make_service_with_connect_info::<TlsConnectInfo>();
        axum::serve(listener, app)
            .with_graceful_shutdown(drained)
            .await?;
    }
    Ok(())
}
