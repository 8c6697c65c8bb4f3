//! Slowloris, certificate-by-SNI and handshake-cap tests against `TlsListener` on
//! loopback.
//!
//! - 200 stalled connections (idle, half a ClientHello, silent after a whole ClientHello)
//!   do not delay a good client, and all of them are closed within the 2 s deadline + 1 s.
//! - SNI picks the right certificate out of two configs, with the sync and the async
//!   resolver.
//! - With `handshake_permits` of n, no more than n handshakes run at once, and accept goes on.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use lazytls::rustls::pki_types::ServerName;
use lazytls::rustls::{self, ServerConfig};
use lazytls::{ResolveFuture, TlsAcceptor, TlsConnector, TlsListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const DEADLINE: Duration = Duration::from_secs(2);

/// Echo server: each accepted stream in its own task, reading up to 64 bytes and echoing.
fn serve(listener: TlsListener) {
    tokio::spawn(async move {
        loop {
            let Ok((mut tls, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if let Ok(n) = tls.read(&mut buf).await {
                    let _ = tls.write_all(&buf[..n]).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
}

/// A real ClientHello, as our client sends it.
async fn client_hello(pki: &Pki) -> Vec<u8> {
    let (a, mut b) = tokio::io::duplex(64 * 1024);
    let mut client = TlsConnector::new(pki.client_config()).connect(localhost(), a);
    let _ = tokio::time::timeout(Duration::from_millis(200), client.handshake()).await;
    let mut hello = vec![0u8; 16 * 1024];
    let n = b.read(&mut hello).await.unwrap();
    hello.truncate(n);
    hello
}

/// Waits until the server closes `tcp` (EOF or reset); returns when it did.
async fn closed_at(mut tcp: TcpStream) -> Instant {
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return Instant::now(),
            Ok(_) => continue, // the server's answer to a whole ClientHello, if any
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_does_not_delay_a_good_client() {
    let pki = Pki::new();
    let listener = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(pki.server_config()))
        .await
        .unwrap()
        .handshake_timeout(DEADLINE);
    let addr = listener.local_addr().unwrap();
    serve(listener);
    let hello = client_hello(&pki).await;

    let start = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        match i % 3 {
            0 => {}                                                       // idle
            1 => tcp.write_all(&hello[..hello.len() / 2]).await.unwrap(), // half a ClientHello
            _ => tcp.write_all(&hello).await.unwrap(),                    // silent after it
        }
        stalled.push(tokio::spawn(closed_at(tcp)));
    }

    // A good client, after all 200 stalled ones, is served well inside the deadline.
    let good = Instant::now();
    bounded("good client", async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = TlsConnector::new(pki.client_config()).connect(localhost(), tcp);
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    })
    .await;
    let took = good.elapsed();
    assert!(
        took < DEADLINE / 2,
        "the good client took {took:?} behind 200 stalled ones"
    );

    for s in stalled {
        let closed = bounded("stalled", s).await.unwrap();
        let after = closed.duration_since(start);
        assert!(
            after <= DEADLINE + Duration::from_secs(1) + Duration::from_millis(500),
            "closed after {after:?}"
        );
    }
}

/// Two configs with certificates for different names, and clients that trust both.
struct TwoSites {
    a: Arc<ServerConfig>,
    b: Arc<ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    a_cert: Vec<u8>,
    b_cert: Vec<u8>,
}

fn two_sites() -> TwoSites {
    use rcgen::{CertificateParams, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let make = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        (Arc::new(config), der)
    };
    let (a, a_der) = make("a.test");
    let (b, b_der) = make("b.test");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(a_der.clone()).unwrap();
    roots.add(b_der.clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TwoSites {
        a,
        b,
        client: Arc::new(client),
        a_cert: a_der.to_vec(),
        b_cert: b_der.to_vec(),
    }
}

async fn peer_cert_for(
    listener: TlsListener,
    client: Arc<rustls::ClientConfig>,
    name: &'static str,
) -> Vec<u8> {
    let addr = listener.local_addr().unwrap();
    serve(listener);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::new(client).connect(ServerName::try_from(name).unwrap(), tcp);
    bounded("handshake", tls.handshake()).await.unwrap();
    tls.info().unwrap().peer_certificates.as_ref().unwrap()[0].to_vec()
}

#[tokio::test]
async fn sni_picks_the_certificate_sync_and_async() {
    let sites = Arc::new(two_sites());
    let pick = |sites: &TwoSites, name: Option<&str>| match name {
        Some("a.test") => Ok(sites.a.clone()),
        Some("b.test") => Ok(sites.b.clone()),
        other => Err(lazytls::Error::NoServerConfig(format!(
            "unknown name {other:?}"
        ))),
    };
    for name in ["a.test", "b.test"] {
        let want = if name == "a.test" {
            &sites.a_cert
        } else {
            &sites.b_cert
        };

        let s = sites.clone();
        let sync = TlsAcceptor::with_resolver(move |hello| pick(&s, hello.server_name()));
        let l = TlsListener::bind("127.0.0.1:0", sync).await.unwrap();
        assert_eq!(
            &peer_cert_for(l, sites.client.clone(), name).await,
            want,
            "sync {name}"
        );

        let s = sites.clone();
        let async_ = TlsAcceptor::with_async_resolver(move |hello| {
            let name = hello.server_name().map(str::to_owned);
            let s = s.clone();
            Box::pin(async move {
                tokio::task::yield_now().await;
                pick(&s, name.as_deref())
            }) as ResolveFuture
        });
        let l = TlsListener::bind("127.0.0.1:0", async_).await.unwrap();
        assert_eq!(
            &peer_cert_for(l, sites.client.clone(), name).await,
            want,
            "async {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_cap_holds_and_accept_goes_on() {
    const CAP: usize = 3;
    const CLIENTS: usize = 24;
    let pki = Pki::new();
    let permits = Arc::new(Semaphore::new(CAP));
    let listener = TlsListener::bind("127.0.0.1:0", TlsAcceptor::new(pki.server_config()))
        .await
        .unwrap()
        .handshake_timeout(Duration::from_secs(20))
        .handshake_permits(permits.clone());
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    {
        let (accepted, most) = (accepted.clone(), most_in_flight.clone());
        tokio::spawn(async move {
            while let Ok((mut tls, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (permits, most) = (permits.clone(), most.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    let read = tls.read_exact(&mut buf);
                    tokio::pin!(read);
                    // Sample the permits in use while this handshake runs.
                    loop {
                        tokio::select! {
                            r = &mut read => { if r.is_ok() { let _ = tls.write_all(&buf).await; } break; }
                            () = tokio::time::sleep(Duration::from_millis(1)) => {
                                most.fetch_max(CAP - permits.available_permits(), Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        });
    }
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let config = pki.client_config();
            tokio::spawn(async move {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let mut tls = TlsConnector::new(config).connect(localhost(), tcp);
                tls.write_all(b"ping").await.unwrap();
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).await.unwrap();
            })
        })
        .collect();
    for c in clients {
        bounded("client", c).await.unwrap();
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        CLIENTS,
        "accept went on past the cap"
    );
    let most = most_in_flight.load(Ordering::SeqCst);
    assert!(
        most <= CAP,
        "{most} handshakes in flight with a cap of {CAP}"
    );
}
