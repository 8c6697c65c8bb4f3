//! The hand-off from rustls's handshake to the record layer that carries the connection:
//! a TLS 1.3 KeyUpdate (update_requested) in the peer's last handshake flight, in the
//! same write as its Finished, or in the first records after it, is answered exactly
//! once, before any record of ours under the new key.
//!
//! Fixture: the peer is a rustls `ClientConnection` or `ServerConnection` driven by hand
//! over an in-memory pipe, so the test decides which records share one write. Our end
//! echoes on every record layer (native, rustls's unbuffered connection, and a client on
//! rustls's buffered connection), as a whole stream and as split halves. What our end
//! sends is split into records and counted: a KeyUpdate record is the only 22-byte one
//! (a 1-byte handshake body, the content type and a 16-byte tag).

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use common::*;
use lazytls::rustls::{ClientConnection, Connection, ServerConnection};
use lazytls::{RecordLayer, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const KEY_UPDATE_RECORD: usize = 22;
const PING: &[u8] = b"hello-after-keyupdate";

/// When the peer's KeyUpdate goes out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// In the same write as the peer's last handshake flight.
    SameWrite,
    /// In a write of its own, after our end has had the flight.
    NextWrite,
    /// In the same write as the second part of the Finished record, whose first part our
    /// end has read already.
    CompletingAHalfReadFinished,
}

/// The peer's end: a rustls connection over a pipe, and what it has read of ours.
struct Peer {
    conn: Connection,
    io: DuplexStream,
    /// Our end's bytes not yet given to rustls, split into records as they come.
    records_seen: Vec<usize>,
    pending: Vec<u8>,
}

impl Peer {
    async fn send(&mut self) {
        let out = self.queued();
        self.io.write_all(&out).await.unwrap();
    }

    fn queued(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Reads once from the pipe and lets rustls process it; notes each whole record's
    /// payload length.
    async fn receive(&mut self) {
        let mut buf = vec![0; 64 * 1024];
        let n = self.io.read(&mut buf).await.unwrap();
        assert!(n > 0, "our end closed the pipe");
        self.pending.extend_from_slice(&buf[..n]);
        while self.pending.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([self.pending[3], self.pending[4]]));
            if self.pending.len() < 5 + len {
                break;
            }
            self.records_seen.push(len);
            let record: Vec<u8> = self.pending.drain(..5 + len).collect();
            let mut input = &record[..];
            while !input.is_empty() {
                self.conn.read_tls(&mut input).unwrap();
            }
            if let Err(e) = self.conn.process_new_packets() {
                panic!(
                    "the peer cannot process our record {}: {e}",
                    self.records_seen.len()
                );
            }
        }
    }

    async fn handshake_until_finished_is_queued(&mut self) {
        while self.conn.is_handshaking() {
            self.send().await;
            if self.conn.is_handshaking() {
                self.receive().await;
            }
        }
    }

    /// Reads until the echo of PING arrives; returns it.
    async fn read_echo(&mut self) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < PING.len() {
            self.receive().await;
            let mut buf = [0; 64];
            match self.conn.reader().read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    /// The KeyUpdate and PING, in the same write as what is queued, or after it.
    async fn key_update_and_ping(&mut self, when: When) {
        if when == When::NextWrite {
            self.send().await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let finished = self.queued();
        self.conn.refresh_traffic_keys().unwrap();
        self.conn.writer().write_all(PING).unwrap();
        let rest = self.queued();
        if when == When::CompletingAHalfReadFinished {
            // The last record of `finished` is the Finished: its first half goes alone.
            let last = common::records::records(&finished).last().unwrap().len();
            let cut = finished.len() - last / 2;
            self.io.write_all(&finished[..cut]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.io
                .write_all(&[&finished[cut..], &rest[..]].concat())
                .await
                .unwrap();
        } else {
            self.io.write_all(&[finished, rest].concat()).await.unwrap();
        }
    }

    /// How many KeyUpdates our end sent before the first record that carried the echo.
    fn key_updates_before_echo(&self) -> usize {
        let echo = PING.len() + 1 + 16;
        let first_echo = (self.records_seen.iter())
            .position(|&len| len == echo)
            .expect("the echo arrived");
        let before = &self.records_seen[..first_echo];
        before
            .iter()
            .filter(|&&len| len == KEY_UPDATE_RECORD)
            .count()
    }

    async fn close(mut self) {
        self.conn.send_close_notify();
        self.send().await;
    }

    fn key_updates(&self) -> usize {
        let n = self
            .records_seen
            .iter()
            .filter(|&&len| len == KEY_UPDATE_RECORD);
        n.count()
    }
}

/// Our end echoes what it reads until the peer closes; `split` echoes through the halves.
async fn echo<IO>(mut tls: lazytls::TlsStream<IO>, split: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tls.handshake().await.expect("our handshake");
    if split {
        let (mut r, mut w) = tls.into_split();
        echo_to_end(&mut r, &mut w).await.expect("echo");
    } else {
        let (mut r, mut w) = tokio::io::split(tls);
        echo_to_end(&mut r, &mut w).await.expect("echo");
    }
}

fn check(what: &str, peer: &Peer, echoed: &[u8]) {
    assert_bytes(what, echoed, PING);
    assert_eq!(
        peer.key_updates_before_echo(),
        1,
        "{what}: KeyUpdates before the echo (records {:?})",
        peer.records_seen
    );
    assert_eq!(peer.key_updates(), 1, "{what}: KeyUpdates in all");
}

#[tokio::test]
async fn our_server_answers_a_key_update_at_the_handoff() {
    let pki = Pki::new();
    for layer in [RecordLayer::Native, RecordLayer::Rustls] {
        for split in [false, true] {
            for when in [
                When::SameWrite,
                When::CompletingAHalfReadFinished,
                When::NextWrite,
            ] {
                let what = format!("{layer:?} server, split {split}, KeyUpdate {when:?}");
                let (ours, theirs) = tokio::io::duplex(1 << 20);
                let server = TlsAcceptor::new(Arc::new(pki.server_config_with(TLS13)))
                    .record_layer(layer)
                    .accept(ours);
                let served = tokio::spawn(echo(server, split));
                let client =
                    ClientConnection::new(Arc::new(pki.client_config_with(TLS13)), localhost())
                        .unwrap();
                let mut peer = Peer {
                    conn: client.into(),
                    io: theirs,
                    records_seen: Vec::new(),
                    pending: Vec::new(),
                };
                let echoed = bounded(&what, async {
                    peer.handshake_until_finished_is_queued().await;
                    peer.key_update_and_ping(when).await;
                    peer.read_echo().await
                })
                .await;
                check(&what, &peer, &echoed);
                peer.close().await;
                bounded("server end", served).await.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn our_client_answers_a_key_update_right_after_the_handoff() {
    let pki = Pki::new();
    let mut early = pki.client_config_with(TLS13);
    early.enable_early_data = true;
    let early = Arc::new(early);
    let plain = Arc::new(pki.client_config_with(TLS13));
    for (name, config, layer) in [
        ("native", &plain, RecordLayer::Native),
        ("rustls", &plain, RecordLayer::Rustls),
        ("buffered", &early, RecordLayer::Native),
    ] {
        for split in [false, true] {
            let what = format!("{name} client, split {split}");
            let (ours, theirs) = tokio::io::duplex(1 << 20);
            let client = TlsConnector::new(config.clone())
                .record_layer(layer)
                .connect(localhost(), ours);
            let talked = tokio::spawn(echo(client, split));
            let server = ServerConnection::new(Arc::new(pki.server_config_with(TLS13))).unwrap();
            let mut peer = Peer {
                conn: server.into(),
                io: theirs,
                records_seen: Vec::new(),
                pending: Vec::new(),
            };
            let echoed = bounded(&what, async {
                peer.handshake_until_finished_is_queued().await;
                // The server's tickets, its KeyUpdate and the data in one write.
                peer.key_update_and_ping(When::SameWrite).await;
                peer.read_echo().await
            })
            .await;
            check(&what, &peer, &echoed);
            peer.close().await;
            bounded("client end", talked).await.unwrap();
        }
    }
}
