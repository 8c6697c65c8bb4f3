//! Connection setup: handshaken lazytls and tokio-rustls pairs over any transport, loopback
//! TCP pairs, and spawned tasks bound to their sample.

use lazytls::RecordLayer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::Lib;
use crate::support::{Configs, localhost};

pub(crate) type LazyPair<IO> = (lazytls::TlsStream<IO>, lazytls::TlsStream<IO>);
pub(crate) type TokioPair<IO> = (
    tokio_rustls::client::TlsStream<IO>,
    tokio_rustls::server::TlsStream<IO>,
);

/// A lazytls connector and acceptor, and the record layer they ask for.
pub(crate) type LazyEnds = (lazytls::TlsConnector, lazytls::TlsAcceptor, RecordLayer);

/// The connector and acceptor of a lazytls contender, made once per sample as a client or
/// a server makes them; `None` for tokio-rustls.
pub(crate) fn lazy_ends(lib: Lib, cfg: &Configs) -> Option<LazyEnds> {
    lib.layer().map(|layer| {
        let connector = lazytls::TlsConnector::new(cfg.client.clone()).record_layer(layer);
        let acceptor = lazytls::TlsAcceptor::new(cfg.server.clone()).record_layer(layer);
        (connector, acceptor, layer)
    })
}

/// A lazytls client and server over `a`/`b` on record layer `layer`, handshaken.
pub(crate) async fn lazy_pair<IO>(
    cfg: &Configs,
    layer: RecordLayer,
    a: IO,
    b: IO,
) -> Result<LazyPair<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let connector = lazytls::TlsConnector::new(cfg.client.clone()).record_layer(layer);
    let acceptor = lazytls::TlsAcceptor::new(cfg.server.clone()).record_layer(layer);
    lazy_pair_with(&connector, &acceptor, layer, a, b).await
}

/// [`lazy_pair`] from a connector and an acceptor made once, as a client or a server makes
/// them (each makes a copy of its config with secret extraction enabled).
pub(crate) async fn lazy_pair_with<IO>(
    connector: &lazytls::TlsConnector,
    acceptor: &lazytls::TlsAcceptor,
    layer: RecordLayer,
    a: IO,
    b: IO,
) -> Result<LazyPair<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut c = connector.connect(localhost(), a);
    let mut s = acceptor.accept(b);
    let (rc, rs) = tokio::join!(c.handshake(), s.handshake());
    rc.map_err(|e| format!("lazytls client handshake: {e}"))?;
    rs.map_err(|e| format!("lazytls server handshake: {e}"))?;
    check_layer(layer, &c);
    check_layer(layer, &s);
    Ok((c, s))
}

/// Warns (once) if a connection does not use the record layer it was asked for (the
/// native layer falls back to rustls for suites it does not carry).
fn check_layer<IO>(want: RecordLayer, stream: &lazytls::TlsStream<IO>) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let got = stream.info().map(|i| i.record_layer);
    if got != Some(want) && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!("compare: WARNING: asked for record layer {want:?}, connection uses {got:?}");
    }
}

/// A tokio-rustls client and server over `a`/`b`, handshaken.
pub(crate) async fn tokio_pair<IO>(cfg: &Configs, a: IO, b: IO) -> Result<TokioPair<IO>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let connector = tokio_rustls::TlsConnector::from(cfg.client.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg.server.clone());
    let (c, s) = tokio::join!(connector.connect(localhost(), a), acceptor.accept(b));
    let c = c.map_err(|e| format!("tokio-rustls client handshake: {e}"))?;
    let s = s.map_err(|e| format!("tokio-rustls server handshake: {e}"))?;
    Ok((c, s))
}

/// A connected loopback TCP pair with Nagle off.
pub(crate) async fn tcp_pair() -> Result<(TcpStream, TcpStream), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    connect_on(&listener).await
}

/// A connection to `listener`, and the end it accepts, with Nagle off.
pub(crate) async fn connect_on(listener: &TcpListener) -> Result<(TcpStream, TcpStream), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (c, s) = tokio::try_join!(TcpStream::connect(addr), async {
        listener.accept().await.map(|(s, _)| s)
    })
    .map_err(|e| format!("loopback connect: {e}"))?;
    c.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok((c, s))
}

/// A spawned task that is aborted if the sample is dropped (by its timeout) first.
pub(crate) struct Task<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Task<T> {
    pub(crate) async fn join(mut self) -> Result<T, String> {
        (&mut self.0).await.map_err(|e| format!("task: {e}"))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
