//! Entry points for fuzzers (`fuzz/`, built with `--cfg fuzzing` and the hidden
//! `fuzz-targets` feature) and for the in-crate random-input tests. Not part of the public
//! API: hidden, and only compiled for those.
//!
//! Everything here is sans-IO: engines exchange bytes through plain buffers, so a fuzzer
//! can put arbitrary bytes exactly where a hostile peer would.

use std::io::IoSlice;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use crate::RecordLayer;
use crate::engine::{HandshakeStatus, ReadStatus, TestEngine};

mod twins;
pub use twins::{End, Observed, Reply, Twins, deterministic, reseed};

// The fuzz targets' own logic: the cargo-fuzz binaries run it through the hidden
// `fuzz-targets` feature, and `src/fuzz_tests/` under `cargo test`. It needs a provider.
#[cfg(all(
    any(test, feature = "fuzz-targets"),
    any(feature = "aws-lc-rs", feature = "ring")
))]
pub mod differential;
#[cfg(all(
    any(test, feature = "fuzz-targets"),
    any(feature = "aws-lc-rs", feature = "ring")
))]
pub mod sequences;
#[cfg(all(
    any(test, feature = "fuzz-targets"),
    any(feature = "aws-lc-rs", feature = "ring")
))]
pub mod targets;

/// Rounds of flights a handshake may take before a harness gives up.
const MAX_ROUNDS: usize = 20;
/// Reads one fuzz input may cause: every read consumes input or ends, so this is a
/// safety net that turns a loop bug into a failure instead of a hang.
const MAX_READS: usize = 100_000;

/// Moves everything `from` wants to send into `to`'s incoming buffer.
pub(crate) fn transfer(from: &mut TestEngine, to: &mut TestEngine) {
    let n = from.tx().len();
    let bytes = from.tx().data().to_vec();
    from.tx().consume(n);
    feed(to, &bytes);
}

/// Appends bytes to an engine's incoming buffer.
fn feed(to: &mut TestEngine, bytes: &[u8]) {
    let mut off = 0;
    while off < bytes.len() {
        let spare = to.rx_spare();
        let take = spare.len().min(bytes.len() - off);
        spare[..take].copy_from_slice(&bytes[off..off + take]);
        to.rx_commit(take);
        off += take;
    }
}

/// Reads everything the engine can decrypt now. `Err` carries the engine's error text.
fn drain(to: &mut TestEngine, out: &mut Vec<u8>) -> Result<ReadStatus, String> {
    let mut buf = [0u8; 4096];
    for _ in 0..MAX_READS {
        match to.read(&mut buf).map_err(|e| e.to_string())? {
            ReadStatus::Data(n) => out.extend_from_slice(&buf[..n]),
            other => return Ok(other),
        }
    }
    panic!("a read loop did not end after {MAX_READS} reads");
}

/// A client and a server engine with a completed handshake.
pub struct Pair {
    client: TestEngine,
    server: TestEngine,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair").finish_non_exhaustive()
    }
}

impl Pair {
    /// Runs a handshake in memory. `None` if the configs cannot agree.
    pub fn new(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        layer: RecordLayer,
    ) -> Option<Pair> {
        let name = ServerName::try_from("localhost").ok()?;
        let mut client = TestEngine::client(client, name, layer).ok()?;
        let mut server = TestEngine::server(server, layer).ok()?;
        for _ in 0..MAX_ROUNDS {
            let c = client.drive_handshake().ok()?;
            transfer(&mut client, &mut server);
            let s = server.drive_handshake().ok()?;
            transfer(&mut server, &mut client);
            if c == HandshakeStatus::Done && s == HandshakeStatus::Done {
                return Some(Pair { client, server });
            }
        }
        None
    }

    /// Which record layer the client ended up with.
    pub fn client_layer(&mut self) -> Option<RecordLayer> {
        self.client.info_ref().map(|i| i.record_layer)
    }

    /// Seals `data` as the server would send it; returns the bytes on the wire.
    pub fn seal_from_server(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut off = 0;
        let mut wire = Vec::new();
        while off < data.len() {
            off += self
                .server
                .write(&[IoSlice::new(&data[off..])])
                .map_err(|e| e.to_string())?;
            // The engine seals at most a batch ahead of the transport: drain it each time.
            let n = self.server.tx().len();
            wire.extend_from_slice(self.server.tx().data());
            self.server.tx().consume(n);
        }
        Ok(wire)
    }

    /// Gives `bytes` to the client as if they came from the server and reads until it
    /// stops. Returns the plaintext delivered, or the error (which must be sticky: a
    /// second read returns an error too).
    pub fn feed_client(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        feed(&mut self.client, bytes);
        let mut out = Vec::new();
        match drain(&mut self.client, &mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(e),
        }
    }

    /// The client's outgoing bytes (answers, alerts) since the last call.
    pub fn take_client_output(&mut self) -> Vec<u8> {
        let n = self.client.tx().len();
        let out = self.client.tx().data().to_vec();
        self.client.tx().consume(n);
        out
    }

    /// Lets the server read what the client sent (checks that alerts and KeyUpdate
    /// answers the client produced are well formed for rustls or the native layer).
    pub fn server_reads_client_output(&mut self) -> Result<Vec<u8>, String> {
        let out = self.take_client_output();
        feed(&mut self.server, &out);
        let mut plain = Vec::new();
        drain(&mut self.server, &mut plain).map(|_| plain)
    }
}

/// Feeds arbitrary bytes to a fresh server engine as the client's flights; drives the
/// handshake as far as it goes. Never panics; returns whether it completed.
pub fn server_handshake(config: Arc<ServerConfig>, chunks: &[&[u8]]) -> bool {
    let Ok(mut server) = TestEngine::server(config, RecordLayer::Native) else {
        return false;
    };
    for chunk in chunks {
        feed(&mut server, chunk);
        match server.drive_handshake() {
            Ok(HandshakeStatus::Done) => return true,
            Ok(HandshakeStatus::NeedInput | HandshakeStatus::NeedConfig) => {
                let n = server.tx().len();
                server.tx().consume(n);
            }
            Err(_) => {
                server.collect_alert();
                return false;
            }
        }
    }
    false
}

/// Feeds arbitrary bytes to a fresh client engine as the server's flights.
pub fn client_handshake(config: Arc<ClientConfig>, chunks: &[&[u8]]) -> bool {
    let Ok(name) = ServerName::try_from("localhost") else {
        return false;
    };
    let Ok(mut client) = TestEngine::client(config, name, RecordLayer::Native) else {
        return false;
    };
    if client.drive_handshake().is_err() {
        return false;
    }
    for chunk in chunks {
        let n = client.tx().len();
        client.tx().consume(n);
        feed(&mut client, chunk);
        match client.drive_handshake() {
            Ok(HandshakeStatus::Done) => return true,
            Ok(HandshakeStatus::NeedInput | HandshakeStatus::NeedConfig) => {}
            Err(_) => {
                client.collect_alert();
                return false;
            }
        }
    }
    false
}

/// Opens arbitrary bytes as records under fixed keys (no handshake), with the framing
/// picked by `framing % 3` (TLS 1.3, TLS 1.2 GCM, TLS 1.2 ChaCha20). Returns the
/// plaintext of the records that opened.
#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
pub fn open_fixed(framing: u8, bytes: &[u8]) -> Vec<u8> {
    crate::engine::record::fixed_open(framing, bytes)
}
