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
