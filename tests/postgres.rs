//! tokio-postgres over `lazytls::postgres::MakeTlsConnector`, against a real PostgreSQL
//! server: each test starts a cluster of its own (`common::postgres_server`), on loopback,
//! and stops it on every path.
//!
//! - queries over TLS 1.3 and TLS 1.2, the version as the server reports it (`pg_stat_ssl`);
//! - SCRAM-SHA-256-PLUS with `channel_binding=require` for server certificates signed with
//!   SHA-256 (ECDSA P-256), SHA-384 (ECDSA P-384) and SHA-512 (RSA, a hash no cipher suite
//!   brings, so it comes from the built-in crypto crate). PostgreSQL checks the binding, so
//!   a login proves the hash right;
//! - an Ed25519 certificate: no binding, so `prefer` logs in without it and `require`
//!   refuses to;
//! - failures: an untrusted CA and a wrong host as typed certificate errors, and a
//!   `hostnossl ... reject` line as the server's own error; a Unix socket connects without
//!   TLS through the same connector;
//! - the `postgres_query` example, which `cargo test` builds, prints a query's rows, and
//!   names a refused certificate.
//!
//! PostgreSQL must be installed (Debian's `postgresql`, which `.ci/test` installs); without
//! it the tests fail.
#![cfg(feature = "postgres")]

mod common;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use common::postgres_server::{PASSWORD, PgServer, SUPERUSER, ServerPki, USER};
use common::{provider, versions, vname, within};
use lazytls::postgres::{ConnectError, MakeTlsConnector};
use lazytls::rustls::pki_types::CertificateDer;
use lazytls::rustls::{
    self, CertificateError, ClientConfig, RootCertStore, SupportedProtocolVersion,
};
use lazytls::{Error, TlsConnector};
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres::error::SqlState;
use x509_parser::oid_registry::{self as oids, Oid};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A test's whole run, server start and stop included.
const BOUND_SECS: u64 = 120;

/// A connector that trusts `ca` only and speaks `versions`.
fn tls(
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
) -> MakeTlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::new(Arc::new(config)).handshake_timeout(Duration::from_secs(10));
    MakeTlsConnector::new(connector)
}

/// `pg_stat_ssl.version` for the version a run pins.
fn server_name_of(version: &[&'static SupportedProtocolVersion]) -> &'static str {
    match vname(version) {
        "TLS 1.3" => "TLSv1.3",
        _ => "TLSv1.2",
    }
}

/// An error and its sources, for failure messages.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(&format!(": {e}"));
        next = e.source();
    }
    text
}

/// The signature algorithm of a certificate, which the binding's hash follows.
fn signature_oid(cert: &CertificateDer<'_>) -> Oid<'static> {
    let (_, parsed) = X509Certificate::from_der(cert).unwrap();
    parsed.signature_algorithm.algorithm.to_owned()
}

/// Logs in with `config`, checks a value's round trip and that the server reports TLS in
/// `version`, and closes the connection.
async fn query_over(
    config: &tokio_postgres::Config,
    tls: MakeTlsConnector,
    version: &[&'static SupportedProtocolVersion],
) {
    let what = format!(
        "{} channel_binding={:?}",
        vname(version),
        config.get_channel_binding()
    );
    let (client, connection) = (config.connect(tls).await)
        .unwrap_or_else(|e| panic!("{what}: connect failed: {}", chain(&e)));
    let io = tokio::spawn(connection);

    let echoed: String = (client
        .query_one("SELECT $1::TEXT", &[&"über lazytls"])
        .await)
        .unwrap()
        .get(0);
    assert_eq!(echoed, "über lazytls", "{what}");
    let row = (client.query_one(
        "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    ))
    .await
    .unwrap();
    let (ssl, server_version): (bool, Option<String>) = (row.get(0), row.get(1));
    assert!(ssl, "{what}: the server sees no TLS");
    assert_eq!(
        server_version.as_deref(),
        Some(server_name_of(version)),
        "{what}"
    );
    eprintln!("{what}: logged in, the server reports {server_version:?}");

    drop(client);
    let closed = io.await.unwrap();
    closed.unwrap_or_else(|e| panic!("{what}: the connection did not close cleanly: {e}"));
}

/// Logs in with `channel_binding=require` on every protocol version, to a server whose
/// certificate `pki` signed with `signature`.
async fn binding_required(tag: &str, pki: ServerPki, signature: Oid<'static>) {
    assert_eq!(
        signature_oid(&pki.server_cert),
        signature,
        "the test's certificate"
    );
    let server = PgServer::start(tag, &pki).await;
    for version in versions() {
        let mut config = server.config();
        config.channel_binding(ChannelBinding::Require);
        query_over(&config, tls(&pki.ca, version), version).await;
    }
}

#[tokio::test]
async fn queries_over_tls13_and_tls12_with_sha256_channel_binding() {
    within(BOUND_SECS, "sha256", async {
        let pki = ServerPki::new(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        binding_required("sha256", pki, oids::OID_SIG_ECDSA_WITH_SHA256).await;
    })
    .await;
}

#[tokio::test]
async fn channel_binding_with_a_sha384_certificate() {
    within(BOUND_SECS, "sha384", async {
        let pki = ServerPki::new(
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        );
        binding_required("sha384", pki, oids::OID_SIG_ECDSA_WITH_SHA384).await;
    })
    .await;
}

#[tokio::test]
async fn channel_binding_with_a_sha512_certificate() {
    within(BOUND_SECS, "sha512", async {
        let pki = ServerPki::new(&rcgen::PKCS_RSA_SHA512, &rcgen::PKCS_ECDSA_P256_SHA256);
        binding_required("sha512", pki, oids::OID_PKCS1_SHA512WITHRSA).await;
    })
    .await;
}

#[tokio::test]
async fn an_ed25519_certificate_has_no_channel_binding() {
    within(BOUND_SECS, "ed25519", async {
        let pki = ServerPki::new(&rcgen::PKCS_ED25519, &rcgen::PKCS_ED25519);
        assert_eq!(signature_oid(&pki.server_cert), oids::OID_SIG_ED25519);
        let server = PgServer::start("ed25519", &pki).await;
        for version in versions() {
            // `prefer`, tokio-postgres's default: SCRAM-SHA-256 without the binding.
            let mut config = server.config();
            query_over(&config, tls(&pki.ca, version), version).await;

            config.channel_binding(ChannelBinding::Require);
            let err = (config.connect(tls(&pki.ca, version)).await)
                .err()
                .expect("channel_binding=require without a binding must fail");
            let text = chain(&err);
            assert!(
                text.contains("channel binding"),
                "{}: {text}",
                vname(version)
            );
            assert!(
                err.as_db_error().is_none(),
                "tokio-postgres refuses: {text}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn untrusted_or_misnamed_certificates_are_typed_certificate_errors() {
    within(BOUND_SECS, "certificate errors", async {
        let pki = ServerPki::new(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let other = ServerPki::new(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let server = PgServer::start("certs", &pki).await;

        let err = (server
            .config()
            .connect(tls(&other.ca, rustls::DEFAULT_VERSIONS))
            .await)
            .err()
            .expect("a server whose CA we do not trust");
        // tokio-postgres reports a TLS error whose source is the connector's error.
        let source = err.source().expect("tokio-postgres keeps the TLS error");
        let ours = source
            .downcast_ref::<ConnectError>()
            .unwrap_or_else(|| panic!("not a ConnectError: {}", chain(&err)));
        assert!(
            matches!(
                ours,
                ConnectError::Handshake(Error::Tls(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                )))
            ),
            "{ours:?}"
        );
        assert!(ConnectError::find(&err).is_some_and(|e| std::ptr::eq(e, ours)));

        // The name checked is the host's, not the address connected to.
        let config = server.config_naming("wrong.test");
        let err = (config.connect(tls(&pki.ca, rustls::DEFAULT_VERSIONS)).await)
            .err()
            .expect("a certificate for another name");
        let cert_error = ConnectError::find(&err).and_then(ConnectError::certificate_error);
        assert!(
            matches!(
                cert_error,
                Some(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{}",
            chain(&err)
        );
    })
    .await;
}

#[tokio::test]
async fn plaintext_is_refused_over_tcp_and_allowed_over_the_unix_socket() {
    within(BOUND_SECS, "plaintext", async {
        let pki = ServerPki::new(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let server = PgServer::start("plaintext", &pki).await;
        let tls = || tls(&pki.ca, rustls::DEFAULT_VERSIONS);

        // `hostnossl ... reject`: PostgreSQL's own refusal, as its error.
        let mut config = server.config();
        config.ssl_mode(SslMode::Disable);
        let err = config.connect(tls()).await.err().expect("a refusal");
        let db = (err.as_db_error())
            .unwrap_or_else(|| panic!("not the server's error: {}", chain(&err)));
        assert_eq!(db.code(), &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
        assert!(
            db.message().contains("pg_hba.conf rejects connection")
                && db.message().contains("no encryption"),
            "{}",
            db.message()
        );

        // tokio-postgres hands the connector an empty host name for a Unix socket, and the
        // server declines TLS there: `prefer` goes on in plaintext.
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(server.socket_dir())
            .port(server.port())
            .user(SUPERUSER)
            .dbname("postgres");
        let (client, connection) =
            (config.connect(tls()).await).unwrap_or_else(|e| panic!("unix socket: {}", chain(&e)));
        let io = tokio::spawn(connection);
        let row = (client.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        ))
        .await
        .unwrap();
        assert!(!row.get::<_, bool>(0), "no TLS over the Unix socket");
        drop(client);
        io.await.unwrap().unwrap();
    })
    .await;
}

/// The `postgres_query` example, next to this test binary's directory
/// (`target/debug/examples`).
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join("postgres_query");
    assert!(
        path.exists(),
        "{} is missing: `cargo test --features postgres` builds it, but not with \
         `--test postgres` alone (then `cargo build --features postgres --examples`)",
        path.display()
    );
    path
}

/// Runs the example with `args`: its exit status, stdout and stderr.
async fn run_example(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let child = tokio::process::Command::new(example_binary())
        .args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("the example finishes within 30 s")
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status, text(out.stdout), text(out.stderr))
}

#[tokio::test]
async fn the_example_prints_rows_and_names_a_refused_certificate() {
    example_binary(); // before the server starts, if it is missing
    within(BOUND_SECS, "example", async {
        let pki = ServerPki::new(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let other = ServerPki::new(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let server = PgServer::start("example", &pki).await;
        let ca = server.scratch_file("ca.pem", &pki.ca_pem);
        let other_ca = server.scratch_file("other-ca.pem", &other.ca_pem);
        // An IP address as the host: the certificate names 127.0.0.1 too.
        let url = format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/postgres\
             ?sslmode=require&channel_binding=require",
            server.port()
        );

        let query = "SELECT 40 + 2 AS answer";
        let ca_arg = ca.to_str().unwrap();
        let (status, out, err) = run_example(&[&url, "--ca", ca_arg, query]).await;
        assert!(status.success(), "{status}: {out}{err}");
        assert_eq!(out, "answer\n42\n(1 rows)\n", "stderr: {err}");

        let other_arg = other_ca.to_str().unwrap();
        let (status, out, err) = run_example(&[&url, "--ca", other_arg]).await;
        assert_eq!(status.code(), Some(1), "{out}{err}");
        assert!(err.contains("UnknownIssuer"), "{err}");
        eprintln!("the example's refusal: {err}");
    })
    .await;
}
