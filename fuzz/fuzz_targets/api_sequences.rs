//! Fuzz target: random sequences of public-API operations on one connection, from one or
//! two tasks, against a peer whose actions and a transport whose faults the input picks;
//! invariants checked after every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lazytls_fuzz::sequences::api_sequences(data);
});
