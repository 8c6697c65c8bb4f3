//! Server-side config choice from the ClientHello (sync and async resolvers), a failed
//! resolver's alert, and plaintext HTTP on the TLS port.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lazytls::rustls::{self, ServerConfig};
use lazytls::{Error, ResolveFuture, TlsAcceptor, TlsConnector};
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
    for answer in [true, false] {
        let acceptor = TlsAcceptor::new(pki.server_config()).plaintext_http_response(answer);
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
        if answer {
            assert!(text.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{text}");
            assert!(text.contains("HTTPS"), "{text}");
        } else {
            assert!(reply.is_empty(), "{text}");
        }
        // The transport can be taken back after a failed ClientHello.
        let _io = server.into_inner();
    }
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
