//! `ServerCertificateFiles`: a server config built from PEM files, and built again from
//! them on a reload.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::server::TlsAcceptor;

/// Builds a `ServerConfig` from a certificate chain and its private key.
type BuildConfig = dyn Fn(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) -> Result<ServerConfig, rustls::Error>
    + Send
    + Sync;

/// A server's certificate chain and private key as PEM files, and how to build its
/// `ServerConfig` from them; [`reload`](Self::reload) reads them again and swaps the
/// acceptor's config, as axum-server's `RustlsConfig::reload_from_pem_file` does.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use lazytls::{ServerCertificateFiles, TlsListener};
///
/// let files = ServerCertificateFiles::new("server.pem", "server.key");
/// let listener = TlsListener::bind("127.0.0.1:8443", files.acceptor()?).await?;
/// let acceptor = listener.acceptor().clone();
/// tokio::spawn(async move {
///     let mut hangup =
///         tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
///     while hangup.recv().await.is_some() {
///         // On an error the old certificate goes on serving.
///         match files.reload(&acceptor) {
///             Ok(()) => eprintln!("reloaded the certificate"),
///             Err(e) => eprintln!("reload failed: {e}"),
///         }
///     }
/// });
/// # Ok(()) }
/// ```
///
/// Every load reads both files and checks them whole before anything changes: a missing
/// or unreadable file, PEM without a certificate or a key, or a key that does not belong
/// to the certificate is an error, and the acceptor keeps the config it had. New
/// connections get the new config; established ones keep theirs. A new config also brings
/// new session-ticket keys, so sessions from before a reload resume with a full handshake.
#[derive(Clone)]
pub struct ServerCertificateFiles {
    cert_chain: PathBuf,
    private_key: PathBuf,
    build: Arc<BuildConfig>,
}

impl fmt::Debug for ServerCertificateFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificateFiles")
            .field("cert_chain", &self.cert_chain)
            .field("private_key", &self.private_key)
            .finish_non_exhaustive()
    }
}

impl ServerCertificateFiles {
    /// The chain (end entity first) in `cert_chain`, its key in `private_key` (PKCS#8,
    /// PKCS#1 or SEC1 PEM). The config is rustls's defaults with no client
    /// authentication, on the process's default crypto provider or else the one lazytls
    /// was built with; [`with_builder`](Self::with_builder) sets anything else.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        ServerCertificateFiles {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            build: Arc::new(default_config),
        }
    }

    /// Builds each config with `build`, from the chain and key just read: for ALPN,
    /// client authentication, protocol versions, a provider of your own. End it with
    /// `with_single_cert(chain, key)`, which checks that the key matches the certificate.
    ///
    /// ```
    /// # use lazytls::ServerCertificateFiles;
    /// use lazytls::rustls::ServerConfig;
    ///
    /// let files = ServerCertificateFiles::new("server.pem", "server.key").with_builder(
    ///     |chain, key| {
    ///         let mut config = ServerConfig::builder()
    ///             .with_no_client_auth()
    ///             .with_single_cert(chain, key)?;
    ///         config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    ///         Ok(config)
    ///     },
    /// );
    /// # let _ = files;
    /// ```
    pub fn with_builder<F>(mut self, build: F) -> Self
    where
        F: Fn(
                Vec<CertificateDer<'static>>,
                PrivateKeyDer<'static>,
            ) -> Result<ServerConfig, rustls::Error>
            + Send
            + Sync
            + 'static,
    {
        self.build = Arc::new(build);
        self
    }

    /// The certificate-chain file.
    pub fn cert_chain_path(&self) -> &Path {
        &self.cert_chain
    }

    /// The private-key file.
    pub fn private_key_path(&self) -> &Path {
        &self.private_key
    }

    /// Reads both files and builds the config.
    pub fn load(&self) -> Result<Arc<ServerConfig>, CertificateFilesError> {
        let chain = CertificateDer::pem_file_iter(&self.cert_chain)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|error| CertificateFilesError::Pem {
                path: self.cert_chain.clone(),
                error,
            })?;
        if chain.is_empty() {
            return Err(CertificateFilesError::NoCertificate {
                path: self.cert_chain.clone(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(&self.private_key).map_err(|error| {
            CertificateFilesError::Pem {
                path: self.private_key.clone(),
                error,
            }
        })?;
        let config = (self.build)(chain, key).map_err(CertificateFilesError::Config)?;
        Ok(Arc::new(config))
    }

    /// An acceptor with the config [`load`](Self::load) builds.
    pub fn acceptor(&self) -> Result<TlsAcceptor, CertificateFilesError> {
        Ok(TlsAcceptor::new(self.load()?))
    }

    /// Loads the files again and gives the acceptor (and its clones, the one inside a
    /// listener included) the new config. On an error nothing changes.
    pub fn reload(&self, acceptor: &TlsAcceptor) -> Result<(), CertificateFilesError> {
        acceptor.set_config(self.load()?);
        Ok(())
    }
}

/// [`ServerCertificateFiles::new`]'s config.
fn default_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .or_else(built_in_provider)
        .ok_or_else(|| {
            rustls::Error::General(
                "no crypto provider: install a process default, or build lazytls with aws-lc-rs or ring"
                    .into(),
            )
        })?;
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
}

/// The provider of the crypto feature lazytls was built with, aws-lc-rs first.
fn built_in_provider() -> Option<Arc<CryptoProvider>> {
    #[cfg(feature = "aws-lc-rs")]
    return Some(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return Some(Arc::new(rustls::crypto::ring::default_provider()));
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    None
}

/// Why [`ServerCertificateFiles`] could not build a config.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertificateFilesError {
    /// A file is missing or unreadable, or holds no valid PEM of its kind (no private key
    /// in the key file, say).
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: pem::Error,
    },
    /// The certificate file holds no certificate.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate and key: a key that does not match the
    /// certificate (`InconsistentKeys`), a key type the provider cannot sign with, or an
    /// error of the builder.
    Config(rustls::Error),
}

impl fmt::Display for CertificateFilesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateFilesError::Pem { path, error } => {
                write!(f, "cannot read PEM from {}: {error}", path.display())
            }
            CertificateFilesError::NoCertificate { path } => {
                write!(f, "no certificate in {}", path.display())
            }
            CertificateFilesError::Config(e) => {
                write!(f, "the certificate and key make no server config: {e}")
            }
        }
    }
}

impl std::error::Error for CertificateFilesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CertificateFilesError::Pem { error, .. } => Some(error),
            CertificateFilesError::NoCertificate { .. } => None,
            CertificateFilesError::Config(e) => Some(e),
        }
    }
}
