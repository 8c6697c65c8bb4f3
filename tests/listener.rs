//! `TlsListener` on loopback TCP:
//!
//! - `accept` never waits for a handshake: silent clients stay pending while a real
//!   client is served, and the listener's deadline cuts them off;
//! - TLS errors (garbage, an untrusted client certificate, plaintext HTTP) never stop
//!   `accept`;
//! - the handshake cap, with the wait for a permit counting against the deadline;
//! - graceful shutdown: the token stops `accept` and cancels handshakes in flight, while
//!   established connections finish;
//! - resource errors from TCP accept (EMFILE) back off and recover;
//! - HTTP over the listener, served the way the example servers serve it (a page at `/`
//!   naming the negotiated versions, `/echo` streaming the body back; the small server of
//!   this file, [`http`]), under `curl` (`--http1.1`, `--http2`, `--http1.0`, a 10 MiB POST
//!   to `/echo`, plaintext HTTP) and `openssl s_client`, served by hyper-util's `auto`
//!   builder and by `axum::serve`, and hyper-util's graceful shutdown with a request in
//!   flight.
//!
//! `curl` and `openssl` must be on `PATH`. Every step is bounded in time; child processes
//! are killed on drop.

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::openssl::{self, Proc, Scratch, spawn_s_client};
use common::*;
use lazytls::rustls::{self, ClientConfig};
use lazytls::{CancellationToken, Error, TlsAcceptor, TlsConnector, TlsListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::{Semaphore, mpsc};

/// The listener's handshake deadline in these tests.
const DEADLINE: Duration = Duration::from_millis(300);
/// Slack on top of a deadline for a connection to be closed.
const SLACK: Duration = Duration::from_secs(1);

/// What the test server reports.
#[derive(Debug)]
enum Event {
    Accepted(SocketAddr),
    /// A connection ended: bytes echoed, or the typed error.
    Done(SocketAddr, Result<u64, Error>),
    /// `accept_until_shutdown` returned `Ok(None)` (and the listener was dropped).
    Stopped,
}

/// An echo server over `listener`: each connection in its own task.
fn spawn_echo_server(listener: TlsListener) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((mut tls, peer)) = listener.accept_until_shutdown().await.unwrap() {
            let _ = tx.send(Event::Accepted(peer));
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = async {
                    tls.handshake().await?;
                    let mut buf = vec![0; 16 * 1024];
                    let mut total = 0;
                    loop {
                        let n = tls.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        tls.write_all(&buf[..n]).await?;
                        tls.flush().await?;
                        total += n as u64;
                    }
                    tls.shutdown().await?;
                    Ok::<_, Error>(total)
                }
                .await;
                let _ = tx.send(Event::Done(peer, result));
            });
        }
        drop(listener);
        let _ = tx.send(Event::Stopped);
    });
    rx
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<Event>, within: Duration) -> Event {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the server is gone"),
        Err(_) => panic!("no server event within {within:?}"),
    }
}

/// Waits for the `Done` event of `peer`, keeping the others in `seen`.
async fn done_of(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    peer: SocketAddr,
    within: Duration,
    seen: &mut Vec<Event>,
) -> Result<u64, Error> {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match next_event(rx, left).await {
            Event::Done(p, result) if p == peer => return result,
            other => seen.push(other),
        }
    }
}

async fn listener(pki: &Pki) -> TlsListener {
    TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(pki.server_config()))
        .await
        .unwrap()
        .handshake_timeout(DEADLINE)
}

/// A full exchange from a real client: handshake, `msg` echoed back, close_notify both ways.
async fn exchange(addr: SocketAddr, config: Arc<ClientConfig>, msg: &[u8]) -> io::Result<()> {
    exchange_on(TcpStream::connect(addr).await?, config, msg.to_vec()).await
}

async fn exchange_on(tcp: TcpStream, config: Arc<ClientConfig>, msg: Vec<u8>) -> io::Result<()> {
    let msg = &msg[..];
    let mut tls = TlsConnector::new(config).connect(localhost(), tcp);
    tls.write_all(msg).await?;
    tls.flush().await?;
    let mut back = vec![0; msg.len()];
    tls.read_exact(&mut back).await?;
    assert_eq!(back, msg);
    tls.shutdown().await?;
    assert_eq!(tls.read(&mut [0u8; 1]).await?, 0, "close_notify");
    Ok(())
}

/// Reads until EOF or a reset: the server closed this connection.
async fn wait_closed(tcp: &mut TcpStream) {
    let mut buf = [0u8; 256];
    // Each turn reads at least one byte or ends; a silent client gets at most an alert.
    for _ in 0..64 {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
    panic!("the server kept sending");
}

fn still_open(tcp: &TcpStream) -> bool {
    matches!(tcp.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn accept_never_waits_for_a_handshake_and_the_deadline_cuts_off_silent_clients() {
    let pki = Pki::new();
    let listener = listener(&pki).await;
    let addr = listener.local_addr().unwrap();
    let mut events = spawn_echo_server(listener);

    // Warm up (lazy statics, first-time costs) so that the timed part is a plain handshake.
    bounded("warm-up", exchange(addr, pki.client_config(), b"warm"))
        .await
        .unwrap();

    let connected = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let silent_peers: Vec<SocketAddr> = silent.iter().map(|s| s.local_addr().unwrap()).collect();

    // A real client behind them is accepted and served at once.
    bounded("real client", exchange(addr, pki.client_config(), b"ping"))
        .await
        .unwrap();
    // ... while the silent ones are still pending.
    for (tcp, peer) in silent.iter().zip(&silent_peers) {
        assert!(
            still_open(tcp),
            "{peer} was closed before the real client finished"
        );
    }
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Done(peer, result) = &event {
            assert!(
                !silent_peers.contains(peer),
                "{peer} ended before the real client was served: {result:?}"
            );
        }
        seen.push(event);
    }

    // The deadline cuts each silent client off, server side, with `HandshakeTimeout`.
    for peer in &silent_peers {
        let result = done_of(&mut events, *peer, DEADLINE + SLACK, &mut seen).await;
        assert!(
            matches!(result, Err(Error::HandshakeTimeout)),
            "{peer}: {result:?}"
        );
    }
    for tcp in &mut silent {
        bounded("silent client closed", wait_closed(tcp)).await;
    }
    let took = connected.elapsed();
    assert!(
        took >= DEADLINE && took <= DEADLINE + SLACK,
        "silent clients were closed after {took:?}"
    );
}

#[tokio::test]
async fn tls_errors_never_stop_accept() {
    let pki = Pki::new();
    let acceptor = TlsAcceptor::new(pki.mtls_server_config(rustls::DEFAULT_VERSIONS))
        .plaintext_http_response(true);
    let listener = TlsListener::bind("127.0.0.1:0", acceptor)
        .await
        .unwrap()
        .handshake_timeout(Duration::from_secs(5));
    let addr = listener.local_addr().unwrap();
    let mut events = spawn_echo_server(listener);
    let good = pki.mtls_client_config(rustls::DEFAULT_VERSIONS);
    let mut seen = Vec::new();

    // Garbage bytes.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let result = done_of(&mut events, peer, SLACK * 5, &mut seen).await;
    assert!(matches!(result, Err(Error::Tls(_))), "garbage: {result:?}");
    bounded("garbage closed", wait_closed(&mut tcp)).await;
    bounded("after garbage", exchange(addr, good.clone(), b"one"))
        .await
        .unwrap();

    // A client certificate from another CA.
    let other = Pki::new();
    let untrusted = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .unwrap()
            .with_root_certificates(pki.roots())
            .with_client_auth_cert(other.client_chain.clone(), other.client_key())
            .unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let client = tokio::spawn(exchange_on(tcp, untrusted, b"x".to_vec()));
    let result = done_of(&mut events, peer, SLACK * 5, &mut seen).await;
    assert!(
        matches!(
            result,
            Err(Error::Tls(rustls::Error::InvalidCertificate(_)))
        ),
        "untrusted client certificate: {result:?}"
    );
    assert!(bounded("untrusted client", client).await.unwrap().is_err());
    bounded("after untrusted", exchange(addr, good.clone(), b"two"))
        .await
        .unwrap();

    // Plaintext HTTP gets the 400.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    bounded("400", tcp.read_to_end(&mut reply)).await.unwrap();
    assert!(reply.starts_with(b"HTTP/1.0 400 Bad Request\r\n"));
    let result = done_of(&mut events, peer, SLACK * 5, &mut seen).await;
    assert!(matches!(result, Err(Error::PlaintextHttp)), "{result:?}");
    bounded("after plaintext", exchange(addr, good, b"three"))
        .await
        .unwrap();
}

#[tokio::test]
async fn handshake_permits_cap_and_the_wait_counts_against_the_deadline() {
    let pki = Pki::new();
    let permits = Arc::new(Semaphore::new(2));
    let listener = listener(&pki).await.handshake_permits(permits.clone());
    let addr = listener.local_addr().unwrap();
    let mut events = spawn_echo_server(listener);
    let mut seen = Vec::new();

    // Two silent clients take both permits; a third handshake must wait, and `accept`
    // goes on meanwhile.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    bounded("permits taken", async {
        // Each turn sleeps 5 ms: at most 6000 turns under the 30 s bound.
        while permits.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let waiting = bounded(
        "accepted over the cap",
        connect_accepted(addr, &mut events, &mut seen),
    )
    .await;
    assert_eq!(
        permits.available_permits(),
        0,
        "no more than 2 handshakes at once"
    );
    drop(waiting);

    // The silent ones time out and give their permits back; then a real client is served.
    for tcp in &mut silent {
        bounded("silent client closed", wait_closed(tcp)).await;
    }
    bounded("after the cap", exchange(addr, pki.client_config(), b"ok"))
        .await
        .unwrap();

    // The wait for a permit counts against the deadline: with every permit held, a good
    // client's handshake fails with `HandshakeTimeout` once the deadline has passed.
    let held = permits.clone().acquire_many_owned(2).await.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let started = Instant::now();
    let client = tokio::spawn(exchange_on(tcp, pki.client_config(), b"late".to_vec()));
    // `accept` is not held up by the waiting handshake.
    bounded(
        "accepted while waiting",
        connect_accepted(addr, &mut events, &mut seen),
    )
    .await;
    let result = done_of(&mut events, peer, DEADLINE + SLACK, &mut seen).await;
    let took = started.elapsed();
    assert!(matches!(result, Err(Error::HandshakeTimeout)), "{result:?}");
    assert!(took >= DEADLINE && took <= DEADLINE + SLACK, "{took:?}");
    assert!(bounded("late client", client).await.unwrap().is_err());
    drop(held);
    bounded(
        "after release",
        exchange(addr, pki.client_config(), b"again"),
    )
    .await
    .unwrap();
}

/// Connects a TCP client and waits until the server reports it accepted.
async fn connect_accepted(
    addr: SocketAddr,
    events: &mut mpsc::UnboundedReceiver<Event>,
    seen: &mut Vec<Event>,
) -> TcpStream {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    loop {
        match next_event(events, SLACK).await {
            Event::Accepted(peer) if peer == me => return tcp,
            other => seen.push(other),
        }
    }
}

#[tokio::test]
async fn shutdown_stops_accept_and_cancels_handshakes_while_established_connections_finish() {
    let pki = Pki::new();
    let token = CancellationToken::new();
    // A long deadline: what ends the handshake in flight must be the token.
    let listener = listener(&pki)
        .await
        .handshake_timeout(Duration::from_secs(20))
        .shutdown_token(token.clone());
    let addr = listener.local_addr().unwrap();
    let mut events = spawn_echo_server(listener);
    let mut seen = Vec::new();

    // An established connection, in the middle of its conversation.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let established_peer = tcp.local_addr().unwrap();
    let mut established = TlsConnector::new(pki.client_config()).connect(localhost(), tcp);
    established.write_all(b"one").await.unwrap();
    established.flush().await.unwrap();
    let mut buf = [0u8; 3];
    bounded("first echo", established.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"one");

    // A handshake in flight: the server is waiting for its ClientHello.
    let mut in_flight = bounded("in flight", connect_accepted(addr, &mut events, &mut seen)).await;
    let in_flight_peer = in_flight.local_addr().unwrap();

    token.cancel();
    let result = done_of(&mut events, in_flight_peer, SLACK, &mut seen).await;
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    bounded("in-flight client closed", wait_closed(&mut in_flight)).await;
    // (`done_of` may have put it aside.)
    while !seen.iter().any(|e| matches!(e, Event::Stopped)) {
        seen.push(next_event(&mut events, SLACK).await);
    }
    // The listener is closed: new connections are refused.
    let refused = TcpStream::connect(addr).await;
    assert!(
        matches!(&refused, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused),
        "{refused:?}"
    );

    // The established connection finishes its exchange.
    established.write_all(b"two").await.unwrap();
    established.flush().await.unwrap();
    bounded("second echo", established.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"two");
    established.shutdown().await.unwrap();
    assert_eq!(
        bounded("close", established.read(&mut buf)).await.unwrap(),
        0
    );
    let result = done_of(&mut events, established_peer, SLACK, &mut seen).await;
    assert_eq!(result.unwrap(), 6);
}

#[tokio::test]
async fn accept_after_shutdown_is_final_and_a_waiting_accept_wakes() {
    let pki = Pki::new();
    let token = CancellationToken::new();
    let listener = Arc::new(listener(&pki).await.shutdown_token(token.clone()));
    let waiting = tokio::spawn({
        let listener = listener.clone();
        async move { listener.accept().await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    token.cancel();
    let err = bounded("waiting accept", waiting)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    assert!(listener.is_shut_down());
    // Final: every later call returns at once, even with a connection in the backlog.
    let _backlog = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        let err = bounded("accept", listener.accept()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert!(
            bounded("until", listener.accept_until_shutdown())
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// EMFILE from TCP accept backs off and retries instead of failing. Runs
/// [`emfile_child`] in a child process with a small descriptor limit (`ulimit -n`), so
/// that running out of descriptors cannot disturb the other tests.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn out_of_descriptors_backs_off_and_recovers() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0" "$@""#)
        .arg(exe)
        .args([
            "emfile_child",
            "--exact",
            "--include-ignored",
            "--nocapture",
        ])
        .env("LAZYTLS_EMFILE_CHILD", "1")
        .kill_on_drop(true);
    let out = bounded("child", child.output()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("EMFILE-RECOVERED"), "{stdout}\n{stderr}");
}

/// The body of [`out_of_descriptors_backs_off_and_recovers`]; does nothing unless run by it.
#[cfg(target_os = "linux")]
#[tokio::test]
#[ignore = "run by out_of_descriptors_backs_off_and_recovers, in a child process"]
async fn emfile_child() {
    if std::env::var_os("LAZYTLS_EMFILE_CHILD").is_none() {
        return;
    }
    let pki = Pki::new();
    let listener = Arc::new(listener(&pki).await);
    let addr = listener.local_addr().unwrap();

    // Take every descriptor left (at most 256 under the child's limit).
    let mut hog = Vec::new();
    let err = loop {
        assert!(hog.len() < 10_000, "no descriptor limit");
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => break e,
        }
    };
    assert_eq!(err.raw_os_error(), Some(24), "{err}"); // EMFILE
    // One for the client socket; the connection then waits in the backlog.
    hog.pop();
    let _client = TcpStream::connect(addr).await.unwrap();

    let accepting = tokio::spawn({
        let listener = listener.clone();
        async move { listener.accept().await.map(|(_, peer)| peer) }
    });
    // accept(2) fails with EMFILE now; `accept` must keep retrying, not return.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !accepting.is_finished(),
        "accept returned: {:?}",
        accepting.await
    );
    hog.truncate(hog.len().saturating_sub(4));
    let peer = bounded("accept after EMFILE", accepting).await.unwrap();
    assert!(peer.is_ok(), "{peer:?}");
    println!("EMFILE-RECOVERED");
}

// ---- HTTP over the listener, against curl and openssl ----

/// A small HTTPS server over a `TlsListener`, as the example servers have one: `GET /` is
/// a page naming the HTTP version and the negotiated TLS parameters, `POST /echo` streams
/// the request body back. hyper-util's `auto` builder serves the HTTP version ALPN chose;
/// [`axum_app`](http::axum_app) is the same for `axum::serve`.
mod http {
    use std::convert::Infallible;
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Method, Request, Response, StatusCode};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::{GracefulShutdown, Watcher};
    use lazytls::rustls::ProtocolVersion;
    use lazytls::{ConnectionInfo, TlsListener, TlsStream};
    use tokio::net::TcpStream;

    /// What the server offers: `curl --http1.0` offers `http/1.0` through ALPN.
    pub(super) const ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0"];

    type Body = BoxBody<Bytes, hyper::Error>;

    /// Serves until the listener's shutdown token fires, then closes the listening socket
    /// and lets the established connections finish their requests in flight (for at most
    /// `drain`).
    pub(super) async fn serve(listener: TlsListener, drain: Duration) -> io::Result<()> {
        let graceful = GracefulShutdown::new();
        while let Some((tls, _peer)) = listener.accept_until_shutdown().await? {
            // Subscribed before the task runs, so that no connection escapes the shutdown.
            let watcher = graceful.watcher();
            tokio::spawn(connection(tls, watcher));
        }
        drop(listener);
        let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
        Ok(())
    }

    /// One connection: the handshake (to read ALPN), then HTTP/2 or HTTP/1.x.
    async fn connection(mut tls: TlsStream<TcpStream>, watcher: Watcher) {
        if tls.handshake().await.is_err() {
            return;
        }
        let info = tls.info().expect("the handshake completed");
        let summary: Arc<str> = describe(info).into();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder = match info.alpn.as_deref() {
            Some(b"h2") => builder.http2_only(),
            Some(b"http/1.1" | b"http/1.0") => builder.http1_only(),
            _ => builder,
        };
        let service = hyper::service::service_fn(move |req| handle(req, summary.clone()));
        let conn = builder.serve_connection(TokioIo::new(tls), service);
        let _ = watcher.watch(conn.into_owned()).await;
    }

    /// `TLS1.3 <suite> alpn=<protocol> sni=<name>`.
    fn describe(info: &ConnectionInfo) -> String {
        let version = match info.protocol_version {
            Some(ProtocolVersion::TLSv1_3) => "TLS1.3".to_string(),
            Some(ProtocolVersion::TLSv1_2) => "TLS1.2".to_string(),
            other => format!("{other:?}"),
        };
        let suite = info
            .cipher_suite
            .map_or_else(|| "-".into(), |s| format!("{:?}", s.suite()));
        let alpn = info
            .alpn
            .as_deref()
            .map_or_else(|| "-".into(), |p| String::from_utf8_lossy(p).into_owned());
        let sni = info.sni.as_deref().unwrap_or("-");
        format!("{version} {suite} alpn={alpn} sni={sni}")
    }

    /// The page at `/`.
    fn page(http_version: hyper::Version, tls: &str) -> String {
        format!("Hello from lazytls.\n\nHTTP: {http_version:?}\nTLS: {tls}\n")
    }

    async fn handle(req: Request<Incoming>, tls: Arc<str>) -> Result<Response<Body>, Infallible> {
        Ok(match (req.method(), req.uri().path()) {
            (&Method::GET, "/") => Response::new(full(page(req.version(), &tls))),
            (&Method::POST, "/echo") => Response::new(req.into_body().boxed()),
            _ => {
                let mut response = Response::new(full("not found\n"));
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
        })
    }

    fn full(text: impl Into<Bytes>) -> Body {
        Full::new(text.into())
            .map_err(|never| match never {})
            .boxed()
    }

    /// The same page and echo endpoint as an axum `Router`.
    #[cfg(feature = "axum")]
    pub(super) fn axum_app() -> axum::Router {
        use axum::body::Body;
        use axum::extract::Request;
        use axum::routing::{get, post};

        axum::Router::new()
            .route(
                "/",
                get(|req: Request| async move {
                    page(req.version(), "served by axum::serve over a TlsListener")
                }),
            )
            .route("/echo", post(|body: Body| async move { body }))
    }
}

/// Bound on each wait for `curl` or `openssl`.
const STEP: Duration = Duration::from_secs(30);

/// Runs curl against `https://localhost:PORT{path}` (pinned to 127.0.0.1) with our CA.
/// Returns stdout; fails on a non-zero exit.
async fn curl(scratch: &Scratch, addr: SocketAddr, args: &[&str], path: &str) -> Vec<u8> {
    let all = [&["--max-time", "30"], args].concat();
    openssl::curl(scratch, addr.port(), &all, path, STEP).await
}

/// GET / over HTTP/1.1, HTTP/2 and HTTP/1.0 (each chosen by ALPN), and 10 MiB through
/// `/echo` over HTTP/1.1 and HTTP/2.
async fn curl_page_and_echo(addr: SocketAddr, pki: &Pki, page_names_alpn: bool) {
    let scratch = Scratch::new("listener-curl", pki);
    for (flag, http, alpn) in [
        ("--http1.1", "HTTP/1.1", "alpn=http/1.1"),
        ("--http2", "HTTP/2.0", "alpn=h2"),
        ("--http1.0", "HTTP/1.0", "alpn=http/1.0"),
    ] {
        let page = curl(&scratch, addr, &[flag], "/").await;
        let page = String::from_utf8_lossy(&page);
        assert!(page.starts_with("Hello from lazytls."), "{flag}: {page}");
        assert!(page.contains(&format!("HTTP: {http}\n")), "{flag}: {page}");
        if page_names_alpn {
            assert!(page.contains(alpn), "{flag}: {page}");
        }
    }
    let body = pattern(10 * 1024 * 1024, 7);
    std::fs::write(scratch.path("body"), &body).unwrap();
    let data = format!("@{}", scratch.path("body").display());
    for flag in ["--http1.1", "--http2"] {
        let out = scratch.path("echoed");
        let out_arg = out.display().to_string();
        curl(
            &scratch,
            addr,
            &[flag, "--data-binary", &data, "-o", &out_arg],
            "/echo",
        )
        .await;
        let echoed = std::fs::read(&out).unwrap();
        assert!(echoed == body, "{flag}: {} bytes echoed", echoed.len());
        std::fs::remove_file(&out).unwrap();
    }
}

async fn http_listener(pki: &Pki, token: &CancellationToken) -> TlsListener {
    let mut config = pki.server_config_with(rustls::DEFAULT_VERSIONS);
    config.alpn_protocols = http::ALPN.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::new(Arc::new(config)).plaintext_http_response(true);
    TlsListener::bind("127.0.0.1:0", acceptor)
        .await
        .unwrap()
        .handshake_timeout(Duration::from_secs(10))
        .shutdown_token(token.clone())
}

#[tokio::test]
async fn hyper_server_code_serves_curl_and_openssl() {
    let pki = Pki::new();
    let token = CancellationToken::new();
    let listener = http_listener(&pki, &token).await;
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(http::serve(listener, Duration::from_secs(5)));

    curl_page_and_echo(addr, &pki, true).await;

    // Plaintext HTTP on the TLS port gets the 400.
    let url = format!("http://127.0.0.1:{}/", addr.port());
    let mut curl = Proc::spawn("curl", &["-sS", "-i", "--max-time", "30", &url], STEP);
    drop(curl.stdin());
    let out = curl.stdout().await;
    let reply = String::from_utf8_lossy(&out);
    assert!(reply.starts_with("HTTP/1.0 400 Bad Request"), "{reply}");
    assert!(reply.contains("HTTPS"), "{reply}");

    // openssl s_client.
    let scratch = Scratch::new("listener-s_client", &pki);
    let args = ["-quiet", "-no_ign_eof", "-alpn", "http/1.1"];
    let mut s_client = spawn_s_client(&scratch, &addr.to_string(), &args, STEP);
    let mut stdin = s_client.stdin();
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // stdin stays open until the server has answered and closed: -no_ign_eof would
    // otherwise end the session at once.
    let reply = s_client.stdout().await;
    drop(stdin);
    let _ = s_client.wait().await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("HTTP: HTTP/1.1\nTLS: TLS1."), "{reply}");

    token.cancel();
    bounded("serve", server).await.unwrap().unwrap();
}

#[tokio::test]
async fn hyper_graceful_shutdown_finishes_the_request_in_flight() {
    let pki = Pki::new();
    let token = CancellationToken::new();
    let listener = http_listener(&pki, &token).await;
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(http::serve(listener, Duration::from_secs(10)));

    let mut config = pki.client_config_with(rustls::DEFAULT_VERSIONS);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::new(Arc::new(config)).connect(localhost(), tcp);
    tls.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n01234")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // The response starts streaming back: the request is in flight.
    let mut reply = Vec::new();
    bounded("first half", async {
        // Each turn reads at least one byte; the response's head is small.
        while !reply.ends_with(b"01234") {
            let mut buf = [0u8; 1024];
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&buf[..n]);
            assert!(reply.len() < 4096);
        }
    })
    .await;
    assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"));

    token.cancel();
    // The listener closes: new connections are refused.
    bounded("refused", async {
        // Each turn sleeps 10 ms: at most 3000 turns under the 30 s bound.
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // The request in flight completes; then the server closes the connection.
    tls.write_all(b"56789").await.unwrap();
    tls.flush().await.unwrap();
    let mut rest = Vec::new();
    let end = bounded("second half", tls.read_to_end(&mut rest)).await;
    reply.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.ends_with("\r\n\r\n0123456789"), "{text} ({end:?})");
    assert!(end.is_ok(), "the server closes with close_notify: {end:?}");
    bounded("serve", server).await.unwrap().unwrap();
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_serve_over_tls_listener() {
    let pki = Pki::new();
    let token = CancellationToken::new();
    let listener = http_listener(&pki, &token).await;
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(listener, http::axum_app())
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .into_future(),
    );

    curl_page_and_echo(addr, &pki, false).await;

    token.cancel();
    bounded("axum::serve", server).await.unwrap().unwrap();
    let refused = TcpStream::connect(addr).await;
    assert!(refused.is_err(), "{refused:?}");
}
