//! The AEAD seam of the native record layer. With an AEAD crate compiled in (aws-lc-rs or
//! ring), [`provider`] wraps it; without one, a stand-in whose cipher cannot be built
//! keeps the record layer compiling, and [`is_provider_suite`] refuses every suite, so
//! rustls carries the records. These `cfg`s are the only ones on the AEAD features outside tests.

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
mod provider;
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
#[path = "standin.rs"]
mod provider;

pub(crate) use provider::{AVAILABLE, Cipher, is_provider_suite};

pub(crate) const TAG_LEN: usize = 16;
pub(crate) const NONCE_LEN: usize = 12;

/// Which AEAD a direction uses (the key schedule decides the key and IV).
#[cfg_attr(
    not(any(feature = "aws-lc-rs", feature = "ring")),
    allow(
        dead_code,
        reason = "without an AEAD crate no cipher is built from an algorithm"
    )
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

/// The AEAD rejected a record: its tag did not verify.
#[derive(Debug)]
pub(crate) struct BadMac;
