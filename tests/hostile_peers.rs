//! Hostile peers that hold the real keys, and raw bytes instead of a handshake. (Garbage
//! and oversized first flights and a bad MAC are in `tests/errors.rs`; TLS 1.3 records
//! forged with a tokio-rustls connection's keys, compared with rustls, are in
//! `tests/malformed_records.rs`.)
//!
//! **Forged records.** Fixture: the shared forging peer (`common::forger`) completes a
//! real handshake with rustls's unbuffered API, takes the keys with
//! `dangerous_into_kernel_connection`, and then seals any content type under TLS 1.2 or
//! 1.3, following key updates both ways; it also checks what our end sends (nothing after
//! a close_notify or a fatal alert, no repeated nonce). Every case runs over loopback TCP
//! and over `tokio::io::duplex`, against our client on the native and on the rustls record
//! layer. Both layers must deliver the same bytes and end with the same typed error, and
//! each must send what the case expects of it: the alerts, and the KeyUpdate answers
//! (requests that arrive while we send nothing share one answer, RFC 8446 4.6.3; the
//! native layer sends it at once, rustls before its next record). The cases:
//!
//! - a fatal alert, and warning alerts (4 tolerated, the 5th fatal);
//! - renegotiation requests: a TLS 1.2 HelloRequest to our client is ignored by the native
//!   layer (refused with a `no_renegotiation` warning by rustls) and a ClientHello to our
//!   server refused with that warning; the second is fatal;
//! - floods of KeyUpdates and of empty records: the 33rd in a row fails (rustls's limit),
//!   32 then data pass, and long valid floods (a KeyUpdate or 31 empty records per byte)
//!   cost a bounded number of polls;
//! - data and junk after close_notify are ignored; a truncated record then EOF is
//!   `Truncated` even with `allow_truncation`.
//!
//! `data_before_a_failing_record_is_delivered_first` pins a bug these cases found (fixed in
//! 40bb2ce): data that arrived in the same read as a failing record was dropped with the
//! error.
//!
//! **Raw bytes on loopback TCP.** Fixture: a bare `TcpStream` as the peer. An HTTP answer
//! or a garbage ServerHello instead of a ServerHello (a typed, sticky error and a
//! plaintext fatal alert), and a truncated first record then EOF, on either side
//! (`HandshakeEof`).
mod common;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;

use common::forger::*;
use common::*;
use lazytls::rustls::server::ServerConnectionData;
use lazytls::rustls::{self, AlertDescription, ContentType, PeerMisbehaved};
use lazytls::{Error, RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

// =======================================================================================
// Hostile peers: the cases
// =======================================================================================

/// How our end finished reading.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// `Ok(0)`, and again on later reads.
    Clean,
    /// A typed error (`{:?}` of it), the same on a later read.
    Failed(String),
}

/// What our end did with a forged stream.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    delivered: Vec<u8>,
    end: End,
    sent: Vec<Sent>,
}

/// How our end finished reading: what was delivered, how it ended, the typed error if
/// any, and the read polls it took. A clean end is followed by our shutdown.
struct Read {
    delivered: Vec<u8>,
    end: End,
    error: Option<Error>,
    polls: usize,
}

/// Reads to the end on our stream. An error must be typed and sticky; a clean end must
/// stay clean, and is followed by our shutdown (close_notify).
async fn read_all<IO: AsyncRead + AsyncWrite + Unpin>(c: &mut TlsStream<IO>) -> Read {
    let mut delivered = Vec::new();
    let mut polls = 0;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let r = poll_fn(|cx| {
            polls += 1;
            let mut rb = ReadBuf::new(&mut buf);
            Pin::new(&mut *c)
                .poll_read(cx, &mut rb)
                .map_ok(|()| rb.filled().len())
        })
        .await;
        match r {
            Ok(0) => {
                assert_eq!(
                    c.read(&mut buf).await.unwrap(),
                    0,
                    "a clean end did not stay clean"
                );
                c.shutdown().await.unwrap();
                return Read {
                    delivered,
                    end: End::Clean,
                    error: None,
                    polls,
                };
            }
            Ok(n) => delivered.extend_from_slice(&buf[..n]),
            Err(e) => {
                let again = c.read(&mut buf).await.unwrap_err();
                assert_eq!(again.to_string(), e.to_string(), "the error changed");
                assert_eq!(again.kind(), e.kind(), "the error changed");
                let typed = Error::from(e);
                assert!(!matches!(typed, Error::Io(_)), "untyped error {typed:?}");
                return Read {
                    delivered,
                    end: End::Failed(format!("{typed:?}")),
                    error: Some(typed),
                    polls,
                };
            }
        }
    }
}

struct Case {
    name: &'static str,
    /// Which versions it applies to: `None` both, `Some(true)` TLS 1.3 only.
    tls13: Option<bool>,
    /// The records to send (a trailing close_notify is added unless `truncate`).
    build: fn(&mut Forger<ServerConnectionData>) -> Vec<u8>,
    /// Close the transport without close_notify after the records.
    truncate: bool,
    /// The connection fails on a record that follows data (the cases of
    /// `data_before_a_failing_record_is_delivered_first`).
    fails_after_data: bool,
    expect: fn(&Ctx) -> Expect,
}

/// What an expectation may depend on.
struct Ctx {
    layer: RecordLayer,
}

impl Ctx {
    fn native(&self) -> bool {
        self.layer == RecordLayer::Native
    }
}

/// The expected outcome.
struct Expect {
    delivered: Vec<u8>,
    /// `None`: a clean end. `Some(check)`: a typed error passing `check`.
    error: Option<fn(&Error) -> bool>,
    /// The alerts our end sends, in order.
    alerts: Vec<(u8, AlertDescription)>,
    /// KeyUpdates our end sends. (The native layer answers each request at once; rustls
    /// answers several with one KeyUpdate, sent before our next record, which RFC 8446,
    /// 4.6.3, allows.)
    key_updates: usize,
    /// At most this many read polls (bounded work for floods).
    max_polls: usize,
}

fn expect(
    delivered: &[u8],
    error: Option<fn(&Error) -> bool>,
    alerts: &[(u8, AlertDescription)],
) -> Expect {
    Expect {
        delivered: delivered.to_vec(),
        error,
        alerts: alerts.to_vec(),
        key_updates: 0,
        max_polls: 200,
    }
}

fn peer_misbehaved(e: &Error, want: PeerMisbehaved) -> bool {
    matches!(e, Error::Tls(rustls::Error::PeerMisbehaved(got)) if *got == want)
}

/// What our end sends for a TLS 1.2 HelloRequest: the native layer ignores it, as RFC 5246
/// (7.4.1.1) allows a client (OpenSSL takes the refusal for a fatal handshake failure);
/// rustls refuses it with a warning.
fn hello_request_answer(c: &Ctx) -> &'static [(u8, AlertDescription)] {
    if c.native() {
        &[]
    } else {
        &[(WARNING, AlertDescription::NoRenegotiation)]
    }
}

/// Byte `i` of a flood's data.
fn flood_byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a fatal alert after data",
            tls13: None,
            fails_after_data: true,
            build: |f| {
                let mut w = f.data(b"before");
                w.extend(f.alert(FATAL, AlertDescription::InternalError));
                w.extend(f.data(b"after"));
                w
            },
            truncate: false,
            expect: |_c| {
                expect(
                    b"before",
                    Some(|e| {
                        matches!(
                            e,
                            Error::Tls(rustls::Error::AlertReceived(
                                AlertDescription::InternalError
                            ))
                        )
                    }),
                    &[],
                )
            },
        },
        Case {
            name: "4 user_canceled warnings between data",
            tls13: None,
            fails_after_data: false,
            build: |f| {
                let mut w = Vec::new();
                for part in [&b"a"[..], b"b", b"c", b"d"] {
                    w.extend(f.data(part));
                    w.extend(f.alert(WARNING, AlertDescription::UserCanceled));
                }
                w.extend(f.data(b"e"));
                w
            },
            truncate: false,
            expect: |_c| expect(b"abcde", None, &[]),
        },
        Case {
            name: "5 warnings",
            tls13: None,
            fails_after_data: true,
            build: |f| {
                let mut w = f.data(b"x");
                for _ in 0..5 {
                    w.extend(f.alert(WARNING, AlertDescription::UserCanceled));
                }
                w.extend(f.data(b"never"));
                w
            },
            truncate: false,
            expect: |_c| {
                expect(
                    b"x",
                    Some(|e| peer_misbehaved(e, PeerMisbehaved::TooManyWarningAlertsReceived)),
                    &[],
                )
            },
        },
        Case {
            name: "a no_renegotiation warning (tolerated in TLS 1.2)",
            tls13: Some(false),
            fails_after_data: false,
            build: |f| {
                let mut w = f.data(b"x");
                w.extend(f.alert(WARNING, AlertDescription::NoRenegotiation));
                w.extend(f.data(b"y"));
                w
            },
            truncate: false,
            expect: |_c| expect(b"xy", None, &[]),
        },
        Case {
            name: "a HelloRequest, refused, then data",
            tls13: Some(false),
            fails_after_data: false,
            build: |f| {
                let mut w = f.data(b"x");
                w.extend(f.record(ContentType::Handshake, &[0, 0, 0, 0]));
                w.extend(f.data(b"y"));
                w
            },
            truncate: false,
            // The native layer ignores it (RFC 5246, 7.4.1.1); rustls refuses it.
            expect: |c| expect(b"xy", None, hello_request_answer(c)),
        },
        Case {
            name: "two HelloRequests",
            tls13: Some(false),
            fails_after_data: true,
            build: |f| {
                let mut w = f.data(b"x");
                w.extend(f.record(ContentType::Handshake, &[0, 0, 0, 0]));
                w.extend(f.data(b"y"));
                w.extend(f.record(ContentType::Handshake, &[0, 0, 0, 0]));
                w.extend(f.data(b"never"));
                w
            },
            truncate: false,
            expect: |c| {
                expect(
                    b"xy",
                    Some(|e| peer_misbehaved(e, PeerMisbehaved::TooManyRenegotiationRequests)),
                    hello_request_answer(c),
                )
            },
        },
        Case {
            name: "32 KeyUpdates, data, 32 KeyUpdates, data",
            tls13: Some(true),
            fails_after_data: false,
            build: |f| {
                let mut w = Vec::new();
                for part in [&b"x"[..], b"y"] {
                    for _ in 0..32 {
                        w.extend(f.key_update(false));
                    }
                    w.extend(f.data(part));
                }
                w
            },
            truncate: false,
            expect: |_c| expect(b"xy", None, &[]),
        },
        Case {
            name: "33 KeyUpdates in a row",
            tls13: Some(true),
            fails_after_data: true,
            build: |f| {
                let mut w = f.data(b"x");
                for _ in 0..33 {
                    w.extend(f.key_update(false));
                }
                w.extend(f.data(b"never"));
                w
            },
            truncate: false,
            expect: |_c| {
                expect(
                    b"x",
                    Some(|e| peer_misbehaved(e, PeerMisbehaved::TooManyKeyUpdateRequests)),
                    &[],
                )
            },
        },
        Case {
            name: "33 KeyUpdates in a row, each requesting one back",
            tls13: Some(true),
            fails_after_data: true,
            build: |f| {
                let mut w = f.data(b"x");
                for _ in 0..33 {
                    w.extend(f.key_update(true));
                }
                w
            },
            truncate: false,
            // Requests that arrive while we send nothing share one answer (RFC 8446,
            // 4.6.3); the native layer sends it at once, rustls with its next record.
            expect: |c| Expect {
                key_updates: if c.native() { 1 } else { 0 },
                ..expect(
                    b"x",
                    Some(|e| peer_misbehaved(e, PeerMisbehaved::TooManyKeyUpdateRequests)),
                    &[],
                )
            },
        },
        Case {
            name: "2000 x (a KeyUpdate requesting one back, 1 byte)",
            tls13: Some(true),
            fails_after_data: false,
            build: |f| {
                let mut w = Vec::new();
                for i in 0..2000 {
                    w.extend(f.key_update(true));
                    w.extend(f.data(&[flood_byte(i)]));
                }
                w
            },
            truncate: false,
            expect: |_c| Expect {
                key_updates: 1,
                // One byte per read: a poll per byte, plus a few.
                max_polls: 2000 + 200,
                ..expect(&(0..2000).map(flood_byte).collect::<Vec<_>>(), None, &[])
            },
        },
        Case {
            name: "32 empty records, then data",
            tls13: None,
            fails_after_data: false,
            build: |f| {
                let mut w = Vec::new();
                for _ in 0..32 {
                    w.extend(f.data(b""));
                }
                w.extend(f.data(b"x"));
                w
            },
            truncate: false,
            expect: |_c| expect(b"x", None, &[]),
        },
        Case {
            name: "33 empty records",
            tls13: None,
            fails_after_data: true,
            build: |f| {
                let mut w = f.data(b"x");
                for _ in 0..33 {
                    w.extend(f.data(b""));
                }
                w.extend(f.data(b"never"));
                w
            },
            truncate: false,
            expect: |c| {
                // Native: unexpected_message; rustls sends no alert for its own limit.
                let alerts: &[_] = if c.native() {
                    &[(FATAL, AlertDescription::UnexpectedMessage)]
                } else {
                    &[]
                };
                expect(
                    b"x",
                    Some(|e| peer_misbehaved(e, PeerMisbehaved::TooManyEmptyFragments)),
                    alerts,
                )
            },
        },
        Case {
            name: "10,000 x (31 empty records, 1 byte)",
            tls13: None,
            fails_after_data: false,
            build: |f| {
                let mut w = Vec::new();
                for i in 0..10_000 {
                    for _ in 0..31 {
                        w.extend(f.data(b""));
                    }
                    w.extend(f.data(&[flood_byte(i)]));
                }
                w
            },
            truncate: false,
            expect: |_c| Expect {
                // 320,000 records (over 7 MB): a poll per byte delivered, plus a few.
                max_polls: 10_000 + 200,
                ..expect(&(0..10_000).map(flood_byte).collect::<Vec<_>>(), None, &[])
            },
        },
        Case {
            name: "data and junk after close_notify",
            tls13: None,
            fails_after_data: false,
            build: |f| {
                let mut w = f.data(b"x");
                w.extend(f.close_notify());
                w.extend(f.data(b"ignored"));
                w.extend(f.alert(FATAL, AlertDescription::InternalError));
                w.extend([23, 3, 3, 0, 20]);
                w.extend([0x55; 20]);
                w
            },
            truncate: false,
            expect: |_c| expect(b"x", None, &[]),
        },
        Case {
            name: "a truncated record, then EOF",
            tls13: None,
            fails_after_data: false,
            build: |f| {
                let mut w = f.data(b"whole");
                let cut = f.data(b"cut in half");
                w.extend_from_slice(&cut[..cut.len() / 2]);
                w
            },
            truncate: true,
            expect: |_c| expect(b"whole", Some(|e| matches!(e, Error::Truncated)), &[]),
        },
    ]
}

/// Our client in the forged cases: on the native record layer, on rustls's unbuffered
/// connection, or on rustls's buffered one (a config that enables early data), which is
/// held to what rustls's unbuffered one does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Client {
    Native,
    Rustls,
    Buffered,
}

const CLIENTS: [Client; 3] = [Client::Native, Client::Rustls, Client::Buffered];

impl Client {
    fn ctx(self) -> Ctx {
        let layer = match self {
            Client::Native => RecordLayer::Native,
            Client::Rustls | Client::Buffered => RecordLayer::Rustls,
        };
        Ctx { layer }
    }
}

/// Runs one case against our `client`.
async fn run_case(
    pki: &Pki,
    v: Version,
    t: Transport,
    client: Client,
    allow_truncation: bool,
    case: &Case,
) -> (Outcome, Read) {
    let (mut f, mut c) = match client {
        Client::Buffered => forged_server_buffered(pki, v, t, allow_truncation).await,
        _ => forged_server(pki, v, t, client.ctx().layer, allow_truncation).await,
    };
    let mut wire = (case.build)(&mut f);
    if !case.truncate {
        wire.extend(f.close_notify());
    }
    let forger = async {
        f.io.write_all(&wire).await.unwrap();
        if case.truncate {
            f.io.shutdown().await.unwrap();
        } else {
            f.io.flush().await.unwrap();
        }
        f.read_to_eof().await
    };
    let ours = async {
        let r = read_all(&mut c).await;
        // Close our end (a failed stream already shut its transport down).
        drop(c);
        r
    };
    let (sent, read) = bounded(case.name, async { tokio::join!(forger, ours) }).await;
    let outcome = Outcome {
        delivered: read.delivered.clone(),
        end: read.end.clone(),
        sent,
    };
    (outcome, read)
}

/// Compares an outcome with the case's expectation; returns every mismatch.
fn check(case: &Case, ctx: &Ctx, what: &str, out: &Outcome, read: &Read) -> Vec<String> {
    let want = (case.expect)(ctx);
    let mut bad = Vec::new();
    if out.delivered != want.delivered {
        bad.push(format!(
            "{what}: delivered {} bytes, want {}",
            out.delivered.len(),
            want.delivered.len()
        ));
    }
    match (&read.error, want.error) {
        (None, None) => {}
        (Some(e), Some(check)) if check(e) => {}
        (got, _) => bad.push(format!("{what}: ended with {got:?}")),
    }
    let alerts: Vec<_> = out
        .sent
        .iter()
        .filter_map(|s| match s {
            Sent::Alert(l, d) if *d != AlertDescription::CloseNotify => Some((*l, *d)),
            _ => None,
        })
        .collect();
    if alerts != want.alerts {
        bad.push(format!(
            "{what}: sent alerts {alerts:?}, want {:?}",
            want.alerts
        ));
    }
    let key_updates = out.sent.iter().filter(|s| **s == Sent::KeyUpdate).count();
    if key_updates != want.key_updates {
        bad.push(format!(
            "{what}: sent {key_updates} KeyUpdates, want {}",
            want.key_updates
        ));
    }
    if read.polls > want.max_polls {
        bad.push(format!(
            "{what}: {} read polls (bound {})",
            read.polls, want.max_polls
        ));
    }
    // A clean end closes with one close_notify; a failure never sends one.
    let closes = out
        .sent
        .iter()
        .filter(|s| matches!(s, Sent::Alert(_, AlertDescription::CloseNotify)))
        .count();
    if closes != usize::from(out.end == End::Clean) {
        bad.push(format!("{what}: sent {closes} close_notify"));
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_records_from_a_hostile_server() {
    let pki = Pki::new();
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in cases() {
        for v in versions() {
            let tls13 = is_tls13(v);
            if case.tls13.is_some_and(|want| want != tls13) {
                continue;
            }
            for t in TRANSPORTS {
                let mut ends = Vec::new();
                for client in CLIENTS {
                    for allow_truncation in [false, true] {
                        if allow_truncation && !case.truncate {
                            continue;
                        }
                        let what = format!(
                            "{} / {} / {t:?} / {client:?}{}",
                            case.name,
                            vname(v),
                            if allow_truncation {
                                " / allow_truncation"
                            } else {
                                ""
                            }
                        );
                        let (out, read) =
                            run_case(&pki, v, t, client, allow_truncation, &case).await;
                        failures.extend(check(&case, &client.ctx(), &what, &out, &read));
                        if case.name.contains("x (") {
                            println!("{what}: {} read polls", read.polls);
                        }
                        ends.push((what, out.delivered, out.end));
                        ran += 1;
                    }
                }
                // Both record layers agree on the data and the error.
                for (what, delivered, end) in &ends[1..] {
                    let (first, d0, e0) = &ends[0];
                    if delivered != d0 || end != e0 {
                        failures.push(format!(
                            "{what} differs from {first}: {} bytes, {end:?} vs {} bytes, {e0:?}",
                            delivered.len(),
                            d0.len()
                        ));
                    }
                }
            }
        }
    }
    println!("{ran} forged connections, {} mismatches", failures.len());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Authenticated data that arrived in the same read as a record that fails the connection
/// is delivered first, and the error comes with the next read, as Go's `crypto/tls` does:
/// a fatal alert, a fifth warning, a second HelloRequest (to our client) or ClientHello
/// (to our server), a 33rd KeyUpdate and a 33rd empty record, each right after data, over
/// TCP and duplex, on both record layers.
///
/// Regression test: `Engine::read` used to copy the good records' plaintext into the
/// caller's buffer and then return the later record's error through `?`, so the bytes were
/// lost (0 bytes arrived in every case here); fixed in 40bb2ce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_before_a_failing_record_is_delivered_first() {
    let pki = Pki::new();
    let mut failures = Vec::new();
    for case in cases().into_iter().filter(|c| c.fails_after_data) {
        for v in versions() {
            if case.tls13.is_some_and(|want| want != is_tls13(v)) {
                continue;
            }
            for t in TRANSPORTS {
                for client in CLIENTS {
                    let what = format!("{} / {} / {t:?} / {client:?}", case.name, vname(v));
                    let (out, read) = run_case(&pki, v, t, client, false, &case).await;
                    let want = (case.expect)(&client.ctx());
                    if out.delivered != want.delivered {
                        failures.push(format!(
                            "{what}: delivered {} bytes before {:?}, want {}",
                            out.delivered.len(),
                            read.error,
                            want.delivered.len()
                        ));
                    }
                }
            }
        }
    }
    // Our server, after a second ClientHello.
    #[cfg(feature = "tls12")]
    for t in TRANSPORTS {
        for layer in [RecordLayer::Native, RecordLayer::Rustls] {
            let (_, read) = client_renegotiates(&pki, t, layer, 2).await;
            if read.delivered != b"xy" {
                failures.push(format!(
                    "two ClientHellos / TLS1.2 / {t:?} / {layer:?} (our server): delivered {} \
                     bytes before {:?}, want 2",
                    read.delivered.len(),
                    read.error
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A forging TLS 1.2 client sends data, then `hellos` times (a real ClientHello, more
/// data), then close_notify, to our server on `layer`.
#[cfg(feature = "tls12")]
async fn client_renegotiates(
    pki: &Pki,
    t: Transport,
    layer: RecordLayer,
    hellos: usize,
) -> (Vec<Sent>, Read) {
    let hello = client_hello_message(pki, TLS12);
    let (mut f, mut s) = forged_client(pki, TLS12, t, layer).await;
    let mut wire = f.data(b"x");
    for _ in 0..hellos {
        wire.extend(f.record(ContentType::Handshake, &hello));
        wire.extend(f.data(b"y"));
    }
    wire.extend(f.close_notify());
    let forger = async {
        f.io.write_all(&wire).await.unwrap();
        f.read_to_eof().await
    };
    let ours = async {
        let r = read_all(&mut s).await;
        drop(s);
        r
    };
    bounded("renegotiation", async { tokio::join!(forger, ours) }).await
}

/// TLS 1.2 renegotiation from a client: our server refuses the first ClientHello with a
/// `no_renegotiation` warning and goes on; a second one is fatal. Both record layers.
#[cfg(feature = "tls12")]
#[tokio::test]
async fn renegotiation_from_a_hostile_client() {
    let pki = Pki::new();
    let mut failures = Vec::new();
    for t in TRANSPORTS {
        for layer in [RecordLayer::Native, RecordLayer::Rustls] {
            for hellos in [1, 2] {
                let what = format!("{hellos} ClientHello(s) / {t:?} / {layer:?}");
                let (sent, read) = client_renegotiates(&pki, t, layer, hellos).await;
                let mut want_sent = vec![Sent::Alert(WARNING, AlertDescription::NoRenegotiation)];
                if hellos == 1 {
                    want_sent.push(Sent::Alert(WARNING, AlertDescription::CloseNotify));
                }
                if sent != want_sent {
                    failures.push(format!("{what}: sent {sent:?}, want {want_sent:?}"));
                }
                if read.delivered != b"xy" {
                    failures.push(format!("{what}: delivered {:?}", read.delivered));
                }
                let ok = match (&read.error, hellos) {
                    (None, 1) => true,
                    (Some(e), 2) => {
                        peer_misbehaved(e, PeerMisbehaved::TooManyRenegotiationRequests)
                    }
                    _ => false,
                };
                if !ok {
                    failures.push(format!("{what}: ended with {:?}", read.error));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// =======================================================================================
// Raw bytes on loopback TCP
// =======================================================================================

/// Reads what the other end sends until EOF.
async fn raw_read_to_eof(io: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    io.read_to_end(&mut got).await.unwrap();
    got
}

/// Our client meets `answer` instead of a ServerHello: a typed, sticky TLS error, and a
/// plaintext fatal alert (`want`) on the wire before the transport closes.
async fn client_meets(answer: &[u8], want: AlertDescription) {
    let pki = Pki::new();
    let (tcp, mut raw) = tcp_pair().await;
    let mut c = TlsConnector::new(pki.client_config()).connect(localhost(), tcp);
    let peer = async {
        let mut hello = [0u8; 5];
        raw.read_exact(&mut hello).await.unwrap();
        assert_eq!(hello[0], 22, "not a ClientHello");
        raw.write_all(answer).await.unwrap();
        raw_read_to_eof(&mut raw).await
    };
    let (e, got) = bounded("client meets garbage", async {
        tokio::join!(async { c.handshake().await.unwrap_err() }, peer)
    })
    .await;
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let msg = e.to_string();
    for _ in 0..2 {
        assert_eq!(
            c.handshake().await.unwrap_err().to_string(),
            msg,
            "not sticky"
        );
        let e = c.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(Error::from_io(&e).map(|e| e.to_string()), Some(msg.clone()));
    }
    // After the rest of our ClientHello: one plaintext fatal alert, then EOF.
    let alert = [21, 3, 3, 0, 2, FATAL, u8::from(want)];
    let tail = &got[got.len().saturating_sub(7)..];
    assert!(
        tail[..1] == alert[..1] && tail[3..] == alert[3..],
        "{answer:?}: no {want:?} alert at the end of {:?}",
        &got[got.len().saturating_sub(16)..]
    );
}

#[tokio::test]
async fn http_answer_instead_of_a_server_hello() {
    client_meets(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        AlertDescription::DecodeError,
    )
    .await;
}

#[tokio::test]
async fn garbage_server_hello() {
    // A well-framed handshake record whose ServerHello body is junk.
    let mut answer = vec![22, 3, 3, 0, 44, 2, 0, 0, 40];
    answer.extend((0..40u8).map(|i| i.wrapping_mul(73)));
    client_meets(&answer, AlertDescription::DecodeError).await;
}

#[tokio::test]
async fn truncated_first_record_then_eof_either_side() {
    let pki = Pki::new();
    // Our client: half a ServerHello record, then FIN.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut raw, _) = listener.accept().await.unwrap();
    let mut c = TlsConnector::new(pki.client_config()).connect(localhost(), tcp);
    let peer = async {
        let mut hello = [0u8; 5];
        raw.read_exact(&mut hello).await.unwrap();
        raw.write_all(&[22, 3, 3, 0, 100]).await.unwrap();
        raw.write_all(&[2; 50]).await.unwrap();
        raw.shutdown().await.unwrap();
        raw_read_to_eof(&mut raw).await
    };
    let (e, _) = bounded("client, truncated", async {
        tokio::join!(async { c.handshake().await.unwrap_err() }, peer)
    })
    .await;
    assert!(matches!(e, Error::HandshakeEof), "{e:?}");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert!(matches!(c.handshake().await, Err(Error::HandshakeEof)));

    // Our server: the first bytes of a real ClientHello, then FIN.
    let hello = client_hello_message(&pki, rustls::DEFAULT_VERSIONS);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ours, _) = listener.accept().await.unwrap();
    let mut raw = tcp;
    let mut s = TlsAcceptor::new(pki.server_config()).accept(ours);
    let len = u16::try_from(hello.len()).unwrap().to_be_bytes();
    raw.write_all(&[22, 3, 1, len[0], len[1]]).await.unwrap();
    raw.write_all(&hello[..hello.len() / 2]).await.unwrap();
    raw.shutdown().await.unwrap();
    let e = bounded("server, truncated", s.handshake())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::HandshakeEof), "{e:?}");
    assert!(
        raw_read_to_eof(&mut raw).await.is_empty(),
        "an EOF needs no alert"
    );
}
