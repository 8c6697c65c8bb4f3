//! Fuzz target: the server side fed arbitrary bytes as the client's flights (chunked by the input).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lazytls_fuzz::server_handshake(data);
});
