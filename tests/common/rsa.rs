//! An RSA identity for the TLS 1.2 `ECDHE_RSA` suites (ring cannot generate RSA keys, so
//! the key is embedded), and client and server configs that can agree on one given cipher
//! suite only.

use lazytls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use lazytls::rustls::{
    ClientConfig, RootCertStore, ServerConfig, SignatureAlgorithm, SupportedCipherSuite,
    SupportedProtocolVersion,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use super::{Pki, provider_with_only, single_cert_server};

/// A test-only RSA-2048 key (no secret: it protects nothing).
pub const RSA_TEST_KEY: &str = include_str!("rsa_test_key.pem");

/// A server certificate for `localhost` on [`RSA_TEST_KEY`], issued by a fresh CA, and
/// roots that trust that CA.
pub struct RsaPki {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub roots: RootCertStore,
}

impl RsaPki {
    pub fn new() -> RsaPki {
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
        RsaPki {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            roots,
        }
    }

    pub fn server_config_with(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> ServerConfig {
        single_cert_server(versions, self.chain.clone(), self.key.clone_key().into())
    }
}

/// Client and server configs that can only agree on one suite.
pub struct SuiteConfigs {
    pki: Pki,
    rsa: RsaPki,
}

impl SuiteConfigs {
    pub fn new() -> SuiteConfigs {
        SuiteConfigs {
            pki: Pki::new(),
            rsa: RsaPki::new(),
        }
    }

    /// A server with a certificate `suite` can use, and a client that offers `suite` alone,
    /// both on `suite`'s protocol version.
    pub fn for_suite(&self, suite: SupportedCipherSuite) -> (ClientConfig, ServerConfig) {
        let versions = &[suite.version()][..];
        // TLS 1.2 suites fix the certificate's key type; TLS 1.3 suites do not.
        let (server, roots) = if suite.usable_for_signature_algorithm(SignatureAlgorithm::ECDSA) {
            (self.pki.server_config_with(versions), self.pki.roots())
        } else {
            assert!(suite.usable_for_signature_algorithm(SignatureAlgorithm::RSA));
            (
                self.rsa.server_config_with(versions),
                self.rsa.roots.clone(),
            )
        };
        let client = ClientConfig::builder_with_provider(provider_with_only(suite))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (client, server)
    }
}
