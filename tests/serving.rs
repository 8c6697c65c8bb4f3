//! The example servers (`hyper_server`, `axum_server`, `server`, built by `cargo test`
//! with the other examples) as processes, against `curl`, `openssl s_client` and the
//! `client` example on loopback:
//!
//! - mTLS: with `--client-ca`, `GET /tls` names the client certificate's subject, `null`
//!   without one, and a certificate from another CA fails its handshake while the server
//!   goes on serving; the same with lazytls on both sides (`client --cert --key` against
//!   `server --client-ca`), and `client` refuses `--cert` without `--key`;
//! - SIGHUP reloads the certificate: a new connection gets the new one while an old
//!   connection goes on, and a failed reload (garbage PEM, a key of another certificate)
//!   changes nothing;
//! - plaintext HTTP on the TLS port is redirected to https (the transport taken back);
//! - HTTPS over a Unix socket (`curl --unix-socket`), and a socket path that exists.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::openssl::{Proc, Scratch, spawn_s_client};
use common::*;
use lazytls::TlsConnector;
use lazytls::rustls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on each wait for a process.
const STEP: Duration = Duration::from_secs(30);

/// An example binary, next to this test binary's directory (`target/debug/examples`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples (cargo build --examples --all-features)",
        path.display()
    );
    path
}

/// A running example server and the port it listens on.
struct Server {
    proc: Proc,
    port: u16,
}

impl Server {
    /// Starts `name` on 127.0.0.1 (a free port) with the scratch directory's certificate
    /// and `args` on top, and waits for it to listen.
    async fn start(name: &str, scratch: &Scratch, args: &[&str]) -> Server {
        let (cert, key) = (scratch.file("server.pem"), scratch.file("server.key"));
        let mut all = vec!["--addr", "127.0.0.1:0", "--cert", &cert, "--key", &key];
        all.extend(args);
        let mut proc = Proc::spawn(example(name).to_str().unwrap(), &all, STEP);
        let line = proc.wait_for_stderr_lines("listening on ", 1).await;
        let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        Server { proc, port }
    }

    /// Sends SIGHUP and waits for the server's `n`-th line containing `outcome`.
    async fn hangup(&mut self, outcome: &str, n: usize) -> String {
        let pid = self.proc.id().expect("the server runs").to_string();
        let mut kill = Proc::spawn("kill", &["-HUP", &pid], STEP);
        kill.wait_success().await;
        self.proc.wait_for_stderr_lines(outcome, n).await
    }
}

/// `curl` on `https://localhost:PORT{path}`; `Err` carries stderr on a non-zero exit.
async fn curl(scratch: &Scratch, port: u16, args: &[&str], path: &str) -> Result<String, String> {
    let url = format!("https://localhost:{port}{path}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = scratch.file("ca.pem");
    let mut all = vec!["--resolve", &resolve, "--cacert", &ca];
    all.extend(args);
    all.push(&url);
    run_curl(&all).await
}

/// `curl -sS --max-time 30` with `args`: stdout, or stderr on a non-zero exit.
async fn run_curl(args: &[&str]) -> Result<String, String> {
    let all = [&["-sS", "--max-time", "30"], args].concat();
    let mut curl = Proc::spawn("curl", &all, STEP);
    drop(curl.stdin());
    let out = curl.stdout().await;
    match curl.wait().await.success() {
        true => Ok(String::from_utf8(out).unwrap()),
        false => Err(curl.stderr().await),
    }
}

/// `GET /tls` as JSON.
async fn tls_json(scratch: &Scratch, port: u16, args: &[&str]) -> serde_json::Value {
    let body = curl(scratch, port, args, "/tls").await.unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The servers that serve `/tls`, by example name.
fn http_servers() -> Vec<&'static str> {
    let mut servers = vec!["hyper_server"];
    if cfg!(feature = "axum") {
        servers.push("axum_server");
    }
    servers
}

#[tokio::test]
async fn client_certificates_reach_handlers_and_untrusted_ones_are_refused() {
    let pki = Pki::new();
    let scratch = Scratch::new("serving-mtls", &pki);
    // A client certificate of another CA.
    let other = Pki::new();
    let untrusted = Scratch::new("serving-mtls-other", &other);
    let ca = scratch.file("ca.pem");
    for name in http_servers() {
        let server = Server::start(name, &scratch, &["--client-ca", &ca]).await;
        let port = server.port;
        let (cert, key) = (scratch.file("client.pem"), scratch.file("client.key"));
        let with_cert = ["--cert", cert.as_str(), "--key", key.as_str()];

        let json = tls_json(&scratch, port, &with_cert).await;
        assert_eq!(
            json["client_cert"], "CN=lazytls test client",
            "{name}: {json}"
        );
        assert_eq!(json["sni"], "localhost", "{name}: {json}");
        assert!(
            json["version"].as_str().unwrap().starts_with("TLS 1."),
            "{json}"
        );
        assert!(
            json["cipher_suite"].as_str().unwrap().starts_with("TLS"),
            "{json}"
        );
        assert!(json["alpn"] == "h2" || json["alpn"] == "http/1.1", "{json}");
        // curl's OpenSSL 3.0 offers no post-quantum group.
        let group = json["key_exchange_group"].as_str().unwrap();
        assert!(group == "X25519" || group.starts_with("secp"), "{json}");

        let json = tls_json(&scratch, port, &["--http1.1"]).await;
        assert!(json["client_cert"].is_null(), "{name}: {json}");
        assert_eq!(json["alpn"], "http/1.1", "{name}: {json}");

        let (cert, key) = (untrusted.file("client.pem"), untrusted.file("client.key"));
        let refused = curl(&scratch, port, &["--cert", &cert, "--key", &key], "/tls").await;
        assert!(
            refused.is_err(),
            "{name}: an untrusted certificate was served: {refused:?}"
        );
        // The server goes on.
        let json = tls_json(&scratch, port, &with_cert).await;
        assert_eq!(
            json["client_cert"], "CN=lazytls test client",
            "{name}: {json}"
        );
    }
}

#[tokio::test]
async fn s_client_with_a_certificate_sees_it_in_the_handler() {
    let pki = Pki::new();
    let scratch = Scratch::new("serving-s_client", &pki);
    let ca = scratch.file("ca.pem");
    let server = Server::start("hyper_server", &scratch, &["--client-ca", &ca]).await;
    let (cert, key) = (scratch.file("client.pem"), scratch.file("client.key"));
    let connect = format!("127.0.0.1:{}", server.port);
    let args = ["-quiet", "-alpn", "http/1.1", "-cert", &cert, "-key", &key];
    let mut s_client = spawn_s_client(&scratch, &connect, &args, STEP);
    let mut stdin = s_client.stdin();
    stdin
        .write_all(b"GET /tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = String::from_utf8(s_client.stdout().await).unwrap();
    drop(stdin);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains(r#""client_cert":"CN=lazytls test client""#),
        "{reply}"
    );
}

/// The server certificate (PEM) that `openssl s_client` is served on a new connection.
async fn served_certificate(port: u16) -> String {
    // Both test CAs have the same name, so OpenSSL cannot tell which one signed: the
    // certificate is compared, not verified (the other tests verify).
    let connect = format!("127.0.0.1:{port}");
    let args = ["s_client", "-connect", &connect, "-servername", "localhost"];
    let mut s_client = Proc::spawn("openssl", &args, STEP);
    drop(s_client.stdin());
    let out = String::from_utf8(s_client.stdout().await).unwrap();
    s_client.wait_success().await;
    let begin = out
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = out.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    out[begin..end].to_owned()
}

fn same_pem(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.split_whitespace().collect::<String>();
    strip(a) == strip(b)
}

/// One HTTP/1.1 keep-alive request on an open connection; returns the status line.
async fn get_on<IO>(tls: &mut lazytls::TlsStream<IO>) -> String
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut reply = Vec::new();
    bounded("response", async {
        // Each turn reads at least one byte; the page is under 1 KiB.
        while !reply.windows(13).any(|w| w == b"/echo to get ") || !reply.ends_with(b"back.\n") {
            let mut buf = [0u8; 1024];
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&reply));
            reply.extend_from_slice(&buf[..n]);
            assert!(reply.len() < 8192, "{}", String::from_utf8_lossy(&reply));
        }
    })
    .await;
    let text = String::from_utf8(reply).unwrap();
    text.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_failed_reload_changes_nothing() {
    let (first, second) = (Pki::new(), Pki::new());
    let scratch = Scratch::new("serving-reload", &first);
    let mut server = Server::start("hyper_server", &scratch, &[]).await;
    let port = server.port;
    assert!(same_pem(
        &served_certificate(port).await,
        &first.server_cert_pem
    ));

    // A connection from before the reload.
    let mut config = first.client_config_with(rustls::DEFAULT_VERSIONS);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut old = TlsConnector::new(Arc::new(config)).connect(localhost(), tcp);
    assert_eq!(get_on(&mut old).await, "HTTP/1.1 200 OK");

    std::fs::write(scratch.path("server.pem"), &second.server_cert_pem).unwrap();
    std::fs::write(scratch.path("server.key"), &second.server_key_pem).unwrap();
    server.hangup("SIGHUP: reloaded", 1).await;
    assert!(same_pem(
        &served_certificate(port).await,
        &second.server_cert_pem
    ));
    // The old connection goes on, with its certificate.
    assert_eq!(get_on(&mut old).await, "HTTP/1.1 200 OK");

    // Garbage PEM, then a key that belongs to another certificate: both fail, and the
    // second certificate goes on serving.
    std::fs::write(
        scratch.path("server.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    let line = server.hangup("SIGHUP: reload failed", 1).await;
    assert!(line.contains("server.pem"), "{line}");
    std::fs::write(scratch.path("server.pem"), &second.server_cert_pem).unwrap();
    std::fs::write(scratch.path("server.key"), &first.server_key_pem).unwrap();
    let line = server.hangup("SIGHUP: reload failed", 2).await;
    assert!(line.contains("KeyMismatch"), "{line}");
    assert!(same_pem(
        &served_certificate(port).await,
        &second.server_cert_pem
    ));
    assert_eq!(get_on(&mut old).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn plaintext_http_is_redirected_to_https() {
    let pki = Pki::new();
    let scratch = Scratch::new("serving-redirect", &pki);
    let server = Server::start("hyper_server", &scratch, &[]).await;
    let url = format!("http://127.0.0.1:{}/some/path?q=1", server.port);
    let reply = run_curl(&["-i", &url]).await.unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
        "{reply}"
    );
    let location = format!(
        "location: https://127.0.0.1:{}/some/path?q=1\r\n",
        server.port
    );
    assert!(reply.to_ascii_lowercase().contains(&location), "{reply}");
    // The port still serves TLS.
    let page = curl_ok(&scratch, server.port, "/").await;
    assert!(page.starts_with("Hello from lazytls."), "{page}");
}

async fn curl_ok(scratch: &Scratch, port: u16, path: &str) -> String {
    curl(scratch, port, &[], path).await.unwrap()
}

#[cfg(all(unix, feature = "axum"))]
#[tokio::test]
async fn https_over_a_unix_socket_and_a_path_that_exists() {
    let pki = Pki::new();
    let scratch = Scratch::new("serving-unix", &pki);
    let socket = scratch.file("https.sock");
    let addr = format!("unix:{socket}");
    let (cert, key) = (scratch.file("server.pem"), scratch.file("server.key"));
    let args = [
        "--addr",
        addr.as_str(),
        "--cert",
        cert.as_str(),
        "--key",
        key.as_str(),
    ];
    let mut server = Proc::spawn(example("axum_server").to_str().unwrap(), &args, STEP);
    server.wait_for_stderr_lines("listening on ", 1).await;

    let ca = scratch.file("ca.pem");
    let over_socket = ["--cacert", &ca, "--unix-socket", &socket];
    let body = run_curl(&[&over_socket[..], &["https://localhost/tls"]].concat())
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["sni"], "localhost", "{json}");
    assert!(json["client_cert"].is_null(), "{json}");

    // A second server on the same path fails with an error naming it; the first goes on.
    let mut second = Proc::spawn(example("axum_server").to_str().unwrap(), &args, STEP);
    assert!(!second.wait().await.success());
    let err = second.stderr().await;
    assert!(
        err.contains("exists already") && err.contains(&socket),
        "{err}"
    );
    let page = run_curl(&[&over_socket[..], &["https://localhost/"]].concat())
        .await
        .unwrap();
    assert!(page.starts_with("Hello from lazytls."), "{page}");
}

/// In-process: hyper-util's `auto` server over a `TlsListener`, each connection's service
/// wrapped in `WithConnectionInfo`, and curl with and without a client certificate.
#[cfg(feature = "hyper")]
#[tokio::test]
async fn with_connection_info_gives_hyper_handlers_the_client_certificate() {
    use std::convert::Infallible;

    use hyper::{Request, Response, body::Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use lazytls::hyper::WithConnectionInfo;
    use lazytls::{ConnectionInfoHandle, TlsAcceptor, TlsListener};

    async fn handle(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
        let info = req.extensions().get::<ConnectionInfoHandle>().unwrap();
        let tls = info
            .get()
            .expect("the handshake completes before a request");
        // The end entity's DER bytes, as hex (curl also sends the CA it was given).
        let end_entity = tls.peer_certificates.as_ref().map(|chain| &chain[0]);
        let hex = end_entity.map_or_else(String::new, |der| hex(der));
        Ok(Response::new(format!(
            "sni={:?} client_cert={hex}\n",
            tls.sni
        )))
    }

    let pki = Pki::new();
    let scratch = Scratch::new("serving-with-info", &pki);
    let acceptor = TlsAcceptor::new(pki.mtls_server_config(rustls::DEFAULT_VERSIONS));
    let listener = TlsListener::bind("127.0.0.1:0", acceptor).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tls, _)) = listener.accept().await {
            // Taken before the handshake, which the first read of hyper runs.
            let service =
                WithConnectionInfo::new(hyper::service::service_fn(handle), tls.info_handle());
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    let (cert, key) = (scratch.file("client.pem"), scratch.file("client.key"));
    let body = curl(&scratch, port, &["--cert", &cert, "--key", &key], "/")
        .await
        .unwrap();
    let want = hex(&pki.client_chain[0]);
    assert_eq!(
        body,
        format!("sni=Some(\"localhost\") client_cert={want}\n")
    );
    // This server requires a certificate: without one, the handshake fails.
    assert!(curl(&scratch, port, &[], "/").await.is_err());
}

#[cfg(feature = "hyper")]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `client` example against `127.0.0.1:port` (SNI `localhost`, trusting the scratch
/// directory's CA, pinned to `version`), with `args` on top, sending `GET /tls`: its exit
/// status, stdout and stderr.
async fn example_client(
    scratch: &Scratch,
    port: u16,
    version: &str,
    args: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let connect = format!("127.0.0.1:{port}");
    let ca = scratch.file("ca.pem");
    let mut all = vec!["--connect", &connect, "--sni", "localhost", "--ca", &ca];
    all.extend(["--alpn", "http/1.1", version]);
    all.extend(args);
    let mut client = Proc::spawn(example("client").to_str().unwrap(), &all, STEP);
    let mut stdin = client.stdin();
    stdin
        .write_all(b"GET /tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Held open until the client exits: at EOF on stdin the client sends close_notify,
    // and hyper, which does not serve half-closed connections, would then drop the
    // request unanswered.
    let out = String::from_utf8(client.stdout().await).unwrap();
    let status = client.wait().await;
    drop(stdin);
    let err = client.stderr().await;
    (status, out, err)
}

#[tokio::test]
async fn example_client_presents_its_certificate_to_the_example_server() {
    let pki = Pki::new();
    let scratch = Scratch::new("serving-client-mtls", &pki);
    let other = Pki::new();
    let untrusted = Scratch::new("serving-client-mtls-other", &other);
    let ca = scratch.file("ca.pem");
    let mut server =
        Server::start("server", &scratch, &["--mode", "http", "--client-ca", &ca]).await;
    let port = server.port;
    let (cert, key) = (scratch.file("client.pem"), scratch.file("client.key"));
    let (other_cert, other_key) = (untrusted.file("client.pem"), untrusted.file("client.key"));

    let mut versions = vec!["--tls13"];
    if cfg!(feature = "tls12") {
        versions.push("--tls12");
    }
    let mut refused = 0;
    for version in versions {
        let with_cert = ["--cert", cert.as_str(), "--key", key.as_str()];
        let (status, out, err) = example_client(&scratch, port, version, &with_cert).await;
        assert!(status.success(), "{version}: {status}\n{err}");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{version}: {out}");
        assert!(
            out.contains(r#""client_cert":"CN=lazytls test client""#),
            "{version}: {out}"
        );
        assert!(
            err.contains("server closed the connection cleanly"),
            "{version}: {err}"
        );
        // The client's parameters name the key exchange: X25519, or X25519MLKEM768
        // where the provider has the post-quantum hybrid.
        assert!(err.contains("key exchange:   X25519"), "{version}: {err}");

        // The server asks for a certificate but serves clients without one, so what the
        // handler saw above came from --cert.
        let (status, out, err) = example_client(&scratch, port, version, &[]).await;
        assert!(status.success(), "{version}: {status}\n{err}");
        assert!(out.contains(r#""client_cert":null"#), "{version}: {out}");

        // A certificate from another CA: the server refuses the handshake. Under TLS 1.3
        // the client has finished its side before the server's alert arrives, so the
        // failure may surface on the first read rather than in the handshake.
        let with_other = ["--cert", other_cert.as_str(), "--key", other_key.as_str()];
        let (status, out, err) = example_client(&scratch, port, version, &with_other).await;
        assert_eq!(status.code(), Some(1), "{version}: {status}\n{err}");
        assert!(!out.contains("HTTP/1.1"), "{version}: served: {out}");
        assert!(err.contains("received fatal alert"), "{version}: {err}");
        refused += 1;
        let line = server
            .proc
            .wait_for_stderr_lines("handshake failed", refused)
            .await;
        // Both test CAs have the same name, so rustls finds an issuer and then fails its
        // signature (BadSignature) instead of reporting an unknown one.
        assert!(
            line.contains("invalid peer certificate"),
            "{version}: {line}"
        );
    }
}

#[tokio::test]
async fn example_client_wants_both_cert_and_key_or_neither() {
    let pki = Pki::new();
    let scratch = Scratch::new("serving-client-args", &pki);
    let (ca, cert, key) = (
        scratch.file("ca.pem"),
        scratch.file("client.pem"),
        scratch.file("client.key"),
    );
    let cases = [
        ("--cert", cert.as_str(), "--cert needs --key"),
        ("--key", key.as_str(), "--key needs --cert"),
    ];
    for (flag, file, want) in cases {
        // Port 9 (discard) is never reached: the arguments are refused first.
        let args = ["--connect", "127.0.0.1:9", "--ca", &ca, flag, file];
        let mut client = Proc::spawn(example("client").to_str().unwrap(), &args, STEP);
        drop(client.stdin());
        let status = client.wait().await;
        let err = client.stderr().await;
        assert_eq!(status.code(), Some(2), "{flag}: {status}\n{err}");
        assert!(err.contains(want), "{flag}: {err}");
    }
}
