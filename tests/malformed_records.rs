//! Malformed records, and records a peer must refuse, sent to our native record layer and
//! to rustls's: our error and alert must be the ones rustls gives, except for listed,
//! deliberate, RFC-backed differences, which are asserted as such.
//!
//! - **Raw malformed records** written under the sender's TLS state after the handshake
//!   (records that do not decrypt, unknown types, bad versions, empty or oversized
//!   records, plaintext alerts), towards each side in both roles, TLS 1.2 and TLS 1.3.
//!   Fixture: our end and tokio-rustls over `tokio::io::duplex` ([`common::records::Pair`]).
//! - **Forged records**, sealed with the sender's own keys after a TLS 1.3 handshake, so
//!   they decrypt (padding, empty records, bad alerts, bad or misplaced post-handshake
//!   messages, an oversized plaintext): each goes to our native receiver and to a
//!   tokio-rustls receiver in the same role; the same data, or the same error and alert.
//!   Fixture: the sending tokio-rustls connection's record layer is taken over by the
//!   shared forger ([`common::forger::Forger::take_over`]), whose wire checks apply to
//!   what each receiver sends back.
//!
//! Each receiver's typed error must also name the alert its peer then receives.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::forger::{Forger, TakenOver};
use common::records::*;
use common::*;
use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::{
    self, AlertDescription, ClientConfig, ContentType, HandshakeType, InvalidMessage,
    PeerMisbehaved, ProtocolVersion, SupportedProtocolVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A malformed record injected towards one side after the handshake. `native` is set
/// where the native layer deliberately answers differently from rustls: the error and
/// alert it gives instead, and why.
struct Malformed {
    name: &'static str,
    bytes: Vec<u8>,
    native: Option<(rustls::Error, AlertDescription, &'static str)>,
}

fn inappropriate(got: ContentType) -> rustls::Error {
    rustls::Error::InappropriateMessage {
        expect_types: vec![ContentType::ApplicationData],
        got_type: got,
    }
}

fn malformed_records(version: ProtocolVersion) -> Vec<Malformed> {
    let tls13 = version == ProtocolVersion::TLSv1_3;
    const RFC_TYPE: &str = "RFC 8446, 5 and RFC 5246, 6: an unexpected record type gets \
                            unexpected_message (rustls: decode_error, or bad_record_mac after \
                            trying to decrypt it)";
    const RFC_SIZE: &str = "RFC 8446, 5.2 and RFC 5246, 6.2.3: record_overflow (rustls: \
                            decode_error over 2^14 + 2048, and it decrypts TLS 1.3 records \
                            up to that size)";
    let unexpected = |typ: ContentType| {
        (
            inappropriate(typ),
            AlertDescription::UnexpectedMessage,
            RFC_TYPE,
        )
    };
    let outer_type = |typ: ContentType| tls13.then(|| unexpected(typ));
    let oversized = Some((
        rustls::Error::PeerSentOversizedRecord,
        AlertDescription::RecordOverflow,
        RFC_SIZE,
    ));
    let mut cases = vec![
        Malformed {
            name: "application data that does not decrypt",
            bytes: raw_record(23, [3, 3], 64, 64),
            native: None,
        },
        Malformed {
            name: "application data shorter than a tag",
            bytes: raw_record(23, [3, 3], 8, 8),
            native: None,
        },
        Malformed {
            name: "an unknown content type",
            bytes: raw_record(0x63, [3, 3], 32, 32),
            native: Some(unexpected(ContentType::Unknown(0x63))),
        },
        Malformed {
            name: "a record version outside 3.x",
            bytes: raw_record(23, [4, 3], 32, 32),
            native: None,
        },
        Malformed {
            name: "an empty handshake record",
            bytes: raw_record(22, [3, 3], 0, 0),
            // Refused from its header, as rustls does.
            native: None,
        },
        Malformed {
            name: "an empty alert record",
            bytes: raw_record(21, [3, 3], 0, 0),
            native: None,
        },
        Malformed {
            name: "a handshake record of garbage",
            bytes: raw_record(22, [3, 3], 48, 48),
            native: outer_type(ContentType::Handshake),
        },
        Malformed {
            name: "a plaintext fatal alert",
            bytes: vec![21, 3, 3, 0, 2, 2, 40],
            native: outer_type(ContentType::Alert),
        },
        Malformed {
            name: "a change_cipher_spec record",
            bytes: vec![20, 3, 3, 0, 1, 1],
            native: None,
        },
        Malformed {
            name: "a header over 2^14 + 2048",
            bytes: raw_record(23, [3, 3], 16384 + 2049, 0),
            native: oversized.clone(),
        },
    ];
    if tls13 {
        cases.push(Malformed {
            name: "a TLS 1.3 record over 2^14 + 256 (and under 2^14 + 2048)",
            bytes: raw_record(23, [3, 3], 16384 + 257, 16384 + 257),
            native: oversized,
        });
    }
    cases
}

/// What one side reported for a malformed record and which alert its peer received.
#[derive(Debug, Clone)]
struct Outcome {
    error: rustls::Error,
    alert: Option<AlertDescription>,
}

/// The same error for the peer's purposes: equal, except that for the "inappropriate"
/// errors only the type received is compared (the list of expected types depends on
/// each state machine), and that decoding errors (`InvalidMessage`) are one family (the
/// field named differs with how each side parses). The alert sent is compared on its own.
fn same_error(a: &rustls::Error, b: &rustls::Error) -> bool {
    use rustls::Error::{InappropriateHandshakeMessage as Ihm, InappropriateMessage as Im};
    match (a, b) {
        (Im { got_type: x, .. }, Im { got_type: y, .. }) => x == y,
        (Ihm { got_type: x, .. }, Ihm { got_type: y, .. }) => x == y,
        (rustls::Error::InvalidMessage(_), rustls::Error::InvalidMessage(_)) => true,
        _ => a == b,
    }
}

/// The alert rustls sends with an error it reports (`conn.rs`, `handle_deframe_error`;
/// `common_state.rs` for KeyUpdate; the state machines), where that is fixed.
fn alert_for(e: &rustls::Error) -> Option<AlertDescription> {
    Some(match e {
        rustls::Error::DecryptError => AlertDescription::BadRecordMac,
        rustls::Error::PeerSentOversizedRecord => AlertDescription::RecordOverflow,
        rustls::Error::InvalidMessage(InvalidMessage::InvalidKeyUpdate) => {
            AlertDescription::IllegalParameter
        }
        rustls::Error::InvalidMessage(m) => AlertDescription::from(*m),
        rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            AlertDescription::UnexpectedMessage
        }
        _ => return None,
    })
}

async fn inject(
    role: Role,
    dir: Dir,
    v: &[&'static SupportedProtocolVersion],
    m: &Malformed,
) -> Outcome {
    let pki = Pki::new();
    let what = format!("{} {role:?} {dir:?}: {}", vname(v), m.name);
    let mut pair = warm_pair(&pki, role, v).await;
    let (sender, receiver) = pair.ends(dir);
    write_raw(sender, &m.bytes, &what).await;
    let error = read_tls_error(receiver, &what).await;
    // tokio-rustls leaves the transport open after its alert, so a missing alert shows
    // as a read that never ends: 5 s is plenty for bytes already in memory.
    let mut buf = [0u8; 64];
    let sender_read = tokio::time::timeout(Duration::from_secs(5), sender.read(&mut buf)).await;
    let alert = match sender_read {
        Ok(Err(e)) => match sender.tls_error(&e) {
            Some(rustls::Error::AlertReceived(a)) => Some(a),
            _ => None,
        },
        Ok(Ok(_)) | Err(_) => None,
    };
    Outcome { error, alert }
}

/// Fails with every failure collected, if there is one.
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same malformed records, injected after the handshake, towards rustls and towards
/// us, in both roles:
///
/// - each receiver's typed error names the alert its peer then receives as a typed
///   `AlertReceived` (so every fatal alert rustls sends through its error path reaches
///   our side, typed);
/// - our error and alert are the ones rustls gives, except for the deliberate, RFC-backed differences listed in
///   [`malformed_records`], which are asserted as such.
#[tokio::test]
async fn malformed_records_get_the_errors_and_alerts_rustls_gives() {
    let mut failures = Vec::new();
    for v in versions() {
        for m in malformed_records(version_of(v)) {
            for role in ROLES {
                let what = format!("{} {role:?}, {}", vname(v), m.name);
                let theirs = inject(role, Dir::NativeToRustls, v, &m).await;
                let ours = inject(role, Dir::RustlsToNative, v, &m).await;
                println!(
                    "{what}:\n    rustls: {:?}, we receive {:?}\n    native: {:?}, rustls \
                     receives {:?}",
                    theirs.error, theirs.alert, ours.error, ours.alert
                );
                for (side, o) in [("rustls", &theirs), ("native", &ours)] {
                    if o.alert.is_none() || o.alert != alert_for(&o.error) {
                        failures.push(format!(
                            "{what}: {side} reports {:?} but its peer received {:?}",
                            o.error, o.alert
                        ));
                    }
                }
                match &m.native {
                    None if !same_error(&ours.error, &theirs.error)
                        || ours.alert != theirs.alert =>
                    {
                        failures.push(format!(
                            "{what}: rustls gives {:?} / {:?}, native {:?} / {:?}",
                            theirs.error, theirs.alert, ours.error, ours.alert
                        ));
                    }
                    Some((error, alert, why))
                        if !same_error(&ours.error, error) || ours.alert != Some(*alert) =>
                    {
                        failures.push(format!(
                            "{what}: native gives {:?} / {:?}, want {error:?} / {alert:?} \
                             ({why})",
                            ours.error, ours.alert
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    assert_no_failures(&failures);
}

/// A connection whose sender end the test forges records on, and its receiving end:
/// ours, or tokio-rustls's for reference.
async fn forged_pair(
    native_receiver: bool,
    receiver_is_client: bool,
) -> (Forger<TakenOver>, Box<dyn Peer>) {
    let pki = Pki::new();
    // ChaCha20-Poly1305, one suite for every case: the contents tested do not depend on
    // the suite. (aws-lc-rs's TLS 1.3 AES-GCM sealing key insists that its nonces start at
    // sequence number 0 and increase; the shared forger spends the numbers the handshake
    // used before it seals, so that suite would do too.)
    let chacha = provider()
        .cipher_suites
        .iter()
        .copied()
        .find(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
        .expect("the provider has ChaCha20-Poly1305");
    let mut client = ClientConfig::builder_with_provider(Arc::new(CryptoProvider {
        cipher_suites: vec![chacha],
        ..(*provider()).clone()
    }))
    .with_protocol_versions(TLS13)
    .unwrap()
    .with_root_certificates(pki.roots())
    .with_no_client_auth();
    let mut server = pki.server_config_with(TLS13);
    // The forging end gives its secrets to the test.
    client.enable_secret_extraction = true;
    server.enable_secret_extraction = true;
    let receiver: Box<dyn Peer>;
    let forger;
    if native_receiver {
        let role = if receiver_is_client {
            Role::NativeClient
        } else {
            Role::NativeServer
        };
        let mut pair = make_pair(role, client, server).await;
        warm_up(&mut pair).await;
        forger = pair.rustls.into_forger();
        receiver = Box::new(pair.native);
    } else {
        let (client, server) = (Arc::new(client), Arc::new(server));
        let (a, b) = tokio::io::duplex(64 * 1024);
        let connector = tokio_rustls::TlsConnector::from(client);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let (c, s) = bounded("rustls pair", async {
            tokio::join!(
                connector.connect(localhost(), Tap::new(a)),
                acceptor.accept(Tap::new(b))
            )
        })
        .await;
        let (mut c, mut s): (Box<dyn Peer>, Box<dyn Peer>) =
            (Box::new(c.unwrap()), Box::new(s.unwrap()));
        send(&mut *c, &mut *s, b"warm-up: client to server").await;
        send(&mut *s, &mut *c, b"warm-up: server to client").await;
        let sender;
        (receiver, sender) = if receiver_is_client { (c, s) } else { (s, c) };
        forger = sender.into_forger();
    }
    (forger, receiver)
}

/// What a receiver made of forged records: the data it delivered or its error, and the
/// alert it sent.
#[derive(Debug, Clone)]
struct ForgedOutcome {
    result: Result<Vec<u8>, rustls::Error>,
    alert: Option<AlertDescription>,
}

async fn forge(
    native_receiver: bool,
    receiver_is_client: bool,
    case: &ForgedCase,
) -> ForgedOutcome {
    let (mut forger, mut receiver) = forged_pair(native_receiver, receiver_is_client).await;
    let what = format!("{} receives {}", receiver.name(), case.name);
    let wire: Vec<u8> = (case.records)(receiver_is_client)
        .iter()
        .flat_map(|inner| forger.inner_plaintext(inner))
        .collect();
    bounded(&what, async {
        forger.io.write_all(&wire).await.unwrap();
        forger.io.flush().await.unwrap();
    })
    .await;
    // A receiver that neither fails nor delivers within 3 s ignored the records
    // (`Ok(empty)`): rustls does that with some of them.
    let mut got = vec![0u8; case.delivers.len().max(1)];
    let want = got.len();
    let read = async {
        let mut off = 0;
        // Each turn reads at least one byte or ends.
        while off < want {
            match receiver.read(&mut got[off..]).await {
                Ok(0) => break,
                Ok(n) => off += n,
                Err(e) => return Err(e),
            }
        }
        Ok(off)
    };
    let result = match tokio::time::timeout(Duration::from_secs(3), read).await {
        Err(_) => Ok(Vec::new()),
        Ok(Ok(n)) => Ok(got[..n].to_vec()),
        Ok(Err(e)) => Err(receiver
            .tls_error(&e)
            .unwrap_or_else(|| panic!("{what}: {e:?}"))),
    };
    // Whatever the receiver sent is buffered; closing it ends the stream after that, so a
    // missing alert shows at once.
    drop(receiver);
    let alert = if result.is_err() {
        forger.first_alert_within(Duration::from_secs(5)).await
    } else {
        None
    };
    ForgedOutcome { result, alert }
}

/// Records forged after a TLS 1.3 handshake: each is a list of inner plaintexts
/// (content, type, padding), given whether the receiver is the client. `delivers` is
/// the data a correct receiver returns (empty: none).
struct ForgedCase {
    name: &'static str,
    records: fn(bool) -> Vec<Vec<u8>>,
    delivers: &'static [u8],
    /// Where the native layer deliberately differs from rustls (given whether it is the
    /// client): the error and alert it gives instead, and why.
    native: fn(bool) -> Option<Deviation>,
}

type Deviation = (rustls::Error, Option<AlertDescription>, &'static str);

fn same_as_rustls(_: bool) -> Option<Deviation> {
    None
}

fn forged_cases() -> Vec<ForgedCase> {
    const DATA: u8 = 23;
    const HS: u8 = 22;
    const ALERT: u8 = 21;
    fn one(inner: &[u8]) -> Vec<Vec<u8>> {
        vec![inner.to_vec()]
    }
    vec![
        ForgedCase {
            name: "application data with 200 bytes of padding",
            records: |_| one(&[b"hello".as_slice(), &[DATA], &[0; 200]].concat()),
            delivers: b"hello",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "32 empty application data records, then data",
            records: |_| {
                let mut r = vec![vec![DATA]; 32];
                r.push(b"after".iter().chain(&[DATA]).copied().collect());
                r
            },
            delivers: b"after",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a user_canceled warning, then data",
            records: |_| vec![vec![1, 90, ALERT], b"after\x17".to_vec()],
            delivers: b"after",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "33 empty application data records",
            records: |_| vec![vec![DATA]; 33],
            delivers: b"",
            native: |_| {
                Some((
                    PeerMisbehaved::TooManyEmptyFragments.into(),
                    Some(AlertDescription::UnexpectedMessage),
                    "we also send unexpected_message; rustls sends no alert",
                ))
            },
        },
        ForgedCase {
            name: "application data over 2^14 bytes",
            records: |_| one(&[vec![b'x'; 16385], vec![DATA]].concat()),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "an inner plaintext of padding only",
            records: |_| one(&[0; 20]),
            delivers: b"",
            native: |_| {
                Some((
                    PeerMisbehaved::IllegalTlsInnerPlaintext.into(),
                    Some(AlertDescription::UnexpectedMessage),
                    "RFC 8446, 5.4: MUST send unexpected_message; rustls sends no alert",
                ))
            },
        },
        ForgedCase {
            name: "an unknown inner content type",
            records: |_| one(b"abc\x63"),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "an encrypted change_cipher_spec",
            records: |_| one(&[1, 20]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "an empty handshake record",
            records: |_| one(&[HS]),
            delivers: b"",
            native: |_| {
                Some((
                    InvalidMessage::InvalidEmptyPayload.into(),
                    Some(AlertDescription::UnexpectedMessage),
                    "RFC 8446, 5.4: a zero-length handshake or alert TLSInnerPlaintext \
                     MUST end the connection with unexpected_message (rustls ignores it)",
                ))
            },
        },
        ForgedCase {
            name: "an empty alert record",
            records: |_| one(&[ALERT]),
            delivers: b"",
            native: |_| {
                Some((
                    InvalidMessage::InvalidEmptyPayload.into(),
                    Some(AlertDescription::UnexpectedMessage),
                    "RFC 8446, 5.4 asks for unexpected_message (rustls: decode_error)",
                ))
            },
        },
        ForgedCase {
            name: "an alert of one byte",
            records: |_| one(&[2, ALERT]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "an alert of three bytes",
            records: |_| one(&[2, 40, 0, ALERT]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a fatal handshake_failure alert",
            records: |_| one(&[2, 40, ALERT]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a warning alert other than user_canceled",
            records: |_| one(&[1, 42, ALERT]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "an alert of unknown level",
            records: |_| one(&[3, 40, ALERT]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a KeyUpdate with request value 2",
            records: |_| one(&[24, 0, 0, 1, 2, HS]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a KeyUpdate of two bytes",
            records: |_| one(&[24, 0, 0, 2, 0, 0, HS]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a KeyUpdate with another message after it in its record",
            records: |_| one(&[24, 0, 0, 1, 0, 24, 0, 0, 1, 0, HS]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a Finished after the handshake",
            records: |_| one(&[[20, 0, 0, 32].as_slice(), &[7; 32], &[HS]].concat()),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a ClientHello after the handshake",
            records: |_| one(&[1, 0, 0, 4, 3, 3, 0, 0, HS]),
            delivers: b"",
            native: |_| {
                Some((
                    rustls::Error::InappropriateHandshakeMessage {
                        expect_types: vec![HandshakeType::KeyUpdate],
                        got_type: HandshakeType::ClientHello,
                    },
                    Some(AlertDescription::UnexpectedMessage),
                    "refused by its type before its body is parsed (rustls parses this \
                     malformed body first)",
                ))
            },
        },
        ForgedCase {
            name: "a HelloRequest",
            records: |_| one(&[0, 0, 0, 0, HS]),
            delivers: b"",
            native: same_as_rustls,
        },
        ForgedCase {
            name: "a malformed NewSessionTicket",
            records: |_| one(&[4, 0, 0, 2, 0, 0, HS]),
            delivers: b"",
            native: |client| {
                (!client).then(|| {
                    (
                        rustls::Error::InappropriateHandshakeMessage {
                            expect_types: vec![HandshakeType::KeyUpdate],
                            got_type: HandshakeType::NewSessionTicket,
                        },
                        Some(AlertDescription::UnexpectedMessage),
                        "a server refuses it by its type before its body is parsed",
                    )
                })
            },
        },
        ForgedCase {
            name: "a handshake message over 2^16 bytes",
            records: |_| one(&[24, 1, 0, 0, HS]),
            delivers: b"",
            native: |_| {
                Some((
                    InvalidMessage::HandshakePayloadTooLarge.into(),
                    Some(AlertDescription::DecodeError),
                    "we also send decode_error; rustls sends no alert",
                ))
            },
        },
        ForgedCase {
            name: "a handshake fragment, then application data",
            records: |_| vec![vec![24, 0, HS], b"x\x17".to_vec()],
            delivers: b"",
            native: |_| {
                Some((
                    PeerMisbehaved::MessageInterleavedWithHandshakeMessage.into(),
                    Some(AlertDescription::UnexpectedMessage),
                    "we also send unexpected_message; rustls sends no alert",
                ))
            },
        },
    ]
}

/// Records forged with the sender's own keys after a TLS 1.3 handshake (so they decrypt)
/// but with contents a peer must refuse or handle: padding, empty records, bad alerts,
/// bad or misplaced handshake messages, oversize plaintext. Each goes to our native
/// receiver and to a tokio-rustls receiver in the same role; the outcomes (data, or
/// error and alert sent) must match, and each error must name the alert sent.
#[tokio::test]
async fn forged_records_get_the_errors_and_alerts_rustls_gives() {
    let mut failures = Vec::new();
    for case in forged_cases() {
        for client in [true, false] {
            let theirs = forge(false, client, &case).await;
            let ours = forge(true, client, &case).await;
            let side = if client { "client" } else { "server" };
            println!(
                "{side} receives {}:\n    rustls: {:?} / {:?}\n    native: {:?} / {:?}",
                case.name, theirs.result, theirs.alert, ours.result, ours.alert
            );
            let name = format!("{side} receives {}", case.name);
            let same_result = |want: &Result<Vec<u8>, rustls::Error>| match (&ours.result, want) {
                (Ok(a), Ok(b)) => a == b,
                (Err(a), Err(b)) => same_error(a, b),
                _ => false,
            };
            match (case.native)(client) {
                None if !same_result(&theirs.result) || ours.alert != theirs.alert => {
                    failures.push(format!(
                        "{name}: rustls {:?} / {:?}, native {:?} / {:?}",
                        theirs.result, theirs.alert, ours.result, ours.alert
                    ));
                }
                Some((error, alert, why))
                    if !same_result(&Err(error.clone())) || ours.alert != alert =>
                {
                    failures.push(format!(
                        "{name}: native {:?} / {:?}, want {error:?} / {alert:?} ({why})",
                        ours.result, ours.alert
                    ));
                }
                _ => {}
            }
            // Our error names the alert we sent, as rustls pairs them, unless the case
            // gives another alert on purpose (it was checked above).
            let deviates = (case.native)(client).is_some_and(|(_, alert, _)| {
                alert != ours.result.as_ref().err().and_then(alert_for)
            });
            if let (Err(e), false) = (&ours.result, deviates) {
                if alert_for(e).is_some() && ours.alert != alert_for(e) {
                    failures.push(format!(
                        "{name}: native reports {e:?} but sent {:?}, want {:?}",
                        ours.alert,
                        alert_for(e)
                    ));
                }
            }
        }
    }
    assert_no_failures(&failures);
}
