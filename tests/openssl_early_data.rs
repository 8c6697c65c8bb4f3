//! 0-RTT early data against OpenSSL (TLS 1.3): our client with `openssl s_server
//! -early_data` (accepted) and with an s_server that cannot resume the ticket and has early
//! data off (refused, so sent again); our server with `openssl s_client -sess_out` /
//! `-sess_in … -early_data FILE` (accepted, kept apart from reads) and with early data off.
//!
//! Fixture: a `common::Pki` in a scratch directory, s_server/s_client as child processes
//! over loopback TCP, one session cache per server side. Every wait is bounded by `STEP`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::openssl::*;
use common::*;
use lazytls::rustls::server::ServerSessionMemoryCache;
use lazytls::{EarlyDataStatus, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STEP: Duration = Duration::from_secs(20);

const EARLY: &str = "early hello from lazytls\n";

fn early_connector(pki: &Pki) -> TlsConnector {
    let mut config = pki.client_config_with(TLS13);
    config.enable_early_data = true;
    TlsConnector::new(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_openssl_s_server() {
    let pki = Pki::new();
    let scratch = Scratch::new("early-s_server", &pki);
    let connector = early_connector(&pki);
    // -no_anti_replay: with anti-replay, s_server keeps its sessions in a cache and drops
    // one whose connection ended without close_notify, while a clean close ends s_server.
    let (mut server, port) = s_server(
        &scratch,
        &["-tls1_3", "-early_data", "-no_anti_replay"],
        STEP,
    )
    .await;
    let mut stdin = server.stdin();

    // A full handshake; s_server's line comes after its tickets, so reading it stores them.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut first = connector.connect(localhost(), tcp);
    server.handshake(&mut first, "s_server").await;
    stdin.write_all(b"pong\n").await.unwrap();
    stdin.flush().await.unwrap();
    let mut pong = [0; 5];
    bounded("s_server's line", first.read_exact(&mut pong))
        .await
        .unwrap();
    assert_eq!(&pong, b"pong\n");
    assert_eq!(first.info().unwrap().early_data, EarlyDataStatus::NotSent);
    // Dropped without close_notify: s_server exits on a clean close, and goes on
    // accepting after a dropped connection.
    drop(first);

    // Resumed: the first write goes out as early data, and s_server takes it as such.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut second = connector.connect(localhost(), tcp);
    bounded("early write", second.write_all(EARLY.as_bytes()))
        .await
        .unwrap();
    bounded("flush (completes the handshake)", second.flush())
        .await
        .unwrap();
    let info = second.info().expect("the flush completed the handshake");
    if !info.resumed {
        server.fail("the second connection did not resume").await;
    }
    assert_eq!(info.early_data, EarlyDataStatus::Accepted);
    server.wait_for_stdout("Early data received:").await;
    server.wait_for_stdout(EARLY).await;
    drop(second);

    // Another s_server cannot decrypt the first one's ticket, and has early data off:
    // it refuses the early data, so our client sends the bytes again after the handshake.
    let (mut other, other_port) = s_server(&scratch, &["-tls1_3"], STEP).await;
    let tcp = TcpStream::connect(("127.0.0.1", other_port)).await.unwrap();
    let mut third = connector.connect(localhost(), tcp);
    let again = "sent again after a refusal\n";
    bounded("early write", third.write_all(again.as_bytes()))
        .await
        .unwrap();
    bounded("flush", third.flush()).await.unwrap();
    assert_eq!(third.info().unwrap().early_data, EarlyDataStatus::Rejected);
    other.wait_for_stdout(again).await;
    assert!(!other.stdout_contains(b"Early data received"));
}

/// Waits (bounded) until s_client has written a session with a ticket to `path`, and
/// keeps a copy of it in `kept`: s_client rewrites its `-sess_out` file for each ticket,
/// so ending it can leave that file cut short.
async fn wait_for_session(client: &mut Proc, path: &std::path::Path, kept: &std::path::Path) {
    for _ in 0..STEP.as_millis() / 10 {
        let pem = std::fs::read_to_string(path).unwrap_or_default();
        if pem.contains("END SSL SESSION PARAMETERS") {
            std::fs::write(kept, pem).unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.fail("s_client wrote no session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_with_our_server() {
    let pki = Pki::new();
    let scratch = Scratch::new("early-s_client", &pki);
    std::fs::write(scratch.path("early.txt"), EARLY).unwrap();
    let (sess1, sess2) = (scratch.file("sess1.pem"), scratch.file("sess2.pem"));
    let (kept1, kept2) = (scratch.file("kept1.pem"), scratch.file("kept2.pem"));
    let cache = ServerSessionMemoryCache::new(32);
    let acceptor = |max_early: u32| {
        let mut config = pki.server_config_with(TLS13);
        config.max_early_data_size = max_early;
        config.session_storage = cache.clone();
        TlsAcceptor::new(Arc::new(config))
    };
    let on = acceptor(16_384);

    // A full handshake that leaves s_client a ticket.
    let (mut client, tcp) =
        s_client(&scratch, &["-tls1_3", "-quiet", "-sess_out", &sess1], STEP).await;
    let mut first = on.accept(tcp);
    client.handshake(&mut first, "s_client").await;
    bounded("flush", first.flush()).await.unwrap();
    wait_for_session(
        &mut client,
        &scratch.path("sess1.pem"),
        &scratch.path("kept1.pem"),
    )
    .await;
    drop((client, first));

    // Resumed with early data: it is ours to take, and never part of ordinary reads.
    let args = ["-tls1_3", "-quiet", "-sess_in", &kept1, "-sess_out", &sess2];
    let early = scratch.file("early.txt");
    let (mut client, tcp) = s_client(
        &scratch,
        &[&args[..], &["-early_data", &early]].concat(),
        STEP,
    )
    .await;
    let mut second = on.accept(tcp);
    client.handshake(&mut second, "s_client").await;
    assert_bytes("early data", &second.take_early_data(), EARLY.as_bytes());
    assert!(second.take_early_data().is_empty(), "taken once");
    let info = second.info().unwrap();
    assert!(info.resumed);
    assert_eq!(info.early_data, EarlyDataStatus::Accepted);
    let mut stdin = client.stdin();
    stdin.write_all(b"ordinary\n").await.unwrap();
    stdin.flush().await.unwrap();
    let mut line = [0; 9];
    bounded("ordinary read", second.read_exact(&mut line))
        .await
        .unwrap();
    assert_eq!(&line, b"ordinary\n", "reads give ordinary data only");
    bounded("flush", second.flush()).await.unwrap();
    wait_for_session(
        &mut client,
        &scratch.path("sess2.pem"),
        &scratch.path("kept2.pem"),
    )
    .await;
    drop((client, stdin, second));

    // A server with early data off (rustls's default) resumes but refuses it, so there
    // is nothing to take.
    let off = acceptor(0);
    let args = [
        "-tls1_3",
        "-quiet",
        "-sess_in",
        &kept2,
        "-early_data",
        &early,
    ];
    let (mut client, tcp) = s_client(&scratch, &args, STEP).await;
    let mut third = off.accept(tcp);
    client.handshake(&mut third, "s_client").await;
    assert!(third.take_early_data().is_empty());
    assert_eq!(third.info().unwrap().early_data, EarlyDataStatus::NotSent);
}
