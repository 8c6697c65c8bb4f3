//! The AEADs of the native record layer, from the provider crate lazytls was built with:
//! aws-lc-rs by default, ring under the `ring` feature (aws-lc-rs wins when both are on).
//! Both crates expose the same `aead` API. Sealing and opening work in place.

use super::{Algorithm, BadMac, NONCE_LEN, TAG_LEN};

/// This build can carry records natively.
pub(crate) const AVAILABLE: bool = true;

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs::aead;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring::aead;

use rustls::{ConnectionTrafficSecrets, SupportedCipherSuite};

/// The rustls provider whose AEAD crate this module uses.
#[cfg(feature = "aws-lc-rs")]
use rustls::crypto::aws_lc_rs as provider;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use rustls::crypto::ring as provider;

/// Whether `suite` is one of the suite objects of the provider this module's AEAD comes
/// from: the very object, not another with the same ID. A config whose provider brings
/// its own suites (a FIPS module, an HSM, an instrumented or another crate's AEAD) meant
/// its own code to encrypt, so the native layer must not carry its records.
pub(crate) fn is_provider_suite(suite: SupportedCipherSuite) -> bool {
    use provider::cipher_suite as named;
    // rustls's suite lists and its named statics are not always one allocation per suite
    // (the lists are built at compile time from copies), so each is a known object.
    let statics = [
        named::TLS13_AES_128_GCM_SHA256,
        named::TLS13_AES_256_GCM_SHA384,
        named::TLS13_CHACHA20_POLY1305_SHA256,
        #[cfg(feature = "tls12")]
        named::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        #[cfg(feature = "tls12")]
        named::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        #[cfg(feature = "tls12")]
        named::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        #[cfg(feature = "tls12")]
        named::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        #[cfg(feature = "tls12")]
        named::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        #[cfg(feature = "tls12")]
        named::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let mut known = (provider::ALL_CIPHER_SUITES.iter())
        .chain(provider::DEFAULT_CIPHER_SUITES)
        .chain(&statics);
    known.any(|own| same_object(*own, suite))
}

fn same_object(a: SupportedCipherSuite, b: SupportedCipherSuite) -> bool {
    // Whether rustls has a TLS 1.2 variant depends on every crate in the build, not on
    // our own `tls12` feature; without that feature TLS 1.2 suites are left to rustls.
    #[allow(unreachable_patterns)]
    match (a, b) {
        (SupportedCipherSuite::Tls13(a), SupportedCipherSuite::Tls13(b)) => std::ptr::eq(a, b),
        #[cfg(feature = "tls12")]
        (SupportedCipherSuite::Tls12(a), SupportedCipherSuite::Tls12(b)) => std::ptr::eq(a, b),
        _ => false,
    }
}

/// One direction's key and static IV.
pub(crate) struct Cipher {
    key: aead::LessSafeKey,
    iv: [u8; NONCE_LEN],
    algorithm: Algorithm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Cipher {
    /// Builds the cipher for extracted traffic secrets; `None` for an algorithm we lack.
    pub(crate) fn new(secrets: &ConnectionTrafficSecrets) -> Option<Cipher> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Algorithm::Aes128Gcm, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Algorithm::Aes256Gcm, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (Algorithm::Chacha20Poly1305, key, iv)
            }
            _ => return None,
        };
        Cipher::from_parts(algorithm, key.as_ref(), iv.as_ref())
    }

    pub(crate) fn from_parts(algorithm: Algorithm, key: &[u8], iv: &[u8]) -> Option<Cipher> {
        let alg = match algorithm {
            Algorithm::Aes128Gcm => &aead::AES_128_GCM,
            Algorithm::Aes256Gcm => &aead::AES_256_GCM,
            Algorithm::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        };
        let key = aead::UnboundKey::new(alg, key).ok()?;
        Some(Cipher {
            key: aead::LessSafeKey::new(key),
            iv: iv.try_into().ok()?,
            algorithm,
        })
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The per-record nonce: the static IV with the sequence number XORed into its last
    /// eight bytes (TLS 1.3, and TLS 1.2 ChaCha20; for TLS 1.2 GCM the last eight bytes
    /// are the explicit nonce, which we derive the same way when sending).
    pub(crate) fn nonce(&self, seq: u64) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// The TLS 1.2 GCM nonce: the 4-byte salt from the IV and the record's explicit part.
    pub(crate) fn nonce_with_explicit(&self, explicit: &[u8]) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        nonce[4..].copy_from_slice(explicit);
        nonce
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                in_out,
            )
            .expect("sealing a record of at most 2^14 bytes cannot fail");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts `ciphertext || tag` in place; returns the plaintext length.
    pub(crate) fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<usize, BadMac> {
        self.key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                in_out,
            )
            .map(|plain| plain.len())
            .map_err(|_| BadMac)
    }
}
