//! Interop on loopback TCP, TLS 1.2 and TLS 1.3 each, 10 MiB each way, every byte
//! checked:
//!
//! - our client against a tokio-rustls echo server, and a tokio-rustls client against
//!   our echo server;
//! - our client against `openssl s_server` (our bytes come out of its stdout, its stdin
//!   comes back to us), and `openssl s_client` against our echo server;
//! - our client reading `openssl s_server -www`'s status page, and `curl` fetching a tiny
//!   HTTP/1.1 response from our server;
//! - our TLS 1.2 client reading on past a HelloRequest from `openssl s_server`.
//!
//! `openssl` and `curl` must be on `PATH` (`.ci/run` installs them); a missing one fails
//! the test. Every step is bounded in time, and every child process is killed on every
//! path (see [`common::openssl::Proc`]).

mod common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::openssl::{
    Scratch, check_www_page, close_with_s_server, curl, feed, s_client, s_server_once, version_flag,
};
use common::*;
use lazytls::rustls::{ProtocolVersion, SupportedProtocolVersion};
use lazytls::{TlsAcceptor, TlsConnector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIZE: usize = 10 * 1024 * 1024;

/// Bound on one step that involves a child process.
const STEP: Duration = Duration::from_secs(30);

fn is_tls13(v: &[&'static SupportedProtocolVersion]) -> bool {
    version_of(v) == ProtocolVersion::TLSv1_3
}

/// Echoes what `s` reads until EOF (or `limit` bytes). Reading never waits for writing
/// (an unbounded queue sits between them), so a peer that only reads once it has written
/// everything cannot deadlock it. Returns the stream and every byte it received.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: S, limit: usize) -> io::Result<(S, Vec<u8>)> {
    let (mut r, mut w) = tokio::io::split(s);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reading = async move {
        let mut received = Vec::with_capacity(limit.min(SIZE));
        // Each turn takes at least one byte or ends, so at most `limit` turns.
        while received.len() < limit {
            let mut chunk = vec![0; (64 * 1024).min(limit - received.len())];
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            chunk.truncate(n);
            received.extend_from_slice(&chunk);
            let _ = tx.send(chunk);
        }
        Ok::<_, io::Error>((r, received))
        // `tx` is dropped here, which ends the writing loop.
    };
    let writing = async move {
        while let Some(chunk) = rx.recv().await {
            w.write_all(&chunk).await?;
            // A TLS writer may keep the tail of a write buffered (both lazytls and
            // tokio-rustls do when the socket is full); an echo that waits for more input
            // must flush, or the client waits for bytes that never leave.
            w.flush().await?;
        }
        Ok::<_, io::Error>(w)
    };
    let (r, w) = tokio::join!(reading, writing);
    let (r, received) = r?;
    Ok((r.unsplit(w?), received))
}

/// The client side of an echo: writes `data` while reading as many bytes back; then
/// sends close_notify and reads to the end (which must be clean and empty).
async fn echo_client<S: AsyncRead + AsyncWrite + Unpin>(s: S, data: &[u8]) -> (S, Vec<u8>) {
    let (mut r, mut w) = tokio::io::split(s);
    let (wr, rr) = write_while_reading(&mut w, &mut r, data).await;
    wr.expect("client write");
    let got = rr.expect("client read");
    let mut s = r.unsplit(w);
    s.shutdown().await.expect("client shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .await
        .expect("client: clean end of stream after close");
    assert!(
        rest.is_empty(),
        "client: {} bytes after the echo",
        rest.len()
    );
    (s, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_client_with_tokio_rustls_server() {
    let pki = Pki::new();
    for v in versions() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config_with(v)));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let tls = acceptor.accept(tcp).await?;
            let (mut tls, received) = echo(tls, usize::MAX).await?;
            tls.shutdown().await?;
            let version = tls.get_ref().1.protocol_version();
            Ok::<_, io::Error>((received, version))
        });

        let tcp = bounded("connect", TcpStream::connect(addr)).await.unwrap();
        let client =
            TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), tcp);
        let data = pattern(SIZE, 1);
        let (client, got) = bounded("our client", echo_client(client, &data)).await;
        assert_bytes("echo from tokio-rustls", &got, &data);
        let info = client.info().unwrap();
        assert_eq!(info.protocol_version, Some(version_of(v)));
        println!("{v:?}: our client's record layer: {:?}", info.record_layer);

        let (received, version) = bounded("tokio-rustls server", server)
            .await
            .unwrap()
            .expect("tokio-rustls server");
        assert_bytes("tokio-rustls server received", &received, &data);
        assert_eq!(version, Some(version_of(v)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokio_rustls_client_with_our_server() {
    let pki = Pki::new();
    for v in versions() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::new(Arc::new(pki.server_config_with(v)));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let (mut tls, received) = echo(acceptor.accept(tcp), usize::MAX).await?;
            tls.shutdown().await?;
            Ok::<_, io::Error>((received, tls.info().cloned()))
        });

        let tcp = bounded("connect", TcpStream::connect(addr)).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(pki.client_config_with(v)));
        let client = bounded("tokio-rustls connect", connector.connect(localhost(), tcp))
            .await
            .expect("tokio-rustls handshake");
        let data = pattern(SIZE, 3);
        let (client, got) = bounded("tokio-rustls client", echo_client(client, &data)).await;
        assert_bytes("echo from our server", &got, &data);
        assert_eq!(client.get_ref().1.protocol_version(), Some(version_of(v)));

        let (received, info) = bounded("our server", server)
            .await
            .unwrap()
            .expect("our server");
        assert_bytes("our server received", &received, &data);
        let info = info.expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        println!("{v:?}: our server's record layer: {:?}", info.record_layer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_client_with_openssl_s_server() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("interop-s_server", &pki);
        // -quiet: stdout carries only the received bytes, and stdin is not parsed for
        // command letters.
        let (mut server, tcp) = s_server_once(&scratch, &["-quiet", version_flag(v)], STEP).await;
        let mut client =
            TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), tcp);
        server.handshake(&mut client, "s_server").await;
        assert_eq!(client.info().unwrap().protocol_version, Some(version_of(v)));

        let up = pattern(SIZE, 1); // to s_server, out of its stdout
        let down = pattern(SIZE, 2); // into its stdin, to us
        let feeder = feed(server.stdin(), down.clone());
        let (mut r, mut w) = tokio::io::split(client);
        // SIZE bytes each way.
        let exchanged = tokio::time::timeout(STEP, write_while_reading(&mut w, &mut r, &up)).await;
        let (wr, rr) = match exchanged {
            Ok(both) => both,
            Err(_) => server.fail("10 MiB each way did not finish").await,
        };
        if let Err(e) = wr {
            server.fail(&format!("write to s_server: {e}")).await;
        }
        match rr {
            Ok(got) => assert_bytes("from s_server's stdin", &got, &down),
            Err(e) => server.fail(&format!("read from s_server: {e}")).await,
        }

        // All bytes are across: close. s_server answers with its own close_notify and
        // exits (-naccept 1).
        close_with_s_server(&mut server, feeder, &mut w, &mut r, &up).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssl_s_client_with_our_server() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("interop-s_client", &pki);
        let flag = version_flag(v);
        let args = [
            "-verify_hostname",
            "localhost",
            "-quiet",
            "-nocommands",
            flag,
        ];
        let (mut client, tcp) = s_client(&scratch, &args, STEP).await;
        let acceptor = TlsAcceptor::new(Arc::new(pki.server_config_with(v)));
        // Our server echoes exactly SIZE bytes, closes, then reads s_client's close_notify.
        let server = tokio::spawn(async move {
            let (mut tls, received) = echo(acceptor.accept(tcp), SIZE).await?;
            tls.shutdown().await?;
            let mut rest = Vec::new();
            let end = tls.read_to_end(&mut rest).await.map(|_| rest);
            Ok::<_, io::Error>((received, tls.info().cloned(), end))
        });

        let data = pattern(SIZE, 5);
        let feeder = feed(client.stdin(), data.clone());
        let out = client.stdout().await; // closed when s_client exits
        client.wait_success().await;
        let stdin = bounded("feeding s_client", feeder).await.unwrap().unwrap();
        drop(stdin);
        assert_bytes("s_client's stdout (the echo)", &out, &data);

        let (received, info, end) = bounded("our server", server).await.unwrap().unwrap();
        assert_bytes("our server received", &received, &data);
        let info = info.expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        let rest = end.expect("s_client's close_notify");
        assert!(rest.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_client_reads_openssl_www_page() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("interop-www", &pki);
        let (mut server, tcp) =
            s_server_once(&scratch, &["-quiet", "-www", version_flag(v)], STEP).await;
        drop(server.stdin()); // unused in -www mode
        let mut client =
            TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), tcp);
        // The request is written before any handshake: the write drives it.
        let mut page = Vec::new();
        let fetched = tokio::time::timeout(STEP, async {
            client.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
            client.flush().await?;
            client.read_to_end(&mut page).await?;
            // s_server -www waits for our close_notify (or EOF) before it exits.
            client.shutdown().await
        })
        .await;
        match fetched {
            Ok(Ok(())) => {}
            Ok(Err(e)) => server.fail(&format!("fetching the page: {e}")).await,
            Err(_) => server.fail("the page did not arrive").await,
        }
        server.wait_success().await;

        let page = String::from_utf8_lossy(&page);
        let name = if is_tls13(v) { "TLSv1.3" } else { "TLSv1.2" };
        assert!(
            page.starts_with("HTTP/1.0 200 ok\r\n"),
            "status line: {:?}",
            page.lines().next()
        );
        check_www_page(&page, name);
        let info = client.info().unwrap();
        assert_eq!(info.protocol_version, Some(version_of(v)));
        if is_tls13(v) {
            // OpenSSL names TLS 1.3 suites as the RFC does; rustls adds "13".
            let suite = format!("{:?}", info.cipher_suite.unwrap().suite());
            let openssl_name = suite.replacen("TLS13_", "TLS_", 1);
            assert!(
                page.contains(&format!("Cipher is {openssl_name}")),
                "the page does not name {openssl_name}:\n{page}"
            );
        }
    }
}

/// Reads an HTTP request head (up to the blank line), at most 64 KiB.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_with_our_server() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("interop-curl", &pki);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = pki.server_config_with(v);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::new(Arc::new(config));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp);
            let head = read_head(&mut tls).await?;
            tls.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            )
            .await?;
            tls.shutdown().await?;
            // Take whatever curl sends last (its close_notify, if any) so that closing
            // the socket cannot reset the connection under curl.
            let mut rest = Vec::new();
            let end = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
                .await
                .map(|r| r.map(|_| rest.len()));
            Ok::<_, io::Error>((head, tls.info().cloned(), end))
        });

        let mut args = vec!["--max-time", "20"];
        if is_tls13(v) {
            args.push("--tlsv1.3");
        } else {
            args.extend(["--tlsv1.2", "--tls-max", "1.2"]);
        }
        let out = curl(&scratch, port, &args, "/", STEP).await;
        assert_eq!(String::from_utf8_lossy(&out), "hello", "curl's output");

        let (head, info, end) = bounded("our server", server).await.unwrap().unwrap();
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("get / http/1.1\r\n"), "request: {head:?}");
        assert!(
            head.contains(&format!("\r\nhost: localhost:{port}\r\n")),
            "request: {head:?}"
        );
        let info = info.expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)));
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        println!("{v:?}: after our close, reading from curl ended with {end:?}");
    }
}

/// A HelloRequest is a TLS 1.2 message.
#[cfg(feature = "tls12")]
mod hello_request {
    use common::counting::CountingReads;
    use common::openssl::Proc;
    use lazytls::RecordLayer;

    use super::*;

    /// Polls `done` every 10 ms for at most `secs` seconds; whether it came true.
    async fn eventually(secs: u64, done: impl Fn() -> bool) -> bool {
        for _ in 0..secs * 100 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done()
    }

    /// Writes one line to s_server's stdin: data for the peer, or a command letter.
    async fn type_line(server: &mut Proc, stdin: &mut tokio::process::ChildStdin, line: &[u8]) {
        let typed = async {
            stdin.write_all(line).await?;
            stdin.flush().await
        };
        if let Err(e) = tokio::time::timeout(STEP, typed)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
        {
            let line = String::from_utf8_lossy(line);
            server
                .fail(&format!("typing {line:?} to s_server: {e}"))
                .await;
        }
    }

    /// `openssl s_server -tls1_2` sends `hello\n`, a HelloRequest, then `world\n`, to our
    /// client on `layer`, which must read all 12 bytes and then close cleanly. A client may
    /// ignore a HelloRequest (RFC 5246, 7.4.1.1), and it should: the alternative, a
    /// no_renegotiation warning, is fatal to OpenSSL, which then drops the connection and
    /// what it was about to send. With `early_data`, the client's config enables 0-RTT
    /// (which TLS 1.2 cannot use), so its handshake runs on rustls's buffered connection.
    async fn read_past_hello_request(layer: RecordLayer, early_data: bool) {
        let pki = Pki::new();
        let scratch = Scratch::new("interop-hello-request", &pki);
        // Not -quiet: s_server reads command letters from its stdin only without it.
        let (mut server, tcp) = s_server_once(&scratch, &["-tls1_2"], STEP).await;
        // The bytes our client's transport read show when it has taken in a record from
        // the peer, which nothing else shows while the client does nothing about it.
        let tcp = CountingReads::new(tcp);
        let counts = tcp.counts.clone();
        let taken = move || counts.bytes();
        let mut config = pki.client_config_with(TLS12);
        config.enable_early_data = early_data;
        let mut client = TlsConnector::new(Arc::new(config))
            .record_layer(layer)
            .connect(localhost(), tcp);
        server.handshake(&mut client, "s_server").await;
        let mut stdin = server.stdin();

        type_line(&mut server, &mut stdin, b"hello\n").await;
        let mut hello = [0u8; 6];
        match tokio::time::timeout(STEP, client.read_exact(&mut hello)).await {
            Ok(Ok(_)) => assert_eq!(&hello, b"hello\n"),
            Ok(Err(e)) => server.fail(&format!("reading hello: {e}")).await,
            Err(_) => server.fail("hello did not arrive").await,
        }
        let taken_before = taken();

        // Our client reads on (for `world\n`) while s_server sends its HelloRequest.
        let reading = tokio::spawn(async move {
            let mut world = Vec::new();
            let mut buf = [0u8; 6];
            // Each turn takes at least one byte or ends.
            let end = loop {
                if world.len() == buf.len() {
                    break Ok(());
                }
                match client.read(&mut buf[world.len()..]).await {
                    Ok(0) => break Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                    Ok(n) => world.extend_from_slice(&buf[world.len()..world.len() + n]),
                    Err(e) => break Err(e),
                }
            };
            (client, world, end)
        });

        // `r`: SSL_renegotiate, which sends a HelloRequest (s_server's stdout is buffered,
        // so what it prints is no sign of that). Our client has it once its transport has
        // read more than `hello\n`.
        type_line(&mut server, &mut stdin, b"r\n").await;
        if !eventually(10, || taken() > taken_before).await {
            server
                .fail("our client did not receive the HelloRequest")
                .await;
        }
        // A reply from our client (there should be none) would reach s_server at once:
        // give it a bounded chance to act on one before `world\n` goes out, so that a reply
        // that ends the connection cannot be overtaken by `world\n`. More bytes for our
        // client (an alert), or the end of its read, are that reaction.
        let taken_after_request = taken();
        eventually(2, || taken() > taken_after_request || reading.is_finished()).await;

        // s_server may be gone by now: a failed write shows as a missing `world\n` below.
        let _ = tokio::time::timeout(STEP, async {
            stdin.write_all(b"world\n").await?;
            stdin.flush().await
        })
        .await;
        let (mut client, world, end) = match tokio::time::timeout(STEP, reading).await {
            Ok(joined) => joined.unwrap(),
            Err(_) => server.fail("world did not arrive").await,
        };
        if let Err(e) = end {
            let got = String::from_utf8_lossy(&world);
            let why =
                format!("{layer:?}: after the HelloRequest our client read {got:?}, then {e}");
            server.fail(&why).await;
        }
        assert_eq!(&world, b"world\n", "{layer:?}: after the HelloRequest");

        // Our close_notify; s_server answers with its own and exits (-naccept 1). Its
        // stdin stays open until then: an EOF there would make it drop the connection
        // first.
        let closed = tokio::time::timeout(STEP, async {
            client.shutdown().await?;
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.map(|_| rest)
        })
        .await;
        match closed {
            Ok(Ok(rest)) if rest.is_empty() => {}
            Ok(Ok(rest)) => {
                server
                    .fail(&format!("{} bytes after world", rest.len()))
                    .await
            }
            Ok(Err(e)) => server.fail(&format!("{layer:?}: closing: {e}")).await,
            Err(_) => server.fail("s_server did not close").await,
        }
        server.wait_success().await;
        drop(stdin);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn our_tls12_client_ignores_hello_request_from_openssl() {
        read_past_hello_request(RecordLayer::Native, false).await;
    }

    /// A client whose config enables early data negotiates TLS 1.2 like any other, and
    /// survives a HelloRequest like any other (it used to stay on rustls's buffered
    /// connection, whose no_renegotiation warning OpenSSL takes as fatal).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn our_tls12_early_data_client_ignores_hello_request_from_openssl() {
        read_past_hello_request(RecordLayer::Native, true).await;
    }
}
