//! The logic of lazytls's fuzz targets, as a library for the cargo-fuzz binaries in
//! `fuzz_targets/`. The same file (`targets.rs`) is included by the crate's own tests
//! (`src/fuzz_tests/`), so `cargo test` runs these checks on generated cases even where
//! cargo-fuzz cannot run.
//!
//! Build and run (needs `--cfg fuzzing`, which cargo-fuzz sets, and a nightly compiler or
//! `RUSTC_BOOTSTRAP=1` for the sanitizer flags):
//!
//! ```sh
//! cargo install cargo-fuzz
//! RUSTC_BOOTSTRAP=1 cargo fuzz build
//! RUSTC_BOOTSTRAP=1 cargo fuzz run native_records -- -max_total_time=20
//! ```

include!("targets.rs");

/// The differential target `record_diff` (see `differential.rs`).
pub mod differential {
    use super::*;

    /// The RSA key of the test suites, for the TLS 1.2 `ECDHE_RSA` suites.
    const RSA_TEST_KEY: &str = include_str!("../../tests/common/rsa_test_key.pem");

    include!("differential.rs");
}

/// The API-level checker `api_sequences` (see `sequences/checker.rs`).
pub mod sequences {
    use super::*;

    include!("sequences/checker.rs");
    include!("sequences/peers.rs");
    include!("sequences/ours.rs");
    include!("sequences/run.rs");
}
