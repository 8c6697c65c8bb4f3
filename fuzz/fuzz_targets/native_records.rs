//! Fuzz target: the native record layer: arbitrary records under fixed keys, and a live pair fed
//! arbitrary, valid, split, edited and replayed records.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lazytls_fuzz::native_records(data);
});
