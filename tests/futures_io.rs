//! futures-io interop (feature `futures-io`): the stream and its halves driven only through
//! `futures_util::io`'s extension traits, and a `TlsListener`'s connections through
//! `futures_util::StreamExt`, each against a tokio-rustls peer.
//!
//! Fixture: `common::Pki` configs over `tokio::io::duplex` or loopback TCP; the peers'
//! code is in [`peer`], which alone uses tokio's io traits. Every step bounded in time.
#![cfg(feature = "futures-io")]

mod common;

use common::*;
use futures_util::StreamExt;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use lazytls::{TlsConnector, TlsListener};

/// The tokio-rustls ends, written against tokio's traits.
mod peer {
    use std::sync::Arc;

    use lazytls::rustls::{ClientConfig, ServerConfig};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::localhost;

    /// Accepts one connection and echoes it until the client's close_notify, then closes.
    /// Returns what it read, and whether the client's end was a clean TLS close.
    pub(super) async fn echo_server<IO>(config: Arc<ServerConfig>, io: IO) -> (Vec<u8>, bool)
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(io)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        let clean = loop {
            match tls.read(&mut buf).await {
                Ok(0) => break true,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    tls.write_all(&buf[..n]).await.unwrap();
                }
                Err(_) => break false,
            }
        };
        let _ = tls.shutdown().await;
        (seen, clean)
    }

    /// Connects, sends `data`, closes, and reads everything the server sends back.
    pub(super) async fn client<IO>(config: Arc<ClientConfig>, io: IO, data: &[u8]) -> Vec<u8>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut tls = connector.connect(localhost(), io).await.unwrap();
        tls.write_all(data).await.unwrap();
        tls.shutdown().await.unwrap();
        let mut back = Vec::new();
        tls.read_to_end(&mut back).await.unwrap();
        back
    }
}

#[tokio::test]
async fn stream_echoes_through_futures_io_and_close_sends_close_notify() {
    let pki = Pki::new();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(peer::echo_server(pki.server_config(), b));
    let mut tls = TlsConnector::new(pki.client_config()).connect(localhost(), a);
    let data = pattern(1 << 20, 3);
    bounded("futures-io echo", async {
        {
            // futures' own split, over `&mut TlsStream`: both directions at once.
            let (mut r, mut w) = (&mut tls).split();
            let write = async {
                w.write_all(&data).await.unwrap();
                w.flush().await.unwrap();
            };
            let read = async {
                let mut back = vec![0; data.len()];
                r.read_exact(&mut back).await.unwrap();
                back
            };
            let ((), back) = tokio::join!(write, read);
            assert_bytes("echoed", &back, &data);
        }
        tls.close().await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(tls.read_to_end(&mut rest).await.unwrap(), 0);
    })
    .await;
    let (seen, clean) = within(10, "server", server).await.unwrap();
    assert_bytes("server saw", &seen, &data);
    assert!(
        clean,
        "close() must send close_notify: the peer saw a truncation"
    );
}

#[tokio::test]
async fn split_halves_speak_futures_io() {
    let pki = Pki::new();
    let (client, server_io) = tcp_pair().await;
    let server = tokio::spawn(peer::echo_server(pki.server_config(), server_io));
    let tls = TlsConnector::new(pki.client_config()).connect(localhost(), client);
    let (mut reader, mut writer) = tls.into_split();
    let data = pattern(256 * 1024, 9);
    bounded("futures-io halves", async {
        let sent = data.clone();
        let write = tokio::spawn(async move {
            writer.write_all(&sent).await.unwrap();
            writer.close().await.unwrap();
        });
        let mut back = Vec::new();
        reader.read_to_end(&mut back).await.unwrap();
        write.await.unwrap();
        assert_bytes("echoed", &back, &data);
    })
    .await;
    let (seen, clean) = within(10, "server", server).await.unwrap();
    assert_eq!(seen.len(), data.len());
    assert!(clean, "the write half's close() must send close_notify");
}

#[tokio::test]
async fn listener_connections_are_a_stream() {
    let pki = Pki::new();
    let shutdown = lazytls::CancellationToken::new();
    let listener = TlsListener::bind(
        "127.0.0.1:0",
        lazytls::TlsAcceptor::new(pki.server_config()),
    )
    .await
    .unwrap()
    .shutdown_token(shutdown.clone());
    let addr = listener.local_addr().unwrap();
    let mut incoming = listener.incoming();
    bounded("incoming", async {
        for round in 0..2u8 {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let msg = vec![round; 1000];
            let client = tokio::spawn(peer::client(pki.client_config(), tcp, &[]));
            let (mut tls, _peer) = incoming.next().await.expect("a connection").unwrap();
            tls.write_all(&msg).await.unwrap();
            tls.close().await.unwrap();
            let back = client.await.unwrap();
            assert_eq!(back, msg);
        }
        shutdown.cancel();
        assert!(
            incoming.next().await.is_none(),
            "the stream ends at shutdown"
        );
        assert!(incoming.next().await.is_none());
    })
    .await;
}
