//! Fuzz target: a client and a server over a transport that misbehaves call by call as the input says.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lazytls_fuzz::io_schedule(data);
});
