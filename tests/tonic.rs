//! gRPC with tonic, both ends on lazytls, on loopback: tonic's `Server` over
//! `lazytls::tonic::incoming(TlsListener)`, tonic's `Channel` from `lazytls::tonic::connect`,
//! and tonic-health's generated `grpc.health.v1.Health` service (no protoc), implemented
//! here by [`Recorder`], whose handlers record what `TlsConnectInfo` shows them.
//!
//! - mTLS on TLS 1.2 and 1.3: a unary call (`Check`) and a server-streaming call
//!   (`Watch`), the client certificate's subject, ALPN `h2`, the version and both
//!   addresses seen by the handlers;
//! - a client without a certificate (seen as none), and a server name set on the
//!   connector (seen as SNI);
//! - a client certificate of a CA the server does not trust: the call fails with lazytls's
//!   typed error (the server's `unknown_ca` alert), no handler runs, and the server goes on;
//! - the listener's shutdown token ends `serve_with_incoming_shutdown`, which closes the
//!   port; a failing listening socket is not polled again for a second;
//! - a Unix socket (`TlsConnectInfo<UdsConnectInfo>`);
//! - the `grpc_server` example as a process, called by a lazytls client.
//!
//! Every test is bounded in time.
#![cfg(feature = "tonic")]

mod common;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::openssl::{Proc, Scratch};
use common::*;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use lazytls::hyper::ConnectError;
use lazytls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use lazytls::rustls::server::WebPkiClientVerifier;
use lazytls::rustls::{
    self, AlertDescription, ClientConfig, ProtocolVersion, RootCertStore, ServerConfig,
    SupportedProtocolVersion,
};
use lazytls::tonic::TlsConnectInfo;
use lazytls::{CancellationToken, TlsAcceptor, TlsListener, TransportListener};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::task::JoinHandle;
use tonic::transport::server::UdsConnectInfo;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The subject of [`Pki`]'s client certificate.
const CLIENT_SUBJECT: &str = "CN=lazytls test client";

/// What a handler saw of its connection.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// The client certificate's subject.
    subject: Option<String>,
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    version: Option<ProtocolVersion>,
    /// `None` over a Unix socket.
    remote: Option<SocketAddr>,
    local: Option<SocketAddr>,
    unix: bool,
}

/// The health service under test. `Check` answers SERVING when the client presented
/// [`CLIENT_SUBJECT`]'s certificate, NOT_SERVING otherwise. `Watch` streams as many
/// updates as the request's `service` field says, alternating SERVING and NOT_SERVING.
/// Both record what they saw.
#[derive(Debug, Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn record<T>(&self, request: &Request<T>) -> Result<Seen, Status> {
        let tcp = TlsConnectInfo::from_request(request);
        let unix = request.extensions().get::<TlsConnectInfo<UdsConnectInfo>>();
        let (tls, remote, local) = match (tcp, unix) {
            (Some(c), _) => (c.tls(), c.remote_addr(), c.local_addr()),
            (None, Some(c)) => (c.tls(), None, None),
            (None, None) => return Err(Status::internal("no TlsConnectInfo")),
        };
        let tls = tls.ok_or_else(|| Status::internal("no handshake info"))?;
        let peer = TlsConnectInfo::from_request(request).and_then(|c| c.peer_certificates());
        let peer = peer.or_else(|| unix?.peer_certificates());
        assert_eq!(
            peer.map(<[_]>::len),
            tls.peer_certificates.as_ref().map(Vec::len),
            "peer_certificates() is the info's chain"
        );
        let seen = Seen {
            subject: peer.and_then(|chain| chain.first()).map(subject),
            sni: tls.sni.clone(),
            alpn: tls.alpn.clone(),
            version: tls.protocol_version,
            remote,
            local,
            unix: unix.is_some(),
        };
        self.seen.lock().unwrap().push(seen.clone());
        Ok(seen)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn subject(der: &CertificateDer<'_>) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.subject().to_string()
}

/// The `i`-th update of a `Watch` stream.
fn update(i: usize) -> ServingStatus {
    match i % 2 {
        0 => ServingStatus::Serving,
        _ => ServingStatus::NotServing,
    }
}

#[tonic::async_trait]
impl Health for Recorder {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let seen = self.record(&request)?;
        let status = match seen.subject.as_deref() {
            Some(CLIENT_SUBJECT) => ServingStatus::Serving,
            _ => ServingStatus::NotServing,
        };
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
        }))
    }

    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.record(&request)?;
        let count: usize = request
            .get_ref()
            .service
            .parse()
            .map_err(|_| Status::invalid_argument("service: a number of updates"))?;
        let updates = futures_util::stream::iter(0..count).map(|i| {
            Ok(HealthCheckResponse {
                status: update(i) as i32,
            })
        });
        Ok(Response::new(updates.boxed()))
    }
}

/// A tonic server with a [`Recorder`] on a loopback `TlsListener`; stopped on drop.
struct GrpcServer {
    addr: SocketAddr,
    recorder: Recorder,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl GrpcServer {
    /// Served with `serve_with_incoming_shutdown`, the listener's token as the signal.
    async fn start(config: Arc<ServerConfig>) -> GrpcServer {
        Self::start_with(config, true).await
    }

    /// `graceful: false`: `serve_with_incoming`, which ends when the incoming stream does.
    async fn start_with(config: Arc<ServerConfig>, graceful: bool) -> GrpcServer {
        let shutdown = CancellationToken::new();
        let listener = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(with_h2(config)))
            .await
            .unwrap()
            .shutdown_token(shutdown.clone());
        let addr = listener.local_addr().unwrap();
        let recorder = Recorder::default();
        let router = Server::builder().add_service(HealthServer::new(recorder.clone()));
        let incoming = lazytls::tonic::incoming(listener);
        let task = match graceful {
            true => tokio::spawn(
                router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned()),
            ),
            false => tokio::spawn(router.serve_with_incoming(incoming)),
        };
        GrpcServer {
            addr,
            recorder,
            shutdown,
            task,
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!("https://{}", self.addr)).unwrap()
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

/// `config`, offering ALPN `h2`, as a gRPC server should.
fn with_h2(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A server whose client certificates must come from one of `client_roots`, or that
/// also serves clients without one (`optional`).
fn server_trusting(
    pki: &Pki,
    client_roots: RootCertStore,
    optional: bool,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider());
    let verifier = match optional {
        true => verifier.allow_unauthenticated(),
        false => verifier,
    };
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_client_cert_verifier(verifier.build().unwrap())
        .with_single_cert(pki.server_chain.clone(), pki.server_key())
        .unwrap();
    Arc::new(config)
}

/// A CA of another name than [`Pki`]'s, and a client certificate it issued.
struct OtherCa {
    roots: RootCertStore,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

/// The subject of [`OtherCa`]'s client certificate.
const OTHER_SUBJECT: &str = "CN=another client";

impl OtherCa {
    fn new() -> OtherCa {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "another CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(vec!["another.test".to_string()]).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "another client");
        let client = client.signed_by(&key, &ca).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        OtherCa {
            roots,
            client_chain: vec![client.der().clone()],
            client_key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// A client trusting `pki`'s CA, presenting this CA's client certificate.
    fn client_config(
        &self,
        pki: &Pki,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(pki.roots())
            .with_client_auth_cert(self.client_chain.clone(), self.client_key.clone_key())
            .unwrap();
        Arc::new(config)
    }
}

async fn check(channel: Channel) -> Result<ServingStatus, Status> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let reply = HealthClient::new(channel).check(request).await?;
    Ok(reply.into_inner().status())
}

/// `Watch` with `count` updates, read to the end of the stream.
async fn watch(channel: Channel, count: usize) -> Result<Vec<ServingStatus>, Status> {
    let request = HealthCheckRequest {
        service: count.to_string(),
    };
    let mut stream = HealthClient::new(channel)
        .watch(request)
        .await?
        .into_inner();
    let mut updates = Vec::new();
    while let Some(reply) = stream.message().await? {
        updates.push(reply.status());
    }
    Ok(updates)
}

#[tokio::test]
async fn unary_and_streaming_calls_see_the_client_certificate() {
    let pki = Pki::new();
    for v in versions() {
        let name = vname(v);
        let server = GrpcServer::start(pki.mtls_server_config(v)).await;
        let channel = bounded(
            name,
            lazytls::tonic::connect(&server.endpoint(), pki.mtls_client_config(v)),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: connect: {e:?}"));

        let status = bounded(name, check(channel.clone())).await;
        assert_eq!(status.unwrap(), ServingStatus::Serving, "{name}");
        const UPDATES: usize = 200;
        let updates = bounded(name, watch(channel.clone(), UPDATES))
            .await
            .unwrap();
        let want: Vec<_> = (0..UPDATES).map(update).collect();
        assert_eq!(updates, want, "{name}");

        let seen = server.recorder.seen();
        assert_eq!(seen.len(), 2, "{name}: one record per call: {seen:?}");
        // Both calls went over the channel's one connection.
        assert_eq!(seen[0], seen[1], "{name}");
        let seen = &seen[0];
        assert_eq!(seen.subject.as_deref(), Some(CLIENT_SUBJECT), "{name}");
        assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]), "{name}");
        assert_eq!(seen.version, Some(version_of(v)), "{name}");
        // An IP address in the URI sends no SNI.
        assert_eq!(seen.sni, None, "{name}");
        assert_eq!(seen.local, Some(server.addr), "{name}");
        let remote = seen
            .remote
            .unwrap_or_else(|| panic!("{name}: no peer address"));
        assert!(remote.ip().is_loopback(), "{name}: {remote}");
        assert_ne!(remote.port(), server.addr.port(), "{name}: {remote}");
        assert!(!seen.unix, "{name}");
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_seen_without_one() {
    let pki = Pki::new();
    let config = server_trusting(&pki, pki.roots(), true, rustls::DEFAULT_VERSIONS);
    let server = GrpcServer::start(config).await;
    // The builder route, with the server name set on the connector (the URI has an IP).
    let connector = lazytls::tonic::connector(pki.client_config())
        .server_name(localhost())
        .handshake_timeout(Duration::from_secs(10))
        .build();
    let channel = bounded(
        "connect",
        server.endpoint().connect_with_connector(connector),
    )
    .await
    .unwrap();
    let status = bounded("check", check(channel)).await.unwrap();
    assert_eq!(status, ServingStatus::NotServing);

    let seen = server.recorder.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].subject, None);
    assert_eq!(seen[0].sni.as_deref(), Some("localhost"));
    assert_eq!(seen[0].alpn.as_deref(), Some(&b"h2"[..]));
}

/// lazytls's typed error inside `err`, or a failure naming the chain.
fn tls_error_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> &'a lazytls::Error {
    lazytls::tonic::tls_error(err)
        .unwrap_or_else(|| panic!("no lazytls::Error in the chain of {err:?}"))
}

/// The first `io::Error` in `err`'s source chain.
fn io_error_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> &'a io::Error {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return io;
        }
        next = e.source();
    }
    panic!("no io::Error in the chain of {err:?}")
}

#[tokio::test]
async fn a_client_certificate_of_an_untrusted_ca_fails_the_call_with_a_typed_error() {
    let pki = Pki::new();
    let other = OtherCa::new();
    for v in versions() {
        let name = vname(v);
        // The server trusts client certificates of the other CA only.
        let config = server_trusting(&pki, other.roots.clone(), false, v);
        let server = GrpcServer::start(config).await;
        let refused = pki.mtls_client_config(v);
        let channel = lazytls::tonic::connect_lazy(&server.endpoint(), refused.clone());
        let status = bounded(name, check(channel)).await.unwrap_err();
        if version_of(v) == ProtocolVersion::TLSv1_2 {
            // The server's verdict comes before its Finished: the client's handshake, in
            // the connector, fails, and the status carries lazytls's error.
            assert_unknown_ca(name, tls_error_in(&status));
            // An eager connect fails the same way.
            let endpoint = server.endpoint();
            let connected = lazytls::tonic::connect(&endpoint, refused);
            let e = bounded(name, connected).await.unwrap_err();
            assert!(ConnectError::find(&e).is_some(), "{name}: {e:?}");
            assert_unknown_ca(name, tls_error_in(&e));
        } else {
            // The client's handshake completes before the server's verdict, which
            // arrives on the HTTP/2 connection. h2 keeps only the kind and the message of
            // an io::Error, so the status has lazytls's mapping of the error, not the
            // error itself.
            let io = io_error_in(&status);
            assert_eq!(io.kind(), io::ErrorKind::InvalidData, "{name}: {status:?}");
            let unknown_ca = rustls::Error::AlertReceived(AlertDescription::UnknownCA);
            let want = lazytls::Error::Tls(unknown_ca).to_string();
            assert_eq!(io.to_string(), want, "{name}: {status:?}");
        }
        assert!(server.recorder.seen().is_empty(), "{name}: a handler ran");

        // The server goes on: a certificate from the CA it trusts is served.
        let trusted = other.client_config(&pki, v);
        let channel = bounded(name, lazytls::tonic::connect(&server.endpoint(), trusted))
            .await
            .unwrap();
        let status = bounded(name, check(channel)).await.unwrap();
        assert_eq!(status, ServingStatus::NotServing, "{name}");
        let seen = server.recorder.seen();
        assert_eq!(seen.len(), 1, "{name}: {seen:?}");
        assert_eq!(seen[0].subject.as_deref(), Some(OTHER_SUBJECT), "{name}");
    }
}

/// The server's `unknown_ca` alert, as the client received it.
fn assert_unknown_ca(name: &str, e: &lazytls::Error) {
    assert!(
        matches!(
            e,
            lazytls::Error::Tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA))
        ),
        "{name}: not the server's unknown_ca alert: {e:?}"
    );
}

#[tokio::test]
async fn the_listeners_shutdown_token_ends_serving_and_closes_the_port() {
    let pki = Pki::new();
    let config = pki.mtls_server_config(rustls::DEFAULT_VERSIONS);
    for graceful in [true, false] {
        let mut server = GrpcServer::start_with(config.clone(), graceful).await;
        let client = pki.mtls_client_config(rustls::DEFAULT_VERSIONS);
        let channel = bounded(
            "connect",
            lazytls::tonic::connect(&server.endpoint(), client),
        )
        .await
        .unwrap();
        let status = bounded("check", check(channel.clone())).await.unwrap();
        assert_eq!(status, ServingStatus::Serving);

        // Graceful: tonic takes the token's signal, drains the idle connection and
        // returns. Otherwise the incoming stream ends, and so does serving.
        server.shutdown.cancel();
        let served = bounded("the server's end", &mut server.task).await;
        served.unwrap().unwrap();
        // The listener was dropped with the stream.
        let refused = tokio::net::TcpStream::connect(server.addr).await;
        let refused = refused.map(|_| ()).unwrap_err();
        assert_eq!(
            refused.kind(),
            io::ErrorKind::ConnectionRefused,
            "{graceful}"
        );
        if graceful {
            let status = bounded("check after the end", check(channel)).await;
            assert!(status.is_err(), "the connection was not closed: {status:?}");
        }
    }
}

/// A listening socket that fails once (an error of the socket itself, not of one
/// connection), then accepts nothing; it counts its polls.
struct FailingOnce(Arc<AtomicUsize>);

impl TransportListener for FailingOnce {
    type Io = tokio::io::DuplexStream;
    type Addr = ();

    fn poll_accept(&self, _cx: &mut Context<'_>) -> Poll<io::Result<(Self::Io, ())>> {
        match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => Poll::Ready(Err(io::Error::other("the listening socket broke"))),
            // Nothing wakes this poll; the test polls by hand.
            _ => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_listener_error_the_next_accept_waits_a_second() {
    let polls = Arc::new(AtomicUsize::new(0));
    let acceptor = TlsAcceptor::new(Pki::new().server_config());
    let listener = TlsListener::from_listener(FailingOnce(polls.clone()), acceptor);
    let mut incoming = lazytls::tonic::incoming(listener);

    let first = incoming.next().await.expect("an item, not the end");
    let e = first.map(|_| ()).unwrap_err();
    assert_eq!(e.to_string(), "the listening socket broke");
    assert_eq!(polls.load(Ordering::SeqCst), 1);

    // tonic polls again at once; the listener is not polled until a second has passed.
    let mut next = tokio_test::task::spawn(incoming.next());
    assert!(next.poll().is_pending());
    assert_eq!(polls.load(Ordering::SeqCst), 1, "polled again at once");
    tokio::time::advance(Duration::from_millis(990)).await;
    assert!(next.poll().is_pending());
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "polled again within the second"
    );
    tokio::time::advance(Duration::from_millis(20)).await;
    assert!(next.poll().is_pending());
    assert_eq!(
        polls.load(Ordering::SeqCst),
        2,
        "not polled again after the second"
    );
}

/// Connects to a Unix socket: the inner connector for lazytls's hyper connector.
#[cfg(unix)]
#[derive(Clone)]
struct UnixConnector(PathBuf);

#[cfg(unix)]
impl tower_service::Service<http::Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move {
            let unix = tokio::net::UnixStream::connect(path).await?;
            Ok(hyper_util::rt::TokioIo::new(unix))
        })
    }
}

#[cfg(unix)]
#[tokio::test]
async fn over_a_unix_socket_handlers_get_uds_connect_info() {
    let pki = Pki::new();
    let dir = std::env::temp_dir().join(format!("lazytls-tonic-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("grpc.sock");

    let config = with_h2(pki.mtls_server_config(rustls::DEFAULT_VERSIONS));
    let shutdown = CancellationToken::new();
    let listener = TlsListener::bind_unix(&path, TlsAcceptor::new(config))
        .unwrap()
        .shutdown_token(shutdown.clone());
    let recorder = Recorder::default();
    let server = tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(recorder.clone()))
            .serve_with_incoming_shutdown(
                lazytls::tonic::incoming(listener),
                shutdown.clone().cancelled_owned(),
            ),
    );

    let connector = lazytls::tonic::connector(pki.mtls_client_config(rustls::DEFAULT_VERSIONS))
        .server_name(localhost())
        .wrap_connector(UnixConnector(path));
    // The URI gives the requests' authority; the connector ignores it.
    let endpoint = Endpoint::from_static("https://localhost");
    let channel = bounded("connect", endpoint.connect_with_connector(connector))
        .await
        .unwrap();
    let status = bounded("check", check(channel.clone())).await.unwrap();
    assert_eq!(status, ServingStatus::Serving);
    let updates = bounded("watch", watch(channel, 3)).await.unwrap();
    assert_eq!(updates, [0, 1, 2].map(update));

    let seen = recorder.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].unix, "{seen:?}");
    assert_eq!(seen[0].subject.as_deref(), Some(CLIENT_SUBJECT));
    assert_eq!(seen[0].sni.as_deref(), Some("localhost"));
    assert_eq!((seen[0].remote, seen[0].local), (None, None));

    shutdown.cancel();
    bounded("the server's end", server).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An example binary, next to this test binary's directory (`target/debug/examples`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples (cargo build --examples --features tonic)",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_grpc_server_example_serves_a_lazytls_client() {
    let pki = Pki::new();
    let scratch = Scratch::new("tonic-example", &pki);
    let (cert, key, ca) = (
        scratch.file("server.pem"),
        scratch.file("server.key"),
        scratch.file("ca.pem"),
    );
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--cert",
        &cert,
        "--key",
        &key,
        "--client-ca",
        &ca,
    ];
    let program = example("grpc_server");
    let mut server = Proc::spawn(program.to_str().unwrap(), &args, Duration::from_secs(30));
    // The line after it: the "listening on" line is whole by then.
    server.wait_for_stderr_lines("try: ", 1).await;
    let stderr = server.stderr_so_far();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("listening on "))
        .unwrap();
    let addr = line.rsplit(' ').next().unwrap().trim();
    let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let endpoint = Endpoint::from_shared(format!("https://{addr}")).unwrap();

    // With a client certificate: named in the example's log.
    let config = pki.mtls_client_config(rustls::DEFAULT_VERSIONS);
    let channel = bounded("connect", lazytls::tonic::connect(&endpoint, config))
        .await
        .unwrap();
    let status = bounded("check", check(channel.clone())).await.unwrap();
    assert_eq!(status, ServingStatus::Serving);
    // Waiting for the subject and the `;` after it: the line is whole up to there.
    let logged = format!("client certificate: {CLIENT_SUBJECT};");
    let logged = server.wait_for_stderr_lines(&logged, 1).await;
    assert!(logged.contains(" alpn=h2 "), "{logged}");
    // tonic-health's `Watch` streams the current status first, then each change.
    let request = HealthCheckRequest::default();
    let mut updates = HealthClient::new(channel)
        .watch(request)
        .await
        .unwrap()
        .into_inner();
    let first = bounded("watch", updates.message()).await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    // Without one: served, and logged as none.
    let channel = bounded(
        "connect",
        lazytls::tonic::connect(&endpoint, pki.client_config()),
    )
    .await
    .unwrap();
    let status = bounded("check", check(channel)).await.unwrap();
    assert_eq!(status, ServingStatus::Serving);
    server
        .wait_for_stderr_lines("client certificate: none;", 1)
        .await;
}
