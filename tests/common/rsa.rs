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
pub const RSA_TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
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
