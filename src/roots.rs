//! Trust roots for client configs, each behind its own feature (`webpki-roots`,
//! `native-roots`, `platform-verifier`), in the style of hyper-rustls's `ConfigBuilderExt`.

use rustls::client::WantsClientCert;
use rustls::{ClientConfig, ConfigBuilder, WantsVerifier};

/// Trust-root helpers for a client configuration builder, each behind its own feature.
/// They use the builder's crypto provider, so they work with `builder_with_provider`.
///
/// ```no_run
/// # #[cfg(feature = "webpki-roots")]
/// # fn f(provider: std::sync::Arc<lazytls::rustls::crypto::CryptoProvider>)
/// #     -> Result<(), lazytls::rustls::Error> {
/// use lazytls::roots::ConfigBuilderExt;
/// use lazytls::rustls::ClientConfig;
///
/// let config = ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()?
///     .with_webpki_roots()
///     .with_no_client_auth();
/// # let _ = config;
/// # Ok(()) }
/// ```
pub trait ConfigBuilderExt {
    /// Trusts the Mozilla roots compiled into the `webpki-roots` crate. Infallible:
    /// the roots are built in.
    #[cfg(feature = "webpki-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webpki-roots")))]
    fn with_webpki_roots(self) -> ConfigBuilder<ClientConfig, WantsClientCert>;

    /// Trusts the operating system's root certificates, loaded by
    /// `rustls-native-certs` (on Linux, from the usual files, or `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR`). Certificates that do not parse are skipped. Fails, without
    /// panicking, when no usable root is found.
    #[cfg(feature = "native-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
    fn with_native_roots(
        self,
    ) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, std::io::Error>;

    /// Verifies certificates with the platform's verifier (`rustls-platform-verifier`:
    /// the OS's own on macOS, Windows and Android; webpki over the system roots
    /// elsewhere). Fails, without panicking, when it cannot be set up.
    #[cfg(feature = "platform-verifier")]
    #[cfg_attr(docsrs, doc(cfg(feature = "platform-verifier")))]
    fn with_platform_verifier(
        self,
    ) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, rustls::Error>;
}

impl ConfigBuilderExt for ConfigBuilder<ClientConfig, WantsVerifier> {
    #[cfg(feature = "webpki-roots")]
    fn with_webpki_roots(self) -> ConfigBuilder<ClientConfig, WantsClientCert> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        self.with_root_certificates(roots)
    }

    #[cfg(feature = "native-roots")]
    fn with_native_roots(
        self,
    ) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, std::io::Error> {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            let why = match loaded.errors.first() {
                Some(e) => format!("no usable native root certificates: {e}"),
                None => "no native root certificates found".to_owned(),
            };
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, why));
        }
        Ok(self.with_root_certificates(roots))
    }

    #[cfg(feature = "platform-verifier")]
    fn with_platform_verifier(
        self,
    ) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, rustls::Error> {
        rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(self)
    }
}
