//! The fuzz targets' logic under plain `cargo test` (issue 8), for toolchains where
//! cargo-fuzz cannot run and as a quick regression net where it can.
//!
//! The checks are not copied: `fuzzing::targets` and its siblings are what the cargo-fuzz
//! binaries run too, so every assertion a fuzzer would trip trips here too. What this module
//! adds is the inputs: a few thousand deterministic cases per target from a small
//! xorshift generator, most of them structured mutations of real protocol bytes (ClientHellos
//! and server flights captured from live engines, records sealed by a live server or under
//! the fixed keys of `open_fixed`): bit flips, truncations, splices, re-chunking, and edits
//! of every length field the parser reads. Each test also keeps positive controls (valid
//! inputs that must succeed), so a harness that rejected everything would fail.
//!
//! `write_seed_corpora` (ignored) writes the seed corpora in `fuzz/corpus/` from the same
//! generators: `cargo test --lib write_seed_corpora -- --ignored`.
#![cfg(any(feature = "aws-lc-rs", feature = "ring"))]

use crate::fuzzing::{differential, sequences, targets};

mod api_sequences;
mod handshakes;
mod record_diff;
mod records;
mod schedules;
mod seeds;

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------
//
// Each test is declared here, so that its name (`fuzz_tests::<name>`) does not depend on
// the file of its subject, where its body and its inputs' generators are.

#[test]
fn server_handshake_cases() {
    handshakes::server_handshake_cases();
}

#[test]
fn client_handshake_cases() {
    handshakes::client_handshake_cases();
}

#[test]
fn open_fixed_cases() {
    records::open_fixed_cases();
}

#[test]
fn live_record_cases() {
    records::live_record_cases();
}

#[test]
fn engine_errors_are_sticky() {
    records::engine_errors_are_sticky();
}

#[test]
fn io_schedule_cases() {
    schedules::io_schedule_cases();
}

#[test]
fn api_sequences_cases() {
    api_sequences::api_sequences_cases();
}

#[test]
fn api_sequences_regressions() {
    api_sequences::api_sequences_regressions();
}

/// Runs one input of the checker, for a fuzzer's finding: `SEQ_FILE=path SEQ_TRACE=1
/// cargo test --lib api_sequences_file -- --ignored --nocapture`.
#[test]
#[ignore = "runs the file named by SEQ_FILE"]
fn api_sequences_file() {
    let path = std::env::var_os("SEQ_FILE").expect("SEQ_FILE names an input");
    let out = sequences::api_sequences(&std::fs::read(path).expect("read SEQ_FILE"));
    println!("{out:?}");
}

#[test]
fn differential_valid_streams_agree() {
    record_diff::differential_valid_streams_agree();
}

#[test]
fn differential_generated_cases() {
    record_diff::differential_generated_cases();
}

#[test]
fn differential_regressions() {
    record_diff::differential_regressions();
}

#[test]
fn differences_are_documented() {
    record_diff::differences_are_documented();
}

#[test]
#[ignore = "writes fuzz/corpus; run: cargo test --lib write_seed_corpora -- --ignored"]
fn write_seed_corpora() {
    seeds::write_seed_corpora();
}
