//! Large handshake flights: a ClientHello near rustls's 64 KiB handshake-message limit
//! (long ALPN lists) and a server certificate chain of about 60 KB. The side that
//! receives the flight reads its transport a number of times within a small constant of
//! (bytes ÷ one record), never a byte at a time, and the handshake completes.
//!
//! Fixture: a pipe that holds the whole flight before the receiver's first read, so the
//! read count depends only on the room each read offers; the receiver's reads are counted
//! by `common::counting`. lazytls on both sides, and tokio-rustls as the sending peer.

mod common;

use std::sync::Arc;

use common::counting::{CountingReads, ReadCounts};
use common::*;
use lazytls::rustls::pki_types::CertificateDer;
use lazytls::rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use lazytls::{TlsAcceptor, TlsConnector};
use rcgen::{CertificateParams, KeyPair};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};

/// Room of one record, the unit reads are counted in.
const RECORD: usize = 16 * 1024;

type Version = &'static [&'static SupportedProtocolVersion];

/// A client whose ClientHello carries 253 ALPN names of 255 bytes: about 65 KB, just
/// under rustls's limit for one handshake message.
fn long_alpn_client(pki: &Pki, versions: Version) -> ClientConfig {
    let mut config = pki.client_config_with(versions);
    config.alpn_protocols = (0..253u32)
        .map(|i| {
            let mut name = format!("{i:03}-").into_bytes();
            name.resize(255, b'a');
            name
        })
        .collect();
    config
}

/// A server whose certificate message is about 60 KB: its chain carries unrelated
/// certificates with long name lists after the real one (the client ignores them).
fn big_chain_server(pki: &Pki, versions: Version) -> ServerConfig {
    let mut chain = pki.server_chain.clone();
    for n in 0..10 {
        let names: Vec<String> = (0..200)
            .map(|i| format!("host-{n}-{i:04}.padding.example"))
            .collect();
        let params = CertificateParams::new(names).unwrap();
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        chain.push(CertificateDer::from(cert.der().to_vec()));
    }
    let size: usize = chain.iter().map(|c| c.len()).sum();
    assert!(size > 55_000, "the chain is {size} bytes");
    single_cert_server(versions, chain, pki.server_key())
}

/// The most transport reads a receiver may make for `bytes`: about one per record, with
/// room for a first small read and one read per record header that came alone.
fn read_bound(bytes: usize) -> usize {
    2 * bytes.div_ceil(RECORD) + 2
}

/// Runs both handshakes at once, bounded in time.
async fn handshake_counted(mut client: impl Handshaker, mut server: impl Handshaker) {
    // Both ends live until both are done: a TLS 1.3 server sends its tickets after the
    // client's handshake has completed.
    let (c, s) = bounded("handshake", async {
        tokio::join!(client.run(), server.run())
    })
    .await;
    if let Err(e) = c.and(s) {
        panic!("{e}");
    }
}

/// One end of a handshake in these tests.
trait Handshaker: Sized {
    async fn run(&mut self) -> Result<(), String>;
}

struct Ours<IO>(lazytls::TlsStream<IO>);

impl<IO: AsyncRead + AsyncWrite + Unpin> Handshaker for Ours<IO> {
    async fn run(&mut self) -> Result<(), String> {
        let side = if self.0.is_client() {
            "client"
        } else {
            "server"
        };
        (self.0.handshake().await).map_err(|e| format!("our {side}'s handshake: {e:?}"))
    }
}

/// A tokio-rustls client, connected when run.
struct TheirClient(
    Option<(Arc<ClientConfig>, DuplexStream)>,
    Option<tokio_rustls::client::TlsStream<DuplexStream>>,
);

impl Handshaker for TheirClient {
    async fn run(&mut self) -> Result<(), String> {
        let (config, io) = self.0.take().unwrap();
        let connect = tokio_rustls::TlsConnector::from(config).connect(localhost(), io);
        self.1 = Some((connect.await).map_err(|e| format!("tokio-rustls client: {e:?}"))?);
        Ok(())
    }
}

fn check(what: &str, counts: &ReadCounts) {
    let (reads, bytes) = (counts.reads(), counts.bytes());
    eprintln!("{what}: {reads} transport reads for {bytes} bytes");
    assert!(bytes > 55_000, "{what}: the flight was {bytes} bytes");
    assert_eq!(
        counts.tiny_reads(),
        0,
        "{what}: reads offering under 64 bytes"
    );
    assert!(
        reads <= read_bound(bytes),
        "{what}: {reads} transport reads for {bytes} bytes (bound {})",
        read_bound(bytes)
    );
}

#[tokio::test]
async fn a_65_kb_client_hello_takes_a_few_reads() {
    let pki = Pki::new();
    for versions in versions() {
        let client = Arc::new(long_alpn_client(&pki, versions));
        let server = Arc::new(pki.server_config_with(versions));
        let fixed = TlsAcceptor::new(server.clone());
        let chosen = server.clone();
        let resolving = TlsAcceptor::with_resolver(move |_| Ok(chosen.clone()));
        for (what, acceptor) in [("fixed config", &fixed), ("resolver", &resolving)] {
            let what = format!("{} server, {what}", vname(versions));
            let (a, b) = tokio::io::duplex(1 << 20);
            let counting = CountingReads::new(b);
            let counts = counting.counts.clone();
            let ours = TlsConnector::new(client.clone()).connect(localhost(), a);
            let server = Ours(acceptor.accept(counting));
            handshake_counted(Ours(ours), server).await;
            check(&format!("{what}, lazytls client"), &counts);

            let (a, b) = tokio::io::duplex(1 << 20);
            let counting = CountingReads::new(b);
            let counts = counting.counts.clone();
            let theirs = TheirClient(Some((client.clone(), a)), None);
            handshake_counted(theirs, Ours(acceptor.accept(counting))).await;
            check(&format!("{what}, tokio-rustls client"), &counts);
        }
        // For comparison (printed, not asserted): tokio-rustls receiving the same flight.
        let (a, b) = tokio::io::duplex(1 << 20);
        let counting = CountingReads::new(b);
        let counts = counting.counts.clone();
        let ours = TlsConnector::new(client.clone()).connect(localhost(), a);
        let theirs = tokio_rustls::TlsAcceptor::from(server).accept(counting);
        let (c, s) = bounded("tokio-rustls server", async {
            let mut ours = Ours(ours);
            tokio::join!(ours.run(), theirs)
        })
        .await;
        c.unwrap();
        drop(s.expect("tokio-rustls server"));
        eprintln!(
            "{} tokio-rustls server: {} transport reads for {} bytes",
            vname(versions),
            counts.reads(),
            counts.bytes()
        );
    }
}

#[tokio::test]
async fn a_60_kb_certificate_chain_takes_a_few_reads() {
    let pki = Pki::new();
    for versions in versions() {
        let server = Arc::new(big_chain_server(&pki, versions));
        let what = format!("{} client", vname(versions));
        let (a, b) = tokio::io::duplex(1 << 20);
        let counting = CountingReads::new(a);
        let counts = counting.counts.clone();
        let client = TlsConnector::new(Arc::new(pki.client_config_with(versions)))
            .connect(localhost(), counting);
        let ours = Ours(TlsAcceptor::new(server.clone()).accept(b));
        handshake_counted(Ours(client), ours).await;
        check(&format!("{what}, lazytls server"), &counts);

        let (a, b) = tokio::io::duplex(1 << 20);
        let counting = CountingReads::new(a);
        let counts = counting.counts.clone();
        let client = TlsConnector::new(Arc::new(pki.client_config_with(versions)))
            .connect(localhost(), counting);
        let theirs = tokio_rustls::TlsAcceptor::from(server.clone());
        let reference = server.clone();
        let mut client = Ours(client);
        let (c, s) = bounded("handshake with tokio-rustls", async {
            tokio::join!(client.run(), theirs.accept(b))
        })
        .await;
        c.unwrap();
        s.expect("tokio-rustls server");
        check(&format!("{what}, tokio-rustls server"), &counts);

        // For comparison (printed, not asserted): a tokio-rustls client receiving it.
        let (a, b) = tokio::io::duplex(1 << 20);
        let counting = CountingReads::new(a);
        let counts = counting.counts.clone();
        let config = Arc::new(pki.client_config_with(versions));
        let connect = tokio_rustls::TlsConnector::from(config).connect(localhost(), counting);
        let mut ours = Ours(TlsAcceptor::new(reference).accept(b));
        let (c, s) = bounded("tokio-rustls client", async {
            tokio::join!(connect, ours.run())
        })
        .await;
        s.unwrap();
        drop(c.expect("tokio-rustls client"));
        eprintln!(
            "{} tokio-rustls client: {} transport reads for {} bytes",
            vname(versions),
            counts.reads(),
            counts.bytes()
        );
    }
}
