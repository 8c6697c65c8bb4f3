//! `TlsListener` over transports other than TCP: a Unix domain socket (`bind_unix`), and
//! an accept source of the test's own (a channel of in-memory pipes) through
//! `TransportListener`. Both keep the lazy accept, the handshake deadline and the shutdown
//! token; a Unix socket path that exists is a clear error.

mod common;

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use lazytls::{
    CancellationToken, Error, TlsAcceptor, TlsConnector, TlsListener, TransportListener,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Echoes one message on each accepted stream, until the listener shuts down; a
/// handshake failure is sent back on `failures`.
fn spawn_echo<L>(listener: TlsListener<L>, failures: mpsc::UnboundedSender<Error>)
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    L::Addr: Send + 'static,
{
    tokio::spawn(async move {
        while let Ok(Some((mut tls, _))) = listener.accept_until_shutdown().await {
            let failures = failures.clone();
            tokio::spawn(async move {
                if let Err(e) = tls.handshake().await {
                    let _ = failures.send(e);
                    return;
                }
                let mut buf = [0u8; 64];
                if let Ok(n @ 1..) = tls.read(&mut buf).await {
                    let _ = tls.write_all(&buf[..n]).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
}

/// One exchange as a client over `io`.
async fn exchange<IO>(pki: &Pki, io: IO) -> Vec<u8>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut tls = TlsConnector::new(pki.client_config()).connect(localhost(), io);
    tls.write_all(b"ping").await.unwrap();
    tls.flush().await.unwrap();
    let mut reply = Vec::new();
    bounded("reply", tls.read_to_end(&mut reply)).await.unwrap();
    reply
}

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_serves_tls_and_an_existing_path_is_a_clear_error() {
    let pki = Pki::new();
    let dir = common::openssl::Scratch::new("listener-unix", &pki);
    let path = dir.path("tls.sock");
    let acceptor = TlsAcceptor::new(pki.server_config());
    let listener = TlsListener::bind_unix(&path, acceptor.clone())
        .unwrap()
        .handshake_timeout(Duration::from_millis(300));
    assert_eq!(
        listener.local_addr().unwrap().as_pathname(),
        Some(path.as_path())
    );
    let (failures, mut failed) = mpsc::unbounded_channel();
    spawn_echo(listener, failures);

    // A silent client does not hold up the next one, and the deadline cuts it off.
    let _silent = tokio::net::UnixStream::connect(&path).await.unwrap();
    let io = tokio::net::UnixStream::connect(&path).await.unwrap();
    assert_eq!(exchange(&pki, io).await, b"ping");
    let e = bounded("deadline", failed.recv()).await.unwrap();
    assert!(matches!(e, Error::HandshakeTimeout), "{e:?}");

    let err = TlsListener::bind_unix(&path, acceptor).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(path.to_str().unwrap()) && text.contains("exists already"),
        "{text}"
    );
    // The first listener goes on.
    let io = tokio::net::UnixStream::connect(&path).await.unwrap();
    assert_eq!(exchange(&pki, io).await, b"ping");
}

/// An accept source of in-memory pipes, fed through a channel; it fails as a listening
/// socket would once the channel closes.
struct Pipes(Mutex<mpsc::UnboundedReceiver<DuplexStream>>);

impl TransportListener for Pipes {
    type Io = DuplexStream;
    type Addr = u32;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(DuplexStream, u32)>> {
        match self.0.lock().unwrap().poll_recv(cx) {
            Poll::Ready(Some(io)) => Poll::Ready(Ok((io, 7))),
            Poll::Ready(None) => Poll::Ready(Err(io::Error::from(io::ErrorKind::InvalidInput))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<u32> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_transport_listener_of_our_own_keeps_the_listener_settings() {
    let pki = Pki::new();
    let (connect, incoming) = mpsc::unbounded_channel();
    let token = CancellationToken::new();
    let listener = TlsListener::from_listener(
        Pipes(Mutex::new(incoming)),
        TlsAcceptor::new(pki.server_config()),
    )
    .handshake_timeout(Duration::from_millis(300))
    .shutdown_token(token.clone());
    assert_eq!(listener.local_addr().unwrap(), 0);

    // accept returns at once, with no TLS I/O.
    let (_client, server) = tokio::io::duplex(1024);
    connect.send(server).unwrap();
    let (mut tls, peer) = bounded("accept", listener.accept()).await.unwrap();
    assert_eq!(peer, 7);
    let e = bounded("deadline", tls.handshake()).await.unwrap_err();
    assert!(matches!(e, Error::HandshakeTimeout), "{e:?}");

    let listener = std::sync::Arc::new(listener);
    let (client, server) = tokio::io::duplex(64 * 1024);
    connect.send(server).unwrap();
    let accepted = tokio::spawn({
        let listener = listener.clone();
        async move {
            let (mut tls, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(&buf).await.unwrap();
            tls.shutdown().await.unwrap();
        }
    });
    assert_eq!(exchange(&pki, client).await, b"ping");
    accepted.await.unwrap();

    // The shutdown token stops accept.
    token.cancel();
    let err = bounded("shut down", listener.accept()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    assert!(
        bounded("until", listener.accept_until_shutdown())
            .await
            .unwrap()
            .is_none()
    );
    drop(connect);
}
