//! A gRPC server with tonic over a `TlsListener` (needs the `tonic` feature): tonic-health's
//! standard `grpc.health.v1.Health` service, reporting SERVING, behind an interceptor that
//! logs each call's peer and client certificate, read from the request's
//! `lazytls::tonic::TlsConnectInfo`. The server offers ALPN `h2` only. With `--client-ca`
//! it asks clients for a certificate (clients without one are still served). SIGHUP
//! reloads the certificate; Ctrl-C stops accepting and drains the connections.
//!
//! ```text
//! cargo run --features tonic --example grpc_server -- --addr 127.0.0.1:50051 \
//!     --cert server.pem --key server.key --client-ca ca.pem
//! grpc_health_probe -addr localhost:50051 -tls -tls-ca-cert ca.pem \
//!     -tls-client-cert client.pem -tls-client-key client.key
//! ```
//!
//! A Rust client: `lazytls::tonic::connect(&endpoint, client_config)` and tonic-health's
//! `HealthClient`, as `tests/tonic.rs` does against this example.

mod common;

use std::process::ExitCode;

use lazytls::tonic::TlsConnectInfo;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::{Request, Status};

const USAGE_HEAD: &str = "\
usage: grpc_server --addr HOST:PORT --cert PEM --key PEM [options]

A gRPC server (tonic over lazytls::TlsListener) with the grpc.health.v1.Health
service; each call's peer and client certificate go to stderr. Ctrl-C shuts down
gracefully.
";

fn main() -> ExitCode {
    let usage = format!("{USAGE_HEAD}\n{}", common::SERVER_FLAGS);
    common::main_with("grpc_server", &usage, |_, _| Ok(false), run)
}

#[tokio::main]
async fn run(args: common::ServerArgs) -> common::Result<()> {
    let shutdown = common::shutdown_on_ctrl_c();
    let files = common::certificate_files(&args, &[b"h2"], 0)?;
    let acceptor = common::reloading_acceptor(files, false)?;
    let listener = common::bind(&args, acceptor, shutdown.clone()).await?;
    let port = listener.local_addr()?.port();
    eprintln!(
        "try: grpc_health_probe -addr localhost:{port} -tls -tls-ca-cert ca.pem \
         [-tls-client-cert client.pem -tls-client-key client.key]"
    );

    // SERVING for "" (the whole server) from the start; keep the reporter to change it.
    let (_reporter, health) = tonic_health::server::health_reporter();
    Server::builder()
        .add_service(InterceptedService::new(health, log_peer))
        .serve_with_incoming_shutdown(
            lazytls::tonic::incoming(listener),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// Logs the caller: its address, and its certificate's subject (or that it sent none).
fn log_peer(request: Request<()>) -> Result<Request<()>, Status> {
    let conn = TlsConnectInfo::from_request(&request)
        .ok_or_else(|| Status::internal("not a lazytls connection"))?;
    let tls = conn.tls().ok_or_else(|| Status::internal("no handshake"))?;
    let peer = conn.remote_addr().map(|a| a.to_string());
    let subject = common::client_subject(tls).unwrap_or_else(|| "none".into());
    eprintln!(
        "call: {}; client certificate: {subject}; from {}",
        common::describe(tls),
        peer.as_deref().unwrap_or("?"),
    );
    Ok(request)
}
