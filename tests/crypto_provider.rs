//! The crypto provider in the config is honoured after the handshake, not only during it.
//!
//! The native record layer seals and opens records with the AEAD crate lazytls was built
//! with, so it may only take over a suite that is that crate's own suite object. A provider
//! that brings its own implementation of a suite (with the same ID as a built-in one: here
//! AES-128-GCM-SHA256 with a wrapped AEAD that counts its calls) must keep rustls's record
//! layer, so that every record goes through the provider's code. The counting AEAD
//! delegates to the real one, key extraction included, so nothing but the suite object's
//! identity tells the two apart.
//!
//! Each test moves 1 MiB each way over loopback TCP between a lazytls end and a
//! tokio-rustls end (which uses the plain provider).

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter,
    OutboundOpaqueMessage, OutboundPlainMessage, Tls13AeadAlgorithm, UnsupportedOperationError,
};
use lazytls::rustls::{
    self, CipherSuiteCommon, ClientConfig, ConnectionTrafficSecrets, ServerConfig,
    SupportedCipherSuite, Tls13CipherSuite,
};
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// 1 MiB each way: at least 64 records in each direction.
const SIZE: usize = 1024 * 1024;

/// The fewest records a side seals (and opens) to move [`SIZE`] bytes, at 16 KiB a record.
const MIN_RECORDS: u64 = (SIZE / (16 * 1024)) as u64;

// The compiled-in provider's own suite (aws-lc-rs first, as `common::provider`).
#[cfg(feature = "aws-lc-rs")]
use rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256 as BUILT_IN_SUITE;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256 as BUILT_IN_SUITE;

/// The built-in suite object, read at run time. (A reference read from the static during
/// constant evaluation, as the counting suite's fields are, may point at this crate's own
/// copy of the data: fine for the functions it holds, wrong for identity.)
fn built_in_suite() -> &'static Tls13CipherSuite {
    BUILT_IN_SUITE
        .tls13()
        .expect("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite")
}

/// The built-in suite with its AEAD wrapped: same ID, same hash, same HKDF, another object.
static COUNTING_TLS13_AES_128_GCM_SHA256: Tls13CipherSuite = {
    let Some(built_in) = BUILT_IN_SUITE.tls13() else {
        panic!("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite")
    };
    Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: built_in.common.suite,
            hash_provider: built_in.common.hash_provider,
            confidentiality_limit: built_in.common.confidentiality_limit,
        },
        hkdf_provider: built_in.hkdf_provider,
        aead_alg: &CountingAead,
        quic: built_in.quic,
    }
};

/// Records sealed and opened through [`CountingAead`], by every connection of this binary.
/// The tests that read them hold [`COUNTERS_IN_USE`], so that deltas are their own.
static SEALS: AtomicU64 = AtomicU64::new(0);
static OPENS: AtomicU64 = AtomicU64::new(0);
static COUNTERS_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn counts() -> (u64, u64) {
    (SEALS.load(Ordering::SeqCst), OPENS.load(Ordering::SeqCst))
}

/// The built-in AES-128-GCM, counting each record it seals or opens.
struct CountingAead;

fn built_in_aead() -> &'static dyn Tls13AeadAlgorithm {
    built_in_suite().aead_alg
}

impl Tls13AeadAlgorithm for CountingAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(CountingEncrypter(built_in_aead().encrypter(key, iv)))
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(CountingDecrypter(built_in_aead().decrypter(key, iv)))
    }

    fn key_len(&self) -> usize {
        built_in_aead().key_len()
    }

    // Handing the keys out is allowed: what is checked is who seals the records afterwards.
    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        built_in_aead().extract_keys(key, iv)
    }

    fn fips(&self) -> bool {
        built_in_aead().fips()
    }
}

struct CountingEncrypter(Box<dyn MessageEncrypter>);

impl MessageEncrypter for CountingEncrypter {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, rustls::Error> {
        SEALS.fetch_add(1, Ordering::SeqCst);
        self.0.encrypt(msg, seq)
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        self.0.encrypted_payload_len(payload_len)
    }
}

struct CountingDecrypter(Box<dyn MessageDecrypter>);

impl MessageDecrypter for CountingDecrypter {
    fn decrypt<'a>(
        &mut self,
        msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, rustls::Error> {
        OPENS.fetch_add(1, Ordering::SeqCst);
        self.0.decrypt(msg, seq)
    }
}

/// The default provider with the counting suite as its only suite.
fn counting_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![SupportedCipherSuite::Tls13(
            &COUNTING_TLS13_AES_128_GCM_SHA256,
        )],
        ..(*provider()).clone()
    })
}

/// The default provider with the built-in suite as its only suite: the counting
/// provider's shape, with the built-in suite object.
fn built_in_provider() -> Arc<CryptoProvider> {
    provider_with_only(BUILT_IN_SUITE)
}

fn client_config(pki: &Pki, provider: Arc<CryptoProvider>) -> ClientConfig {
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS13)
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth()
}

fn server_config(pki: &Pki, provider: Arc<CryptoProvider>) -> ServerConfig {
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS13)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.server_chain.clone(), pki.server_key())
        .unwrap()
}

/// Writes `data` while reading as many bytes; then sends close_notify and reads to the
/// end, which must be clean and empty. Returns the stream and the bytes read.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    data: &[u8],
) -> io::Result<(S, Vec<u8>)> {
    let (mut r, mut w) = tokio::io::split(s);
    let (wrote, read) = write_while_reading(&mut w, &mut r, data).await;
    wrote?;
    let got = read?;
    let mut s = r.unsplit(w);
    s.shutdown().await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        let more = format!("{} bytes after the exchange", rest.len());
        return Err(io::Error::new(io::ErrorKind::InvalidData, more));
    }
    Ok((s, got))
}

/// What our end of a connection used.
struct OurEnd {
    record_layer: RecordLayer,
    suite: SupportedCipherSuite,
}

/// A lazytls client on `provider` against a tokio-rustls server on the plain provider;
/// 1 MiB each way, every byte checked.
async fn our_client(provider: Arc<CryptoProvider>) -> OurEnd {
    let pki = Pki::new();
    let (client_tcp, server_tcp) = tcp_pair().await;
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&pki, common::provider())));
    let (up, down) = (pattern(SIZE, 1), pattern(SIZE, 2));
    let server_sends = down.clone();
    let server = tokio::spawn(async move {
        let tls = acceptor.accept(server_tcp).await?;
        exchange(tls, &server_sends).await.map(|(_, got)| got)
    });

    let client =
        TlsConnector::new(Arc::new(client_config(&pki, provider))).connect(localhost(), client_tcp);
    let (client, got) = bounded("our client", exchange(client, &up))
        .await
        .expect("our client's exchange");
    assert_bytes("our client received", &got, &down);
    let received = bounded("tokio-rustls server", server)
        .await
        .unwrap()
        .expect("tokio-rustls server's exchange");
    assert_bytes("tokio-rustls server received", &received, &up);

    let info = client.info().expect("info after the handshake");
    OurEnd {
        record_layer: info.record_layer,
        suite: info.cipher_suite.expect("a negotiated suite"),
    }
}

/// A tokio-rustls client on the plain provider against a lazytls server on `provider`;
/// 1 MiB each way, every byte checked.
async fn our_server(provider: Arc<CryptoProvider>) -> OurEnd {
    let pki = Pki::new();
    let (client_tcp, server_tcp) = tcp_pair().await;
    let acceptor = TlsAcceptor::new(Arc::new(server_config(&pki, provider)));
    let (up, down) = (pattern(SIZE, 3), pattern(SIZE, 4));
    let server_sends = down.clone();
    let server = tokio::spawn(async move {
        let (tls, got) = exchange(acceptor.accept(server_tcp), &server_sends).await?;
        Ok::<_, io::Error>((got, tls.info().cloned()))
    });

    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(&pki, common::provider())));
    let client = bounded(
        "tokio-rustls connect",
        connector.connect(localhost(), client_tcp),
    )
    .await
    .expect("tokio-rustls handshake");
    let (_, got) = bounded("tokio-rustls client", exchange(client, &up))
        .await
        .expect("tokio-rustls client's exchange");
    assert_bytes("tokio-rustls client received", &got, &down);
    let (received, info) = bounded("our server", server)
        .await
        .unwrap()
        .expect("our server's exchange");
    assert_bytes("our server received", &received, &up);

    let info = info.expect("info after the handshake");
    OurEnd {
        record_layer: info.record_layer,
        suite: info.cipher_suite.expect("a negotiated suite"),
    }
}

fn is_suite(suite: SupportedCipherSuite, object: &'static Tls13CipherSuite) -> bool {
    // `==` on suites compares IDs only, which is exactly what must not decide here.
    suite.tls13().is_some_and(|s| std::ptr::eq(s, object))
}

/// Asserts that our end negotiated the counting suite, left the records to rustls, and
/// that rustls sealed and opened them through the counting AEAD.
fn assert_counted(side: &str, end: &OurEnd, before: (u64, u64)) {
    let (seals, opens) = counts();
    let (seals, opens) = (seals - before.0, opens - before.1);
    assert!(
        is_suite(end.suite, &COUNTING_TLS13_AES_128_GCM_SHA256),
        "{side}: negotiated {:?}, not the counting suite object",
        end.suite
    );
    assert_eq!(
        end.record_layer,
        RecordLayer::Rustls,
        "{side}: a suite of the configured provider that is not the built-in suite object \
         must stay on rustls's record layer (sealed {seals} and opened {opens} records \
         through the provider)"
    );
    assert!(
        seals >= MIN_RECORDS && opens >= MIN_RECORDS,
        "{side}: the provider's AEAD sealed {seals} and opened {opens} records; 1 MiB each \
         way needs at least {MIN_RECORDS} of each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_seals_and_opens_with_the_configured_provider() {
    let _counters = COUNTERS_IN_USE.lock().await;
    let before = counts();
    let end = our_client(counting_provider()).await;
    assert_counted("our client", &end, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_seals_and_opens_with_the_configured_provider() {
    let _counters = COUNTERS_IN_USE.lock().await;
    let before = counts();
    let end = our_server(counting_provider()).await;
    assert_counted("our server", &end, before);
}

/// The plain default provider: the same setups go native, so the tests above tell a
/// difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_provider_goes_native() {
    let client = our_client(common::provider()).await;
    assert_eq!(client.record_layer, RecordLayer::Native, "our client");
    let server = our_server(common::provider()).await;
    assert_eq!(server.record_layer, RecordLayer::Native, "our server");
}

/// The counting provider's shape with the built-in suite object in it, picked by name as
/// one restricts a provider's suites: native too, so what the tests above tell apart is
/// the suite object alone. (rustls's named suite statics and its suite lists can hold
/// different copies of one suite, as they do with aws-lc-rs, so this need not be the
/// object that `default_provider` holds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_suite_alone_goes_native() {
    let client = our_client(built_in_provider()).await;
    assert!(
        is_suite(client.suite, built_in_suite()),
        "our client's suite"
    );
    assert_eq!(client.record_layer, RecordLayer::Native, "our client");
    let server = our_server(built_in_provider()).await;
    assert!(
        is_suite(server.suite, built_in_suite()),
        "our server's suite"
    );
    assert_eq!(server.record_layer, RecordLayer::Native, "our server");
}
