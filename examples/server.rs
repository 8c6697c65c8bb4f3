//! A TLS server on lazytls: an echo server by default, or an HTTPS server with
//! `--mode http`.
//!
//! It accepts through a `TlsListener`, so the accept loop never waits for a handshake:
//! every connection runs its handshake in its own task, bounded by `--handshake-timeout`
//! (10 s by default). Errors on one connection are logged to stderr and never stop the
//! accept loop. Ctrl-C stops it; SIGHUP reloads `--cert` and `--key` (new connections get
//! the new certificate, established ones go on, a failed reload changes nothing).
//!
//! - `--mode echo` (the default) echoes every byte until the peer closes, then sends
//!   close_notify.
//! - `--early-data` (echo mode) accepts up to 16 KiB of TLS 1.3 0-RTT early data from
//!   resuming clients and echoes it first, like the rest. Early data is replayable (RFC 8446
//!   §8): a real server acts only on requests that are safe to repeat.
//! - `--mode http` serves `GET /` (a small page) and `POST /echo` (the body back) with
//!   hyper, HTTP/1.x or HTTP/2 as ALPN chose (the code of `examples/hyper_server.rs`),
//!   offering `h2, http/1.1, http/1.0` unless `--alpn` says otherwise.
//!
//! ```text
//! cargo run --example server -- --addr 127.0.0.1:8443 --cert server.pem --key server.key \
//!     [--mode echo|http] [--early-data] [--alpn h2,http/1.1] [--handshake-timeout SECS]
//!     [--tls12|--tls13]
//! ```
//!
//! `--cert` is a PEM file with the certificate chain, end entity first; `--key` is a PEM
//! file with its private key (PKCS#8, PKCS#1 or SEC1). Try it with `examples/client.rs`
//! or `openssl s_client -connect 127.0.0.1:8443 -CAfile ca.pem`.

mod common;

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use lazytls::TlsStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USAGE_HEAD: &str = "\
usage: server --addr HOST:PORT --cert PEM --key PEM [--mode echo|http] [options]

A TLS server. Echo mode (the default) echoes every byte on each connection until
the peer closes, then sends close_notify. HTTP mode serves GET / and POST /echo
(HTTP/1.x or HTTP/2 by ALPN).

  --mode echo|http           what to serve (default echo)
  --early-data               echo mode: accept 0-RTT early data and echo it too";

#[derive(Clone, Copy)]
enum Mode {
    Echo,
    Http,
}

fn main() -> ExitCode {
    let usage = format!("{USAGE_HEAD}\n{}", common::SERVER_FLAGS);
    let mode = Cell::new(Mode::Echo);
    let early_data = Cell::new(false);
    let parse_mode = |flag: &str, value: common::Value<'_>| match flag {
        "--early-data" => {
            early_data.set(true);
            Ok(true)
        }
        "--mode" => {
            mode.set(match value()?.as_str() {
                "echo" => Mode::Echo,
                "http" => Mode::Http,
                other => return Err(format!("--mode: echo or http, not {other:?}")),
            });
            Ok(true)
        }
        _ => Ok(false),
    };
    common::main_with("server", &usage, parse_mode, |args| {
        run(args, mode.get(), early_data.get())
    })
}

#[tokio::main]
async fn run(args: common::ServerArgs, mode: Mode, early_data: bool) -> common::Result<()> {
    let shutdown = common::shutdown_on_ctrl_c();
    match mode {
        Mode::Http => {
            let files = common::certificate_files(&args, common::HTTP_ALPN, 0)?;
            let acceptor = common::reloading_acceptor(files, false)?;
            let listener = common::bind(&args, acceptor, shutdown).await?;
            common::http::serve(listener, Duration::from_secs(10)).await
        }
        Mode::Echo => {
            // rustls's setting: 0 (the default) refuses early data.
            let max_early_data = if early_data { 16 * 1024 } else { 0 };
            let files = common::certificate_files(&args, &[], max_early_data)?;
            let acceptor = common::reloading_acceptor(files, false)?;
            let listener = common::bind(&args, acceptor, shutdown).await?;
            // `accept` returns at once, with no TLS I/O, and never fails for one
            // connection's sake; `None` after Ctrl-C.
            while let Some((tls, peer)) = listener.accept_until_shutdown().await? {
                tokio::spawn(async move {
                    match echo(tls, peer).await {
                        Ok(bytes) => {
                            eprintln!("{peer}: closed cleanly after echoing {bytes} bytes")
                        }
                        Err(e) => eprintln!("{peer}: {e}"),
                    }
                });
            }
            Ok(())
        }
    }
}

/// Echoes until the peer closes, then sends close_notify. Returns the bytes echoed.
async fn echo(mut tls: TlsStream<TcpStream>, peer: SocketAddr) -> common::Result<u64> {
    // The first read would drive the handshake by itself; doing it explicitly lets us log
    // what was negotiated before any data flows.
    tls.handshake()
        .await
        .map_err(|e| format!("handshake failed: {e}"))?;
    let info = tls.info().expect("handshake completed");
    eprintln!("{peer}: {}", common::describe(info));

    // Early data never comes through reads: it is taken, knowingly, here.
    let early = tls.take_early_data();
    if !early.is_empty() {
        eprintln!("{peer}: {} bytes of 0-RTT early data", early.len());
        tls.write_all(&early).await?;
        tls.flush().await?;
    }
    let mut buf = vec![0; 16 * 1024];
    let mut total = early.len() as u64;
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
