//! The differential fuzz target `record_diff`: one byte stream from a peer, fed to our
//! native record layer and to rustls's, which must behave alike. The cargo-fuzz binary and
//! `src/fuzz_tests/` (its seed and generated cases under `cargo test`) both run it.
//!
//! A case is a config byte (side, suite) and a list of operations: the peer seals records
//! (data of any size, KeyUpdates, tickets, alerts, HelloRequests, handshake messages
//! fragmented or coalesced, wrong content types, TLS 1.3 padding), mutates what it sealed
//! (bit flips, truncation, forged lengths, types and versions, empty records, replays,
//! drops), and feeds the stream in chunks; our side writes or closes. After every step the
//! two engines' observations (plaintext delivered, where reads ended, the records sealed in
//! reply) must be equal, or differ in one of the ways listed in `DIFFERENCES`, the one
//! table of the places where the native layer follows the RFC rather than rustls on
//! purpose. RELIABILITY.md lists the same table; a test checks that they agree.

use std::sync::{Arc, OnceLock};

use super::targets::*;

use lazytls::fuzzing::{self, End, Observed, Reply, Twins};
use lazytls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use lazytls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime,
};
use lazytls::rustls::{
    self as rustls_, ClientConfig, ContentType, DigitallySignedStruct, ServerConfig,
    SignatureScheme,
};

/// The RSA key of the test suites, for the TLS 1.2 `ECDHE_RSA` suites.
const RSA_TEST_KEY: &str = include_str!("../../tests/common/rsa_test_key.pem");

/// At most this many operations run in one case.
pub const MAX_DIFF_OPS: usize = 64;
/// The seed of every twin handshake: inputs need not vary it, and a fixed one makes each
/// input reproduce exactly.
const HANDSHAKE_SEED: u64 = 0x7A11_5EED;
/// Our side's probe write.
const PROBE: &[u8] = b"probe";
/// The step name of a probe write.
const WRITE_STEP: &str = "our write";

/// One intentional difference between the record layers.
pub struct Difference {
    /// Its name, as RELIABILITY.md lists it.
    pub name: &'static str,
    /// Whether the engines may be in different states after it (the case stops there).
    pub diverges: bool,
    /// How it accounts for what the native (first) and rustls (second) engines did.
    pub explains: Explains,
}

/// How a [`Difference`] accounts for a step.
pub enum Explains {
    /// It can happen in the same step as others: it takes what it accounts for out of the
    /// observations (true if it took anything), and the rest is compared.
    Part(fn(&mut Observed, &mut Observed) -> bool),
    /// It accounts for the whole of the step's difference, given what the case did.
    Whole(fn(&Observed, &Observed, &Context) -> bool),
}

fn failed_with(o: &Observed, what: &str) -> bool {
    matches!(&o.end, End::Failed(e) if e.contains(what))
}

fn alerts(o: &Observed) -> Vec<(u8, u8)> {
    o.replies
        .iter()
        .filter_map(|r| match r {
            Reply::Alert(level, desc) => Some((*level, *desc)),
            _ => None,
        })
        .collect()
}

fn same_but_replies(a: &Observed, b: &Observed) -> bool {
    a.delivered == b.delivered && a.end == b.end
}

const RECORD_OVERFLOW: u8 = 22;
const UNEXPECTED_MESSAGE: u8 = 10;
const DECODE_ERROR: u8 = 50;
const BAD_RECORD_MAC: u8 = 20;
const ILLEGAL_PARAMETER: u8 = 47;
/// A KeyUpdate that answers a request.
const ANSWER: Reply = Reply::KeyUpdate(false);
const NO_RENEGOTIATION: u8 = 100;
/// A refused renegotiation.
const REFUSAL: (u8, u8) = (1, NO_RENEGOTIATION);

/// The places where the native layer differs from rustls on purpose. Each entry's
/// `explains` is as narrow as the difference: anything else is a finding.
pub static DIFFERENCES: &[Difference] = &[
    Difference {
        // RFC 8446, 4.6.3 asks for the answer before our next application record; the
        // native layer sends it at once, so a peer waiting on it is not stalled by an
        // idle writer, and rustls holds it until our next write. Only the timing may
        // differ: `compare` checks that the counts agree after every write.
        name: "key-update-answered-at-once",
        diverges: false,
        explains: Explains::Part(|native, rustls| {
            let answers = |o: &Observed| o.replies.iter().filter(|r| **r == ANSWER).count();
            let (a, b) = (answers(native), answers(rustls));
            if a == b || a.max(b) > 1 {
                return false;
            }
            for o in [native, rustls] {
                o.replies.retain(|r| *r != ANSWER);
            }
            true
        }),
    },
    Difference {
        // RFC 5246, 7.4.1.1: a client may ignore a HelloRequest. OpenSSL takes the
        // no_renegotiation warning rustls sends for a fatal handshake failure.
        name: "hello-request-ignored",
        diverges: false,
        explains: Explains::Part(|native, rustls| {
            let refusals = |o: &Observed| alerts(o).iter().filter(|a| **a == REFUSAL).count();
            if refusals(rustls) != refusals(native) + 1 {
                return false;
            }
            let first = rustls
                .replies
                .iter()
                .position(|r| *r == Reply::Alert(1, NO_RENEGOTIATION));
            rustls.replies.remove(first.expect("counted above"));
            true
        }),
    },
    Difference {
        // RFC 8446, 5.2 and RFC 5246, 6.2.3: a record longer than the version's limit
        // is a record_overflow, seen from its header. rustls's deframer allows 2^14 + 2048
        // for both versions (a TLS 1.3 record in between is read, or waited for, and then
        // fails on its plaintext) and sends decode_error past that.
        name: "oversized-record-alert",
        diverges: true,
        explains: Explains::Whole(|native, rustls, _| {
            // Replies both sent before it (a warning for a refused renegotiation) are the
            // same.
            rustls.delivered.starts_with(&native.delivered)
                && failed_with(native, "excess record size")
                && matches!(native.replies.split_last(),
                    Some((Reply::Alert(2, RECORD_OVERFLOW), before))
                        if rustls.replies.starts_with(before))
        }),
    },
    Difference {
        // RFC 8446, 5 and RFC 5246, 6: a record of an unexpected type gets
        // unexpected_message. rustls sends decode_error for a type it does not know, or
        // bad_record_mac where the forged type spoilt a TLS 1.2 record's AAD; and it opens
        // a TLS 1.3 record with a fixed outer type in the AAD (RFC 8446, 5.2 has the
        // record's own), so a record whose outer type was changed is read on there.
        name: "unexpected-record-type-alert",
        diverges: true,
        explains: Explains::Whole(|native, rustls, _| {
            rustls.delivered.starts_with(&native.delivered)
                && failed_with(native, "received unexpected message")
                && alerts(native) == [(2, UNEXPECTED_MESSAGE)]
        }),
    },
    Difference {
        // A post-handshake message that may not come is refused by its type (RFC 8446,
        // 5 and 6; RFC 5246, 7.4.1.2 lets a server answer a ClientHello with
        // no_renegotiation); rustls decodes its body first, so a malformed one is a
        // decode_error (or illegal_parameter, for a duplicate extension) there. Alerts
        // both sent first in the same step (the warning of an earlier renegotiation both
        // refused alike) are not part of the difference: a malformed message after it is
        // then refused by its type here (unexpected_message; or, for a second
        // renegotiation request, fatal as one too many with no alert, as rustls is for a
        // well-formed one), and by its body (decode_error) in rustls. Two requests in one
        // step, the first malformed, end the same way before either is answered.
        name: "handshake-type-judged-before-body",
        diverges: true,
        explains: Explains::Whole(|native, rustls, _| {
            let (ours, theirs) = (alerts(native), alerts(rustls));
            let both = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
            let (ours, theirs) = (&ours[both..], &theirs[both..]);
            let refused = ours.first() == Some(&(1, NO_RENEGOTIATION))
                || (failed_with(native, "unexpected") && ours == [(2, UNEXPECTED_MESSAGE)])
                || (failed_with(native, "TooManyRenegotiationRequests") && ours.is_empty());
            // Refused without a failure, the native layer may read on past it.
            native.delivered.starts_with(&rustls.delivered)
                && refused
                && failed_with(rustls, "corrupt message")
                && matches!(theirs, [(2, DECODE_ERROR | ILLEGAL_PARAMETER)])
        }),
    },
    Difference {
        // The same error, and an alert where rustls sends none: RFC 8446, 6 and RFC
        // 5246, 7.2 ask for one on every fatal error. Only for the errors where rustls is
        // known to stay silent. Every reply both sent before it (a warning for a refused
        // renegotiation, a KeyUpdate answer) is the same.
        name: "alert-where-rustls-sends-none",
        diverges: false,
        explains: Explains::Whole(|native, rustls, _| {
            let silent = [
                "TooManyEmptyFragments",
                "IllegalTlsInnerPlaintext",
                "HandshakePayloadTooLarge",
                "MessageInterleavedWithHandshakeMessage",
            ];
            same_but_replies(native, rustls)
                && silent.iter().any(|e| failed_with(native, e))
                && matches!(native.replies.split_last(),
                    Some((Reply::Alert(2, _), before)) if before == rustls.replies.as_slice())
        }),
    },
    Difference {
        // The native layer resets its KeyUpdate and empty-record counters only on
        // application data with content; rustls resets the first on any application
        // record (empty ones too) and the second on any record with content (a KeyUpdate
        // too), so a peer alternating KeyUpdates and empty records is never stopped
        // there. Both limits are rustls's own (32 each).
        name: "limits-reset-by-data-only",
        diverges: true,
        explains: Explains::Whole(|native, rustls, _| {
            rustls.delivered.starts_with(&native.delivered)
                && (failed_with(native, "TooManyKeyUpdateRequests")
                    || failed_with(native, "TooManyEmptyFragments"))
                && rustls.end != native.end
        }),
    },
    Difference {
        // RFC 8446, 5.2: a TLS 1.3 record's additional data is its own header, so a record
        // whose header version was edited does not open (bad_record_mac). rustls opens
        // TLS 1.3 records with a fixed header in the additional data and reads on (it may
        // fail on a later record).
        name: "tls13-header-authenticated",
        diverges: true,
        explains: Explains::Whole(|native, rustls, context| {
            context.tls13_version_edited
                && rustls.delivered.starts_with(&native.delivered)
                && failed_with(native, "cannot decrypt")
                && alerts(native) == [(2, BAD_RECORD_MAC)]
        }),
    },
    Difference {
        // A ticket is decoded by rustls's kernel connection, which names bytes after it
        // `TrailingData("read_bytes")`; rustls's own path decodes the whole message and
        // says `TrailingData("HandshakeMessagePayload")`. The same decode_error alert.
        name: "ticket-decoded-by-kernel",
        diverges: false,
        explains: Explains::Whole(|native, rustls, _| {
            native.delivered == rustls.delivered
                && native.replies == rustls.replies
                && failed_with(native, "TrailingData(\"read_bytes\")")
                && failed_with(rustls, "TrailingData(\"HandshakeMessagePayload\")")
        }),
    },
    Difference {
        // RFC 8446, 5.4: a zero-length handshake or alert TLSInnerPlaintext ends the
        // connection with unexpected_message, and a type nobody defined is refused
        // whatever its length. rustls skips an empty inner plaintext of any type as an
        // empty fragment (the 33rd in a row fails), and answers an empty alert with
        // decode_error.
        name: "empty-inner-plaintext-refused",
        diverges: true,
        explains: Explains::Whole(|native, rustls, _| {
            let refused = (failed_with(native, "InvalidEmptyPayload")
                && alerts(native) == [(2, UNEXPECTED_MESSAGE)])
                || (failed_with(native, "InvalidContentType")
                    && alerts(native) == [(2, DECODE_ERROR)]);
            rustls.delivered.starts_with(&native.delivered)
                && refused
                && (rustls.end != native.end || alerts(rustls) == [(2, DECODE_ERROR)])
        }),
    },
    Difference {
        // A record header's version must be 3.x (RFC 5246, 6.2.1, appendix E; RFC 8446,
        // 5.1 keeps the field); the native layer refuses any other from the header.
        // rustls refuses only versions it does not know, so a DTLS or SSLv2 value gets
        // as far as the AEAD there (bad_record_mac), or, in TLS 1.3, past it.
        name: "record-version-judged-from-header",
        diverges: true,
        explains: Explains::Whole(|native, rustls, context| {
            context.version_edited
                && rustls.delivered.starts_with(&native.delivered)
                && failed_with(native, "UnknownProtocolVersion")
                && alerts(native) == [(2, DECODE_ERROR)]
        }),
    },
];

/// Counts of the differences met, by name, for callers that want figures.
#[derive(Debug, Default, Clone)]
pub struct DiffOutcome {
    /// Comparisons made.
    pub compared: usize,
    /// Differences explained by the table, by entry.
    pub explained: Vec<&'static str>,
    /// A twin failed (the case ended there).
    pub failed: bool,
    /// Plaintext bytes the native engine delivered.
    pub delivered: usize,
    /// KeyUpdate answers each engine sent so far.
    answers: [usize; 2],
    /// What the case did that an entry may depend on.
    context: Context,
}

/// What a case did that a [`Difference`] may depend on.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// A record header's version bytes were edited.
    pub version_edited: bool,
    /// The same, on TLS 1.3.
    pub tls13_version_edited: bool,
}

/// Compares one step; panics on an unexplained difference. Returns whether the case may
/// go on.
fn compare(step: &str, seen: &[Observed; 2], out: &mut DiffOutcome) -> bool {
    let context = &out.context;
    for (tally, o) in out.answers.iter_mut().zip(seen) {
        *tally += o.replies.iter().filter(|r| **r == ANSWER).count();
    }
    let [native, rustls] = seen;
    if std::env::var_os("DIFF_TRACE").is_some() {
        eprintln!(
            "{step}:\n  native: {:?}\n  rustls: {:?}",
            Short(native),
            Short(rustls)
        );
    }
    if step == WRITE_STEP && native.end == End::Open && rustls.end == End::Open {
        // rustls sends a held KeyUpdate answer before the data of a write.
        assert_eq!(
            out.answers[0], out.answers[1],
            "the record layers sent different numbers of KeyUpdate answers by {step}"
        );
    }
    out.compared += 1;
    out.delivered += native.delivered.len();
    out.failed |= matches!(native.end, End::Failed(_)) || matches!(rustls.end, End::Failed(_));
    let stop = |o: &Observed| matches!(o.end, End::Failed(_) | End::PeerClosed);
    let (mut n, mut r) = (native.clone(), rustls.clone());
    let mut diverged = false;
    for d in DIFFERENCES {
        if let Explains::Part(take) = d.explains {
            if n != r && take(&mut n, &mut r) {
                out.explained.push(d.name);
                diverged |= d.diverges;
            }
        }
    }
    if n == r {
        return !diverged && !stop(native) && !stop(rustls);
    }
    let whole = DIFFERENCES.iter().find(|d| match d.explains {
        Explains::Whole(explains) => explains(&n, &r, context),
        Explains::Part(_) => false,
    });
    if let Some(d) = whole {
        out.explained.push(d.name);
        return !diverged && !d.diverges && !stop(native) && !stop(rustls);
    }
    panic!(
        "the record layers differ after {step}:\n  native: {native:?}\n  rustls: {rustls:?}",
        native = Short(native),
        rustls = Short(rustls),
    );
}

/// An observation with the plaintext shortened, for panic messages.
struct Short<'a>(&'a Observed);

impl std::fmt::Debug for Short<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.0.delivered;
        write!(
            f,
            "delivered {} bytes {:02x?}.., end {:?}, replies {:?}",
            d.len(),
            &d[..d.len().min(16)],
            self.0.end,
            self.0.replies
        )
    }
}

/// The operations of a case, picked by `op % 13`.
pub mod diff_op {
    /// Application data: a `u16` length (up to 2^14 + 300, so past the limit too).
    pub const DATA: u8 = 0;
    /// A KeyUpdate: a byte, bit 0 = update_requested, bit 1 = use the byte's upper bits
    /// as the request value instead (invalid values).
    pub const KEY_UPDATE: u8 = 1;
    /// A NewSessionTicket with the next chunk as its body.
    pub const TICKET: u8 = 2;
    /// An alert: level byte, description byte.
    pub const ALERT: u8 = 3;
    /// close_notify.
    pub const CLOSE_NOTIFY: u8 = 4;
    /// A renegotiation request: HelloRequest from a server, a ClientHello (the next chunk
    /// as its body) from a client.
    pub const RENEGOTIATE: u8 = 5;
    /// A handshake message (type byte, chunk body) cut into 1 to 4 records (a byte).
    pub const FRAGMENTED: u8 = 6;
    /// Two handshake messages (type, chunk each) in one record.
    pub const COALESCED: u8 = 7;
    /// A record of any content type (a byte) with the next chunk as payload.
    pub const RECORD: u8 = 8;
    /// TLS 1.3: a record whose inner plaintext is the chunk, a type byte, then a `u16` of
    /// zero padding.
    pub const PADDED: u8 = 9;
    /// Edit the last sealed record: a kind byte, then its arguments.
    pub const MUTATE: u8 = 10;
    /// Feed what was sealed, cut at up to 3 `u16` offsets.
    pub const FEED: u8 = 11;
    /// Our side writes a probe (a byte picks close_notify instead).
    pub const WRITE: u8 = 12;
}

/// Configs for the differential target: one (client, server) pair per suite, with the
/// deterministic provider, certificates whose signatures are deterministic (Ed25519, RSA
/// PKCS#1) and a client that accepts any certificate (the handshake is not under test).
pub fn diff_configs() -> &'static [(Arc<ClientConfig>, Arc<ServerConfig>)] {
    static CONFIGS: OnceLock<Vec<(Arc<ClientConfig>, Arc<ServerConfig>)>> = OnceLock::new();
    CONFIGS.get_or_init(build_diff_configs)
}

#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls_::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls_::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls_::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        // Deterministic signatures only: the twins' transcripts must be equal.
        vec![SignatureScheme::ED25519, SignatureScheme::RSA_PKCS1_SHA256]
    }
}

fn build_diff_configs() -> Vec<(Arc<ClientConfig>, Arc<ServerConfig>)> {
    let cert = |key: rcgen::KeyPair| {
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("rcgen params")
            .self_signed(&key)
            .expect("rcgen certificate");
        (cert.der().clone(), key.serialize_der())
    };
    let ed25519 = cert(rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("rcgen key"));
    // ring cannot generate RSA keys: the test suites' embedded one (PKCS#1 signatures are
    // deterministic, which the twin handshakes need).
    let rsa = cert(rcgen::KeyPair::from_pem(RSA_TEST_KEY).expect("RSA test key"));
    let base = provider();
    base.cipher_suites
        .iter()
        .map(|&suite| {
            let (cert_der, key_der) = if format!("{:?}", suite.suite()).contains("_RSA_") {
                &rsa
            } else {
                &ed25519
            };
            let mut p = fuzzing::deterministic(provider());
            p.cipher_suites = vec![suite];
            let p = Arc::new(p);
            let versions = [suite.version()];
            let mut client = ClientConfig::builder_with_provider(p.clone())
                .with_protocol_versions(&versions)
                .expect("client versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything))
                .with_no_client_auth();
            client.enable_secret_extraction = true;
            client.resumption = rustls_::client::Resumption::disabled();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.clone()));
            let mut server = ServerConfig::builder_with_provider(p)
                .with_protocol_versions(&versions)
                .expect("server versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert_der.clone()], key)
                .expect("server certificate");
            server.enable_secret_extraction = true;
            server.send_tls13_tickets = 0;
            (Arc::new(client), Arc::new(server))
        })
        .collect()
}

/// A 24-bit-length handshake message.
fn handshake_message(typ: u8, body: &[u8]) -> Vec<u8> {
    let len = (body.len() as u32).to_be_bytes();
    let mut m = vec![typ, len[1], len[2], len[3]];
    m.extend_from_slice(body);
    m
}

/// A TLS 1.3 NewSessionTicket body as a server sends it (RFC 8446, 4.6.1): lifetime,
/// age_add, a nonce, an opaque ticket and no extensions.
fn well_formed_ticket() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&7200u32.to_be_bytes());
    body.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&32u16.to_be_bytes());
    body.extend_from_slice(&[0x7e; 32]);
    body.extend_from_slice(&0u16.to_be_bytes());
    body
}

/// Plaintext that says where it came from: byte `i` of data record `n`.
fn data_bytes(n: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ n as u8)
        .collect()
}

/// Target `record_diff`: see the top of this file. Panics on an unexplained difference.
pub fn record_diff(data: &[u8]) -> DiffOutcome {
    let mut input = Input::new(data);
    let mut out = DiffOutcome::default();
    let Some(config) = input.byte() else {
        return out;
    };
    let configs = diff_configs();
    let (client, server) = &configs[usize::from(config >> 1) % configs.len()];
    let ours_client = config & 1 == 0;
    let Some(mut twins) = Twins::new(client, server, ours_client, HANDSHAKE_SEED) else {
        panic!("harness: the twin handshake failed");
    };
    // What the handshake left (the server's last flight) is delivered first.
    if !compare("the handshake", &twins.feed(&[]), &mut out) {
        return out;
    }
    let tls13 = twins.tls13();
    let mut pending: Vec<u8> = Vec::new();
    // Where the last sealed record starts in `pending`.
    let mut last = 0;
    let mut records = 0;
    // After our close_notify, rustls 0.23 answers a bad record with a fatal alert anyway
    // (a debug assertion of its own fires; a release build seals it after the
    // close_notify). So from then on a case feeds only valid records, within every limit,
    // which both must keep reading.
    let mut closed = false;
    let mut updates_after_close = 0;
    let mut tainted = false;
    for _ in 0..MAX_DIFF_OPS {
        let Some(op) = input.byte() else { break };
        if std::env::var_os("DIFF_TRACE").is_some() {
            eprintln!("op {} (pending {} bytes)", op % 13, pending.len());
        }
        let valid_op = matches!(op % 13, diff_op::DATA | diff_op::KEY_UPDATE | diff_op::FEED);
        if closed && !valid_op && op % 13 != diff_op::CLOSE_NOTIFY {
            break;
        }
        // Whatever was fed before our close must have been valid too: a truncated record
        // would still sit half-read and spoil the valid ones after it.
        tainted |= !valid_op && op % 13 != diff_op::WRITE;
        let mut seal = |twins: &mut Twins, typ: ContentType, payload: &[u8]| {
            last = pending.len();
            pending.extend(twins.seal(typ, payload));
        };
        match op % 13 {
            diff_op::DATA => {
                let len = if closed {
                    // Within the limits: no empty records, none over 2^14.
                    1 + usize::from(input.u16()) % 16_384
                } else {
                    usize::from(input.u16()) % (16_384 + 300)
                };
                tainted |= len == 0 || len > 16_384;
                records += 1;
                seal(
                    &mut twins,
                    ContentType::ApplicationData,
                    &data_bytes(records, len),
                );
            }
            diff_op::KEY_UPDATE => {
                let b = input.byte().unwrap_or(0);
                let value = if b & 2 == 0 || closed { b & 1 } else { b >> 2 };
                tainted |= value > 1 || !tls13;
                // After our close, few enough that no limit is reached either.
                updates_after_close += usize::from(closed);
                if closed && (!tls13 || updates_after_close > 8) {
                    break;
                }
                seal(&mut twins, ContentType::Handshake, &[24, 0, 0, 1, value]);
                if tls13 {
                    twins.peer_rekey();
                }
            }
            diff_op::TICKET => {
                let chunk = input.chunk();
                let body = if chunk.is_empty() {
                    well_formed_ticket()
                } else {
                    chunk.to_vec()
                };
                seal(
                    &mut twins,
                    ContentType::Handshake,
                    &handshake_message(4, &body),
                );
            }
            diff_op::ALERT => {
                let level = input.byte().unwrap_or(1);
                let desc = input.byte().unwrap_or(0);
                seal(&mut twins, ContentType::Alert, &[level, desc]);
            }
            diff_op::CLOSE_NOTIFY => {
                seal(&mut twins, ContentType::Alert, &[1, 0]);
                if closed {
                    // Anything after it would be a bad record (see above).
                    break;
                }
            }
            diff_op::RENEGOTIATE => {
                let message = if ours_client {
                    handshake_message(0, &[])
                } else {
                    handshake_message(1, input.chunk())
                };
                seal(&mut twins, ContentType::Handshake, &message);
            }
            diff_op::FRAGMENTED => {
                let typ = input.byte().unwrap_or(4);
                let message = handshake_message(typ, input.chunk());
                let pieces = 1 + usize::from(input.byte().unwrap_or(0) % 4);
                let size = message.len().div_ceil(pieces).max(1);
                for piece in message.chunks(size) {
                    seal(&mut twins, ContentType::Handshake, piece);
                }
            }
            diff_op::COALESCED => {
                let mut both = handshake_message(input.byte().unwrap_or(24), input.chunk());
                both.extend(handshake_message(input.byte().unwrap_or(4), input.chunk()));
                seal(&mut twins, ContentType::Handshake, &both);
            }
            diff_op::RECORD => {
                let typ = ContentType::from(input.byte().unwrap_or(0));
                let payload = input.chunk().to_vec();
                seal(&mut twins, typ, &payload);
            }
            diff_op::PADDED => {
                let typ = input.byte().unwrap_or(23);
                let content = input.chunk().to_vec();
                let padding = usize::from(input.u16()) % 2048;
                if tls13 {
                    // rustls appends the type byte: pass it as the last content byte and
                    // make the appended one a zero, the first byte of padding.
                    let mut inner = content;
                    inner.push(typ);
                    inner.resize(inner.len() + padding.saturating_sub(1), 0);
                    let outer = if padding == 0 {
                        inner.pop();
                        ContentType::from(typ)
                    } else {
                        ContentType::Unknown(0)
                    };
                    seal(&mut twins, outer, &inner);
                } else {
                    seal(&mut twins, ContentType::from(typ), &content);
                }
            }
            diff_op::MUTATE => {
                let edited = mutate(&mut input, &mut pending, &mut last);
                let version = edited.intersects(1..3);
                out.context.version_edited |= version;
                out.context.tls13_version_edited |= tls13 && version;
            }
            diff_op::FEED => {
                let mut cuts: Vec<usize> = (0..input.byte().unwrap_or(0) % 4)
                    .map(|_| usize::from(input.u16()) % (pending.len() + 1))
                    .collect();
                cuts.sort_unstable();
                cuts.push(pending.len());
                let bytes = std::mem::take(&mut pending);
                last = 0;
                let mut from = 0;
                for cut in cuts {
                    let step = format!("feeding bytes {from}..{cut}");
                    if !compare(&step, &twins.feed(&bytes[from..cut]), &mut out) {
                        return out;
                    }
                    from = cut;
                }
            }
            _ => {
                let close = input.byte().unwrap_or(0) & 1 == 1;
                if close && !pending.is_empty() {
                    // What was sealed before our close_notify arrives before it.
                    let bytes = std::mem::take(&mut pending);
                    if !compare("the feed before our close", &twins.feed(&bytes), &mut out) {
                        return out;
                    }
                }
                let seen = if close {
                    twins.close()
                } else {
                    twins.write(PROBE)
                };
                closed |= close;
                let step = if close {
                    "our close_notify"
                } else {
                    WRITE_STEP
                };
                if !compare(step, &seen, &mut out) || (close && tainted) {
                    return out;
                }
            }
        }
    }
    let bytes = std::mem::take(&mut pending);
    if compare("the final feed", &twins.feed(&bytes), &mut out) && !closed {
        compare(WRITE_STEP, &twins.write(PROBE), &mut out);
    }
    out
}

/// Edits the last sealed record of `pending` (from `last`); the kind is a byte.
/// Returns which bytes of the record's header it edited (empty if none).
fn mutate(input: &mut Input<'_>, pending: &mut Vec<u8>, last: &mut usize) -> HeaderBytes {
    let kind = input.byte().unwrap_or(0) % 8;
    let arg = usize::from(input.u16());
    let record_len = pending.len() - *last;
    match kind {
        // One bit flipped anywhere in the record, header included.
        0 if record_len > 0 => {
            let bit = input.byte().unwrap_or(0) % 8;
            let at = arg % record_len;
            pending[*last + at] ^= 1 << bit;
            return HeaderBytes(at..at + 1);
        }
        // Truncated.
        1 => pending.truncate(*last + arg % (record_len + 1)),
        // A forged length field (any value, oversize included).
        2 if record_len >= 5 => {
            pending[*last + 3..*last + 5].copy_from_slice(&(arg as u16).to_be_bytes());
        }
        // A forged outer content type.
        3 if record_len >= 5 => pending[*last] = arg as u8,
        // A forged version.
        4 if record_len >= 5 => {
            pending[*last + 1..*last + 3].copy_from_slice(&(arg as u16).to_be_bytes());
            return HeaderBytes(1..3);
        }
        // An empty record of the type given.
        5 => {
            *last = pending.len();
            pending.extend_from_slice(&[arg as u8, 3, 3, 0, 0]);
        }
        // The record again (a replay).
        6 => {
            let copy = pending[*last..].to_vec();
            *last = pending.len();
            pending.extend(copy);
        }
        // The record dropped (what follows is out of sequence).
        7 => pending.truncate(*last),
        _ => {}
    }
    HeaderBytes(0..0)
}

/// Offsets within a record (only those under 5 are its header).
struct HeaderBytes(std::ops::Range<usize>);

impl HeaderBytes {
    fn intersects(&self, header: std::ops::Range<usize>) -> bool {
        self.0.start < header.end && header.start < self.0.end
    }
}
