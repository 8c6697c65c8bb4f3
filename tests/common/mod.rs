//! Shared test support: runtime PKI from rcgen, configs on the provider lazytls was built
//! with, and bounded helpers. Each test binary uses a subset.
//!
//! - [`forger`]: a peer that completes a real handshake, then seals any record with the
//!   connection's keys, and checks the wire invariants of what our end sends;
//! - [`openssl`]: `openssl` and `curl` as child processes, and the PEM files they read;
//! - [`rsa`]: an RSA certificate (the TLS 1.2 `ECDHE_RSA` suites need one), and configs
//!   that can agree on one given cipher suite only.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod counting;
pub mod forger;
pub mod openssl;
#[cfg(feature = "postgres")]
pub mod postgres_server;
pub mod records;
pub mod rng;
pub mod rsa;
pub mod transport;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use lazytls::rustls::server::WebPkiClientVerifier;
use lazytls::rustls::{
    self, ClientConfig, ProtocolVersion, RootCertStore, ServerConfig, SupportedCipherSuite,
    SupportedProtocolVersion,
};
use lazytls::{Error, TlsAcceptor, TlsConnector, TlsStream};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The provider of the enabled crypto feature (aws-lc-rs first).
pub fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Arc::new(rustls::crypto::ring::default_provider());
}

pub static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
#[cfg(feature = "tls12")]
pub static TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// The protocol versions to run each versioned test under.
pub fn versions() -> Vec<&'static [&'static SupportedProtocolVersion]> {
    #[cfg(feature = "tls12")]
    return vec![TLS12, TLS13];
    #[cfg(not(feature = "tls12"))]
    return vec![TLS13];
}

/// The name of the one protocol version a run pins, for messages: `TLS 1.3` or `TLS 1.2`.
pub fn vname(v: &[&'static SupportedProtocolVersion]) -> &'static str {
    if version_of(v) == ProtocolVersion::TLSv1_3 {
        "TLS 1.3"
    } else {
        "TLS 1.2"
    }
}

/// The one protocol version a run pins (each element of [`versions`] has one).
pub fn version_of(v: &[&'static SupportedProtocolVersion]) -> ProtocolVersion {
    assert_eq!(v.len(), 1, "each run pins one protocol version");
    v[0].version
}

/// Every suite of the provider for `version` (there must be one).
pub fn suites(version: ProtocolVersion) -> Vec<SupportedCipherSuite> {
    let suites: Vec<_> = provider()
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.version().version == version)
        .collect();
    assert!(
        !suites.is_empty(),
        "the provider offers no {version:?} suite"
    );
    suites
}

/// The provider with only `suite` left.
pub fn provider_with_only(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![suite],
        ..(*provider()).clone()
    })
}

/// A server on `versions` with one certificate chain, and no client authentication.
pub fn single_cert_server(
    versions: &[&'static SupportedProtocolVersion],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> ServerConfig {
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client certificate, made fresh.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub ca_pem: String,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Vec<u8>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key: Vec<u8>,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "lazytls test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["client.test".to_string()]).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "lazytls test client");
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

        Pki {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            server_chain: vec![server_cert.der().clone()],
            server_key: server_key.serialize_der(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_chain: vec![client_cert.der().clone()],
            client_key: client_key.serialize_der(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }

    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.server_key.clone()).into()
    }

    pub fn client_key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.client_key.clone()).into()
    }

    pub fn server_config_with(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> ServerConfig {
        single_cert_server(versions, self.server_chain.clone(), self.server_key())
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::new(self.server_config_with(rustls::DEFAULT_VERSIONS))
    }

    /// A server that requires a client certificate from our CA.
    pub fn mtls_server_config(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()), provider())
                .build()
                .unwrap();
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(self.server_chain.clone(), self.server_key())
                .unwrap(),
        )
    }

    pub fn client_config_with(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> ClientConfig {
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(self.roots())
            .with_no_client_auth()
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::new(self.client_config_with(rustls::DEFAULT_VERSIONS))
    }

    /// A client that presents our client certificate.
    pub fn mtls_client_config(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(self.roots())
                .with_client_auth_cert(self.client_chain.clone(), self.client_key())
                .unwrap(),
        )
    }
}

pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// A client and a server stream over an in-memory duplex pipe.
pub fn duplex_pair(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> (
    TlsStream<tokio::io::DuplexStream>,
    TlsStream<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        TlsConnector::new(client).connect(localhost(), a),
        TlsAcceptor::new(server).accept(b),
    )
}

/// A loopback TCP connection: (client end, server end).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

/// `fut` under a bound of `secs` seconds: past it, the test fails instead of hanging.
pub async fn within<F: std::future::Future>(secs: u64, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: did not finish within {secs} s"),
    }
}

/// Every test future runs under this bound (or [`within`] a longer one), so a bug shows
/// as a failure, not a hang.
pub async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    within(30, what, fut).await
}

/// The typed error inside an `io::Error` of ours (from a read or write).
pub fn typed(e: &io::Error) -> &Error {
    Error::from_io(e).unwrap_or_else(|| panic!("io::Error without a typed lazytls::Error: {e:?}"))
}

/// Writes (and flushes) `data` on `w` while reading as many bytes from `r`; both results.
pub async fn write_while_reading<W, R>(
    w: &mut W,
    r: &mut R,
    data: &[u8],
) -> (io::Result<()>, io::Result<Vec<u8>>)
where
    W: AsyncWrite + Unpin + ?Sized,
    R: AsyncRead + Unpin + ?Sized,
{
    tokio::join!(
        async {
            w.write_all(data).await?;
            w.flush().await
        },
        async {
            let mut got = vec![0; data.len()];
            r.read_exact(&mut got).await.map(|_| got)
        }
    )
}

/// Compares without printing megabytes on failure.
pub fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first differing byte at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Echoes what `r` reads to `w` (flushing each piece) until `r` ends or fails. For
/// servers in tests whose client checks the echo.
pub async fn echo_to_end<R, W>(r: &mut R, w: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; 4096];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
    }
}
