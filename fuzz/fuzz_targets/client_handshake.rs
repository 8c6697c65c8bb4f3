//! Fuzz target: the client side fed arbitrary bytes as the server's flights (chunked by the input).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lazytls_fuzz::client_handshake(data);
});
