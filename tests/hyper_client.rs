//! The hyper connector: hyper-util's legacy `Client` over
//! `lazytls::hyper::HttpsConnector`, on loopback TCP.
//!
//! - against lazytls's own HTTPS server (hyper-util's `auto` server over `TlsAcceptor`
//!   streams, offering ALPN `h2` and `http/1.1`): HTTP/1.1 and HTTP/2 chosen by ALPN, one
//!   handshake for ten keep-alive requests, `TlsInfo` in the response extensions, SNI from
//!   DNS names only, server-name overrides, IPv6 literals, a user ALPN list respected;
//! - against `openssl s_server -www` (HTTP/1.1 request, TLS 1.2 and 1.3);
//! - failures with typed errors: a silent server (handshake timeout), a connector that
//!   never connects (connect timeout), an untrusted certificate, a wrong host, `https_only`.
//!
//! `openssl` must be on `PATH`; a missing one fails the test. Every test is bounded in
//! time and every child process is killed on every path.
#![cfg(feature = "hyper")]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::openssl::{Scratch, check_www_page, free_port, s_server};
use common::*;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpInfo};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lazytls::hyper::{ConnectError, HttpsConnector, HttpsConnectorBuilder, TlsInfo};
use lazytls::rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
use lazytls::rustls::{
    self, CertificateError, ClientConfig, ProtocolVersion, RootCertStore, ServerConfig,
};
use lazytls::{ConnectionInfo, TlsAcceptor};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

// ---------------------------------------------------------------------------------------
// Our HTTPS server
// ---------------------------------------------------------------------------------------

/// hyper-util's `auto` server (HTTP/1.1 and HTTP/2) over lazytls streams. Counts TCP
/// connections and records each completed handshake. Stops when dropped.
struct TestServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    handshakes: Arc<Mutex<Vec<ConnectionInfo>>>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

impl TestServer {
    async fn start(config: ServerConfig) -> TestServer {
        Self::start_on("127.0.0.1:0", config).await.unwrap()
    }

    async fn start_on(bind: &str, mut config: ServerConfig) -> io::Result<TestServer> {
        config.alpn_protocols = vec![H2.to_vec(), HTTP11.to_vec()];
        let acceptor =
            TlsAcceptor::new(Arc::new(config)).handshake_timeout(Duration::from_secs(10));
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (accepted.clone(), handshakes.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut tls = acceptor.accept(tcp);
                let log = log.clone();
                conns.spawn(async move {
                    // Explicit, to record what was negotiated; hyper would drive it lazily.
                    if tls.handshake().await.is_err() {
                        return;
                    }
                    log.lock().unwrap().push(tls.info().unwrap().clone());
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service_fn(echo_request))
                        .await;
                });
            }
        });
        Ok(TestServer {
            addr,
            accepted,
            handshakes,
            task,
        })
    }

    fn url(&self, path: &str) -> Uri {
        format!("https://{}{path}", self.addr).parse().unwrap()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn handshakes(&self) -> Vec<ConnectionInfo> {
        self.handshakes.lock().unwrap().clone()
    }
}

/// Answers with the request's version and path.
async fn echo_request(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = format!("{:?} {}", req.version(), req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// A plain-text HTTP/1.1 server with the same service.
async fn plain_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            conns.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(echo_request))
                    .await;
            });
        }
    });
    (addr, task)
}

// ---------------------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------------------

fn https_client<C>(connector: C) -> Client<C, Empty<Bytes>>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A GET, with the whole body.
async fn get<C>(
    client: &Client<C, Empty<Bytes>>,
    uri: Uri,
) -> Result<(http::response::Parts, String), hyper_util::client::legacy::Error>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let res = client.get(uri).await?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Ok((parts, String::from_utf8_lossy(&body).into_owned()))
}

/// The connector's typed error inside a client error, or a failure that prints the chain.
fn connect_error(err: &hyper_util::client::legacy::Error) -> &ConnectError {
    ConnectError::find(err).unwrap_or_else(|| {
        let mut chain = format!("{err}");
        let mut next = std::error::Error::source(err);
        while let Some(e) = next {
            chain.push_str(&format!(" -> {e}"));
            next = e.source();
        }
        panic!("no ConnectError in the client error: {chain}")
    })
}

fn builder(config: Arc<ClientConfig>) -> HttpsConnectorBuilder {
    HttpsConnector::builder(config).handshake_timeout(Duration::from_secs(10))
}

fn tls_info(parts: &http::response::Parts) -> &TlsInfo {
    parts
        .extensions
        .get::<TlsInfo>()
        .expect("TlsInfo in the response extensions")
}

// ---------------------------------------------------------------------------------------
// Against our own server
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn http1_over_alpn_with_tls_info() {
    bounded("http1 over alpn", async {
        let pki = Pki::new();
        let server = TestServer::start(pki.server_config_with(rustls::DEFAULT_VERSIONS)).await;
        // enable_http1 alone: the connector offers [http/1.1].
        let client = https_client(builder(pki.client_config()).enable_http1().build());

        let (parts, body) = get(&client, server.url("/one")).await.unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(parts.version, Version::HTTP_11);
        assert_eq!(body, "HTTP/1.1 /one");

        let tls = tls_info(&parts);
        assert_eq!(tls.alpn.as_deref(), Some(HTTP11));
        assert_eq!(tls.version, Some(ProtocolVersion::TLSv1_3));
        assert!(tls.suite.is_some());
        // An IP-literal host sends no SNI; the certificate is checked against the IP.
        assert_eq!(tls.sni, None);
        let certs = tls.peer_certificates.as_ref().expect("peer certificates");
        assert_eq!(certs[0], pki.server_chain[0]);
        // The inner connector's extra is still there: the extras chain.
        let http = parts.extensions.get::<HttpInfo>().expect("HttpInfo too");
        assert_eq!(http.remote_addr(), server.addr);

        let seen = server.handshakes();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].alpn.as_deref(), Some(HTTP11));
        assert_eq!(seen[0].sni, None, "no SNI for an IP address");
    })
    .await
}

#[tokio::test]
async fn http2_over_alpn() {
    bounded("http2 over alpn", async {
        let pki = Pki::new();
        let server = TestServer::start(pki.server_config_with(rustls::DEFAULT_VERSIONS)).await;
        let connector = builder(pki.client_config()).enable_all_versions().build();
        assert_eq!(
            connector.tls_connector().config().alpn_protocols,
            vec![H2.to_vec(), HTTP11.to_vec()]
        );
        let client = https_client(connector);

        let (parts, body) = get(&client, server.url("/two")).await.unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(parts.version, Version::HTTP_2);
        assert_eq!(body, "HTTP/2.0 /two");
        assert_eq!(tls_info(&parts).alpn.as_deref(), Some(H2));
        assert_eq!(server.handshakes()[0].alpn.as_deref(), Some(H2));
    })
    .await
}

#[tokio::test]
async fn http2_over_tls12() {
    let Some(tls12) = versions()
        .into_iter()
        .find(|v| v[0].version == ProtocolVersion::TLSv1_2)
    else {
        return; // built without the tls12 feature
    };
    bounded("http2 over tls 1.2", async {
        let pki = Pki::new();
        let server = TestServer::start(pki.server_config_with(tls12)).await;
        let config = Arc::new(pki.client_config_with(tls12));
        let client = https_client(builder(config).enable_all_versions().build());
        let (parts, body) = get(&client, server.url("/12")).await.unwrap();
        assert_eq!(parts.version, Version::HTTP_2);
        assert_eq!(body, "HTTP/2.0 /12");
        assert_eq!(tls_info(&parts).version, Some(ProtocolVersion::TLSv1_2));
    })
    .await
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    bounded("keep-alive", async {
        let pki = Pki::new();
        for (h2, want) in [(false, Version::HTTP_11), (true, Version::HTTP_2)] {
            let server = TestServer::start(pki.server_config_with(rustls::DEFAULT_VERSIONS)).await;
            let mut b = builder(pki.client_config()).enable_http1();
            if h2 {
                b = b.enable_http2();
            }
            let client = https_client(b.build());
            for i in 0..10 {
                let (parts, body) = get(&client, server.url(&format!("/{i}"))).await.unwrap();
                assert_eq!(parts.version, want);
                assert!(body.ends_with(&format!(" /{i}")), "body {body:?}");
                assert!(parts.extensions.get::<TlsInfo>().is_some(), "request {i}");
            }
            assert_eq!(
                server.accepted(),
                1,
                "{want:?}: one TCP connection for 10 requests"
            );
            assert_eq!(server.handshakes().len(), 1, "{want:?}: one handshake");
        }
    })
    .await
}

#[tokio::test]
async fn sni_from_a_dns_host() {
    bounded("sni", async {
        let pki = Pki::new();
        let server = TestServer::start(pki.server_config_with(rustls::DEFAULT_VERSIONS)).await;
        let client = https_client(builder(pki.client_config()).build());
        let url: Uri = format!("https://localhost:{}/dns", server.addr.port())
            .parse()
            .unwrap();
        let (parts, body) = get(&client, url).await.unwrap();
        assert_eq!(body, "HTTP/1.1 /dns");
        assert_eq!(tls_info(&parts).sni.as_deref(), Some("localhost"));
        assert_eq!(server.handshakes()[0].sni.as_deref(), Some("localhost"));
    })
    .await
}

#[tokio::test]
async fn server_name_overrides() {
    bounded("server name overrides", async {
        let pki = Pki::new();
        let server = TestServer::start(pki.server_config_with(rustls::DEFAULT_VERSIONS)).await;

        // A fixed name: the URI says 127.0.0.1, the handshake says localhost.
        let fixed = https_client(
            builder(pki.client_config())
                .server_name(localhost())
                .build(),
        );
        let (parts, _) = get(&fixed, server.url("/fixed")).await.unwrap();
        assert_eq!(tls_info(&parts).sni.as_deref(), Some("localhost"));

        // A closure (hyper-util's client hands the connector scheme and authority only);
        // its None falls back to the URI's host (no SNI for 127.0.0.1).
        let resolver = builder(pki.client_config())
            .server_name_resolver(|uri: &Uri| {
                (uri.host() == Some("127.0.0.1"))
                    .then(|| ServerName::try_from("localhost").unwrap())
            })
            .build();
        let resolved = https_client(resolver);
        let (parts, _) = get(&resolved, server.url("/named")).await.unwrap();
        assert_eq!(tls_info(&parts).sni.as_deref(), Some("localhost"));

        let seen: Vec<_> = server.handshakes().into_iter().map(|i| i.sni).collect();
        assert_eq!(seen, vec![Some("localhost".to_owned()); 2]);

        // A fresh client (a fresh pool), so the closure sees a new connection.
        let fallback = https_client(
            builder(pki.client_config())
                .server_name_resolver(|_: &Uri| None)
                .build(),
        );
        let (parts, _) = get(&fallback, server.url("/fallback")).await.unwrap();
        assert_eq!(tls_info(&parts).sni, None);
    })
    .await
}

#[tokio::test]
async fn ipv6_literal_host() {
    let ca = TestCa::new();
    let server = match TestServer::start_on("[::1]:0", ca.server_config(&["::1"])).await {
        Ok(server) => server,
        Err(e) => {
            // The bracket and IP handling is also covered by the unit tests in src/hyper/.
            eprintln!("skipping: no IPv6 loopback here ({e})");
            return;
        }
    };
    bounded("ipv6", async {
        let client = https_client(builder(ca.client_config()).build());
        // https://[::1]:port/: the brackets are stripped and the name is an IP address.
        let (parts, body) = get(&client, server.url("/v6")).await.unwrap();
        assert_eq!(body, "HTTP/1.1 /v6");
        assert_eq!(tls_info(&parts).sni, None);
        assert_eq!(server.handshakes()[0].sni, None);
    })
    .await
}

// ---------------------------------------------------------------------------------------
// ALPN and schemes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn user_alpn_http11_never_negotiates_h2() {
    bounded("user alpn", async {
        let pki = Pki::new();
        let server = TestServer::start(pki.server_config_with(rustls::DEFAULT_VERSIONS)).await;
        let mut config = pki.client_config_with(rustls::DEFAULT_VERSIONS);
        config.alpn_protocols = vec![HTTP11.to_vec()];
        // HTTP/2 enabled, but the user's list is respected as given (and nothing panics).
        let connector = builder(Arc::new(config)).enable_all_versions().build();
        assert_eq!(
            connector.tls_connector().config().alpn_protocols,
            vec![HTTP11.to_vec()]
        );
        let client = https_client(connector);
        for _ in 0..2 {
            let (parts, body) = get(&client, server.url("/u")).await.unwrap();
            assert_eq!(parts.version, Version::HTTP_11);
            assert_eq!(body, "HTTP/1.1 /u");
            assert_eq!(tls_info(&parts).alpn.as_deref(), Some(HTTP11));
        }
        assert_eq!(server.handshakes()[0].alpn.as_deref(), Some(HTTP11));

        // A user list of [h2] alone is respected too, and h2 is reported to hyper.
        let mut config = pki.client_config_with(rustls::DEFAULT_VERSIONS);
        config.alpn_protocols = vec![H2.to_vec()];
        let client = https_client(builder(Arc::new(config)).enable_http1().build());
        let (parts, _) = get(&client, server.url("/h2")).await.unwrap();
        assert_eq!(parts.version, Version::HTTP_2);
    })
    .await
}

#[tokio::test]
async fn https_only_rejects_http() {
    bounded("https only", async {
        let pki = Pki::new();
        let (addr, plain) = plain_server().await;
        let url: Uri = format!("http://{addr}/plain").parse().unwrap();

        let strict = https_client(builder(pki.client_config()).https_only().build());
        let err = get(&strict, url.clone()).await.unwrap_err();
        let ce = connect_error(&err);
        assert!(matches!(ce, ConnectError::HttpsRequired), "{ce:?}");
        assert!(ce.to_string().contains("https required"), "{ce}");

        // The default passes http:// through in plain text, with no TlsInfo.
        let lenient = https_client(builder(pki.client_config()).build());
        let (parts, body) = get(&lenient, url).await.unwrap();
        assert_eq!(body, "HTTP/1.1 /plain");
        assert!(parts.extensions.get::<TlsInfo>().is_none());

        let other: Uri = "ftp://127.0.0.1/x".parse().unwrap();
        let err = get(&lenient, other).await.unwrap_err();
        assert!(
            matches!(connect_error(&err), ConnectError::UnsupportedScheme(s) if s == "ftp"),
            "{err:?}"
        );
        plain.abort();
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Against openssl s_server -www
// ---------------------------------------------------------------------------------------

/// Bound on each wait for `openssl`.
const STEP: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_openssl_s_server_www() {
    let pki = Pki::new();
    let scratch = Scratch::new("hyper-www", &pki);
    for v in versions() {
        let (flag, want, name) = match v[0].version {
            ProtocolVersion::TLSv1_3 => ("-tls1_3", ProtocolVersion::TLSv1_3, "TLSv1.3"),
            _ => ("-tls1_2", ProtocolVersion::TLSv1_2, "TLSv1.2"),
        };
        let (mut server, port) = s_server(&scratch, &["-www", flag], STEP).await;
        drop(server.stdin()); // unused in -www mode
        let config = Arc::new(pki.client_config_with(v));
        let client = https_client(builder(config).enable_http1().build());
        let url: Uri = format!("https://127.0.0.1:{port}/").parse().unwrap();
        let fetched = tokio::time::timeout(Duration::from_secs(30), get(&client, url)).await;
        let (parts, page) = match fetched {
            Ok(Ok(got)) => got,
            Ok(Err(e)) => server.fail(&format!("GET from s_server: {e:?}")).await,
            Err(_) => server.fail("GET from s_server: no answer in 30 s").await,
        };
        drop(client);
        server.kill_and_stderr().await;

        assert_eq!(parts.status, 200);
        // s_server -www answers an HTTP/1.1 request with an HTTP/1.0 status page.
        assert_eq!(parts.version, Version::HTTP_10);
        check_www_page(&page, name);
        let tls = tls_info(&parts);
        assert_eq!(tls.version, Some(want));
        assert_eq!(tls.alpn, None, "s_server without -alpn agrees on none");
        assert_eq!(tls.sni, None);
    }
}

// ---------------------------------------------------------------------------------------
// Failures, with typed errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn silent_server_hits_the_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel();
    // Accepts, never writes; reports when the client gives up on the connection.
    let silent = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        // The ClientHello arrives, then EOF once the client has timed out.
        let _ = tcp.read_to_end(&mut sink).await;
        let _ = eof_tx.send(());
        // Hold the listener until the test ends.
        std::future::pending::<()>().await;
    });
    let pki = Pki::new();
    let connector = HttpsConnector::builder(pki.client_config())
        .handshake_timeout(Duration::from_millis(300))
        .build();
    let client = https_client(connector);
    let url: Uri = format!("https://{addr}/").parse().unwrap();

    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), get(&client, url)).await;
    let err = result
        .expect("the handshake timeout, not the test's bound, ends the request")
        .unwrap_err();
    let elapsed = started.elapsed();
    let ce = connect_error(&err);
    assert!(
        matches!(
            ce,
            ConnectError::Handshake(lazytls::Error::HandshakeTimeout)
        ),
        "{ce:?}"
    );
    assert!(ce.is_timeout());
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "not prompt: {elapsed:?}");
    // The transport was closed, not left hanging.
    tokio::time::timeout(Duration::from_secs(10), eof_rx)
        .await
        .expect("the silent server saw the connection close")
        .unwrap();
    silent.abort();
}

/// An inner connector that never connects.
#[derive(Clone)]
struct NeverConnects;

impl tower_service::Service<Uri> for NeverConnects {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<TcpStream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn connect_timeout_is_separate() {
    let pki = Pki::new();
    let connector = HttpsConnector::builder(pki.client_config())
        .connect_timeout(Duration::from_millis(200))
        .wrap_connector(NeverConnects);
    let client = https_client(connector);
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        get(&client, "https://127.0.0.1:9/".parse().unwrap()),
    )
    .await;
    let err = result.expect("bounded by the connect timeout").unwrap_err();
    let ce = connect_error(&err);
    assert!(
        matches!(ce, ConnectError::ConnectTimeout(d) if *d == Duration::from_millis(200)),
        "{ce:?}"
    );
    assert!(ce.is_timeout());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn untrusted_certificate_is_named() {
    bounded("untrusted", async {
        let pki = Pki::new();
        let server = TestServer::start(pki.server_config_with(rustls::DEFAULT_VERSIONS)).await;
        // Another CA (with another name: a CA of the same name would be tried as the
        // issuer and fail with BadSignature instead).
        let stranger = TestCa::new();
        let client = https_client(builder(stranger.client_config()).build());
        let err = get(&client, server.url("/")).await.unwrap_err();
        let ce = connect_error(&err);
        assert_eq!(
            ce.certificate_error(),
            Some(&CertificateError::UnknownIssuer),
            "{ce:?}"
        );
        assert!(
            matches!(
                ce,
                ConnectError::Handshake(lazytls::Error::Tls(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                )))
            ),
            "{ce:?}"
        );
        assert!(!ce.is_timeout());
        assert!(ce.to_string().contains("UnknownIssuer"), "{ce}");
    })
    .await
}

#[tokio::test]
async fn wrong_host_is_named() {
    bounded("wrong host", async {
        // The server's certificate names other.test; the URI says 127.0.0.1.
        let ca = TestCa::new();
        let server = TestServer::start(ca.server_config(&["other.test"])).await;
        let client = https_client(builder(ca.client_config()).build());
        let err = get(&client, server.url("/")).await.unwrap_err();
        let ce = connect_error(&err);
        assert!(
            matches!(
                ce.certificate_error(),
                Some(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{ce:?}"
        );

        // The same server under the right name (an override) is fine.
        let named = client_for_name(&ca, "other.test");
        let (_, body) = get(&named, server.url("/ok")).await.unwrap();
        assert_eq!(body, "HTTP/1.1 /ok");

        // And a DNS name that does not match: the same typed cause.
        let wrong = client_for_name(&ca, "localhost");
        let err = get(&wrong, server.url("/")).await.unwrap_err();
        assert!(
            matches!(
                connect_error(&err).certificate_error(),
                Some(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{err:?}"
        );
    })
    .await
}

fn client_for_name(ca: &TestCa, name: &'static str) -> Client<HttpsConnector, Empty<Bytes>> {
    https_client(
        builder(ca.client_config())
            .server_name(ServerName::try_from(name).unwrap())
            .build(),
    )
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    bounded("refused", async {
        let pki = Pki::new();
        let port = free_port();
        let client = https_client(builder(pki.client_config()).build());
        let url: Uri = format!("https://127.0.0.1:{port}/").parse().unwrap();
        let err = get(&client, url).await.unwrap_err();
        assert!(
            matches!(connect_error(&err), ConnectError::Connect(_)),
            "{err:?}"
        );
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Trust-root helpers: they build without panicking
// ---------------------------------------------------------------------------------------

/// A client config builder on the safe default versions, to take trust roots.
#[cfg(any(
    feature = "webpki-roots",
    feature = "native-roots",
    feature = "platform-verifier"
))]
fn roots_builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
}

/// Builds a connector from environment-dependent roots: a machine without them gets an
/// error (reported as `no {what} here`), not a panic.
#[cfg(any(feature = "native-roots", feature = "platform-verifier"))]
fn connector_if_found<E: std::fmt::Display>(
    roots: Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, E>,
    what: &str,
) {
    match roots {
        Ok(b) => drop(HttpsConnector::new(b.with_no_client_auth())),
        Err(e) => eprintln!("no {what} here: {e}"),
    }
}

#[cfg(feature = "webpki-roots")]
#[test]
fn webpki_roots_config() {
    use lazytls::hyper::ConfigBuilderExt;
    let config = roots_builder().with_webpki_roots().with_no_client_auth();
    let _ = HttpsConnector::new(config);
}

#[cfg(feature = "native-roots")]
#[test]
fn native_roots_config_never_panics() {
    use lazytls::hyper::ConfigBuilderExt;
    // Environment-dependent: a machine without a CA bundle gets an error, not a panic.
    connector_if_found(roots_builder().with_native_roots(), "native roots");
}

#[cfg(feature = "platform-verifier")]
#[test]
fn platform_verifier_config_never_panics() {
    use lazytls::hyper::ConfigBuilderExt;
    connector_if_found(
        roots_builder().with_platform_verifier(),
        "platform verifier",
    );
}

// ---------------------------------------------------------------------------------------
// A CA for certificates with arbitrary names
// ---------------------------------------------------------------------------------------

struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "lazytls hyper test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// A server (on rustls's default versions) with a certificate for `names`.
    fn server_config(&self, names: &[&str]) -> ServerConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
        single_cert_server(rustls::DEFAULT_VERSIONS, vec![cert.der().clone()], key)
    }

    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}
