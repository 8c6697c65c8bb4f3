//! Keying-material exporters (`export_keying_material`) and the negotiated key-exchange
//! group: our values against the peer's own for the same session, with tokio-rustls and
//! OpenSSL as peers, on every record layer, both versions, whole and split, and across a
//! KeyUpdate.
//!
//! Fixture: `common::Pki` configs over loopback TCP (tokio-rustls) or `openssl s_server` /
//! `s_client`; every step bounded in time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::openssl::{Proc, Scratch, s_client, s_server, version_flag};
use common::*;
use lazytls::rustls::{self, ClientConfig, KeyLog, NamedGroup, ProtocolVersion, ServerConfig};
use lazytls::{Error, ExportError, RecordLayer, TlsAcceptor, TlsConnector, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STEP: Duration = Duration::from_secs(10);

/// Every (label, length, context) the comparisons cover. TLS 1.2 tells no context from an
/// empty one, so both are here.
/// A label, an output length and a context.
type Case = (&'static [u8], usize, Option<&'static [u8]>);

fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    for label in [&b"EXPERIMENTAL-lazytls"[..], b"EXPORTER-Channel-Binding"] {
        for len in [1, 32, 100] {
            for context in [None, Some(&b""[..]), Some(&b"some context"[..])] {
                all.push((label, len, context));
            }
        }
    }
    all
}

type Export<'a> = dyn Fn(&[u8], usize, Option<&[u8]>) -> Vec<u8> + 'a;

/// Asserts that `ours` and `theirs` give the same keying material in every case, and that
/// the values differ between cases.
fn assert_same_exports(what: &str, ours: &Export<'_>, theirs: &Export<'_>, tls12: bool) {
    let mut seen = Vec::new();
    for (label, len, context) in cases() {
        let (a, b) = (ours(label, len, context), theirs(label, len, context));
        assert_eq!(a.len(), len);
        assert_eq!(
            a, b,
            "{what}: label {label:?}, {len} bytes, context {context:?}"
        );
        // A one-byte export repeats by chance (1 in 256 for each pair): only longer ones
        // must differ.
        if len > 1 {
            seen.push(a);
        }
    }
    // No context and an empty one are the same on TLS 1.3 (RFC 8446 §7.5), not on 1.2.
    let none = ours(b"EXPERIMENTAL-lazytls", 32, None);
    let empty = ours(b"EXPERIMENTAL-lazytls", 32, Some(b""));
    assert_eq!(
        none == empty,
        !tls12,
        "{what}: no context against an empty one"
    );
    seen.sort();
    seen.dedup();
    // Two labels, two lengths over one byte, and three contexts, of which TLS 1.3 takes
    // none and an empty one as the same.
    let contexts = if tls12 { 3 } else { 2 };
    assert_eq!(seen.len(), 2 * 2 * contexts, "{what}: exports repeat");
}

fn ours<'a, IO>(stream: &'a TlsStream<IO>) -> impl Fn(&[u8], usize, Option<&[u8]>) -> Vec<u8> + 'a {
    move |label, len, context| {
        stream
            .export_keying_material(vec![0; len], label, context)
            .unwrap()
    }
}

/// The peer's own exports: tokio-rustls's rustls connection.
fn peer_exports<C, D>(conn: &C) -> impl Fn(&[u8], usize, Option<&[u8]>) -> Vec<u8> + '_
where
    C: std::ops::Deref<Target = rustls::ConnectionCommon<D>>,
{
    move |label, len, context| {
        conn.export_keying_material(vec![0; len], label, context)
            .unwrap()
    }
}

fn both_versions() -> [(&'static [&'static rustls::SupportedProtocolVersion], bool); 2] {
    const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    [(TLS13, false), (TLS12, true)]
}

// ---------------------------------------------------------------------------------------
// Against tokio-rustls
// ---------------------------------------------------------------------------------------

/// A lazytls client against a tokio-rustls server, the handshake completed on both.
async fn client_against_tokio_rustls(
    connector: TlsConnector,
    server: Arc<ServerConfig>,
) -> (
    TlsStream<TcpStream>,
    tokio_rustls::server::TlsStream<TcpStream>,
) {
    let (a, b) = tcp_pair().await;
    let mut client = connector.connect(localhost(), a);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let (ours, theirs) = bounded("handshakes", async {
        tokio::join!(client.handshake(), acceptor.accept(b))
    })
    .await;
    ours.unwrap();
    (client, theirs.unwrap())
}

#[tokio::test]
async fn a_client_exports_what_a_tokio_rustls_server_exports() {
    let pki = Pki::new();
    for (versions, tls12) in both_versions() {
        for layer in [RecordLayer::Native, RecordLayer::Rustls] {
            let connector =
                TlsConnector::new(Arc::new(pki.client_config_with(versions))).record_layer(layer);
            let server = Arc::new(pki.server_config_with(versions));
            let (client, theirs) = client_against_tokio_rustls(connector, server).await;
            assert_eq!(client.info().unwrap().record_layer, layer);
            let what = format!("client, {} on {layer:?}", vname(versions));
            let peer = peer_exports(theirs.get_ref().1);
            assert_same_exports(&what, &ours(&client), &peer, tls12);
        }
    }
}

#[tokio::test]
async fn a_server_exports_what_a_tokio_rustls_client_exports() {
    let pki = Pki::new();
    for (versions, tls12) in both_versions() {
        for layer in [RecordLayer::Native, RecordLayer::Rustls] {
            let acceptor =
                TlsAcceptor::new(Arc::new(pki.server_config_with(versions))).record_layer(layer);
            let connector =
                tokio_rustls::TlsConnector::from(Arc::new(pki.client_config_with(versions)));
            let (a, b) = tcp_pair().await;
            let mut server = acceptor.accept(b);
            let (theirs, ours_done) = bounded("handshakes", async {
                tokio::join!(connector.connect(localhost(), a), server.handshake())
            })
            .await;
            ours_done.unwrap();
            let theirs = theirs.unwrap();
            assert_eq!(server.info().unwrap().record_layer, layer);
            let what = format!("server, {} on {layer:?}", vname(versions));
            let peer = peer_exports(theirs.get_ref().1);
            assert_same_exports(&what, &ours(&server), &peer, tls12);
        }
    }
}

/// A client whose config enables early data runs its handshake on rustls's buffered
/// connection: on TLS 1.3 it stays there, on TLS 1.2 the native layer takes over.
#[tokio::test]
async fn an_early_data_client_exports_what_the_server_exports() {
    let pki = Pki::new();
    for (versions, tls12) in both_versions() {
        let mut config = pki.client_config_with(versions);
        config.enable_early_data = true;
        let connector = TlsConnector::new(Arc::new(config));
        let server = Arc::new(pki.server_config_with(versions));
        let (client, theirs) = client_against_tokio_rustls(connector, server).await;
        let want = if tls12 {
            RecordLayer::Native
        } else {
            RecordLayer::Rustls
        };
        assert_eq!(client.info().unwrap().record_layer, want);
        let peer = peer_exports(theirs.get_ref().1);
        let what = format!("early-data client, {}", vname(versions));
        assert_same_exports(&what, &ours(&client), &peer, tls12);
    }
}

/// Resumed sessions log their secrets too; TLS 1.2's resumption keeps the extended master
/// secret.
#[tokio::test]
async fn a_resumed_client_exports_what_the_server_exports() {
    let pki = Pki::new();
    for (versions, tls12) in both_versions() {
        let connector = TlsConnector::new(Arc::new(pki.client_config_with(versions)));
        let server = Arc::new(pki.server_config_with(versions));
        for round in 0..2 {
            let (mut client, mut theirs) =
                client_against_tokio_rustls(connector.clone(), server.clone()).await;
            assert_eq!(client.info().unwrap().resumed, round == 1);
            let what = format!("round {round}, {}", vname(versions));
            let peer = peer_exports(theirs.get_ref().1);
            assert_same_exports(&what, &ours(&client), &peer, tls12);
            drop(peer);
            // TLS 1.3 tickets arrive after the handshake: read until the server closes.
            bounded("close", async {
                theirs.shutdown().await.unwrap();
                let mut rest = Vec::new();
                client.read_to_end(&mut rest).await.unwrap();
            })
            .await;
        }
    }
}

/// A resolver's config is prepared for the connection when it is not already; a prepared
/// one is used as it is, and so is a connector's own config given back to it.
#[tokio::test]
async fn resolved_and_prepared_configs_export_too() {
    let pki = Pki::new();
    let prepared = TlsAcceptor::prepare_config(pki.server_config());
    assert!(Arc::ptr_eq(
        &prepared,
        &TlsAcceptor::prepare_config(prepared.clone())
    ));
    let connector = TlsConnector::new(pki.client_config());
    let again = TlsConnector::new(connector.config().clone());
    assert!(Arc::ptr_eq(connector.config(), again.config()));

    for config in [pki.server_config(), prepared] {
        let acceptor = TlsAcceptor::with_resolver(move |_| Ok(config.clone()));
        let (a, b) = tcp_pair().await;
        let mut client = connector.connect(localhost(), a);
        let mut server = acceptor.accept(b);
        bounded("handshakes", async {
            let (c, s) = tokio::join!(client.handshake(), server.handshake());
            c.unwrap();
            s.unwrap();
        })
        .await;
        let label = b"EXPERIMENTAL-resolved";
        let ours = server.export_keying_material([0; 32], label, None).unwrap();
        let theirs = client.export_keying_material([0; 32], label, None).unwrap();
        assert_eq!(ours, theirs);
    }
}

// ---------------------------------------------------------------------------------------
// Against OpenSSL (`-keymatexport`, which exports with no context)
// ---------------------------------------------------------------------------------------

const OPENSSL_LABEL: &str = "EXPERIMENTAL-lazytls-openssl";
const OPENSSL_LEN: usize = 48;

/// The hex that `openssl s_server`/`s_client -keymatexport` printed.
async fn printed_keying_material(proc: &mut Proc) -> Vec<u8> {
    for _ in 0..400 {
        let out = proc.stdout_so_far();
        let line = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Keying material: "));
        if let Some(line) = line.filter(|l| l.len() == 2 * OPENSSL_LEN) {
            return (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    proc.fail("openssl printed no keying material").await
}

fn openssl_args(versions: &[&'static rustls::SupportedProtocolVersion]) -> Vec<String> {
    let len = OPENSSL_LEN.to_string();
    [
        version_flag(versions),
        "-keymatexport",
        OPENSSL_LABEL,
        "-keymatexportlen",
        &len,
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test]
async fn a_client_exports_what_openssl_s_server_prints() {
    let pki = Pki::new();
    let scratch = Scratch::new("exporters-s-server", &pki);
    for (versions, _) in both_versions() {
        for layer in [RecordLayer::Native, RecordLayer::Rustls] {
            let args = openssl_args(versions);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (mut server, port) = s_server(&scratch, &args, STEP).await;
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let connector =
                TlsConnector::new(Arc::new(pki.client_config_with(versions))).record_layer(layer);
            let mut client = connector.connect(localhost(), tcp);
            bounded("handshake", client.handshake()).await.unwrap();
            // s_server prints the exporter once its side of the handshake is done.
            bounded("ping", client.write_all(b"ping\n")).await.unwrap();
            let theirs = printed_keying_material(&mut server).await;
            let mine = client
                .export_keying_material(vec![0; OPENSSL_LEN], OPENSSL_LABEL.as_bytes(), None)
                .unwrap();
            assert_eq!(mine, theirs, "{} on {layer:?}", vname(versions));
        }
    }
}

#[tokio::test]
async fn a_server_exports_what_openssl_s_client_prints() {
    let pki = Pki::new();
    let scratch = Scratch::new("exporters-s-client", &pki);
    for (versions, _) in both_versions() {
        let args = openssl_args(versions);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut client, tcp) = s_client(&scratch, &args, STEP).await;
        let mut server = TlsAcceptor::new(Arc::new(pki.server_config_with(versions))).accept(tcp);
        bounded("handshake", server.handshake()).await.unwrap();
        let theirs = printed_keying_material(&mut client).await;
        let mine = server
            .export_keying_material(vec![0; OPENSSL_LEN], OPENSSL_LABEL.as_bytes(), None)
            .unwrap();
        assert_eq!(mine, theirs, "{}", vname(versions));
    }
}

/// An OpenSSL config that turns the extended master secret off, for `OPENSSL_CONF`.
const NO_EMS_CONF: &str = "openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\n\
    system_default = defaults\n[defaults]\nOptions = -ExtendedMasterSecret\n";

/// Without the extended master secret a TLS 1.2 master secret is not bound to one session
/// (RFC 7627), so neither side exports.
#[tokio::test]
async fn tls12_without_the_extended_master_secret_exports_nothing() {
    let pki = Pki::new();
    let scratch = Scratch::new("exporters-no-ems", &pki);
    std::fs::write(scratch.path("no-ems.cnf"), NO_EMS_CONF).unwrap();
    let tls12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

    // Our client against a server without EMS. `s_server` reads the config from the
    // environment, which this process does not change for other tests: run it through env.
    let conf = format!("OPENSSL_CONF={}", scratch.file("no-ems.cnf"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let accept = format!("127.0.0.1:{port}");
    let (cert, key) = (scratch.file("server.pem"), scratch.file("server.key"));
    let args = [
        "openssl", "s_server", "-accept", &accept, "-cert", &cert, "-key", &key,
    ];
    let mut all = vec![conf.as_str()];
    all.extend(args);
    all.extend(["-tls1_2", "-naccept", "1"]);
    let mut server = Proc::spawn("env", &all, STEP);
    let tcp = connect_when_listening(&mut server, port).await;
    let mut client =
        TlsConnector::new(Arc::new(pki.client_config_with(tls12))).connect(localhost(), tcp);
    bounded("handshake", client.handshake()).await.unwrap();
    let refused = client.export_keying_material([0; 32], b"EXPERIMENTAL-x", None);
    assert!(
        matches!(
            refused,
            Err(Error::Export(ExportError::NoExtendedMasterSecret))
        ),
        "{refused:?}"
    );

    // Our server against a client without EMS.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let connect = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let ca = scratch.file("ca.pem");
    let mut all = vec![conf.as_str(), "openssl", "s_client", "-connect", &connect];
    all.extend(["-CAfile", &ca, "-servername", "localhost", "-tls1_2"]);
    let mut client = Proc::spawn("env", &all, STEP);
    let tcp = match tokio::time::timeout(STEP, listener.accept()).await {
        Ok(Ok((tcp, _))) => tcp,
        _ => client.fail("s_client did not connect").await,
    };
    let mut server = TlsAcceptor::new(Arc::new(pki.server_config_with(tls12))).accept(tcp);
    bounded("handshake", server.handshake()).await.unwrap();
    let refused = server.export_keying_material([0; 32], b"EXPERIMENTAL-x", None);
    assert!(
        matches!(
            refused,
            Err(Error::Export(ExportError::NoExtendedMasterSecret))
        ),
        "{refused:?}"
    );
}

/// Connects to `port` once the server process listens (bounded).
async fn connect_when_listening(server: &mut Proc, port: u16) -> TcpStream {
    for _ in 0..400 {
        if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await {
            return tcp;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.fail("the server did not listen within 10 s").await
}

// ---------------------------------------------------------------------------------------
// Halves, KeyUpdate, refusals
// ---------------------------------------------------------------------------------------

/// Both halves export what the whole stream did, and a KeyUpdate each way changes
/// nothing: the exporter secret is not a traffic secret.
#[tokio::test]
async fn halves_export_the_same_and_key_updates_change_nothing() {
    let pki = Pki::new();
    let (client, mut server) = duplex_pair(pki.client_config(), pki.server_config());
    let mut client = client;
    bounded("handshakes", async {
        let (a, b) = tokio::join!(client.handshake(), server.handshake());
        a.unwrap();
        b.unwrap();
    })
    .await;
    let export = |f: &dyn Fn(Vec<u8>) -> Result<Vec<u8>, Error>| f(vec![0; 64]).unwrap();
    let label = &b"EXPERIMENTAL-halves"[..];
    let before = export(&|v| client.export_keying_material(v, label, Some(b"ctx")));
    assert_eq!(
        before,
        export(&|v| server.export_keying_material(v, label, Some(b"ctx")))
    );

    let (mut read, mut write) = client.into_split();
    assert_eq!(
        export(&|v| read.export_keying_material(v, label, Some(b"ctx"))),
        before
    );
    assert_eq!(
        export(&|v| write.export_keying_material(v, label, Some(b"ctx"))),
        before
    );
    bounded("key updates", async {
        server.refresh_traffic_keys().unwrap();
        server
            .write_all(b"after the server's update")
            .await
            .unwrap();
        let mut got = [0; 25];
        read.read_exact(&mut got).await.unwrap();
        write.write_all(b"and ours").await.unwrap();
        write.flush().await.unwrap();
        let mut got = [0; 8];
        server.read_exact(&mut got).await.unwrap();
    })
    .await;
    for (what, after) in [
        (
            "read half",
            export(&|v| read.export_keying_material(v, label, Some(b"ctx"))),
        ),
        (
            "write half",
            export(&|v| write.export_keying_material(v, label, Some(b"ctx"))),
        ),
        (
            "server",
            export(&|v| server.export_keying_material(v, label, Some(b"ctx"))),
        ),
    ] {
        assert_eq!(after, before, "{what} after the key updates");
    }
}

#[tokio::test]
async fn exports_are_refused_before_the_handshake_and_for_bad_sizes() {
    let pki = Pki::new();
    let (mut client, mut server) = duplex_pair(pki.client_config(), pki.server_config());
    let refused = client.export_keying_material([0; 16], b"EXPERIMENTAL-x", None);
    assert!(matches!(
        refused,
        Err(Error::Export(ExportError::HandshakeNotComplete))
    ));
    bounded("handshakes", async {
        let (a, b) = tokio::join!(client.handshake(), server.handshake());
        a.unwrap();
        b.unwrap();
    })
    .await;
    let empty = client.export_keying_material([0; 0], b"EXPERIMENTAL-x", None);
    assert!(matches!(
        empty,
        Err(Error::Export(ExportError::EmptyOutput))
    ));
    // HKDF-Expand gives at most 255 hash lengths (SHA-256 or SHA-384 here).
    let too_long = client.export_keying_material(vec![0; 255 * 48 + 1], b"EXPERIMENTAL-x", None);
    assert!(matches!(
        too_long,
        Err(Error::Export(ExportError::OutputTooLong))
    ));
    let label = vec![b'x'; 250];
    let long_label = client.export_keying_material([0; 16], &label, None);
    assert!(matches!(
        long_label,
        Err(Error::Export(ExportError::LabelTooLong))
    ));
    // A refusal is not a failure of the connection.
    let ok = client.export_keying_material([0; 16], b"EXPERIMENTAL-x", None);
    assert!(ok.is_ok());
}

// ---------------------------------------------------------------------------------------
// The user's key log, and one secret per connection
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Lines(Mutex<Vec<(String, Vec<u8>)>>);

impl KeyLog for Lines {
    fn log(&self, label: &str, client_random: &[u8], _secret: &[u8]) {
        (self.0.lock().unwrap()).push((label.to_owned(), client_random.to_vec()));
    }
}

/// The user's key log (what `SSLKEYLOGFILE` uses) still gets every line it got before.
#[tokio::test]
async fn the_users_key_log_still_gets_every_line() {
    let pki = Pki::new();
    for (versions, tls12) in both_versions() {
        let lines = Arc::new(Lines::default());
        let mut config = pki.client_config_with(versions);
        config.key_log = lines.clone();
        let connector = TlsConnector::new(Arc::new(config));
        let server = Arc::new(pki.server_config_with(versions));
        let (client, _theirs) = client_against_tokio_rustls(connector, server).await;
        assert!(client.export_keying_material([0; 8], b"x", None).is_ok());
        let labels: Vec<String> = (lines.0.lock().unwrap())
            .iter()
            .map(|l| l.0.clone())
            .collect();
        let want: &[&str] = if tls12 {
            &["CLIENT_RANDOM"]
        } else {
            &[
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0",
                "SERVER_TRAFFIC_SECRET_0",
                "EXPORTER_SECRET",
            ]
        };
        for label in want {
            assert!(
                labels.iter().any(|l| l == label),
                "{label} missing: {labels:?}"
            );
        }
    }
}

/// Many connections share one config (and so one key log) on a multi-threaded runtime,
/// each handshake interleaved with the others: each still exports its own session's
/// values, which the peer's agree with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_each_export_their_own_session() {
    let pki = Pki::new();
    for (versions, tls12) in both_versions() {
        let connector = TlsConnector::new(Arc::new(pki.client_config_with(versions)));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config_with(versions)));
        let mut tasks = Vec::new();
        for _ in 0..24 {
            let (connector, acceptor) = (connector.clone(), acceptor.clone());
            tasks.push(tokio::spawn(async move {
                let (a, b) = tcp_pair().await;
                let mut client = connector.connect(localhost(), a);
                let (ours, theirs) = tokio::join!(client.handshake(), acceptor.accept(b));
                ours.unwrap();
                let theirs = theirs.unwrap();
                let mine = client.export_keying_material([0; 32], b"EXPERIMENTAL-c", None);
                let peer =
                    theirs
                        .get_ref()
                        .1
                        .export_keying_material([0; 32], b"EXPERIMENTAL-c", None);
                (mine.unwrap(), peer.unwrap())
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let (mine, peer) = bounded("connection", task).await.unwrap();
            assert_eq!(mine, peer, "tls12: {tls12}");
            all.push(mine);
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 24, "every session exports its own values");
    }
}

// ---------------------------------------------------------------------------------------
// The key-exchange group in ConnectionInfo
// ---------------------------------------------------------------------------------------

fn with_groups(pki: &Pki, groups: &[NamedGroup]) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let mut provider = (*provider()).clone();
    provider.kx_groups.retain(|g| groups.contains(&g.name()));
    assert!(
        !provider.kx_groups.is_empty(),
        "the provider has none of {groups:?}"
    );
    let provider = Arc::new(provider);
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.server_chain.clone(), pki.server_key())
        .unwrap();
    (Arc::new(client), Arc::new(server))
}

async fn negotiated_group(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) -> [Option<NamedGroup>; 2] {
    let (mut client, mut server) = duplex_pair(client, server);
    bounded("handshakes", async {
        let (a, b) = tokio::join!(client.handshake(), server.handshake());
        a.unwrap();
        b.unwrap();
    })
    .await;
    assert_eq!(
        client.info().unwrap().protocol_version,
        Some(ProtocolVersion::TLSv1_3)
    );
    [client, server].map(|s| s.info().unwrap().key_exchange_group)
}

#[tokio::test]
async fn info_names_a_classical_key_exchange_group() {
    let pki = Pki::new();
    for group in [NamedGroup::X25519, NamedGroup::secp256r1] {
        let (client, server) = with_groups(&pki, &[group]);
        assert_eq!(negotiated_group(client, server).await, [Some(group); 2]);
    }
}

/// aws-lc-rs (the default) has the post-quantum hybrid; ring does not.
#[cfg(feature = "aws-lc-rs")]
#[tokio::test]
async fn info_names_the_post_quantum_key_exchange_group() {
    let pki = Pki::new();
    let pq = NamedGroup::X25519MLKEM768;
    let (client, server) = with_groups(&pki, &[pq]);
    assert_eq!(negotiated_group(client, server).await, [Some(pq); 2]);
}
