//! An HTTPS connector for hyper-util's legacy `Client` (the `hyper` feature), and, for
//! servers, [`WithConnectionInfo`], which gives each request its connection's TLS info.
//!
//! [`HttpsConnector`] wraps a TCP connector (by default hyper-util's [`HttpConnector`]) and
//! runs a lazytls handshake over each connection it makes. Unlike the rest of the crate,
//! the handshake here is **eager**: it completes inside the connector's future, because
//! hyper asks the connection for its negotiated ALPN protocol (through
//! [`Connection::connected`]) as soon as that future resolves.
//!
//! What it adds to hyper-rustls's feature set:
//!
//! - a handshake timeout (10 s by default), separate from the TCP connect timeout;
//! - the user's `alpn_protocols` is respected as given; ALPN is filled in only when the
//!   configuration has none, and nothing here panics;
//! - each response carries the connection's [`TlsInfo`] in its extensions (Go's
//!   `Response.TLS`);
//! - typed errors ([`ConnectError`]) that say why a connection failed: an untrusted
//!   certificate, a wrong host, a timeout.
//!
//! ```no_run
//! # async fn run(config: std::sync::Arc<lazytls::rustls::ClientConfig>)
//! #     -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use lazytls::hyper::{ConnectError, HttpsConnector, TlsInfo};
//!
//! let connector = HttpsConnector::builder(config)
//!     .https_only()
//!     .enable_all_versions() // offers ALPN [h2, http/1.1] unless the config sets its own
//!     .handshake_timeout(Duration::from_secs(5))
//!     .build();
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, Empty<::hyper::body::Bytes>>(connector);
//!
//! match client.get("https://example.com/".parse()?).await {
//!     Ok(res) => {
//!         if let Some(tls) = res.extensions().get::<TlsInfo>() {
//!             println!("{:?} {:?} alpn={:?}", tls.version, tls.suite, tls.alpn);
//!         }
//!         let body = res.into_body().collect().await?.to_bytes();
//!         println!("{} bytes", body.len());
//!     }
//!     Err(e) => match ConnectError::find(&e) {
//!         Some(ce) if ce.is_timeout() => eprintln!("timed out: {ce}"),
//!         Some(ce) => eprintln!("could not connect: {ce}"),
//!         None => eprintln!("request failed: {e}"),
//!     },
//! }
//! # Ok(()) }
//! ```
//!
//! Trust roots for the configuration come from your own `RootCertStore`, or from the
//! [`ConfigBuilderExt`] helpers behind the `webpki-roots`, `native-roots` and
//! `platform-verifier` features.

mod builder;
mod connector;
mod error;
mod server;
mod server_name;
mod stream;
mod tls_info;

use std::time::Duration;

#[cfg(doc)]
use hyper_util::client::legacy::connect::{Connection, HttpConnector};

pub use builder::HttpsConnectorBuilder;
pub use connector::{Connecting, HttpsConnector};
pub use error::ConnectError;
pub use server::WithConnectionInfo;
pub use stream::MaybeHttpsStream;
pub use tls_info::TlsInfo;

/// The default bound on a connection's TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

// ---------------------------------------------------------------------------------------
// Trust roots
// ---------------------------------------------------------------------------------------

#[cfg(any(
    feature = "webpki-roots",
    feature = "native-roots",
    feature = "platform-verifier"
))]
pub use crate::roots::ConfigBuilderExt;

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use http::Uri;
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::ServerName;

    use super::server_name::{server_name_from_host, server_name_from_uri};
    use super::*;

    fn name(host: &str) -> ServerName<'static> {
        server_name_from_host(host).unwrap()
    }

    #[test]
    fn server_names_from_hosts() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(name("127.0.0.1"), ServerName::IpAddress(v4.into()));
        assert_eq!(name("[::1]"), ServerName::IpAddress(v6.into()));
        assert_eq!(name("[fe80::1%25eth0]"), {
            let ip: IpAddr = "fe80::1".parse().unwrap();
            ServerName::IpAddress(ip.into())
        });
        assert_eq!(
            name("localhost"),
            ServerName::try_from("localhost").unwrap()
        );
        assert!(matches!(
            server_name_from_host("bad name"),
            Err(ConnectError::InvalidServerName(_))
        ));
        assert!(matches!(
            server_name_from_host("[::1"),
            Err(ConnectError::InvalidServerName(_))
        ));
    }

    #[test]
    fn server_names_from_uris() {
        let v6: IpAddr = "::1".parse().unwrap();
        let uri: Uri = "https://[::1]:8443/x".parse().unwrap();
        assert_eq!(
            server_name_from_uri(&uri).unwrap(),
            ServerName::IpAddress(v6.into())
        );
        let uri: Uri = "/relative".parse().unwrap();
        assert!(matches!(
            server_name_from_uri(&uri),
            Err(ConnectError::MissingHost)
        ));
    }

    #[test]
    fn types_fit_hyper_util() {
        fn send_unpin<T: Send + Unpin + 'static>() {}
        fn send_sync<T: Send + Sync + 'static>() {}
        send_unpin::<Connecting<TokioIo<tokio::net::TcpStream>>>();
        send_unpin::<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>();
        send_sync::<HttpsConnector>();
        send_sync::<TlsInfo>();
        send_sync::<ConnectError>();
    }
}
