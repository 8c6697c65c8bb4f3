//! Smoke test: a full exchange both ways on both protocol versions.
mod common;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn client_writes_first() {
    let pki = Pki::new();
    for v in versions() {
        let (mut c, mut s) = duplex_pair(
            Arc::new(pki.client_config_with(v)),
            Arc::new(pki.server_config_with(v)),
        );
        let data = pattern(200_000, 1);
        let d2 = data.clone();
        let srv = tokio::spawn(async move {
            let mut got = vec![0; d2.len()];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(got, d2);
            s.write_all(b"pong").await.unwrap();
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            s
        });
        bounded("client", async {
            c.write_all(&data).await.unwrap();
            c.flush().await.unwrap();
            let mut buf = Vec::new();
            c.read_to_end(&mut buf).await.unwrap();
            assert_eq!(buf, b"pong");
            c.shutdown().await.unwrap();
        })
        .await;
        let s = srv.await.unwrap();
        println!("{:?} {:?}", c.info(), s.info());
    }
}
use std::sync::Arc;
