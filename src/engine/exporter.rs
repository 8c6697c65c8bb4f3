//! Keying-material exporters (RFC 5705 for TLS 1.2, RFC 8446 §7.5 for TLS 1.3), computed
//! from the secret the handshake logged (see [`capture`](super::capture)) with the
//! negotiated suite's own HKDF or PRF, so the user's crypto provider is the one used.

#[cfg(feature = "tls12")]
use rustls::Tls12CipherSuite;
use rustls::crypto::tls13::OkmBlock;
use rustls::{SupportedCipherSuite, Tls13CipherSuite};

#[cfg(feature = "tls12")]
use super::capture::ServerHello;
use super::capture::{Captured, Secret};
use crate::error::ExportError;

/// What a completed handshake can export, or why it cannot.
#[derive(Clone)]
pub(crate) enum Exporter {
    Tls13 {
        suite: &'static Tls13CipherSuite,
        secret: Box<Secret>,
    },
    #[cfg(feature = "tls12")]
    Tls12 {
        suite: &'static Tls12CipherSuite,
        secrets: Box<Tls12Secrets>,
    },
    Unavailable(ExportError),
}

#[cfg(feature = "tls12")]
#[derive(Clone)]
pub(crate) struct Tls12Secrets {
    master_secret: Secret,
    /// The client random, then the server random: the PRF's seed starts with them.
    randoms: [u8; 64],
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exporter::Tls13 { .. } => f.write_str("Exporter(TLS 1.3)"),
            #[cfg(feature = "tls12")]
            Exporter::Tls12 { .. } => f.write_str("Exporter(TLS 1.2)"),
            Exporter::Unavailable(why) => write!(f, "Exporter::Unavailable({why:?})"),
        }
    }
}

impl Exporter {
    /// The exporter of a handshake that completed with `suite`, from what it captured.
    pub(crate) fn new(suite: Option<SupportedCipherSuite>, captured: Captured) -> Self {
        let unavailable = Exporter::Unavailable(ExportError::SecretUnavailable);
        match suite {
            Some(SupportedCipherSuite::Tls13(suite)) => match captured.exporter_secret {
                Some(secret) => Exporter::Tls13 { suite, secret },
                None => unavailable,
            },
            #[cfg(feature = "tls12")]
            Some(SupportedCipherSuite::Tls12(suite)) => {
                let Some(logged) = captured.master_secret else {
                    return unavailable;
                };
                let (master_secret, client_random) = *logged;
                let ServerHello::Read {
                    random,
                    extended_master_secret,
                } = captured.server_hello
                else {
                    return unavailable;
                };
                if !extended_master_secret {
                    return Exporter::Unavailable(ExportError::NoExtendedMasterSecret);
                }
                let mut randoms = [0; 64];
                randoms[..32].copy_from_slice(&client_random);
                randoms[32..].copy_from_slice(&random);
                let secrets = Box::new(Tls12Secrets {
                    master_secret,
                    randoms,
                });
                Exporter::Tls12 { suite, secrets }
            }
            // No suite, or TLS 1.2 negotiated by a rustls whose `tls12` feature another
            // crate turned on while ours is off.
            _ => unavailable,
        }
    }

    /// Fills `out` with keying material for `label` and `context`. TLS 1.2 tells no
    /// context from an empty one (RFC 5705 §4); TLS 1.3 does not (RFC 8446 §7.5).
    pub(crate) fn export(
        &self,
        out: &mut [u8],
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Result<(), ExportError> {
        if out.is_empty() {
            return Err(ExportError::EmptyOutput);
        }
        match self {
            Exporter::Tls13 { suite, secret } => tls13(suite, secret, out, label, context),
            #[cfg(feature = "tls12")]
            Exporter::Tls12 { suite, secrets } => {
                let mut seed = secrets.randoms.to_vec();
                if let Some(context) = context {
                    let len =
                        u16::try_from(context.len()).map_err(|_| ExportError::ContextTooLong)?;
                    seed.extend_from_slice(&len.to_be_bytes());
                    seed.extend_from_slice(context);
                }
                let master_secret = secrets.master_secret.as_bytes();
                (suite.prf_provider).for_secret(out, master_secret, label, &seed);
                Ok(())
            }
            Exporter::Unavailable(why) => Err(*why),
        }
    }
}

/// RFC 8446 §7.5: `HKDF-Expand-Label(Derive-Secret(secret, label, ""), "exporter",
/// Hash(context), out.len())`.
fn tls13(
    suite: &Tls13CipherSuite,
    secret: &Secret,
    out: &mut [u8],
    label: &[u8],
    context: Option<&[u8]>,
) -> Result<(), ExportError> {
    let hash = suite.common.hash_provider;
    let hkdf = suite.hkdf_provider;
    let empty_hash = hash.hash(&[]);
    let expander = hkdf.expander_for_okm(&OkmBlock::new(secret.as_bytes()));
    let len = u16::try_from(expander.hash_len()).map_err(|_| ExportError::OutputTooLong)?;
    let info = expand_label_info(len, label, empty_hash.as_ref())?;
    let derived = expander.expand_block(&info.parts());

    let context_hash = hash.hash(context.unwrap_or_default());
    let expander = hkdf.expander_for_okm(&derived);
    let len = u16::try_from(out.len()).map_err(|_| ExportError::OutputTooLong)?;
    let info = expand_label_info(len, b"exporter", context_hash.as_ref())?;
    (expander.expand_slice(&info.parts(), out)).map_err(|_| ExportError::OutputTooLong)
}

/// The `HkdfLabel` of RFC 8446 §7.1, as the pieces HKDF's `info` is made of.
struct LabelInfo<'a> {
    length: [u8; 2],
    label_length: [u8; 1],
    label: &'a [u8],
    context_length: [u8; 1],
    context: &'a [u8],
}

impl<'a> LabelInfo<'a> {
    fn parts(&self) -> [&[u8]; 6] {
        [
            &self.length,
            &self.label_length,
            b"tls13 ",
            self.label,
            &self.context_length,
            self.context,
        ]
    }
}

fn expand_label_info<'a>(
    length: u16,
    label: &'a [u8],
    context: &'a [u8],
) -> Result<LabelInfo<'a>, ExportError> {
    let label_length =
        u8::try_from(b"tls13 ".len() + label.len()).map_err(|_| ExportError::LabelTooLong)?;
    // A hash output always fits; anything else is a provider's bug, not the caller's.
    let context_length = u8::try_from(context.len()).map_err(|_| ExportError::SecretUnavailable)?;
    Ok(LabelInfo {
        length: length.to_be_bytes(),
        label_length: [label_length],
        label,
        context_length: [context_length],
        context,
    })
}
