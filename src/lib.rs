//! TLS for tokio with the semantics of Go's `crypto/tls.Conn`, built on rustls.
//!
//! ```no_run
//! # async fn run(
//! #     client_config: std::sync::Arc<lazytls::rustls::ClientConfig>,
//! #     server_config: std::sync::Arc<lazytls::rustls::ServerConfig>,
//! # ) -> std::io::Result<()> {
//! use std::time::Duration;
//! use lazytls::{TlsAcceptor, TlsConnector};
//! use lazytls::rustls::pki_types::ServerName;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // Server: accept() returns at once; the handshake runs in the connection's own task.
//! let acceptor = TlsAcceptor::new(server_config).handshake_timeout(Duration::from_secs(10));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((tcp, _)) = listener.accept().await {
//!         let mut tls = acceptor.accept(tcp);
//!         tokio::spawn(async move {
//!             let mut buf = [0u8; 5];
//!             tls.read_exact(&mut buf).await?; // the handshake happens here
//!             tls.write_all(&buf).await?;
//!             tls.shutdown().await
//!         });
//!     }
//! });
//!
//! // Client: connect() does no I/O; the first write drives the handshake.
//! let tcp = tokio::net::TcpStream::connect(addr).await?;
//! let mut tls = TlsConnector::new(client_config).connect(ServerName::try_from("localhost").unwrap(), tcp);
//! tls.write_all(b"hello").await?;
//! let info = tls.info().expect("the handshake completed");
//! println!("{:?} {:?}", info.protocol_version, info.cipher_suite);
//! # Ok(()) }
//! ```
//!
//! # FAQ
//!
//! ## When does the handshake happen?
//!
//! [`TlsConnector::connect`] and [`TlsAcceptor::accept`] return a [`TlsStream`] at once and
//! do no I/O. The handshake runs on the first `poll_read` or `poll_write`, from either
//! side, or when you await [`TlsStream::handshake`]. Reads and writes wait for
//! it and then go on as usual. Once it has completed, each `poll_read`/`poll_write` costs
//! one atomic load before it touches records: no lock, no allocation, no future.
//!
//! `handshake()` is idempotent: after completion it is ready at once; after a failure it
//! returns the same error. Call it when you need [`TlsStream::info`] (ALPN, the peer's
//! certificates) before any data moves.
//!
//! ## What happens when something fails?
//!
//! A failure is sticky, as in Go: every later read, write and `handshake()` returns an
//! error of the same kind and message. For TLS errors, one best-effort alert is written to
//! the peer (it never replaces the primary error), and the transport is shut down. At the
//! trait edge errors are `io::Error`s; [`Error::from_io`] recovers the typed [`Error`].
//!
//! ## How do I bound the handshake?
//!
//! - [`TlsConnector::handshake_timeout`] / [`TlsAcceptor::handshake_timeout`]: a deadline
//!   counted from the handshake's first poll. When it passes, the stream fails with
//!   [`Error::HandshakeTimeout`] and the transport is shut down. It applies to lazy
//!   handshakes too, so a server can bound slow clients without extra code.
//! - [`TlsConnector::shutdown_token`] / [`TlsAcceptor::shutdown_token`] (and the same on
//!   [`TlsListener`], where it also ends accepting): a shutdown token. Once it is
//!   cancelled, handshakes in progress fail for good with [`Error::Cancelled`].
//! - [`Handshake::cancel_on`]: a per-call token. It ends that call with
//!   [`Error::Cancelled`] but does not fail the stream; the next call resumes the
//!   handshake from where it stopped.
//!
//! Dropping any read, write or handshake future is always safe: progress lives in the
//! stream.
//!
//! ## Do I need to flush?
//!
//! `poll_write` encrypts into a buffer of at most four records and writes what the
//! transport takes at once; it returns as soon as your bytes are accepted. Call `flush`
//! (or `shutdown`) to be sure everything reached the transport, as with any buffered
//! `AsyncWrite`. The handshake flushes its own flights.
//!
//! ## How does closing work?
//!
//! `shutdown()` sends close_notify if the handshake completed, flushes, then shuts down the
//! transport's write side. Reading keeps working afterwards (TLS 1.3 half-close): you can
//! read the peer's remaining data and its close_notify, which reads as `Ok(0)`.
//!
//! An EOF from the transport without close_notify after the handshake may be a truncation
//! attack, so by default it is an [`Error::Truncated`] (kind `UnexpectedEof`), returned only
//! after all data received before it. [`TlsConnector::allow_truncation`] accepts such an
//! EOF as a clean end when it falls on a record boundary, as Go does. An EOF during the
//! handshake is [`Error::HandshakeEof`].
//!
//! ## Can one task read while another writes?
//!
//! Yes: [`TlsStream::into_split`] gives a [`TlsReadHalf`] and a [`TlsWriteHalf`]. Either
//! may run the handshake (the first to poll drives it; the other waits and is woken when
//! it ends). After the handshake, on the native record layer, the read half owns the
//! receive state and the transport's read half, and the write half owns the send state and
//! the transport's write half (`TcpStream` and `UnixStream` are split into their owned
//! halves, other transports with `tokio::io::split`). A read takes no lock; a write takes
//! an uncontended one only to check the send state out and back in, never across I/O. If
//! reading produces something for the peer (a KeyUpdate answer, an alert), the read half
//! sends it at once, even while the writer is idle. A fatal error of either half is
//! returned by both from then on. Shutting the write half down sends close_notify and the
//! read half reads on. [`TlsReadHalf::unsplit`] gives the stream back. On the rustls
//! record layer the halves take turns on the whole stream, one poll at a time.
//!
//! ## Why can a rejected client certificate show up only on the first read?
//!
//! In TLS 1.3 the client sends its certificate in its last flight and considers the
//! handshake complete right after; the server's verdict arrives later as an alert. So a
//! client's `handshake()` succeeds, and the rejection appears on its first read (or a later
//! write). In TLS 1.2 the server's Finished comes after the check, so the client sees it in
//! the handshake. On the server side, the handshake completes only after the client's
//! certificate was verified, in both versions.
//!
//! ## How are records sealed, and why does the config change?
//!
//! rustls runs the handshake. After it, by default, lazytls takes over the traffic keys
//! through rustls's kernel API (`dangerous_into_kernel_connection`, made for kTLS) and seals
//! and opens records itself, in place in the stream's buffers, with the AEAD of the
//! provider crate it was built with: no allocation per record in either direction. rustls
//! still computes KeyUpdate secrets and stores session tickets. This needs
//! `enable_secret_extraction` in the rustls config, so [`TlsConnector::new`] and
//! [`TlsAcceptor::new`] keep a copy of your config with it set; the flag only allows the
//! keys to be handed over. The copy's `key_log` also wraps yours, for exporters (see
//! below). [`RecordLayer::Rustls`] keeps rustls's own record layer, which is
//! also the fallback for a suite the native layer does not carry. [`ConnectionInfo`] says
//! which layer a connection uses.
//!
//! ## Is my crypto provider used?
//!
//! Yes. The native layer carries a connection's records only when the negotiated suite is
//! the very suite object of the provider lazytls was built with (rustls's aws-lc-rs or
//! ring provider), not merely one with the same ID. A config whose provider brings its own
//! suites (rustls-rustcrypto, an HSM-backed, instrumented or wrapped AEAD) gets rustls's
//! record layer, which calls that provider for every record. With the aws-lc-rs FIPS build
//! (rustls's `fips` feature), a config for which `fips()` is true also gets rustls's record
//! layer: rustls seals with aws-lc's TLS-specific AEAD keys, whose nonce checks belong to
//! the approved use of the module, while the native layer uses its general AEAD keys.
//!
//! ## Can a server pick its certificate per connection?
//!
//! [`TlsAcceptor::with_resolver`] and [`TlsAcceptor::with_async_resolver`] choose the
//! `ServerConfig` from the ClientHello (SNI, ALPN, cipher suites) in the connection's own
//! task, under the same deadline as the rest of the handshake. To bound handshake work
//! on a busy server, [`TlsAcceptor::handshake_permits`] caps the handshakes in flight.
//!
//! ## How does a handler see its connection's client certificate, SNI or ALPN?
//!
//! Through a [`ConnectionInfoHandle`]: [`TlsStream::info_handle`] can be taken before the
//! handshake, as a server's accept loop must (axum builds its `ConnectInfo` at accept),
//! and it holds the [`ConnectionInfo`] once the handshake completes, which is always
//! before the client's first request arrives. Under axum (feature `axum`), extract
//! `ConnectInfo<`[`axum::TlsConnectInfo`]`>`; under hyper (feature `hyper`),
//! [`hyper::WithConnectionInfo`] puts the handle in every request's extensions; under
//! tonic (feature `tonic`), `TlsStream` is tonic's `Connected`, and
//! `lazytls::tonic::TlsConnectInfo::from_request(&request)` gives it. The client's chain is
//! in [`ConnectionInfo::peer_certificates`], as DER; parse it with a kept crate such as
//! x509-parser for the subject. [`ConnectionInfo::export_keying_material`] is there too,
//! for channel bindings.
//!
//! ## Does it work with tonic and tokio-postgres?
//!
//! Yes, behind features. `tonic`: `lazytls::tonic::incoming(listener)` for
//! `Server::serve_with_incoming`, and `lazytls::tonic::connect(&endpoint, config)` for a
//! `Channel` over the hyper connector (HTTP/2 by ALPN). `postgres`:
//! `lazytls::postgres::MakeTlsConnector::new(connector)` for `tokio_postgres::connect`, with
//! `tls-server-end-point` channel binding, so `channel_binding=require` works (RFC 5929's
//! hash of the server's certificate; no exporter is needed for that binding).
//!
//! ## How do I reload the certificate without a restart?
//!
//! [`TlsAcceptor::set_config`] (or [`TlsListener::set_config`]) swaps the config for the
//! connections accepted from then on; established ones keep theirs. The acceptor's clones
//! share it, so keep one before handing a listener to a server. [`ServerCertificateFiles`]
//! builds the config from PEM files and reloads it; a missing file, bad PEM or a key of
//! another certificate is a [`CertificateFilesError`], and the old config stays.
//!
//! ## Can a listener serve a Unix socket, or another transport?
//!
//! [`TlsListener::bind_unix`] serves a Unix domain socket, and
//! [`TlsListener::from_listener`] any [`TransportListener`], a two-method trait that
//! tokio's TCP and Unix listeners implement. The lazy accept, handshake deadline and cap,
//! back-off and shutdown token work the same on all of them, and so does axum's
//! `Listener` impl.
//!
//! ## What happens when a client speaks plain HTTP to the TLS port?
//!
//! The stream fails with [`Error::PlaintextHttp`]. With
//! [`TlsAcceptor::plaintext_http_response`] the client gets a 400 naming https and the
//! connection closes, as in Go. Without it, lazytls leaves the transport as it is, and
//! [`TlsStream::into_plaintext`] gives it back as a [`PlaintextStream`] that replays the
//! bytes already read: answer with a redirect to `https://`, or serve it otherwise. Any
//! other TLS failure (garbage after a ClientHello, say) shuts the transport down.
//!
//! ## Does lazytls send and receive 0-RTT early data?
//!
//! Both, each side opting in through its rustls config. A client whose `ClientConfig` sets
//! `enable_early_data` sends what it writes before the handshake completes as TLS 1.3
//! early data, when a ticket from an earlier connection to the same name allows it: the
//! write returns once the data is queued, without waiting for the server. If the server
//! refuses it, lazytls sends the same bytes again after the handshake, so the application
//! sees one ordered byte stream either way; [`ConnectionInfo::early_data`] says which
//! happened. rustls's unbuffered client cannot tell whether the server accepted, so such
//! a client's handshake runs on rustls's buffered `ClientConnection`, which on TLS 1.3
//! also carries its records (rustls's record layer), as tokio-rustls does. When TLS 1.2 is
//! negotiated there is no early data, and the native record layer takes over as usual.
//!
//! A server receives early data only if its `ServerConfig` sets `max_early_data_size`
//! (rustls's default, 0, refuses it). Early data is replayable (RFC 8446 §8): someone who
//! recorded it can deliver it again on another connection. So it never appears in reads:
//! [`TlsStream::take_early_data`] hands it over after the handshake, for an application
//! that knows the request is safe to repeat.
//!
//! ## Can I export keying material (RFC 5705, RFC 8446 section 7.5)?
//!
//! Yes, on every connection, both versions and every record layer:
//! [`TlsStream::export_keying_material`] (and the same method on both halves and on
//! [`ConnectionInfo`], which a server's handlers reach through a [`ConnectionInfoHandle`])
//! has rustls's shape and gives the values rustls, OpenSSL and Go give for the same
//! session. It is an [`Error::Export`] before the handshake has completed.
//!
//! How, and why this way: rustls 0.23 computes exporters only in its buffered
//! connections. The unbuffered connections lazytls drives, and the kernel connection the
//! native layer keeps, have none, and `ExtractedSecrets` holds traffic secrets only. Running
//! such connections on rustls's buffered API instead would cost them the native record
//! layer and need an opt-in. The one place rustls hands the exporter's secret out is its
//! `KeyLog`: TLS 1.3's exporter master secret (`EXPORTER_SECRET`) and TLS 1.2's master
//! secret (`CLIENT_RANDOM`). So the config copy lazytls keeps wraps your `key_log`:
//!
//! - every line still reaches your key log (`SSLKEYLOGFILE` keeps working);
//! - a secret is kept only for the connection whose own rustls call is running on the
//!   thread (lazytls marks a slot around each of its handshake calls into rustls), never
//!   looked up by the client random, which a client chooses;
//! - the exporter exists only once the handshake has completed (a server logs its secret
//!   before the client's Finished has arrived), and the secret is zeroized on drop;
//! - the output comes from the negotiated suite's own HKDF (TLS 1.3) or PRF (TLS 1.2), so
//!   your crypto provider (FIPS, custom) is the one used;
//! - TLS 1.2 takes the server random from the ServerHello, and refuses to export
//!   ([`ExportError::NoExtendedMasterSecret`]) unless the extended master secret was
//!   negotiated: without it the master secret is not bound to one session (RFC 7627),
//!   which breaks channel binding. rustls offers it by default.
//!
//! A connection that cannot export says so with an [`ExportError`]; it never returns a
//! value it cannot vouch for.
//!
//! ## Which crypto provider is used?
//!
//! The one in your `ClientConfig`/`ServerConfig`. The `aws-lc-rs` (default) and `ring`
//! features enable the matching rustls features; when both are compiled, build configs with
//! `builder_with_provider`.

#![doc(test(attr(deny(warnings), allow(dead_code))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Under `--cfg loom` (the loom models) tokio has no `net`, so the listener and the
// transports that need it are left out, and what only they used is unused.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(all(feature = "axum", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod certificate_files;
mod client;
mod engine;
mod engine_io;
mod error;
#[cfg(feature = "futures-io")]
mod futures_io;
#[cfg(test)]
mod fuzz_tests;
#[cfg(any(test, fuzzing, feature = "fuzz-targets"))]
#[doc(hidden)]
pub mod fuzzing;
// The fuzz targets' logic (`fuzzing::targets` and its siblings) names the crate
// `lazytls`, as the fuzz crate that runs it does.
#[cfg(any(test, feature = "fuzz-targets"))]
extern crate self as lazytls;
mod handshake;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
mod info;
// tokio has no `net` under `--cfg loom` (the loom models build the crate that way).
#[cfg(not(loom))]
mod listener;
mod loom;
mod options;
mod plaintext;
// tokio-postgres needs tokio's `net`, which `--cfg loom` leaves out.
#[cfg(all(feature = "postgres", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(any(
    feature = "webpki-roots",
    feature = "native-roots",
    feature = "platform-verifier"
))]
pub mod roots;
mod server;
mod split;
mod state;
mod stream;
#[cfg(feature = "tokio-rustls")]
mod tokio_rustls;
#[cfg(all(feature = "tonic", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod tonic;
mod trace;

pub use certificate_files::{CertificateFilesError, ServerCertificateFiles};
pub use client::TlsConnector;
pub use error::{Error, ExportError};
pub use handshake::ResolveFuture;
pub use info::{ConnectionInfo, ConnectionInfoHandle, EarlyDataStatus, RecordLayer};
#[cfg(all(feature = "futures-io", not(loom)))]
pub use listener::Incoming;
#[cfg(not(loom))]
pub use listener::{TlsListener, TransportListener};
pub use plaintext::PlaintextStream;
pub use server::TlsAcceptor;
pub use split::{ReuniteError, TlsReadHalf, TlsWriteHalf};
pub use state::HandshakeState;
pub use stream::{Handshake, TlsStream};

pub use rustls;
pub use tokio_util::sync::CancellationToken;

#[cfg(all(test, not(loom)))]
mod assert_traits {
    //! Compile-time checks: the stream is `Unpin + Send` (and `Sync`) whenever `IO` is.
    use super::*;

    fn unpin_send_sync<T: Unpin + Send + Sync>() {}

    #[test]
    fn stream_is_unpin_send_sync() {
        unpin_send_sync::<TlsStream<tokio::net::TcpStream>>();
        unpin_send_sync::<TlsStream<tokio::io::DuplexStream>>();
        unpin_send_sync::<Handshake<'static, tokio::net::TcpStream>>();
        unpin_send_sync::<TlsReadHalf<tokio::net::TcpStream>>();
        unpin_send_sync::<TlsWriteHalf<tokio::net::TcpStream>>();
        unpin_send_sync::<TlsReadHalf<tokio::io::DuplexStream>>();
        unpin_send_sync::<TlsWriteHalf<tokio::io::DuplexStream>>();
        unpin_send_sync::<TlsConnector>();
        unpin_send_sync::<TlsAcceptor>();
        unpin_send_sync::<Error>();
    }
}
