//! Server-side config: the choice from the ClientHello (sync and async resolvers), a
//! failed resolver's alert, plaintext HTTP on the TLS port (the 400, or the transport
//! taken back), swapping the config of a running acceptor (`set_config`, reloads from
//! PEM files and their typed errors), and the connection info handle taken before the
//! handshake.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lazytls::rustls::pki_types::CertificateDer;
use lazytls::rustls::{self, ServerConfig};
use lazytls::{
    CertificateFilesError, Error, ResolveFuture, ServerCertificateFiles, TlsAcceptor, TlsConnector,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn alpn_config(pki: &Pki, proto: &[u8]) -> Arc<ServerConfig> {
    let mut config = pki.server_config_with(rustls::DEFAULT_VERSIONS);
    config.alpn_protocols = vec![proto.to_vec()];
    Arc::new(config)
}

/// Runs one exchange and returns what the server negotiated (ALPN, SNI).
async fn exchange(
    acceptor: TlsAcceptor,
    pki: &Pki,
    alpn: &[&[u8]],
) -> Result<(Option<Vec<u8>>, Option<String>), Error> {
    let mut config = pki.client_config_with(rustls::DEFAULT_VERSIONS);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut client = TlsConnector::new(Arc::new(config)).connect(localhost(), a);
    let mut server = acceptor.accept(b);
    let (c, s) = tokio::join!(
        async {
            client.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            client.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        },
        async {
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).await?;
            server.write_all(b"pong").await?;
            server.flush().await?;
            Ok::<_, std::io::Error>(buf)
        }
    );
    let s = s.map_err(Error::from)?;
    assert_eq!(&s, b"ping");
    assert_eq!(&c.map_err(Error::from)?, b"pong");
    let info = server.info().expect("handshake completed");
    Ok((info.alpn.clone(), info.sni.clone()))
}

#[tokio::test]
async fn sync_resolver_picks_by_alpn_and_sees_sni() {
    let pki = Arc::new(Pki::new());
    let (h2, h1) = (alpn_config(&pki, b"h2"), alpn_config(&pki, b"http/1.1"));
    let acceptor = TlsAcceptor::with_resolver(move |hello| {
        assert_eq!(hello.server_name(), Some("localhost"));
        let wants_h2 = hello.alpn().is_some_and(|mut a| a.any(|p| p == b"h2"));
        Ok(if wants_h2 { h2.clone() } else { h1.clone() })
    })
    .handshake_timeout(Duration::from_secs(10));
    let got = bounded(
        "h2",
        exchange(acceptor.clone(), &pki, &[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(got, (Some(b"h2".to_vec()), Some("localhost".into())));
    let got = bounded("h1", exchange(acceptor, &pki, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(got.0, Some(b"http/1.1".to_vec()));
}

#[tokio::test]
async fn async_resolver_is_polled_in_the_connection_task() {
    let pki = Arc::new(Pki::new());
    let config = pki.server_config();
    let acceptor = TlsAcceptor::with_async_resolver(move |hello| {
        let name = hello.server_name().map(str::to_owned);
        let config = config.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(name.as_deref(), Some("localhost"));
            Ok(config)
        }) as ResolveFuture
    });
    let got = bounded("async", exchange(acceptor, &pki, &[]))
        .await
        .unwrap();
    assert_eq!(got.1.as_deref(), Some("localhost"));
}

#[tokio::test]
async fn failed_resolver_sends_an_alert_and_is_sticky() {
    let pki = Pki::new();
    let acceptor =
        TlsAcceptor::with_resolver(|_| Err(Error::NoServerConfig("unknown host".into())));
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut client = TlsConnector::new(pki.client_config()).connect(localhost(), a);
    let mut server = acceptor.accept(b);
    let (c, s) = bounded("fail", async {
        tokio::join!(client.handshake(), server.handshake())
    })
    .await;
    assert!(
        matches!(s, Err(Error::NoServerConfig(ref m)) if m == "unknown host"),
        "{s:?}"
    );
    assert!(
        matches!(
            c,
            Err(Error::Tls(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            )))
        ),
        "{c:?}"
    );
    let again = server.read(&mut [0u8; 4]).await.unwrap_err();
    assert!(
        matches!(Error::from_io(&again), Some(Error::NoServerConfig(_))),
        "{again:?}"
    );
}

#[tokio::test]
async fn plaintext_http_gets_a_400_and_a_typed_error() {
    let pki = Pki::new();
    let acceptor = TlsAcceptor::new(pki.server_config()).plaintext_http_response(true);
    let (mut a, b) = tokio::io::duplex(64 * 1024);
    let mut server = acceptor.accept(b);
    a.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let err = bounded("server", server.handshake()).await.unwrap_err();
    assert!(matches!(err, Error::PlaintextHttp), "{err:?}");
    let mut reply = Vec::new();
    bounded("reply", a.read_to_end(&mut reply)).await.unwrap();
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("HTTPS"), "{text}");
    // Answered and shut down: nothing to take back.
    let server = server.into_plaintext().unwrap_err();
    // The transport can still be had, after a failed ClientHello.
    let _io = server.into_inner();
}

/// Without the acceptor's answer, the transport of a plaintext client is left as it is,
/// to be taken back with the bytes already read; the server answers it in plaintext.
#[tokio::test]
async fn plaintext_http_leaves_the_transport_to_take_back() {
    let pki = Pki::new();
    let acceptor = TlsAcceptor::new(pki.server_config());
    let (mut a, b) = tokio::io::duplex(64 * 1024);
    let mut server = acceptor.accept(b);
    let request = b"GET /path HTTP/1.1\r\nHost: example.test\r\n\r\n";
    a.write_all(&request[..20]).await.unwrap();
    let err = bounded("server", server.handshake()).await.unwrap_err();
    assert!(matches!(err, Error::PlaintextHttp), "{err:?}");
    let err = server.read(&mut [0u8; 8]).await.unwrap_err();
    assert!(
        matches!(Error::from_io(&err), Some(Error::PlaintextHttp)),
        "sticky: {err:?}"
    );
    a.write_all(&request[20..]).await.unwrap();

    let mut plaintext = server.into_plaintext().expect("the transport is kept");
    assert_eq!(plaintext.received(), &request[..20]);
    let mut got = vec![0u8; request.len()];
    bounded("request", plaintext.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(&got[..], &request[..], "the bytes already read come first");
    let answer = b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://example.test/path\r\n\r\n";
    plaintext.write_all(answer).await.unwrap();
    plaintext.shutdown().await.unwrap();
    let mut reply = Vec::new();
    bounded("reply", a.read_to_end(&mut reply)).await.unwrap();
    assert_eq!(reply, answer);

    // A TLS failure shuts the transport down, as ever: nothing to take back.
    let (mut a, b) = tokio::io::duplex(64 * 1024);
    let mut server = acceptor.accept(b);
    a.write_all(&[22, 3, 1, 0, 4, 2, 0, 0, 0]).await.unwrap();
    let err = bounded("garbage", server.handshake()).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert!(server.into_plaintext().is_err());
    // Nor after a handshake that completed.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut client = TlsConnector::new(pki.client_config()).connect(localhost(), a);
    let mut server = acceptor.accept(b);
    let (c, s) = bounded("handshake", async {
        tokio::join!(client.handshake(), server.handshake())
    })
    .await;
    c.unwrap();
    s.unwrap();
    assert!(server.into_plaintext().is_err());
}

#[tokio::test]
async fn tls_starting_with_a_letter_is_not_mistaken_for_http() {
    let pki = Pki::new();
    let acceptor = TlsAcceptor::new(pki.server_config()).plaintext_http_response(true);
    let (mut a, b) = tokio::io::duplex(64 * 1024);
    let mut server = acceptor.accept(b);
    a.write_all(b"Hello there, not a method").await.unwrap();
    let err = bounded("server", server.handshake()).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
}

/// A cap on handshakes in flight: a waiting handshake starts when a permit frees up, the
/// wait counts against its deadline, and closing the semaphore cancels the waiters.
#[tokio::test]
async fn handshake_permits_cap_handshakes_in_flight() {
    use tokio::sync::Semaphore;
    let pki = Pki::new();
    let permits = Arc::new(Semaphore::new(1));
    let acceptor = TlsAcceptor::new(pki.server_config())
        .handshake_timeout(Duration::from_secs(5))
        .handshake_permits(permits.clone());

    // A: a client that sends nothing and hangs up after 200 ms; it holds the permit.
    let (silent, a) = tokio::io::duplex(64 * 1024);
    let mut server_a = acceptor.accept(a);
    // B: a real client, which must wait for A's permit.
    let (b_client, b) = tokio::io::duplex(64 * 1024);
    let mut server_b = acceptor.accept(b);
    let mut client_b = TlsConnector::new(pki.client_config()).connect(localhost(), b_client);

    let started = tokio::time::Instant::now();
    let (ra, rb, rc) = bounded("permits", async {
        tokio::join!(
            server_a.handshake(),
            async {
                // Let A take the permit first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert_eq!(permits.available_permits(), 0);
                server_b.handshake().await
            },
            async {
                let hang_up = async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    drop(silent);
                };
                let (r, ()) = tokio::join!(client_b.handshake(), hang_up);
                r
            }
        )
    })
    .await;
    assert!(matches!(ra, Err(Error::HandshakeEof)), "{ra:?}");
    rb.unwrap();
    rc.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "B did not wait for the permit"
    );
    assert_eq!(permits.available_permits(), 1, "permits are given back");

    // The wait counts against the deadline.
    let short = TlsAcceptor::new(pki.server_config())
        .handshake_timeout(Duration::from_millis(150))
        .handshake_permits(permits.clone());
    let held = permits.clone().acquire_owned().await.unwrap();
    let (_c, s) = tokio::io::duplex(1024);
    let err = bounded("deadline", short.accept(s).handshake())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");

    // Closing the semaphore cancels a waiting handshake.
    let (_c, s) = tokio::io::duplex(1024);
    let mut waiting = short.accept(s);
    let (r, ()) = tokio::join!(waiting.handshake(), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        permits.close();
    });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    drop(held);
}

// ---- Swapping the config of a running acceptor ----

/// Handshakes a fresh client (trusting `roots_of`) with `acceptor`; returns the server's
/// end-entity certificate as the client saw it, and the server stream.
async fn served_by(
    acceptor: &TlsAcceptor,
    roots_of: &Pki,
) -> (
    Result<CertificateDer<'static>, Error>,
    lazytls::TlsStream<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut client = TlsConnector::new(roots_of.client_config()).connect(localhost(), a);
    let mut server = acceptor.accept(b);
    let (c, _) = bounded("handshake", async {
        tokio::join!(client.handshake(), server.handshake())
    })
    .await;
    let cert = c.map(|()| {
        let info = client.info().unwrap();
        info.peer_certificates.as_ref().unwrap()[0].clone()
    });
    // Keep the client alive with the server: an established connection.
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = client.read(&mut buf).await {
            if client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    (cert, server)
}

#[tokio::test]
async fn set_config_reaches_every_clone_and_established_connections_go_on() {
    let (first, second) = (Pki::new(), Pki::new());
    let acceptor = TlsAcceptor::new(first.server_config());
    let clone = acceptor.clone().handshake_timeout(Duration::from_secs(5));
    let listener = lazytls::TlsListener::bind("127.0.0.1:0", acceptor.clone())
        .await
        .unwrap();

    let (cert, mut old) = served_by(&clone, &first).await;
    assert_eq!(cert.unwrap(), first.server_chain[0]);

    acceptor.set_config(second.server_config());
    for a in [&acceptor, &clone, listener.acceptor()] {
        let (cert, _) = served_by(a, &second).await;
        assert_eq!(cert.unwrap(), second.server_chain[0]);
        assert!(a.config().unwrap().enable_secret_extraction);
    }
    // The connection from before the swap still carries data.
    old.write_all(b"still here").await.unwrap();
    old.flush().await.unwrap();
    let mut buf = [0u8; 10];
    bounded("echo", old.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"still here");

    // Through the listener, back to the first.
    listener.set_config(first.server_config());
    let (cert, _) = served_by(&acceptor, &first).await;
    assert_eq!(cert.unwrap(), first.server_chain[0]);
}

/// Whether an error is of the expected kind.
type KindCheck = fn(&CertificateFilesError) -> bool;

#[tokio::test]
async fn certificate_files_load_reload_and_fail_with_typed_errors() {
    let (first, second) = (Pki::new(), Pki::new());
    let dir = common::openssl::Scratch::new("server-config-files", &first);
    let files = ServerCertificateFiles::new(dir.path("server.pem"), dir.path("server.key"))
        .with_builder(|chain, key| {
            ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
                .with_no_client_auth()
                .with_single_cert(chain, key)
        });
    let acceptor = files.acceptor().unwrap();
    let (cert, _) = served_by(&acceptor, &first).await;
    assert_eq!(cert.unwrap(), first.server_chain[0]);

    std::fs::write(dir.path("server.pem"), &second.server_cert_pem).unwrap();
    std::fs::write(dir.path("server.key"), &second.server_key_pem).unwrap();
    files.reload(&acceptor).unwrap();
    let (cert, _) = served_by(&acceptor, &second).await;
    assert_eq!(cert.unwrap(), second.server_chain[0]);

    // Each bad input is a typed error, and the acceptor keeps what it had.
    let serving = acceptor.config().unwrap();
    let key = dir.path("server.key");
    let cases: [(&str, &[u8], &str, KindCheck); 4] = [
        ("server.pem", b"not PEM at all\n", "no certificate", |e| {
            matches!(e, CertificateFilesError::NoCertificate { .. })
        }),
        (
            "server.pem",
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n",
            "server.pem",
            |e| matches!(e, CertificateFilesError::Pem { .. }),
        ),
        ("server.key", b"", "server.key", |e| {
            matches!(e, CertificateFilesError::Pem { .. })
        }),
        (
            "server.key",
            first.server_key_pem.as_bytes(),
            "KeyMismatch",
            |e| {
                matches!(
                    e,
                    CertificateFilesError::Config(rustls::Error::InconsistentKeys(_))
                )
            },
        ),
    ];
    for (file, contents, message, kind) in cases {
        std::fs::write(dir.path("server.pem"), &second.server_cert_pem).unwrap();
        std::fs::write(&key, &second.server_key_pem).unwrap();
        std::fs::write(dir.path(file), contents).unwrap();
        let err = files.reload(&acceptor).unwrap_err();
        assert!(kind(&err), "{file}: {err:?}");
        assert!(err.to_string().contains(message), "{file}: {err}");
        assert!(Arc::ptr_eq(&acceptor.config().unwrap(), &serving), "{file}");
    }
    std::fs::remove_file(&key).unwrap();
    let err = files.reload(&acceptor).unwrap_err();
    assert!(err.to_string().contains("server.key"), "{err}");
    let (cert, _) = served_by(&acceptor, &second).await;
    assert_eq!(cert.unwrap(), second.server_chain[0]);
}

// ---- The connection info, before the handshake ----

#[tokio::test]
async fn an_info_handle_taken_before_the_handshake_fills_when_it_completes() {
    let pki = Pki::new();
    let acceptor = TlsAcceptor::new(pki.mtls_server_config(rustls::DEFAULT_VERSIONS));
    let (a, b) = tokio::io::duplex(64 * 1024);
    let config = pki.mtls_client_config(rustls::DEFAULT_VERSIONS);
    let mut client = TlsConnector::new(config).connect(localhost(), a);
    let mut server = acceptor.accept(b);
    let handle = server.info_handle();
    let early_clone = handle.clone();
    assert!(handle.get().is_none());
    let (c, s) = bounded("handshake", async {
        tokio::join!(client.handshake(), server.handshake())
    })
    .await;
    c.unwrap();
    s.unwrap();
    for info in [
        handle.get(),
        early_clone.get(),
        server.info(),
        server.info_handle().get(),
    ] {
        let info = info.expect("the handshake completed");
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        assert_eq!(
            info.peer_certificates.as_ref().unwrap()[0],
            pki.client_chain[0]
        );
    }
    // The halves of a split stream keep it.
    let (read, _write) = server.into_split();
    assert!(read.info().unwrap().peer_certificates.is_some());
    assert!(handle.get().is_some());

    // A failed handshake leaves it empty.
    let (mut raw, b) = tokio::io::duplex(1024);
    let mut server = acceptor.accept(b);
    let handle = server.info_handle();
    raw.write_all(&[22, 3, 1, 0, 4, 2, 0, 0, 0]).await.unwrap();
    assert!(bounded("garbage", server.handshake()).await.is_err());
    assert!(handle.get().is_none() && server.info().is_none());
}
