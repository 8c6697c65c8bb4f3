//! The stand-in for a build without an AEAD crate: no cipher can be built, so the native
//! record layer is never used and rustls carries every record.

use rustls::{ConnectionTrafficSecrets, SupportedCipherSuite};

use super::{Algorithm, BadMac, NONCE_LEN, TAG_LEN};

/// This build cannot carry records natively.
pub(crate) const AVAILABLE: bool = false;

/// No suite is ours without an AEAD crate.
pub(crate) fn is_provider_suite(_: SupportedCipherSuite) -> bool {
    false
}

/// A cipher that is never built: [`Cipher::new`] and [`Cipher::from_parts`] refuse, so
/// no other method can be called. (Not an empty enum: the compiler would then call every
/// use in the record layer unreachable code.)
#[derive(Debug)]
pub(crate) struct Cipher {
    _never_built: (),
}

const NEVER: &str = "no cipher is built without an AEAD crate";

impl Cipher {
    pub(crate) fn new(_: &ConnectionTrafficSecrets) -> Option<Cipher> {
        None
    }

    #[allow(
        dead_code,
        reason = "the record layer's test hooks build ciphers from raw keys"
    )]
    pub(crate) fn from_parts(_: Algorithm, _: &[u8], _: &[u8]) -> Option<Cipher> {
        None
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        unreachable!("{NEVER}")
    }

    pub(crate) fn nonce(&self, _: u64) -> [u8; NONCE_LEN] {
        unreachable!("{NEVER}")
    }

    pub(crate) fn nonce_with_explicit(&self, _: &[u8]) -> [u8; NONCE_LEN] {
        unreachable!("{NEVER}")
    }

    pub(crate) fn seal(&self, _: [u8; NONCE_LEN], _: &[u8], _: &mut [u8]) -> [u8; TAG_LEN] {
        unreachable!("{NEVER}")
    }

    pub(crate) fn open(&self, _: [u8; NONCE_LEN], _: &[u8], _: &mut [u8]) -> Result<usize, BadMac> {
        unreachable!("{NEVER}")
    }
}
