//! A self-contained tour of lazytls on loopback TCP: a lazy handshake, what it negotiated,
//! 64 MiB of throughput, a resumable cancellation and a fatal handshake deadline.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! It makes its own CA and server certificate with rcgen, needs no files and no network
//! beyond 127.0.0.1, and finishes in a few seconds.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use lazytls::rustls::{self, ClientConfig, ProtocolVersion, RootCertStore, ServerConfig};
use lazytls::{CancellationToken, ConnectionInfo, HandshakeState, TlsAcceptor, TlsConnector};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Result<T, E = Box<dyn StdError + Send + Sync>> = std::result::Result<T, E>;

/// How much the throughput step moves, client to server.
const TRANSFER: usize = 64 * 1024 * 1024;

#[tokio::main]
async fn main() -> Result<()> {
    let (ca, server_config) = make_pki()?;
    let client_config = client_config(ca)?;
    let acceptor = TlsAcceptor::new(server_config).handshake_timeout(Duration::from_secs(5));
    let connector = TlsConnector::new(client_config.clone());

    println!("lazytls demo (crypto provider: {PROVIDER})\n");
    lazy_echo(&acceptor, &connector).await?;
    throughput(&acceptor, &connector).await?;
    full_duplex(&acceptor, &connector).await?;
    cancelled_handshake(&connector).await?;
    handshake_deadline(client_config).await?;
    Ok(())
}

/// 1. A client that writes before any handshake; the write drives it.
async fn lazy_echo(acceptor: &TlsAcceptor, connector: &TlsConnector) -> Result<()> {
    println!("1. lazy handshake + echo");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(echo_server(listener, acceptor.clone()));

    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector.connect(localhost(), tcp);
    println!(
        "   after connect():       state = {:?} (no I/O yet)",
        tls.state()
    );

    let msg = b"hello, lazy world";
    tls.write_all(msg).await?; // drives the handshake, then writes
    tls.flush().await?;
    println!("   after the first write: state = {:?}", tls.state());

    let mut echoed = vec![0; msg.len()];
    tls.read_exact(&mut echoed).await?;
    println!(
        "   echoed back:           {:?}",
        String::from_utf8_lossy(&echoed)
    );
    print_info(tls.info().expect("handshake completed"));

    // Our close_notify; the server answers with its own, and we read a clean EOF.
    tls.shutdown().await?;
    let n = tls.read(&mut [0; 1]).await?;
    println!("   after shutdown():      read = {n} (peer's close_notify)\n");
    Ok(())
}

/// 2. 64 MiB client -> server; the server counts and answers with the total.
async fn throughput(acceptor: &TlsAcceptor, connector: &TlsConnector) -> Result<()> {
    println!("2. throughput, one way over loopback TCP");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(sink_server(listener, acceptor.clone()));

    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(localhost(), tcp);
    tls.handshake().await?;

    let chunk = vec![0x5a_u8; 256 * 1024];
    let start = Instant::now();
    for _ in 0..TRANSFER / chunk.len() {
        tls.write_all(&chunk).await?;
    }
    tls.shutdown().await?; // close_notify tells the server the data is complete
    let received = tls.read_u64().await?; // sent once the server has read every byte
    let took = start.elapsed();
    assert_eq!(received, TRANSFER as u64, "the server saw every byte");

    let mb_s = TRANSFER as f64 / 1e6 / took.as_secs_f64();
    println!(
        "   sent {} MiB in {:.1} ms: {mb_s:.0} MB/s (server confirmed {received} bytes)\n",
        TRANSFER >> 20,
        took.as_secs_f64() * 1e3
    );
    Ok(())
}

/// 3. Full duplex: the client's halves run in two tasks, one sending 64 MiB while
///    the other reads the echo of it; the server echoes through its own halves.
async fn full_duplex(acceptor: &TlsAcceptor, connector: &TlsConnector) -> Result<()> {
    println!("3. full duplex with into_split(), both directions at once");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(split_echo_server(listener, acceptor.clone()));

    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    // No handshake yet: whichever half polls first drives it, the other waits for it.
    let (mut reader, mut writer) = connector.connect(localhost(), tcp).into_split();
    let start = Instant::now();
    let send = tokio::spawn(async move {
        let chunk = vec![0xa5_u8; 256 * 1024];
        for _ in 0..TRANSFER / chunk.len() {
            writer.write_all(&chunk).await?;
        }
        writer.shutdown().await?; // close_notify; the reader half reads on
        std::io::Result::Ok(writer)
    });
    let mut buf = vec![0; 256 * 1024];
    let mut echoed = 0;
    loop {
        match reader.read(&mut buf).await? {
            0 => break, // the server's close_notify, after the whole echo
            n => {
                if buf[..n].iter().any(|&b| b != 0xa5) {
                    return Err("the echo changed the bytes".into());
                }
                echoed += n;
            }
        }
    }
    let took = start.elapsed();
    let writer = send.await??;
    assert_eq!(echoed, TRANSFER, "every byte came back");
    let tls = reader.unsplit(writer)?;
    let mb_s = 2.0 * TRANSFER as f64 / 1e6 / took.as_secs_f64();
    println!(
        "   {} MiB each way in {:.1} ms: {mb_s:.0} MB/s both directions together ({:?} record layer)\n",
        TRANSFER >> 20,
        took.as_secs_f64() * 1e3,
        tls.info().expect("handshake completed").record_layer,
    );
    Ok(())
}

/// 4. A per-call cancellation against a peer that never answers: not fatal.
async fn cancelled_handshake(connector: &TlsConnector) -> Result<()> {
    println!("4. handshake().cancel_on(&token) against a silent peer");
    let addr = silent_peer().await?;
    let mut tls = connector.connect(localhost(), TcpStream::connect(addr).await?);

    let token = CancellationToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        canceller.cancel();
    });

    let start = Instant::now();
    let result = tls.handshake().cancel_on(&token).await;
    let err = result.expect_err("a silent peer cannot complete a handshake");
    println!(
        "   after {:>3} ms: Err({err:?}) \"{err}\"",
        start.elapsed().as_millis()
    );
    println!(
        "   state = {:?}: the handshake is still resumable by the next call\n",
        tls.state()
    );
    assert!(matches!(err, lazytls::Error::Cancelled));
    assert_eq!(tls.state(), HandshakeState::Handshaking);
    Ok(())
}

/// 5. The connector's handshake deadline: fatal, and the error is sticky.
async fn handshake_deadline(client_config: Arc<ClientConfig>) -> Result<()> {
    println!("5. handshake_timeout(300 ms) against a silent peer");
    let addr = silent_peer().await?;
    let connector = TlsConnector::new(client_config).handshake_timeout(Duration::from_millis(300));
    let mut tls = connector.connect(localhost(), TcpStream::connect(addr).await?);

    let start = Instant::now();
    let err = tls.handshake().await.expect_err("the deadline must pass");
    println!(
        "   after {:>3} ms: Err({err:?}) \"{err}\"",
        start.elapsed().as_millis()
    );
    assert!(matches!(err, lazytls::Error::HandshakeTimeout));

    // Sticky: a later read fails the same way, at once. At the AsyncRead edge the error is
    // an io::Error that still carries the typed error.
    let io_err = tls
        .read(&mut [0; 16])
        .await
        .expect_err("a failed stream stays failed");
    let typed = lazytls::Error::from_io(&io_err);
    println!(
        "   a later read:  io::Error kind {:?}, typed {typed:?}; state = {:?}",
        io_err.kind(),
        tls.state()
    );
    assert!(matches!(typed, Some(lazytls::Error::HandshakeTimeout)));
    assert_eq!(tls.state(), HandshakeState::Failed);
    Ok(())
}

/// Echoes every byte on each connection until the peer closes, then sends close_notify.
async fn echo_server(listener: TcpListener, acceptor: TlsAcceptor) {
    while let Ok((tcp, _)) = listener.accept().await {
        let mut tls = acceptor.accept(tcp);
        tokio::spawn(async move {
            let mut buf = vec![0; 16 * 1024];
            let result: std::io::Result<()> = async {
                loop {
                    let n = tls.read(&mut buf).await?; // the first read drives the handshake
                    if n == 0 {
                        return tls.shutdown().await;
                    }
                    tls.write_all(&buf[..n]).await?;
                    tls.flush().await?;
                }
            }
            .await;
            if let Err(e) = result {
                eprintln!("   [echo server] connection error: {e}");
            }
        });
    }
}

/// Echoes each connection through its split halves, then sends close_notify.
async fn split_echo_server(listener: TcpListener, acceptor: TlsAcceptor) {
    while let Ok((tcp, _)) = listener.accept().await {
        tcp.set_nodelay(true).ok();
        let (mut reader, mut writer) = acceptor.accept(tcp).into_split();
        tokio::spawn(async move {
            let result = async {
                tokio::io::copy(&mut reader, &mut writer).await?;
                writer.shutdown().await
            }
            .await;
            if let Err(e) = result {
                eprintln!("   [split echo server] connection error: {e}");
            }
        });
    }
}

/// Reads each connection to its end, then writes the byte count and closes.
async fn sink_server(listener: TcpListener, acceptor: TlsAcceptor) {
    while let Ok((tcp, _)) = listener.accept().await {
        tcp.set_nodelay(true).ok();
        let mut tls = acceptor.accept(tcp);
        tokio::spawn(async move {
            let mut buf = vec![0; 256 * 1024];
            let result: std::io::Result<()> = async {
                let mut total = 0_u64;
                loop {
                    match tls.read(&mut buf).await? {
                        0 => break,
                        n => total += n as u64,
                    }
                }
                tls.write_u64(total).await?;
                tls.shutdown().await
            }
            .await;
            if let Err(e) = result {
                eprintln!("   [sink server] connection error: {e}");
            }
        });
    }
}

/// A TCP peer that accepts connections and never sends a byte.
async fn silent_peer() -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new(); // keep the sockets open, say nothing
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    Ok(addr)
}

fn print_info(info: &ConnectionInfo) {
    let version = match info.protocol_version {
        Some(ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "-".to_string(),
    };
    let suite = info
        .cipher_suite
        .map_or_else(|| "-".to_string(), |s| format!("{:?}", s.suite()));
    let alpn = info.alpn.as_deref().map_or_else(
        || "-".to_string(),
        |p| String::from_utf8_lossy(p).into_owned(),
    );
    println!("   version:               {version}");
    println!("   cipher suite:          {suite}");
    println!("   ALPN:                  {alpn}");
    println!(
        "   handshake time:        {:.2} ms (client side, first poll to completion)",
        info.handshake_duration.as_secs_f64() * 1e3
    );
}

#[cfg(feature = "aws-lc-rs")]
const PROVIDER: &str = "aws-lc-rs";
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
const PROVIDER: &str = "ring";

/// The provider of the enabled crypto feature, aws-lc-rs first. Asked for explicitly: with
/// both features on, rustls cannot pick a process default by itself.
fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Arc::new(rustls::crypto::ring::default_provider());
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid DNS name")
}

/// A fresh CA and a server certificate for `localhost` signed by it. Returns the CA
/// certificate (the client's trust anchor) and the server's configuration.
fn make_pki() -> Result<(CertificateDer<'static>, Arc<ServerConfig>)> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lazytls demo CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &ca)?;

    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )?;
    config.alpn_protocols = alpn();
    Ok((ca.der().clone(), Arc::new(config)))
}

fn client_config(ca: CertificateDer<'static>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}
