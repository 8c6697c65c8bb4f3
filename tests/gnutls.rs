//! GnuTLS as the peer (Debian's `gnutls-bin`; `.ci/test` installs it): `gnutls-cli -e`
//! sends a TLS 1.3 KeyUpdate (update_requested) in the same flight as its Finished, then
//! the line it reads from stdin. Our server must answer the KeyUpdate before it echoes,
//! or GnuTLS cannot decrypt the echo ("Decryption has failed"); on every record layer,
//! as a whole stream and through split halves. Also a plain exchange with `gnutls-serv`.
//!
//! Fixture: lazytls servers and clients on loopback TCP, GnuTLS as a child process
//! (`common::openssl::Proc`, which kills it on every path) with the PEM files of a fresh
//! `Pki`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::openssl::{Proc, Scratch, free_port};
use common::*;
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const STEP: Duration = Duration::from_secs(10);
const LINE: &str = "hello-after-keyupdate\n";

/// Echoes one connection until its peer closes, through the halves if `split`.
async fn echo_one(listener: TcpListener, acceptor: TlsAcceptor, split: bool) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = acceptor.accept(tcp);
    tls.handshake()
        .await
        .expect("our handshake with gnutls-cli");
    // gnutls-cli may end without close_notify: how the echo ends is not the test's.
    if split {
        let (mut r, mut w) = tls.into_split();
        let _ = echo_to_end(&mut r, &mut w).await;
    } else {
        let (mut r, mut w) = tokio::io::split(tls);
        let _ = echo_to_end(&mut r, &mut w).await;
    }
}

#[tokio::test]
async fn gnutls_key_update_with_its_finished_is_answered() {
    let pki = Pki::new();
    let scratch = Scratch::new("gnutls-keyupdate", &pki);
    for layer in [RecordLayer::Native, RecordLayer::Rustls] {
        for split in [false, true] {
            let what = format!("{layer:?} server, split {split}");
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port().to_string();
            let acceptor =
                TlsAcceptor::new(Arc::new(pki.server_config_with(TLS13))).record_layer(layer);
            let server = tokio::spawn(echo_one(listener, acceptor, split));
            let ca = scratch.file("ca.pem");
            let args = ["-e", "--x509cafile", &ca, "-p", &port, "localhost"];
            let mut cli = Proc::spawn("gnutls-cli", &args, STEP);
            let mut stdin = cli.stdin();
            cli.wait_for_stdout("ReHandshake was completed").await;
            stdin.write_all(LINE.as_bytes()).await.unwrap();
            stdin.flush().await.unwrap();
            cli.wait_for_stdout(LINE).await;
            drop(stdin);
            cli.wait().await;
            let out = String::from_utf8_lossy(&cli.stdout().await).into_owned();
            assert!(!out.contains("Decryption has failed"), "{what}: {out}");
            within(10, "our server", server).await.unwrap();
        }
    }
}

/// Our client against `gnutls-serv --echo`, TLS 1.3 and TLS 1.2: a line there and back,
/// then a clean close.
#[tokio::test]
async fn our_client_talks_to_gnutls_serv() {
    let pki = Pki::new();
    let scratch = Scratch::new("gnutls-serv", &pki);
    for versions in versions() {
        let port = free_port().to_string();
        let (cert, key) = (scratch.file("server.pem"), scratch.file("server.key"));
        let args = [
            "--echo",
            "--x509certfile",
            &cert,
            "--x509keyfile",
            &key,
            "-p",
            &port,
        ];
        let mut serv = Proc::spawn("gnutls-serv", &args, STEP);
        // It prints this (on stderr) once it has bound the port.
        let bound = format!("IPv4 0.0.0.0 port {port}...done");
        serv.wait_for_stderr_lines(&bound, 1).await;
        let tcp = TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let config = Arc::new(pki.client_config_with(versions));
        let mut tls = TlsConnector::new(config).connect(localhost(), tcp);
        serv.handshake(&mut tls, "gnutls-serv").await;
        let mut got = vec![0; LINE.len()];
        within(10, "echo from gnutls-serv", async {
            tls.write_all(LINE.as_bytes()).await.unwrap();
            tls.flush().await.unwrap();
            tls.read_exact(&mut got).await.unwrap();
        })
        .await;
        assert_bytes(vname(versions), &got, LINE.as_bytes());
        within(10, "close", tls.shutdown()).await.unwrap();
    }
}
