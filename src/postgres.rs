//! TLS for tokio-postgres (the `postgres` feature): [`MakeTlsConnector`] is tokio-postgres's
//! `MakeTlsConnect` over a lazytls [`TlsConnector`], as tokio-postgres-rustls is over
//! tokio-rustls.
//!
//! ```no_run
//! # async fn run(config: std::sync::Arc<lazytls::rustls::ClientConfig>)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use lazytls::TlsConnector;
//! use lazytls::postgres::{ConnectError, MakeTlsConnector};
//!
//! let connector = TlsConnector::new(config).handshake_timeout(Duration::from_secs(10));
//! let tls = MakeTlsConnector::new(connector);
//! let url = "postgres://app:secret@db.example.com/app?sslmode=require&channel_binding=require";
//! let (client, connection) = match tokio_postgres::connect(url, tls).await {
//!     Ok(pair) => pair,
//!     Err(e) => {
//!         if let Some(cert) = ConnectError::find(&e).and_then(|c| c.certificate_error()) {
//!             eprintln!("the server's certificate was refused: {cert:?}");
//!         }
//!         return Err(e.into());
//!     }
//! };
//! tokio::spawn(connection); // it carries the connection's I/O
//! let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
//! assert_eq!(one, 1);
//! # Ok(()) }
//! ```
//!
//! The handshake runs inside tokio-postgres's connect (eagerly, unlike the rest of the
//! crate), right after the server has agreed to TLS, so a refused certificate fails the
//! connect with [`ConnectError::Handshake`] and the connector's `handshake_timeout` bounds it.
//! The connector works over tokio-postgres's `Socket` and over any other stream
//! (`Config::connect_raw`).
//!
//! # Channel binding
//!
//! The stream offers `tls-server-end-point` channel binding (RFC 5929), so tokio-postgres can
//! authenticate with SCRAM-SHA-256-PLUS and `channel_binding=require` works: the password
//! exchange is then tied to the server's certificate, and a man in the middle holding another
//! certificate cannot relay it. The binding is a hash of the server's end-entity certificate
//! (RFC 5929 §4.1): with the hash of the certificate's signature algorithm (SHA-384 for
//! `ecdsa-with-SHA384` or `sha384WithRSAEncryption`, SHA-512 for SHA-512, the PSS parameters'
//! hash for RSASSA-PSS, as PostgreSQL's server computes it), and SHA-256 where that hash is
//! MD5 or SHA-1.
//!
//! There is **no binding** (`ChannelBinding::none()`) when the certificate's signature
//! algorithm has no single hash (Ed25519, Ed448) or is one this module does not know, when
//! the certificate cannot be parsed, or when no implementation of the hash is at hand. Then
//! `channel_binding=prefer` (tokio-postgres's default) authenticates without binding, and
//! `channel_binding=require` fails to connect.
//!
//! The hash is computed by the crypto provider of the connector's `ClientConfig` when one of
//! its cipher suites uses that hash (rustls's providers have SHA-256, and SHA-384 with their
//! AES-256 suites), so a FIPS, HSM-backed or other custom provider is the one that hashes.
//! No TLS cipher suite uses SHA-512, so for a hash the provider does not have, lazytls uses
//! the crypto crate it was built with (aws-lc-rs or ring, whichever its record layer uses);
//! a build with neither gives no binding then. The certificate is public, so nothing secret
//! passes through that hash.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::SupportedCipherSuite;
use rustls::crypto::CryptoProvider;
use rustls::crypto::hash::{Hash, HashAlgorithm};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use x509_parser::asn1_rs::{Oid, oid};
use x509_parser::oid_registry as oids;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::AlgorithmIdentifier;

use crate::{Error, TlsConnector, TlsStream};

/// tokio-postgres's `MakeTlsConnect` over a lazytls [`TlsConnector`]: pass it to
/// `tokio_postgres::connect` or `Config::connect` (see the [module docs](self)).
///
/// Cheap to clone: it shares the connector's config.
#[derive(Clone, Debug)]
pub struct MakeTlsConnector {
    connector: TlsConnector,
}

impl MakeTlsConnector {
    /// Connects with `connector`: its config (trust roots, protocol versions, client
    /// certificate) and its options (`handshake_timeout`, `shutdown_token`, the record layer).
    pub fn new(connector: TlsConnector) -> Self {
        MakeTlsConnector { connector }
    }

    /// The connector each connection is made with.
    pub fn connector(&self) -> &TlsConnector {
        &self.connector
    }
}

impl From<TlsConnector> for MakeTlsConnector {
    fn from(connector: TlsConnector) -> Self {
        MakeTlsConnector::new(connector)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MakeTlsConnect<S> for MakeTlsConnector {
    type Stream = PostgresTlsStream<S>;
    type TlsConnect = HostTlsConnector;
    type Error = Infallible;

    /// Never fails. tokio-postgres calls this for every connection, TLS or not (with an
    /// empty name for a Unix socket, where the server declines TLS), so the name is judged
    /// only when a TLS connection is made: a host that is no valid server name can still
    /// connect in plaintext.
    fn make_tls_connect(&mut self, domain: &str) -> Result<HostTlsConnector, Infallible> {
        Ok(HostTlsConnector {
            connector: self.connector.clone(),
            host: domain.to_owned(),
        })
    }
}

/// tokio-postgres's `TlsConnect` for one host, made by [`MakeTlsConnector`].
#[derive(Clone, Debug)]
pub struct HostTlsConnector {
    connector: TlsConnector,
    host: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsConnect<S> for HostTlsConnector {
    type Stream = PostgresTlsStream<S>;
    type Error = ConnectError;
    type Future = ConnectFuture<S>;

    /// The host is the TLS server name (a DNS name, or an IP address, for which no SNI is
    /// sent and the certificate's IP addresses are checked).
    fn connect(self, stream: S) -> ConnectFuture<S> {
        let provider = self.connector.config().crypto_provider().clone();
        match server_name(&self.host) {
            Some(name) => ConnectFuture {
                stream: Some(self.connector.connect(name, stream)),
                provider,
                invalid_name: None,
            },
            None => ConnectFuture {
                stream: None,
                provider,
                invalid_name: Some(self.host),
            },
        }
    }
}

/// The server name for a tokio-postgres host: IPv6 brackets are stripped, and an IP
/// address becomes [`ServerName::IpAddress`].
fn server_name(host: &str) -> Option<ServerName<'static>> {
    let bare = (host.strip_prefix('['))
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned()).ok()
}

/// The future of [`HostTlsConnector`]'s `connect`: the whole handshake.
///
/// # Cancellation safety
///
/// Dropping it drops the connection, handshake and all.
#[must_use = "futures do nothing unless polled"]
pub struct ConnectFuture<S> {
    /// Until the handshake ends.
    stream: Option<TlsStream<S>>,
    provider: Arc<CryptoProvider>,
    /// A host that is no server name: the first poll reports it.
    invalid_name: Option<String>,
}

impl<S> fmt::Debug for ConnectFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectFuture")
            .field("stream", &self.stream)
            .field("invalid_name", &self.invalid_name)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for ConnectFuture<S> {
    type Output = Result<PostgresTlsStream<S>, ConnectError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(host) = this.invalid_name.take() {
            return Poll::Ready(Err(ConnectError::InvalidServerName(host)));
        }
        let stream = (this.stream.as_mut()).expect("ConnectFuture polled after completion");
        let handshake = ready!(stream.poll_handshake(cx));
        let stream = this.stream.take().expect("checked above");
        Poll::Ready(match handshake {
            Ok(()) => Ok(PostgresTlsStream {
                stream,
                provider: this.provider.clone(),
            }),
            Err(e) => Err(ConnectError::Handshake(e)),
        })
    }
}

/// Why [`MakeTlsConnector`] could not make a TLS connection.
///
/// tokio-postgres reports it as a TLS error whose source is this error: find it with
/// [`ConnectError::find`]. A handshake failure keeps lazytls's typed [`Error`], and through
/// it rustls's.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The host is neither a valid DNS name nor an IP address, so there is no name to check
    /// the server's certificate against.
    InvalidServerName(String),
    /// The TLS handshake failed: an untrusted certificate or wrong host
    /// ([`Error::Tls`] with rustls's `InvalidCertificate`), a timeout
    /// ([`Error::HandshakeTimeout`]), the server closing the connection
    /// ([`Error::HandshakeEof`]), …
    Handshake(Error),
}

impl ConnectError {
    /// The first `ConnectError` in `err`'s source chain (including `err` itself), such as
    /// the one inside a `tokio_postgres::Error`.
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a ConnectError> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<ConnectError>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }

    /// The handshake's error, if the handshake failed.
    pub fn tls_error(&self) -> Option<&Error> {
        match self {
            ConnectError::Handshake(e) => Some(e),
            ConnectError::InvalidServerName(_) => None,
        }
    }

    /// The reason the server's certificate was rejected, if it was (`UnknownIssuer` for an
    /// untrusted certificate, `NotValidForName` or `NotValidForNameContext` for a wrong host).
    pub fn certificate_error(&self) -> Option<&rustls::CertificateError> {
        match self {
            ConnectError::Handshake(Error::Tls(rustls::Error::InvalidCertificate(e))) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidServerName(h) => write!(f, "`{h}` is not a valid server name"),
            ConnectError::Handshake(e) => write!(f, "tls handshake failed: {e}"),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectError::Handshake(e) => Some(e),
            ConnectError::InvalidServerName(_) => None,
        }
    }
}

/// A TLS connection to PostgreSQL, after its handshake: the stream tokio-postgres reads and
/// writes, and the source of its channel binding.
pub struct PostgresTlsStream<S> {
    stream: TlsStream<S>,
    /// The connector config's provider, which hashes the channel binding.
    provider: Arc<CryptoProvider>,
}

impl<S> PostgresTlsStream<S> {
    /// The TLS stream, for its [`info`](TlsStream::info) (version, suite, the server's
    /// certificates).
    pub fn get_ref(&self) -> &TlsStream<S> {
        &self.stream
    }

    /// The TLS stream, mutably.
    pub fn get_mut(&mut self) -> &mut TlsStream<S> {
        &mut self.stream
    }

    /// The TLS stream.
    pub fn into_inner(self) -> TlsStream<S> {
        self.stream
    }
}

impl<S> fmt::Debug for PostgresTlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTlsStream")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PostgresTlsStream<S> {
    /// `tls-server-end-point` from the server's end-entity certificate, or none (see the
    /// [module docs](self#channel-binding)). Computed when asked: tokio-postgres asks once,
    /// and only for SCRAM authentication.
    fn channel_binding(&self) -> ChannelBinding {
        let certificate = (self.stream.info())
            .and_then(|info| info.peer_certificates.as_deref())
            .and_then(<[_]>::first);
        match certificate.and_then(|cert| tls_server_end_point(&self.provider, cert)) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PostgresTlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PostgresTlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// RFC 5929's `tls-server-end-point` for `certificate` (DER): its hash with the
/// algorithm [`end_point_hash`] picks, by `provider` when it has that hash.
fn tls_server_end_point(provider: &CryptoProvider, certificate: &[u8]) -> Option<Vec<u8>> {
    let algorithm = end_point_hash(certificate)?;
    match provider_hash(provider, algorithm) {
        Some(hash) => Some(hash.hash(certificate).as_ref().to_vec()),
        None => builtin_digest(algorithm, certificate),
    }
}

/// A hash of `algorithm` from the provider's cipher suites (a provider has no other).
fn provider_hash(provider: &CryptoProvider, algorithm: HashAlgorithm) -> Option<&'static dyn Hash> {
    (provider.cipher_suites.iter())
        .filter_map(suite_hash)
        .find(|hash| hash.algorithm() == algorithm)
}

fn suite_hash(suite: &SupportedCipherSuite) -> Option<&'static dyn Hash> {
    // rustls has a TLS 1.2 variant whenever any crate in the build enables its `tls12`,
    // whatever our own feature says; without ours, such suites are not searched.
    #[allow(unreachable_patterns)]
    match suite {
        SupportedCipherSuite::Tls13(s) => Some(s.common.hash_provider),
        #[cfg(feature = "tls12")]
        SupportedCipherSuite::Tls12(s) => Some(s.common.hash_provider),
        _ => None,
    }
}

/// The hash RFC 5929 §4.1 names for a certificate: the one of its signature algorithm, with
/// MD5 and SHA-1 replaced by SHA-256. `None` for an algorithm without a single hash, one
/// not known here, or a certificate that does not parse.
fn end_point_hash(certificate: &[u8]) -> Option<HashAlgorithm> {
    let (_, cert) = X509Certificate::from_der(certificate).ok()?;
    end_point_hash_for(&cert.signature_algorithm)
}

fn end_point_hash_for(signature: &AlgorithmIdentifier<'_>) -> Option<HashAlgorithm> {
    Some(match signature_hash(signature)? {
        HashAlgorithm::MD5 | HashAlgorithm::SHA1 => HashAlgorithm::SHA256,
        other => other,
    })
}

/// The one hash of a signature algorithm.
fn signature_hash(signature: &AlgorithmIdentifier<'_>) -> Option<HashAlgorithm> {
    if signature.algorithm != oids::OID_PKCS1_RSASSAPSS {
        return lookup(SIGNATURES, &signature.algorithm);
    }
    // PSS names its hash in its parameters (SHA-1 when absent, RFC 4055). Its MGF1 may name
    // another; PostgreSQL's server (OpenSSL's `X509_get_signature_info`) binds with the
    // first, so we do too, or binding would fail against it.
    let params = RsaSsaPssParams::try_from(signature.parameters.as_ref()?).ok()?;
    lookup(DIGESTS, params.hash_algorithm_oid())
}

fn lookup(table: &[(Oid<'static>, HashAlgorithm)], oid: &Oid<'_>) -> Option<HashAlgorithm> {
    table
        .iter()
        .find(|(known, _)| known == oid)
        .map(|(_, hash)| *hash)
}

/// Signature algorithms with a single hash, and that hash. Ed25519 and Ed448 hash with
/// none of their own, so they are not here.
static SIGNATURES: &[(Oid<'static>, HashAlgorithm)] = &[
    (oids::OID_PKCS1_MD5WITHRSAENC, HashAlgorithm::MD5),
    (oids::OID_MD5_WITH_RSA, HashAlgorithm::MD5),
    (oids::OID_PKCS1_SHA1WITHRSA, HashAlgorithm::SHA1),
    (oids::OID_SHA1_WITH_RSA, HashAlgorithm::SHA1),
    (oid!(1.2.840.10045.4.1), HashAlgorithm::SHA1), // ecdsa-with-SHA1
    (oids::OID_SIG_DSA_WITH_SHA1, HashAlgorithm::SHA1),
    (oids::OID_PKCS1_SHA224WITHRSA, HashAlgorithm::SHA224),
    (oids::OID_SIG_ECDSA_WITH_SHA224, HashAlgorithm::SHA224),
    (oids::OID_PKCS1_SHA256WITHRSA, HashAlgorithm::SHA256),
    (oids::OID_SIG_ECDSA_WITH_SHA256, HashAlgorithm::SHA256),
    (oid!(2.16.840.1.101.3.4.3.2), HashAlgorithm::SHA256), // dsa-with-sha256
    (oids::OID_PKCS1_SHA384WITHRSA, HashAlgorithm::SHA384),
    (oids::OID_SIG_ECDSA_WITH_SHA384, HashAlgorithm::SHA384),
    (oids::OID_PKCS1_SHA512WITHRSA, HashAlgorithm::SHA512),
    (oids::OID_SIG_ECDSA_WITH_SHA512, HashAlgorithm::SHA512),
];

/// Hash algorithms, for the parameters of RSASSA-PSS.
static DIGESTS: &[(Oid<'static>, HashAlgorithm)] = &[
    (oids::OID_HASH_SHA1, HashAlgorithm::SHA1),
    (oid!(2.16.840.1.101.3.4.2.4), HashAlgorithm::SHA224), // id-sha224
    (oids::OID_NIST_HASH_SHA256, HashAlgorithm::SHA256),
    (oids::OID_NIST_HASH_SHA384, HashAlgorithm::SHA384),
    (oids::OID_NIST_HASH_SHA512, HashAlgorithm::SHA512),
];

/// `algorithm` from the crypto crate lazytls was built with, for a hash that the config's
/// provider lacks.
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
fn builtin_digest(algorithm: HashAlgorithm, data: &[u8]) -> Option<Vec<u8>> {
    #[cfg(feature = "aws-lc-rs")]
    use aws_lc_rs::digest;
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    use ring::digest;

    let algorithm = match algorithm {
        HashAlgorithm::SHA256 => &digest::SHA256,
        HashAlgorithm::SHA384 => &digest::SHA384,
        HashAlgorithm::SHA512 => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
fn builtin_digest(_: HashAlgorithm, _: &[u8]) -> Option<Vec<u8>> {
    None
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use x509_parser::asn1_rs::Any;

    use super::*;

    const RSA_TEST_KEY: &str = include_str!("../tests/common/rsa_test_key.pem");

    fn provider() -> CryptoProvider {
        #[cfg(feature = "aws-lc-rs")]
        return rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
        return rustls::crypto::ring::default_provider();
    }

    /// A server certificate issued by a CA whose key signs with `alg`.
    fn issued_with(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let ca_key = match KeyPair::generate_for(alg) {
            Ok(key) => key,
            // ring cannot generate RSA keys.
            Err(_) => KeyPair::from_pem_and_sign_algo(RSA_TEST_KEY, alg).unwrap(),
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params
            .signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap();
        cert.der().to_vec()
    }

    #[test]
    fn the_hash_is_the_certificate_signatures() {
        let cases = [
            (&rcgen::PKCS_ECDSA_P256_SHA256, Some(HashAlgorithm::SHA256)),
            (&rcgen::PKCS_ECDSA_P384_SHA384, Some(HashAlgorithm::SHA384)),
            (&rcgen::PKCS_RSA_SHA256, Some(HashAlgorithm::SHA256)),
            (&rcgen::PKCS_RSA_SHA384, Some(HashAlgorithm::SHA384)),
            (&rcgen::PKCS_RSA_SHA512, Some(HashAlgorithm::SHA512)),
            (&rcgen::PKCS_ED25519, None),
        ];
        for (alg, want) in cases {
            assert_eq!(end_point_hash(&issued_with(alg)), want, "{alg:?}");
        }
        assert_eq!(end_point_hash(b"not a certificate"), None);
    }

    #[test]
    fn md5_and_sha1_become_sha256() {
        for oid in [
            oids::OID_PKCS1_MD5WITHRSAENC,
            oids::OID_PKCS1_SHA1WITHRSA,
            oids::OID_SIG_DSA_WITH_SHA1,
            oid!(1.2.840.10045.4.1),
        ] {
            let alg = AlgorithmIdentifier::new(oid, None);
            assert_eq!(
                end_point_hash_for(&alg),
                Some(HashAlgorithm::SHA256),
                "{alg:?}"
            );
        }
        let unknown = AlgorithmIdentifier::new(oid!(1.2.3.4), None);
        assert_eq!(end_point_hash_for(&unknown), None);
    }

    #[test]
    fn pss_binds_with_its_parameters_hash() {
        // From `openssl req -x509 -sigopt rsa_padding_mode:pss -sha384`: RSASSA-PSS with
        // SHA-384, MGF1 with SHA-384, salt length 48.
        const PSS_SHA384: &[u8] = &[
            0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
            0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
            0x02, 0x02, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
            0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
            0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30,
        ];
        let (_, alg) = AlgorithmIdentifier::from_der(PSS_SHA384).unwrap();
        assert_eq!(end_point_hash_for(&alg), Some(HashAlgorithm::SHA384));

        // Empty parameters: every field takes its default, SHA-1, which binds as SHA-256.
        let (_, empty) = Any::from_der(&[0x30, 0x00]).unwrap();
        let alg = AlgorithmIdentifier::new(oids::OID_PKCS1_RSASSAPSS, Some(empty));
        assert_eq!(end_point_hash_for(&alg), Some(HashAlgorithm::SHA256));

        let alg = AlgorithmIdentifier::new(oids::OID_PKCS1_RSASSAPSS, None);
        assert_eq!(
            end_point_hash_for(&alg),
            None,
            "PSS requires its parameters"
        );
    }

    #[test]
    fn the_providers_hash_is_used_and_agrees_with_the_builtin_one() {
        let provider = provider();
        let sha256 = provider_hash(&provider, HashAlgorithm::SHA256).expect("SHA-256 suites");
        // FIPS 180-2's "abc" vector.
        assert_eq!(
            sha256.hash(b"abc").as_ref()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(abc)"
        );
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        ] {
            let cert = issued_with(alg);
            let hash = end_point_hash(&cert).unwrap();
            let by_provider = provider_hash(&provider, hash).expect("the provider has it");
            let binding = tls_server_end_point(&provider, &cert).unwrap();
            assert_eq!(binding, by_provider.hash(&cert).as_ref());
            assert_eq!(Some(binding), builtin_digest(hash, &cert), "{alg:?}");
        }
    }

    #[test]
    fn a_hash_the_provider_lacks_comes_from_the_builtin_crate() {
        // No TLS suite uses SHA-512.
        assert!(provider_hash(&provider(), HashAlgorithm::SHA512).is_none());
        let cert = issued_with(&rcgen::PKCS_RSA_SHA512);
        let binding = tls_server_end_point(&provider(), &cert).unwrap();
        assert_eq!(binding.len(), 64);

        // A provider cut down to one SHA-256 suite has no SHA-384.
        let sha256_only = CryptoProvider {
            cipher_suites: (provider().cipher_suites.into_iter())
                .filter(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
                .collect(),
            ..provider()
        };
        assert!(provider_hash(&sha256_only, HashAlgorithm::SHA384).is_none());
        let cert = issued_with(&rcgen::PKCS_ECDSA_P384_SHA384);
        let binding = tls_server_end_point(&sha256_only, &cert).unwrap();
        assert_eq!(Some(binding), tls_server_end_point(&provider(), &cert));
    }

    #[test]
    fn no_binding_for_ed25519() {
        let cert = issued_with(&rcgen::PKCS_ED25519);
        assert_eq!(tls_server_end_point(&provider(), &cert), None);
    }

    #[test]
    fn server_names_from_hosts() {
        let ip = |s: &str| ServerName::IpAddress(s.parse::<std::net::IpAddr>().unwrap().into());
        assert_eq!(server_name("127.0.0.1"), Some(ip("127.0.0.1")));
        assert_eq!(server_name("[::1]"), Some(ip("::1")));
        assert_eq!(server_name("::1"), Some(ip("::1")));
        assert_eq!(
            server_name("db.example.com"),
            Some(ServerName::try_from("db.example.com").unwrap())
        );
        assert_eq!(server_name(""), None);
        assert_eq!(server_name("bad name"), None);
    }
}
