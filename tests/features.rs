//! Negotiated features over `tokio::io::duplex`, on TLS 1.2 and TLS 1.3:
//! ALPN (agreement, absence, and the typed error when there is no overlap), SNI (a DNS
//! name, and none for an IP address), mutual TLS, session resumption (stateful and with
//! tickets) and every cipher suite of the provider, each with a data transfer.
//!
//! It runs on the provider lazytls was built with: aws-lc-rs by default, ring under
//! `cargo test --no-default-features --features ring,tls12 --test features`.

mod common;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use common::rsa::SuiteConfigs;
use common::*;
use lazytls::rustls::pki_types::{CertificateDer, ServerName};
use lazytls::rustls::server::ProducesTickets;
use lazytls::rustls::{
    self, AlertDescription, ClientConfig, ProtocolVersion, ServerConfig, SupportedProtocolVersion,
};
use lazytls::{ConnectionInfo, Error, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

type Stream = TlsStream<DuplexStream>;

const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

/// A client and a server over an in-memory pipe, the client asking for `name`.
fn pair_for(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
) -> (Stream, Stream) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        TlsConnector::new(client).connect(name, a),
        TlsAcceptor::new(server).accept(b),
    )
}

/// Both handshakes, driven together; (client result, server result).
async fn handshake_both(c: &mut Stream, s: &mut Stream) -> (Result<(), Error>, Result<(), Error>) {
    bounded("handshake", async {
        tokio::join!(c.handshake(), s.handshake())
    })
    .await
}

/// `len` bytes from the client to the server, then `len` other bytes back; both checked.
async fn transfer(c: &mut Stream, s: &mut Stream, len: usize) {
    send(c, s, &pattern(len, 1), ["client", "server"]).await;
    send(s, c, &pattern(len, 2), ["server", "client"]).await;
}

/// `data` from one side to the other (`names`: the writer's and the reader's), checked.
async fn send(from: &mut Stream, to: &mut Stream, data: &[u8], names: [&str; 2]) {
    let [writer, reader] = names;
    bounded(&format!("{writer} to {reader}"), async {
        let (w, r) = write_while_reading(from, to, data).await;
        w.unwrap_or_else(|e| panic!("{writer} write: {e:?}"));
        let got = r.unwrap_or_else(|e| panic!("{reader} read: {e:?}"));
        assert!(got == data, "{reader} received wrong bytes");
    })
    .await;
}

/// close_notify both ways; each side then reads a clean end of stream.
async fn close_both(c: &mut Stream, s: &mut Stream) {
    async fn close(t: &mut Stream) -> io::Result<Vec<u8>> {
        t.shutdown().await?;
        let mut rest = Vec::new();
        t.read_to_end(&mut rest).await?;
        Ok(rest)
    }
    let (cr, sr) = bounded("close", async { tokio::join!(close(c), close(s)) }).await;
    assert!(
        cr.expect("client close").is_empty(),
        "client read data after close"
    );
    assert!(
        sr.expect("server close").is_empty(),
        "server read data after close"
    );
}

fn info(t: &Stream) -> &ConnectionInfo {
    t.info().expect("info() after a completed handshake")
}

/// Handshake, check the version, move data, close. Returns both infos.
async fn full_connection(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
    version: ProtocolVersion,
    len: usize,
) -> (ConnectionInfo, ConnectionInfo) {
    let (mut c, mut s) = pair_for(client, server, name);
    let (cr, sr) = handshake_both(&mut c, &mut s).await;
    cr.expect("client handshake");
    sr.expect("server handshake");
    assert_eq!(info(&c).protocol_version, Some(version));
    assert_eq!(info(&s).protocol_version, Some(version));
    // Reading is what makes a TLS 1.3 client take the server's tickets, which follow the
    // server's handshake flight: the transfer ends with the client reading.
    transfer(&mut c, &mut s, len).await;
    close_both(&mut c, &mut s).await;
    (info(&c).clone(), info(&s).clone())
}

/// [`full_connection`] with `pki`'s plain configs on `v`, 1000 bytes each way.
async fn plain_connection(
    pki: &Pki,
    v: &[&'static SupportedProtocolVersion],
    name: ServerName<'static>,
) -> (ConnectionInfo, ConnectionInfo) {
    let client = Arc::new(pki.client_config_with(v));
    let server = Arc::new(pki.server_config_with(v));
    full_connection(client, server, name, version_of(v), 1000).await
}

fn alpn_server(
    pki: &Pki,
    v: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ServerConfig> {
    let mut cfg = pki.server_config_with(v);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

fn alpn_client(
    pki: &Pki,
    v: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut cfg = pki.client_config_with(v);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

#[tokio::test]
async fn alpn_picks_the_common_protocol() {
    let pki = Pki::new();
    for v in versions() {
        let (c, s) = full_connection(
            alpn_client(&pki, v, &[H2, HTTP11]),
            alpn_server(&pki, v, &[HTTP11]),
            localhost(),
            version_of(v),
            20_000,
        )
        .await;
        assert_eq!(c.alpn.as_deref(), Some(HTTP11), "{v:?}: client alpn");
        assert_eq!(s.alpn.as_deref(), Some(HTTP11), "{v:?}: server alpn");
    }
}

#[tokio::test]
async fn alpn_is_none_unless_both_sides_use_it() {
    let pki = Pki::new();
    for v in versions() {
        // The client offers, the server does not use ALPN.
        let (c, s) = full_connection(
            alpn_client(&pki, v, &[H2, HTTP11]),
            alpn_server(&pki, v, &[]),
            localhost(),
            version_of(v),
            1000,
        )
        .await;
        assert_eq!((c.alpn, s.alpn), (None, None), "{v:?}: server without ALPN");
        // The server supports protocols, the client offers none.
        let (c, s) = full_connection(
            alpn_client(&pki, v, &[]),
            alpn_server(&pki, v, &[H2, HTTP11]),
            localhost(),
            version_of(v),
            1000,
        )
        .await;
        assert_eq!((c.alpn, s.alpn), (None, None), "{v:?}: client without ALPN");
    }
}

#[tokio::test]
async fn alpn_without_overlap_fails_with_a_typed_error_on_both_sides() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = pair_for(
            alpn_client(&pki, v, &[H2]),
            alpn_server(&pki, v, &[HTTP11]),
            localhost(),
        );
        let (cr, sr) = handshake_both(&mut c, &mut s).await;
        // The server refuses the ClientHello; the client learns it from the alert.
        let server_err = sr.expect_err("server handshake must fail");
        assert!(
            matches!(server_err, Error::Tls(rustls::Error::NoApplicationProtocol)),
            "{v:?}: server: {server_err:?}"
        );
        let client_err = cr.expect_err("client handshake must fail");
        assert!(
            matches!(
                client_err,
                Error::Tls(rustls::Error::AlertReceived(
                    AlertDescription::NoApplicationProtocol
                ))
            ),
            "{v:?}: client: {client_err:?}"
        );
        assert!(c.info().is_none() && s.info().is_none());

        // The same typed errors come out of the AsyncRead/AsyncWrite edge, sticky.
        let mut buf = [0u8; 8];
        let e = bounded("server read", s.read(&mut buf)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            typed(&e),
            Error::Tls(rustls::Error::NoApplicationProtocol)
        ));
        let e = bounded("client write", c.write_all(b"x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            matches!(
                typed(&e),
                Error::Tls(rustls::Error::AlertReceived(
                    AlertDescription::NoApplicationProtocol
                ))
            ),
            "{v:?}: client write: {e:?}"
        );
    }
}

#[tokio::test]
async fn sni_reaches_the_server() {
    let pki = Pki::new();
    for v in versions() {
        let (c, s) = plain_connection(&pki, v, localhost()).await;
        assert_eq!(s.sni.as_deref(), Some("localhost"), "{v:?}: server");
        assert_eq!(c.sni.as_deref(), Some("localhost"), "{v:?}: client");
    }
}

#[tokio::test]
async fn no_sni_when_connecting_to_an_ip_address() {
    let pki = Pki::new();
    let ip = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    for v in versions() {
        // The certificate names 127.0.0.1, so the handshake succeeds without SNI.
        let (c, s) = plain_connection(&pki, v, ip.clone()).await;
        assert_eq!(s.sni, None, "{v:?}: server saw a name");
        assert_eq!(c.sni, None, "{v:?}: client reports a name");
    }
}

#[tokio::test]
async fn mutual_tls_exposes_both_chains() {
    let pki = Pki::new();
    for v in versions() {
        let (c, s) = full_connection(
            pki.mtls_client_config(v),
            pki.mtls_server_config(v),
            localhost(),
            version_of(v),
            50_000,
        )
        .await;
        assert_eq!(
            s.peer_certificates.as_deref(),
            Some(&pki.client_chain[..]),
            "{v:?}: server's view of the client"
        );
        assert_eq!(
            c.peer_certificates.as_deref(),
            Some(&pki.server_chain[..]),
            "{v:?}: client's view of the server"
        );
    }
}

#[tokio::test]
async fn no_client_chain_without_client_auth() {
    let pki = Pki::new();
    for v in versions() {
        let (c, s) = plain_connection(&pki, v, localhost()).await;
        assert_eq!(s.peer_certificates, None, "{v:?}: server");
        assert_eq!(c.peer_certificates.as_deref(), Some(&pki.server_chain[..]));
    }
}

fn ticketer() -> Arc<dyn ProducesTickets> {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::Ticketer::new().unwrap();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return rustls::crypto::ring::Ticketer::new().unwrap();
}

/// Two connections with the same configs: the first is full, the second resumed. The
/// resumed one still reports the peers' chains (`client_chain`: what the server saw).
async fn check_resumption(
    pki: &Pki,
    server: ServerConfig,
    client: ClientConfig,
    version: ProtocolVersion,
    client_chain: Option<&[CertificateDer<'static>]>,
) {
    let server = Arc::new(server);
    let client = Arc::new(client);
    for round in 0..2 {
        let (c, s) =
            full_connection(client.clone(), server.clone(), localhost(), version, 1000).await;
        let resumed = round == 1;
        assert_eq!(c.resumed, resumed, "{version:?} round {round}: client");
        assert_eq!(s.resumed, resumed, "{version:?} round {round}: server");
        assert_eq!(
            c.peer_certificates.as_deref(),
            Some(&pki.server_chain[..]),
            "{version:?} round {round}: client's view of the server"
        );
        assert_eq!(
            s.peer_certificates.as_deref(),
            client_chain,
            "{version:?} round {round}: server's view of the client"
        );
    }
}

#[tokio::test]
async fn session_resumption_stateful() {
    // TLS 1.2: session ids. TLS 1.3: tickets naming sessions in the server's cache.
    let pki = Pki::new();
    for v in versions() {
        let server = pki.server_config_with(v);
        check_resumption(&pki, server, pki.client_config_with(v), version_of(v), None).await;
    }
}

#[tokio::test]
async fn session_resumption_with_tickets() {
    // Stateless tickets, on both versions.
    let pki = Pki::new();
    for v in versions() {
        let mut server = pki.server_config_with(v);
        server.ticketer = ticketer();
        check_resumption(&pki, server, pki.client_config_with(v), version_of(v), None).await;
    }
}

#[tokio::test]
async fn session_resumption_with_mutual_tls() {
    let pki = Pki::new();
    for v in versions() {
        let server = Arc::unwrap_or_clone(pki.mtls_server_config(v));
        let client = Arc::unwrap_or_clone(pki.mtls_client_config(v));
        let chain = Some(&pki.client_chain[..]);
        check_resumption(&pki, server, client, version_of(v), chain).await;
    }
}

#[tokio::test]
async fn every_cipher_suite_negotiates_and_transfers() {
    let configs = SuiteConfigs::new();
    let mut tested = Vec::new();
    for v in versions() {
        let version = version_of(v);
        for suite in suites(version) {
            let (client, server) = configs.for_suite(suite);
            // Enough data for several full records each way.
            let (c, s) = full_connection(
                Arc::new(client),
                Arc::new(server),
                localhost(),
                version,
                100_000,
            )
            .await;
            let name = suite.suite();
            assert_eq!(c.cipher_suite.map(|s| s.suite()), Some(name), "client");
            assert_eq!(s.cipher_suite.map(|s| s.suite()), Some(name), "server");
            tested.push((name, c.record_layer, s.record_layer));
        }
    }
    // Every suite of every enabled version was run.
    let offered = provider()
        .cipher_suites
        .iter()
        .filter(|s| {
            versions()
                .iter()
                .any(|v| v[0].version == s.version().version)
        })
        .count();
    assert_eq!(tested.len(), offered, "tested {tested:?}");
    println!("cipher suites tested (suite, client layer, server layer): {tested:?}");
}
