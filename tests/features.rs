//! Negotiated features (issue 2, item 9) over `tokio::io::duplex`, on TLS 1.2 and TLS 1.3:
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

use common::*;
use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use lazytls::rustls::server::ProducesTickets;
use lazytls::rustls::{
    self, AlertDescription, ClientConfig, ProtocolVersion, RootCertStore, ServerConfig,
    SignatureAlgorithm, SupportedCipherSuite, SupportedProtocolVersion,
};
use lazytls::{ConnectionInfo, Error, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

type Stream = TlsStream<DuplexStream>;

const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

fn version_of(v: &[&'static SupportedProtocolVersion]) -> ProtocolVersion {
    assert_eq!(v.len(), 1, "each run pins one protocol version");
    v[0].version
}

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
    let up = pattern(len, 1);
    let down = pattern(len, 2);
    bounded("client to server", async {
        let (w, r) = tokio::join!(
            async {
                c.write_all(&up).await?;
                c.flush().await
            },
            async {
                let mut got = vec![0; len];
                s.read_exact(&mut got).await.map(|_| got)
            }
        );
        w.expect("client write");
        assert!(r.expect("server read") == up, "server received wrong bytes");
    })
    .await;
    bounded("server to client", async {
        let (w, r) = tokio::join!(
            async {
                s.write_all(&down).await?;
                s.flush().await
            },
            async {
                let mut got = vec![0; len];
                c.read_exact(&mut got).await.map(|_| got)
            }
        );
        w.expect("server write");
        assert!(
            r.expect("client read") == down,
            "client received wrong bytes"
        );
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

/// The typed error carried by an `io::Error` from a read or write.
fn typed(e: &io::Error) -> &Error {
    Error::from_io(e).unwrap_or_else(|| panic!("io::Error without a typed lazytls::Error: {e:?}"))
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
        let (c, s) = full_connection(
            Arc::new(pki.client_config_with(v)),
            Arc::new(pki.server_config_with(v)),
            localhost(),
            version_of(v),
            1000,
        )
        .await;
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
        let (c, s) = full_connection(
            Arc::new(pki.client_config_with(v)),
            Arc::new(pki.server_config_with(v)),
            ip.clone(),
            version_of(v),
            1000,
        )
        .await;
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
        let (c, s) = full_connection(
            Arc::new(pki.client_config_with(v)),
            Arc::new(pki.server_config_with(v)),
            localhost(),
            version_of(v),
            1000,
        )
        .await;
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

/// A test-only RSA-2048 key (no secret: it protects nothing). The TLS 1.2 `ECDHE_RSA`
/// suites need an RSA certificate, and ring cannot generate RSA keys.
const RSA_TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDSUn8AaleN/eRS
ghyybc05ol9vWfej9fSnhI0VI2mwlxDETVO/XTBQDy9l1OkcmLdvOaA1r1NWMls0
RHh1VyxijOGnb8ToaCAwT44d1UT3IKZtJLv/S/1mJOk1wxyQuFkpsjme9vyHCbaY
fwIupIVTK64edY1mtu+TArCa3UhCIuqL77LFdvcE5chZcQvLlxP+4wX4hdffuPa6
SgcagCCT/JPcF/NYZp3xNGBAn1iKjYx9egIVV3fkrpgXMjKbLBTorXwXK9kd26ET
TQcmuhACt9xXXDmtkjZroheFzdYlUQLpkb76coigPTRLl7akvKnJ12BPtz+CRWN2
2XMNeiO1AgMBAAECggEAZPd4g5UJeh9PzDItH5Upp8jkwrpwcTRCYmb2KZcqBj3H
LU2n7h6I8m4PxXV8AR/pM4p4+Dy2J5OeCA30u/QA2UCjlXNJFn7iMP8IDRdUd8Sj
UJMJcyoiODZxBD+px2nQV/14vvD30sXddADI5eZSINa/zFyHaK9afHsWmAmxxhlI
V1GmGz3kDawIsReWqW5WogiEvblQ7XCwL2w1uBeNitE0S4rvs5YjAB2HrTTVbOf2
/Y1H2QIoTNlIyKPTCbvt/aC39uIFKx6XUP8TumqbQaaopjjM/Ap+u3a1ScCPCkT3
kPq0mXbn0FcOa8R5f4yxM2hMoWvYMhgQYgWLBLO5YwKBgQD9Npr0rgjN2v1e1SYh
vRxqpJxLI0wMd9auu9+OuIn+MOh/tJ1s1QElo+jTV8XBO/D6Z9xXL7f5rRdw+9So
ywewrMehXNShwB5A2uz8jUzhP3jSI6EyzzJdeZIrmrg5njlQPdhblrCLzygzTcR1
115x5usf0kFNeFe+MdWQ9rU2AwKBgQDUow0NgC5cXWTA8nGsJ5shpV7rLjoeaZ/Q
TouP3hFY4Y+YramvYodPisDLBmQYxp/C22f6Ezff903POX/nOHAAiz5Rf2zljmzJ
ybvwJGPr4yGpwH/2l44HykoUBX+F/WQpeGw1dZsn52HiLrVqu0tb4y/za1sz1qvy
vZfFgpLN5wKBgQD8dL3n58BVZdop+7/J8Z9sX/SIIYgIAk9j5WKODEVgzuhvsucm
A/Thz1spo6BB+X5YWsbfkm8OGtp9RkePhuWC67EZm9FP95jyNpQDdOnKxhqzAN0O
KHBhq/zlRpwYrj0cWJznLAWXTxIYnJecmf7K911DW8DJ+YsZ0NvKbX7cewKBgQDC
LBrRR0oOomJNJ5fSA2DQOrkQvefoub9scy1StRDWPzPn0j3voGO7qRMg0rc5QLfH
MqAiZsZRSP3Oy80Wkh0FAiJoPZptjb+eDRAH3NM6JvEomFbCEedrCbjXy6WF77w1
engl4T1MFSj3aHvV+S55vF6fRFvGXLQsOCGOBQyV5QKBgCcmLwavWK+McSJwTZ6T
i1QkQwrBqpYhm/dFwASi6idcg9MKA7d5IJRw0PupFnYwNxXvRGaLh/EdLTrKxtoF
iqDBJOzjIMPR6ezAZplFTDVLxjjSZ1n9YrOqKXdGO+IODFivFtZUvMVpo6DEeYUR
I2VpibUlGhztXJaWxLA0U8zp
-----END PRIVATE KEY-----
";

/// A server certificate for `localhost` on [`RSA_TEST_KEY`], issued by a fresh CA:
/// (chain, key, roots trusting that CA).
fn rsa_identity() -> (
    Vec<CertificateDer<'static>>,
    PrivatePkcs8KeyDer<'static>,
    RootCertStore,
) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::from_pem(RSA_TEST_KEY).expect("RSA test key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    (
        vec![cert.der().clone()],
        PrivatePkcs8KeyDer::from(key.serialize_der()),
        roots,
    )
}

/// The provider with only `suite` left, for the client.
fn provider_with_only(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![suite],
        ..(*provider()).clone()
    })
}

#[tokio::test]
async fn every_cipher_suite_negotiates_and_transfers() {
    let pki = Pki::new();
    let (rsa_chain, rsa_key, rsa_roots) = rsa_identity();
    let mut tested = Vec::new();
    for v in versions() {
        let version = version_of(v);
        let suites: Vec<SupportedCipherSuite> = provider()
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.version().version == version)
            .collect();
        assert!(
            !suites.is_empty(),
            "the provider offers no {version:?} suite"
        );
        for suite in suites {
            // TLS 1.2 suites fix the certificate's key type; TLS 1.3 suites do not.
            let ecdsa = suite.usable_for_signature_algorithm(SignatureAlgorithm::ECDSA);
            let (server, roots) = if ecdsa {
                (pki.server_config_with(v), pki.roots())
            } else {
                assert!(suite.usable_for_signature_algorithm(SignatureAlgorithm::RSA));
                let server = ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(v)
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(rsa_chain.clone(), rsa_key.clone_key().into())
                    .unwrap();
                (server, rsa_roots.clone())
            };
            let client = ClientConfig::builder_with_provider(provider_with_only(suite))
                .with_protocol_versions(v)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
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
