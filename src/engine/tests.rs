//! Sans-IO tests of the engine: two engines exchange bytes through plain buffers, so the
//! native record layer meets rustls's own record layer in the same process, and test
//! hooks reach states (like the confidentiality limit) that real traffic cannot.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};

use super::*;

fn provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    return rustls::crypto::ring::default_provider();
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    unreachable!("tests need a provider")
}

struct Configs {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

fn configs(suite: SupportedCipherSuite) -> Configs {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let version: &'static SupportedProtocolVersion = suite.version();
    let mut provider = provider();
    provider.cipher_suites = vec![suite];
    let provider = Arc::new(provider);
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.enable_secret_extraction = true;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    server.enable_secret_extraction = true;
    Configs {
        client: Arc::new(client),
        server: Arc::new(server),
    }
}

/// The suites our ECDSA test certificate can use.
fn all_suites() -> Vec<SupportedCipherSuite> {
    provider()
        .cipher_suites
        .into_iter()
        .filter(|s| !format!("{:?}", s.suite()).contains("_RSA_"))
        .collect()
}

use crate::fuzzing::transfer;

fn handshake(
    client_layer: RecordLayer,
    server_layer: RecordLayer,
    suite: SupportedCipherSuite,
) -> (TestEngine, TestEngine) {
    let c = configs(suite);
    let mut client = TestEngine::client(
        c.client,
        ServerName::try_from("localhost").unwrap(),
        client_layer,
    )
    .unwrap();
    let mut server = TestEngine::server(c.server, server_layer).unwrap();
    for _ in 0..20 {
        let cs = client.drive_handshake().unwrap();
        transfer(&mut client, &mut server);
        let ss = server.drive_handshake().unwrap();
        transfer(&mut server, &mut client);
        if cs == HandshakeStatus::Done && ss == HandshakeStatus::Done {
            return (client, server);
        }
    }
    panic!("handshake did not finish in 20 rounds");
}

/// Reads everything `to` can decrypt now.
fn drain(to: &mut TestEngine, out: &mut Vec<u8>) -> ReadStatus {
    let mut buf = vec![0u8; 7_000];
    loop {
        match to.read(&mut buf).unwrap() {
            ReadStatus::Data(n) => out.extend_from_slice(&buf[..n]),
            other => return other,
        }
    }
}

fn send(from: &mut TestEngine, to: &mut TestEngine, data: &[u8]) -> Vec<u8> {
    let mut off = 0;
    let mut got = Vec::new();
    while off < data.len() {
        off += from.write(&[std::io::IoSlice::new(&data[off..])]).unwrap();
        transfer(from, to);
        drain(to, &mut got);
        // Answers (KeyUpdate) go back.
        transfer(to, from);
        drain(from, &mut Vec::new());
    }
    got
}

fn layer_name(l: RecordLayer) -> &'static str {
    if l == RecordLayer::Native {
        "native"
    } else {
        "rustls"
    }
}

/// Both directions, every suite, every pairing of record layers, with write sizes from 0
/// to 100 KiB: what one side seals the other opens, byte for byte.
#[test]
fn native_and_rustls_layers_interoperate() {
    let sizes = [0usize, 1, 100, 16_383, 16_384, 16_385, 40_000, 100 * 1024];
    for suite in all_suites() {
        for (cl, sl) in [
            (RecordLayer::Native, RecordLayer::Rustls),
            (RecordLayer::Rustls, RecordLayer::Native),
            (RecordLayer::Native, RecordLayer::Native),
        ] {
            let (mut client, mut server) = handshake(cl, sl, suite);
            assert_eq!(client.take_info().unwrap().record_layer, cl, "{suite:?}");
            assert_eq!(server.take_info().unwrap().record_layer, sl, "{suite:?}");
            for (i, &size) in sizes.iter().enumerate() {
                let data: Vec<u8> = (0..size).map(|j| (i * 7 + j) as u8).collect();
                assert_eq!(
                    send(&mut client, &mut server, &data),
                    data,
                    "{suite:?} c->s {size} {}",
                    layer_name(cl)
                );
                assert_eq!(
                    send(&mut server, &mut client, &data),
                    data,
                    "{suite:?} s->c {size} {}",
                    layer_name(sl)
                );
            }
            // close_notify both ways.
            client.close_notify().unwrap();
            transfer(&mut client, &mut server);
            assert_eq!(drain(&mut server, &mut Vec::new()), ReadStatus::PeerClosed);
            server.close_notify().unwrap();
            transfer(&mut server, &mut client);
            assert_eq!(drain(&mut client, &mut Vec::new()), ReadStatus::PeerClosed);
        }
    }
}

/// An HTTP/2 body as hyper writes it: a 9-byte frame header before each 16 KiB of data,
/// in one vectored write. Small slices are gathered, and one call seals a batch of records
/// (as a single large slice does), not one record per call, so the transport takes the
/// batch in one write. What arrives is the slices' bytes in order, whatever the layers.
#[test]
fn a_vectored_write_of_small_and_large_slices_seals_a_batch() {
    let suite = all_suites()[0];
    for (cl, sl) in [
        (RecordLayer::Native, RecordLayer::Native),
        (RecordLayer::Rustls, RecordLayer::Native),
    ] {
        let (mut client, mut server) = handshake(cl, sl, suite);
        let header = [7u8; 9];
        let body: Vec<u8> = (0..16_384).map(|j| j as u8).collect();
        let frames = [
            &header[..],
            &body,
            &header,
            &body,
            &header,
            &body,
            &header,
            &body,
        ];
        let all = frames.concat();
        let (mut sent, mut calls, mut got) = (0, 0, Vec::new());
        while sent < all.len() {
            // The slices from where the last call stopped.
            let mut skip = sent;
            let mut rest = Vec::new();
            for f in frames {
                if skip < f.len() {
                    rest.push(std::io::IoSlice::new(&f[skip..]));
                }
                skip = skip.saturating_sub(f.len());
            }
            let n = client.write(&rest).unwrap();
            assert!(n > 0, "{}: a write took nothing", layer_name(cl));
            sent += n;
            calls += 1;
            transfer(&mut client, &mut server);
            drain(&mut server, &mut got);
        }
        assert_eq!(got, all, "{}", layer_name(cl));
        assert!(
            calls <= 2,
            "{}: {} bytes took {calls} writes of at most one record each",
            layer_name(cl),
            all.len()
        );
    }
}

/// TLS 1.3 key updates started by either side, with `update_requested`, across layers.
#[test]
fn key_updates_either_side() {
    for suite in all_suites()
        .into_iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
    {
        for (cl, sl) in [
            (RecordLayer::Native, RecordLayer::Rustls),
            (RecordLayer::Rustls, RecordLayer::Native),
        ] {
            let (mut client, mut server) = handshake(cl, sl, suite);
            for round in 0..3 {
                client.refresh_traffic_keys().unwrap();
                let data = vec![round as u8; 20_000];
                assert_eq!(send(&mut client, &mut server, &data), data);
                assert_eq!(send(&mut server, &mut client, &data), data);
                server.refresh_traffic_keys().unwrap();
                assert_eq!(send(&mut server, &mut client, &data), data);
                assert_eq!(send(&mut client, &mut server, &data), data);
            }
        }
    }
}

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
mod native {
    use super::*;
    use crate::engine::aead::Algorithm;
    use crate::engine::record::testing;
    use crate::engine::rfc8448 as v;
    use rustls::ContentType;

    fn suite(name: rustls::CipherSuite) -> SupportedCipherSuite {
        all_suites()
            .into_iter()
            .find(|s| s.suite() == name)
            .unwrap()
    }

    /// RFC 8448 section 3: the application data, ticket and alert records seal and open
    /// byte for byte with the published keys.
    #[test]
    fn rfc8448_known_answers() {
        let (mut seal, mut open) = testing::tls13_pair(
            Algorithm::Aes128Gcm,
            &v::CLIENT_APP_KEY,
            &v::CLIENT_APP_IV,
            0,
        );
        assert_eq!(
            testing::seal(
                &mut seal,
                ContentType::ApplicationData,
                &v::APP_DATA_PAYLOAD
            ),
            v::CLIENT_APP_DATA_RECORD
        );
        assert_eq!(
            testing::seal(&mut seal, ContentType::Alert, &v::CLOSE_NOTIFY_PAYLOAD),
            v::CLIENT_ALERT_RECORD
        );
        assert_eq!(
            testing::open(&mut open, &v::CLIENT_APP_DATA_RECORD),
            Some((ContentType::ApplicationData, v::APP_DATA_PAYLOAD.to_vec()))
        );
        assert_eq!(
            testing::open(&mut open, &v::CLIENT_ALERT_RECORD),
            Some((ContentType::Alert, v::CLOSE_NOTIFY_PAYLOAD.to_vec()))
        );

        let (mut seal, mut open) = testing::tls13_pair(
            Algorithm::Aes128Gcm,
            &v::SERVER_APP_KEY,
            &v::SERVER_APP_IV,
            0,
        );
        assert_eq!(
            testing::seal(
                &mut seal,
                ContentType::Handshake,
                &v::NEW_SESSION_TICKET_MSG
            ),
            v::SERVER_NEW_SESSION_TICKET_RECORD
        );
        assert_eq!(
            testing::seal(
                &mut seal,
                ContentType::ApplicationData,
                &v::APP_DATA_PAYLOAD
            ),
            v::SERVER_APP_DATA_RECORD
        );
        assert_eq!(
            testing::seal(&mut seal, ContentType::Alert, &v::CLOSE_NOTIFY_PAYLOAD),
            v::SERVER_ALERT_RECORD
        );
        assert_eq!(
            testing::open(&mut open, &v::SERVER_NEW_SESSION_TICKET_RECORD),
            Some((ContentType::Handshake, v::NEW_SESSION_TICKET_MSG.to_vec()))
        );
        assert_eq!(
            testing::open(&mut open, &v::SERVER_APP_DATA_RECORD),
            Some((ContentType::ApplicationData, v::APP_DATA_PAYLOAD.to_vec()))
        );
        assert_eq!(
            testing::open(&mut open, &v::SERVER_ALERT_RECORD),
            Some((ContentType::Alert, v::CLOSE_NOTIFY_PAYLOAD.to_vec()))
        );
    }

    /// TLS 1.2: every flipped bit of a record is rejected, its header's type and version
    /// included: they are part of the additional data (RFC 5246, 6.2.3.3), so a record
    /// whose header was edited does not open. (The length field frames the record; the
    /// reader judges it before opening.)
    #[test]
    fn tls12_tampering_of_header_and_body_is_rejected() {
        for algorithm in [Algorithm::Aes128Gcm, Algorithm::Chacha20Poly1305] {
            let key = [5u8; 32];
            let key = &key[..if algorithm == Algorithm::Aes128Gcm {
                16
            } else {
                32
            }];
            let (mut seal, _) = testing::tls12_pair(algorithm, key, &[3u8; 12], 7);
            let record = testing::seal(&mut seal, ContentType::ApplicationData, b"tamper me");
            let fresh = || testing::tls12_pair(algorithm, key, &[3u8; 12], 7).1;
            assert!(
                testing::open(&mut fresh(), &record).is_some(),
                "{algorithm:?}"
            );
            for bit in (0..record.len() * 8).filter(|b| !(24..40).contains(b)) {
                let mut bad = record.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    testing::open(&mut fresh(), &bad),
                    None,
                    "{algorithm:?}: bit {bit} accepted"
                );
            }
        }
    }

    /// Every flipped bit of a record is rejected; a replayed or reordered record is too.
    #[test]
    fn tampering_replay_and_reordering_are_rejected() {
        let record = v::CLIENT_APP_DATA_RECORD;
        for bit in 0..record.len() * 8 {
            let mut bad = record;
            bad[bit / 8] ^= 1 << (bit % 8);
            let (_, mut open) = testing::tls13_pair(
                Algorithm::Aes128Gcm,
                &v::CLIENT_APP_KEY,
                &v::CLIENT_APP_IV,
                0,
            );
            // Header bits change the additional data or the framing; any change must fail.
            assert_eq!(testing::open(&mut open, &bad), None, "bit {bit} accepted");
        }
        let (mut seal, mut open) = testing::tls13_pair(
            Algorithm::Aes128Gcm,
            &v::CLIENT_APP_KEY,
            &v::CLIENT_APP_IV,
            0,
        );
        let first = testing::seal(&mut seal, ContentType::ApplicationData, b"one");
        let second = testing::seal(&mut seal, ContentType::ApplicationData, b"two");
        assert!(testing::open(&mut open, &first).is_some());
        assert_eq!(testing::open(&mut open, &first), None, "replay accepted");
        let (_, mut open) = testing::tls13_pair(
            Algorithm::Aes128Gcm,
            &v::CLIENT_APP_KEY,
            &v::CLIENT_APP_IV,
            0,
        );
        assert_eq!(
            testing::open(&mut open, &second),
            None,
            "reordered record accepted"
        );
    }

    /// Bit flips in a live connection end in `bad_record_mac` (or a decode error for the
    /// header), as rustls would answer, and the alert reaches the peer.
    #[test]
    fn tampered_stream_records_fail_with_alerts() {
        for name in [
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ] {
            #[cfg(not(feature = "tls12"))]
            if name == rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
                continue;
            }
            for pos in [5usize, 12, 40, 1000, 1020] {
                let (mut client, mut server) =
                    handshake(RecordLayer::Native, RecordLayer::Native, suite(name));
                client
                    .write(&[std::io::IoSlice::new(&[9u8; 1000])])
                    .unwrap();
                let len = client.tx().len();
                assert!(pos < len);
                client.tx().data_mut()[pos] ^= 0x20;
                transfer(&mut client, &mut server);
                let mut buf = [0u8; 2000];
                let err = server.read(&mut buf).unwrap_err();
                assert!(
                    matches!(err, Error::Tls(rustls::Error::DecryptError)),
                    "{name:?} pos {pos}: {err:?}"
                );
                // The alert goes back and the peer (also native here) reports it.
                transfer(&mut server, &mut client);
                let err = client.read(&mut buf).unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::Tls(rustls::Error::AlertReceived(
                            rustls::AlertDescription::BadRecordMac
                        ))
                    ),
                    "{err:?}"
                );
            }
        }
    }

    /// An oversized record gets `record_overflow`, as in rustls.
    #[test]
    fn oversized_record_is_refused() {
        let (mut client, mut server) = handshake(
            RecordLayer::Rustls,
            RecordLayer::Native,
            suite(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        );
        let spare = server.rx_spare();
        spare[..5].copy_from_slice(&[23, 3, 3, 0x48, 0x01]);
        server.rx_commit(5);
        let err = server.read(&mut [0u8; 100]).unwrap_err();
        assert!(
            matches!(err, Error::Tls(rustls::Error::PeerSentOversizedRecord)),
            "{err:?}"
        );
        transfer(&mut server, &mut client);
        let err = client.read(&mut [0u8; 100]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Tls(rustls::Error::AlertReceived(
                    rustls::AlertDescription::RecordOverflow
                ))
            ),
            "{err:?}"
        );
    }

    /// TLS 1.3 near the confidentiality limit moves to a new key (a KeyUpdate first) and
    /// the peer keeps reading; TLS 1.2 closes instead.
    #[test]
    fn confidentiality_limit() {
        // Both ends are native: the test moves the sender's and the receiver's sequence
        // numbers together (rustls's cannot be moved).
        let (mut client, mut server) = handshake(
            RecordLayer::Native,
            RecordLayer::Native,
            suite(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        );
        let limit = 1u64 << 24;
        client.native_mut().unwrap().set_tx_seq(limit - 2);
        server.native_mut().unwrap().set_rx_seq(limit - 2);
        let data = vec![5u8; 16_384 * 4];
        // The server must accept records up to the limit, then the KeyUpdate and the rest.
        assert_eq!(send(&mut client, &mut server, &data), data);
        let seq = client.native_mut().unwrap().tx_seq();
        assert!(seq < 8, "the key was not updated: seq {seq}");

        #[cfg(feature = "tls12")]
        {
            let (mut client, mut server) = handshake(
                RecordLayer::Native,
                RecordLayer::Native,
                suite(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            );
            client.native_mut().unwrap().set_tx_seq(limit - 1);
            server.native_mut().unwrap().set_rx_seq(limit - 1);
            assert_eq!(send(&mut client, &mut server, &[1u8; 100]), vec![1u8; 100]);
            let err = client
                .write(&[std::io::IoSlice::new(&[2u8; 100])])
                .unwrap_err();
            assert!(
                matches!(err, Error::Tls(rustls::Error::EncryptError)),
                "{err:?}"
            );
            transfer(&mut client, &mut server);
            assert_eq!(drain(&mut server, &mut Vec::new()), ReadStatus::PeerClosed);
        }
    }

    /// Tickets received by a native client let the next connection resume.
    #[test]
    fn tickets_reach_the_session_store() {
        let s = suite(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let c = configs(s);
        for round in 0..2 {
            let mut client = TestEngine::client(
                c.client.clone(),
                ServerName::try_from("localhost").unwrap(),
                RecordLayer::Native,
            )
            .unwrap();
            let mut server = TestEngine::server(c.server.clone(), RecordLayer::Native).unwrap();
            for _ in 0..20 {
                client.drive_handshake().unwrap();
                transfer(&mut client, &mut server);
                server.drive_handshake().unwrap();
                transfer(&mut server, &mut client);
            }
            let resumed = client.take_info().unwrap().resumed;
            assert_eq!(resumed, round == 1, "round {round}");
            // The tickets arrive after the handshake; reading processes them.
            drain(&mut client, &mut Vec::new());
        }
    }
}

/// A ClientHello that spans records, all of it in the receive buffer at once (one large
/// transport read): a resolving server's `Acceptor` takes it record by record. rustls's
/// deframer holds at most one record's worth of bytes not yet processed outside a
/// handshake message, so feeding it everything before processing any failed with
/// "message buffer full".
#[test]
fn a_resolving_server_takes_a_multi_record_client_hello_read_at_once() {
    for suite in all_suites() {
        let cfg = configs(suite);
        let mut client_config = (*cfg.client).clone();
        client_config.alpn_protocols = (0..3500)
            .map(|i| format!("proto-{i:05}").into_bytes())
            .collect();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client =
            TestEngine::client(Arc::new(client_config), name, RecordLayer::Native).unwrap();
        assert_eq!(
            client.drive_handshake().unwrap(),
            HandshakeStatus::NeedInput
        );
        let flight = client.tx().data().to_vec();
        assert!(
            flight.len() > 2 * MAX_RECORD,
            "the flight is {} bytes",
            flight.len()
        );
        let mut server = TestEngine::server_resolving(RecordLayer::Native);
        server.receive(&flight);
        assert_eq!(
            server.drive_handshake().unwrap(),
            HandshakeStatus::NeedConfig,
            "{suite:?}"
        );
    }
}
