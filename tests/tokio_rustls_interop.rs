//! Conversions from tokio-rustls (feature `tokio-rustls`): a `tokio_rustls::TlsConnector`
//! or `TlsAcceptor` converted into lazytls's keeps its rustls config (ALPN, certificate)
//! and gets the native record layer, against a tokio-rustls peer built from the same
//! kind of value.
//!
//! Fixture: `common::Pki` configs over `tokio::io::duplex`; every step bounded in time.
#![cfg(feature = "tokio-rustls")]

mod common;

use std::sync::Arc;

use common::*;
use lazytls::RecordLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_alpn<T>(mut config: T, set: impl FnOnce(&mut T)) -> Arc<T> {
    set(&mut config);
    Arc::new(config)
}

/// Writes `ping`, then reads exactly `pong` from the peer.
async fn ping<S: AsyncReadExt + AsyncWriteExt + Unpin>(s: &mut S, ping: &[u8], pong: &[u8]) {
    s.write_all(ping).await.unwrap();
    s.flush().await.unwrap();
    let mut got = vec![0; pong.len()];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, pong);
}

#[tokio::test]
async fn connector_from_tokio_rustls_keeps_its_config() {
    let pki = Pki::new();
    let client = with_alpn(pki.client_config_with(rustls_versions()), |c| {
        c.alpn_protocols = vec![b"h2".to_vec()];
    });
    let server = with_alpn(pki.server_config_with(rustls_versions()), |c| {
        c.alpn_protocols = vec![b"h2".to_vec()];
    });
    let theirs = tokio_rustls::TlsConnector::from(client.clone());
    let connector = lazytls::TlsConnector::from(&theirs);
    assert_eq!(connector.config().alpn_protocols, client.alpn_protocols);
    let connector = lazytls::TlsConnector::from(theirs);
    let peer = tokio_rustls::TlsAcceptor::from(server);
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut ours = connector.connect(localhost(), a);
    bounded("connector", async {
        let serve = tokio::spawn(async move {
            let mut s = peer.accept(b).await.unwrap();
            ping(&mut s, b"pong", b"ping").await;
        });
        ping(&mut ours, b"ping", b"pong").await;
        serve.await.unwrap();
    })
    .await;
    let info = ours.info().expect("the handshake completed");
    assert_eq!(info.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(info.record_layer, RecordLayer::Native);
}

#[tokio::test]
async fn acceptor_from_tokio_rustls_keeps_its_config() {
    let pki = Pki::new();
    let server = with_alpn(pki.server_config_with(rustls_versions()), |c| {
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
    });
    assert!(!server.enable_secret_extraction);
    let theirs = tokio_rustls::TlsAcceptor::from(server.clone());
    let acceptor = lazytls::TlsAcceptor::from(theirs);
    let config = acceptor.config().expect("a fixed config");
    assert_eq!(config.alpn_protocols, server.alpn_protocols);
    // The copy the native record layer needs, as `TlsAcceptor::new` makes it.
    assert!(config.enable_secret_extraction);
    let client = with_alpn(pki.client_config_with(rustls_versions()), |c| {
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
    });
    let peer = tokio_rustls::TlsConnector::from(client);
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut ours = acceptor.accept(b);
    bounded("acceptor", async {
        let connect = tokio::spawn(async move {
            let mut c = peer.connect(localhost(), a).await.unwrap();
            ping(&mut c, b"ping", b"pong").await;
            let (_, conn) = c.get_ref();
            assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
            let certs = conn.peer_certificates().expect("the server sent its chain");
            certs[0].clone()
        });
        ping(&mut ours, b"pong", b"ping").await;
        let seen = connect.await.unwrap();
        let info = ours.info().expect("the handshake completed");
        assert_eq!(info.record_layer, RecordLayer::Native);
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(seen, pki.server_chain[0]);
    })
    .await;
}

fn rustls_versions() -> &'static [&'static lazytls::rustls::SupportedProtocolVersion] {
    lazytls::rustls::DEFAULT_VERSIONS
}

/// Connects with `connector` twice to a lazytls server that accepts early data, writing
/// `request` first each time; returns the early data the server took on the second,
/// resumed connection, and the client's view of it.
async fn early_data_on_resumption(
    pki: &Pki,
    connector: &lazytls::TlsConnector,
    request: &[u8],
) -> (Vec<u8>, lazytls::EarlyDataStatus) {
    let mut server = pki.server_config_with(TLS13);
    server.max_early_data_size = 16_384;
    let acceptor = lazytls::TlsAcceptor::new(Arc::new(server));
    let mut last = (Vec::new(), lazytls::EarlyDataStatus::NotSent);
    for _ in 0..2 {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut c = connector.connect(localhost(), a);
        let mut s = acceptor.accept(b);
        last = bounded("connection", async {
            let talk = async {
                c.write_all(request).await.unwrap();
                c.flush().await.unwrap();
                let mut ok = [0; 2];
                c.read_exact(&mut ok).await.unwrap();
                c.shutdown().await.unwrap();
            };
            let serve = async {
                s.handshake().await.unwrap();
                let early = s.take_early_data();
                let mut rest = vec![0; request.len() - early.len()];
                s.read_exact(&mut rest).await.unwrap();
                assert_eq!([&early[..], &rest[..]].concat(), request);
                s.write_all(b"ok").await.unwrap();
                s.flush().await.unwrap();
                early
            };
            let ((), early) = tokio::join!(talk, serve);
            (early, c.info().unwrap().early_data)
        })
        .await;
    }
    last
}

/// tokio-rustls sends early data only with `.early_data(true)`, whatever the config says;
/// its flag is private, so a converted connector cannot read it, and sends none until
/// asked on the lazytls side (`TlsConnector::early_data`).
#[tokio::test]
async fn a_converted_connector_sends_no_early_data_unless_asked() {
    const REQUEST: &[u8] = b"POST /transfer?amount=100 HTTP/1.1\r\n\r\n";
    let pki = Pki::new();
    let mut client = pki.client_config_with(TLS13);
    client.enable_early_data = true;
    let theirs = tokio_rustls::TlsConnector::from(Arc::new(client));

    let converted = lazytls::TlsConnector::from(&theirs);
    assert!(!converted.config().enable_early_data);
    let (early, status) = early_data_on_resumption(&pki, &converted, REQUEST).await;
    assert!(early.is_empty(), "replayable early data: {early:?}");
    assert_eq!(status, lazytls::EarlyDataStatus::NotSent);

    let asked = lazytls::TlsConnector::from(theirs).early_data(true);
    let (early, status) = early_data_on_resumption(&pki, &asked, REQUEST).await;
    assert_eq!(early, REQUEST, "asked for, the request goes as early data");
    assert_eq!(status, lazytls::EarlyDataStatus::Accepted);
}
