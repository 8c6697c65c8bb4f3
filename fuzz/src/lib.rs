//! The cargo-fuzz binaries' library: lazytls's fuzz targets, whose logic lives in lazytls
//! itself (`lazytls::fuzzing`, hidden, behind its `fuzz-targets` feature), so that the
//! crate's own tests (`src/fuzz_tests/`) run the same checks on generated cases even where
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

pub use lazytls::fuzzing::targets::*;
pub use lazytls::fuzzing::{differential, sequences};
