//! 0-RTT early data (TLS 1.3): a client whose config enables it sends what it writes
//! before the handshake completes as early data when its ticket allows; a refusal makes
//! it send the bytes again after the handshake; a server keeps early bytes apart from
//! ordinary reads (`take_early_data`).
//!
//! Fixture: a `common::Pki` server config with `max_early_data_size` (or none) and one
//! shared session cache, so a second connection resumes the first one's ticket; lazytls
//! and tokio-rustls (its `early-data` mode) on each side, over loopback TCP. Every step is
//! bounded in time.

mod common;

use std::sync::Arc;

use common::*;
use lazytls::rustls::server::ServerSessionMemoryCache;
use lazytls::rustls::{self, ClientConfig, ServerConfig};
use lazytls::{EarlyDataStatus, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const EARLY: &[u8] = b"GET /idempotent HTTP/1.1\r\n\r\n";

fn client_config(pki: &Pki) -> Arc<ClientConfig> {
    let mut config = pki.client_config_with(TLS13);
    config.enable_early_data = true;
    Arc::new(config)
}

/// A server config accepting up to `max_early` bytes, on a session cache shared between
/// the configs of one test.
fn server_config(
    pki: &Pki,
    cache: &Arc<ServerSessionMemoryCache>,
    max_early: u32,
) -> Arc<ServerConfig> {
    let mut config = pki.server_config_with(TLS13);
    config.max_early_data_size = max_early;
    config.session_storage = cache.clone();
    Arc::new(config)
}

/// Writes `ping` and reads the peer's `pong`: the client's read also takes in the
/// tickets the server sent after its handshake.
async fn ping<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, ping: &[u8], pong: &[u8]) {
    s.write_all(ping).await.unwrap();
    s.flush().await.unwrap();
    let mut got = vec![0; pong.len()];
    s.read_exact(&mut got).await.unwrap();
    assert_bytes("reply", &got, pong);
}

/// A first, full connection that leaves a ticket in the connector's config.
async fn take_ticket(connector: &TlsConnector, acceptor: &TlsAcceptor) {
    let (c, s) = tcp_pair().await;
    let mut client = connector.connect(localhost(), c);
    let mut server = acceptor.accept(s);
    bounded("first connection", async {
        let serve = async {
            ping(&mut server, b"pong", b"ping").await;
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            server.shutdown().await.unwrap();
        };
        let talk = async {
            ping(&mut client, b"ping", b"pong").await;
            client.shutdown().await.unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
        };
        tokio::join!(serve, talk);
    })
    .await;
    let info = client.info().unwrap();
    assert!(!info.resumed);
    assert_eq!(info.early_data, EarlyDataStatus::NotSent);
}

/// A resumed connection whose client writes `early` before anything else: returns what
/// the server took as early data, what its ordinary reads gave, and the two infos'
/// early-data status.
async fn resume_with_early(
    connector: &TlsConnector,
    acceptor: &TlsAcceptor,
    early: &[u8],
) -> (Vec<u8>, Vec<u8>, EarlyDataStatus, EarlyDataStatus) {
    let (c, s) = tcp_pair().await;
    let mut client = connector.connect(localhost(), c);
    let mut server = acceptor.accept(s);
    let (taken, read, server_status) = bounded("resumed connection", async {
        let serve = async {
            server.handshake().await.unwrap();
            let taken = server.take_early_data();
            let mut read = Vec::new();
            server.read_to_end(&mut read).await.unwrap();
            server.shutdown().await.unwrap();
            (taken, read, server.info().unwrap().early_data)
        };
        let talk = async {
            client.write_all(early).await.unwrap();
            client.shutdown().await.unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        };
        tokio::join!(serve, talk).0
    })
    .await;
    let info = client.info().expect("the handshake completed");
    assert!(info.resumed, "the second connection resumes the first");
    (taken, read, info.early_data, server_status)
}

#[tokio::test]
async fn accepted_early_data_reaches_the_server_apart_from_ordinary_reads() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let connector = TlsConnector::new(client_config(&pki));
    let acceptor = TlsAcceptor::new(server_config(&pki, &cache, 16_384));
    take_ticket(&connector, &acceptor).await;
    let (taken, read, client, server) = resume_with_early(&connector, &acceptor, EARLY).await;
    assert_bytes("early data", &taken, EARLY);
    assert!(read.is_empty(), "ordinary reads never return early data");
    assert_eq!(client, EarlyDataStatus::Accepted);
    assert_eq!(server, EarlyDataStatus::Accepted);
}

#[tokio::test]
async fn refused_early_data_is_sent_again_after_the_handshake() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let connector = TlsConnector::new(client_config(&pki));
    take_ticket(
        &connector,
        &TlsAcceptor::new(server_config(&pki, &cache, 16_384)),
    )
    .await;
    // The same sessions, but this server has early data off (rustls's default).
    let off = TlsAcceptor::new(server_config(&pki, &cache, 0));
    let (taken, read, client, server) = resume_with_early(&connector, &off, EARLY).await;
    assert!(taken.is_empty());
    assert_bytes("ordinary reads", &read, EARLY);
    assert_eq!(client, EarlyDataStatus::Rejected);
    assert_eq!(server, EarlyDataStatus::NotSent);
}

#[tokio::test]
async fn early_data_beyond_the_tickets_limit_waits_for_the_handshake() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let connector = TlsConnector::new(client_config(&pki));
    let acceptor = TlsAcceptor::new(server_config(&pki, &cache, 1_000));
    take_ticket(&connector, &acceptor).await;
    let all = pattern(100_000, 7);
    let (taken, read, client, _) = resume_with_early(&connector, &acceptor, &all).await;
    assert_eq!(
        taken.len(),
        1_000,
        "the ticket allows 1,000 bytes of early data"
    );
    assert_bytes("early data, then the rest", &[taken, read].concat(), &all);
    assert_eq!(client, EarlyDataStatus::Accepted);
}

#[tokio::test]
async fn a_client_without_a_ticket_sends_no_early_data() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let connector = TlsConnector::new(client_config(&pki));
    let acceptor = TlsAcceptor::new(server_config(&pki, &cache, 16_384));
    let (c, s) = tcp_pair().await;
    let mut client = connector.connect(localhost(), c);
    let mut server = acceptor.accept(s);
    bounded("full handshake", async {
        let serve = async {
            let mut got = vec![0; EARLY.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_bytes("ordinary read", &got, EARLY);
            assert!(server.take_early_data().is_empty());
        };
        let talk = async {
            client.write_all(EARLY).await.unwrap();
            client.flush().await.unwrap();
        };
        tokio::join!(serve, talk);
    })
    .await;
    assert_eq!(client.info().unwrap().early_data, EarlyDataStatus::NotSent);
}

#[tokio::test]
async fn early_data_from_tokio_rustls_is_kept_apart() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let acceptor = TlsAcceptor::new(server_config(&pki, &cache, 16_384));
    let theirs = tokio_rustls::TlsConnector::from(client_config(&pki)).early_data(true);
    for round in 0..2 {
        let (c, s) = tcp_pair().await;
        let mut server = acceptor.accept(s);
        bounded("tokio-rustls client", async {
            let talk = async {
                let mut client = theirs.connect(localhost(), c).await.unwrap();
                client.write_all(EARLY).await.unwrap();
                client.flush().await.unwrap();
                let mut pong = [0; 4];
                client.read_exact(&mut pong).await.unwrap();
                client.shutdown().await.unwrap();
            };
            let serve = async {
                server.handshake().await.unwrap();
                let taken = server.take_early_data();
                let mut got = Vec::new();
                if round == 0 {
                    assert!(taken.is_empty(), "no ticket on the first connection");
                    got.resize(EARLY.len(), 0);
                    server.read_exact(&mut got).await.unwrap();
                } else {
                    assert_bytes("early data", &taken, EARLY);
                }
                server.write_all(b"pong").await.unwrap();
                server.flush().await.unwrap();
                let mut rest = Vec::new();
                server.read_to_end(&mut rest).await.unwrap();
                assert!(rest.is_empty(), "no early byte in ordinary reads");
            };
            tokio::join!(talk, serve);
        })
        .await;
    }
}

#[tokio::test]
async fn early_data_to_tokio_rustls_is_accepted() {
    let pki = Pki::new();
    let mut config = pki.server_config_with(TLS13);
    config.max_early_data_size = 16_384;
    let theirs = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let connector = TlsConnector::new(client_config(&pki));
    for round in 0..2 {
        let (c, s) = tcp_pair().await;
        let mut client = connector.connect(localhost(), c);
        bounded("tokio-rustls server", async {
            let serve = async {
                let mut server = theirs.accept(s).await.unwrap();
                let mut early = Vec::new();
                if let Some(mut data) = server.get_mut().1.early_data() {
                    std::io::Read::read_to_end(&mut data, &mut early).unwrap();
                }
                let mut rest = Vec::new();
                if round == 1 {
                    assert_bytes("early data at tokio-rustls", &early, EARLY);
                } else {
                    rest.resize(EARLY.len(), 0);
                    server.read_exact(&mut rest).await.unwrap();
                    assert_bytes("ordinary data at tokio-rustls", &rest, EARLY);
                }
                server.write_all(b"pong").await.unwrap();
                server.shutdown().await.unwrap();
            };
            let talk = async {
                client.write_all(EARLY).await.unwrap();
                client.flush().await.unwrap();
                let mut pong = Vec::new();
                client.read_to_end(&mut pong).await.unwrap();
                assert_eq!(pong, b"pong");
            };
            tokio::join!(serve, talk);
        })
        .await;
        let want = [EarlyDataStatus::NotSent, EarlyDataStatus::Accepted][round];
        assert_eq!(client.info().unwrap().early_data, want, "round {round}");
    }
}

#[tokio::test]
async fn a_server_refuses_more_early_data_than_it_allows() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let connector = TlsConnector::new(client_config(&pki));
    // The ticket allows 16 KiB; the server that resumes it allows 1,000 bytes.
    take_ticket(
        &connector,
        &TlsAcceptor::new(server_config(&pki, &cache, 16_384)),
    )
    .await;
    let strict = TlsAcceptor::new(server_config(&pki, &cache, 1_000));
    let (c, s) = tcp_pair().await;
    let mut client = connector.connect(localhost(), c);
    let mut server = strict.accept(s);
    let (served, talked) = bounded("too much early data", async {
        let serve = server.handshake();
        let talk = async {
            client.write_all(&pattern(4_000, 3)).await?;
            client.flush().await
        };
        tokio::join!(serve, talk)
    })
    .await;
    let e = served.expect_err("the server refuses the excess");
    assert!(
        matches!(
            e,
            lazytls::Error::Tls(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::TooMuchEarlyDataReceived
            ))
        ),
        "{e:?}"
    );
    let e = talked.expect_err("the client hears of it");
    let typed = typed(&e);
    assert!(
        matches!(typed, lazytls::Error::Tls(rustls::Error::AlertReceived(_))),
        "the client gets the server's alert: {typed:?}"
    );
    assert!(server.take_early_data().len() <= 1_000);
}

/// A client transport on a blocking socket: every read waits until the peer's bytes are
/// there, as if the server answered before our first read could return.
struct BlockingIo(std::net::TcpStream);

impl AsyncRead for BlockingIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = std::io::Read::read(&mut self.get_mut().0, buf.initialize_unfilled());
        std::task::Poll::Ready(n.map(|n| buf.advance(n)))
    }
}

impl AsyncWrite for BlockingIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut self.get_mut().0, data))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.get_mut().0.shutdown(std::net::Shutdown::Write))
    }
}

/// Regression test: the early data used to be offered only after the handshake's first
/// read, so a server that answered the ClientHello at once (all of it there by our first
/// read) finished the handshake first, and nothing went out early.
#[test]
fn early_data_leaves_with_the_client_hello_when_the_server_answers_at_once() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let acceptor = TlsAcceptor::new(server_config(&pki, &cache, 16_384));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut early = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_nonblocking(true).unwrap();
            early = rt.block_on(async {
                let mut s = acceptor.accept(tokio::net::TcpStream::from_std(tcp).unwrap());
                s.handshake().await.unwrap();
                let early = s.take_early_data();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await.unwrap();
                s.shutdown().await.unwrap();
                early
            });
        }
        early
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connector = TlsConnector::new(client_config(&pki));
    let statuses: Vec<_> = (0..2)
        .map(|_| {
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            rt.block_on(async {
                let mut c = connector.connect(localhost(), BlockingIo(tcp));
                c.write_all(EARLY).await.unwrap();
                c.shutdown().await.unwrap();
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).await.unwrap();
                c.info().unwrap().early_data
            })
        })
        .collect();
    assert_eq!(
        statuses,
        [EarlyDataStatus::NotSent, EarlyDataStatus::Accepted]
    );
    assert_bytes("early data", &server.join().unwrap(), EARLY);
}

/// How a test splits a client stream.
#[derive(Debug, Clone, Copy)]
enum Split {
    /// `TlsStream::into_split`.
    Halves,
    /// `tokio::io::split`.
    Tokio,
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

fn split_client(client: lazytls::TlsStream<tokio::net::TcpStream>, how: Split) -> (Reader, Writer) {
    match how {
        Split::Halves => {
            let (r, w) = client.into_split();
            (Box::new(r), Box::new(w))
        }
        Split::Tokio => {
            let (r, w) = tokio::io::split(client);
            (Box::new(r), Box::new(w))
        }
    }
}

/// A split client whose read half started the handshake and waits in it, and whose write
/// half then writes early data and goes idle without flushing: the server's answer wakes
/// the reader. (The write drove the handshake, which left the writer's waker on the
/// transport's read side in place of the reader's, and nothing woke the reader: it hung
/// until the writer flushed.)
#[tokio::test]
async fn a_reader_waiting_in_the_handshake_is_woken_after_an_early_write() {
    let pki = Pki::new();
    let cache = ServerSessionMemoryCache::new(32);
    let acceptor = TlsAcceptor::new(server_config(&pki, &cache, 16_384));
    for how in [Split::Halves, Split::Tokio] {
        let connector = TlsConnector::new(client_config(&pki));
        take_ticket(&connector, &acceptor).await;
        let (c, s) = tcp_pair().await;
        let (mut reader, mut writer) = split_client(connector.connect(localhost(), c), how);
        let read = tokio::spawn(async move {
            let mut pong = [0; 4];
            reader.read_exact(&mut pong).await.map(|_| pong)
        });
        // Let the reader start the handshake and park in it.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!read.is_finished());
        bounded("early write", writer.write_all(b"ping"))
            .await
            .unwrap();
        // The server has not read anything yet: the ClientHello and the early data wait
        // in its socket.
        let mut server = acceptor.accept(s);
        let serve = tokio::spawn(async move {
            server.handshake().await.unwrap();
            let early = server.take_early_data();
            server.write_all(b"pong").await.unwrap();
            server.flush().await.unwrap();
            (server, early)
        });
        // The client's Finished goes out only once the reader is woken.
        let pong = within(3, &format!("{how:?}: the reader's wake-up"), read).await;
        assert_eq!(&pong.unwrap().unwrap(), b"pong", "{how:?}");
        let (_server, early) = bounded("server", serve).await.unwrap();
        assert_bytes("early data", &early, b"ping");
        drop(writer);
    }
}
