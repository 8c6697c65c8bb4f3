//! Fuzz target: one byte stream from a peer fed to the native record layer and to rustls's;
//! they must behave alike, but for the intentional differences the target's table lists.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lazytls_fuzz::differential::record_diff(data);
});
