//! lazytls: TLS for tokio with Go's `crypto/tls.Conn` semantics, on rustls.
//!
//! FAQ placeholder.

mod client;
mod engine;
mod error;
mod handshake;
mod info;
mod options;
mod server;
mod state;
mod stream;

pub use client::TlsConnector;
pub use error::Error;
pub use handshake::Handshake;
pub use info::{ConnectionInfo, RecordLayer};
pub use server::TlsAcceptor;
pub use state::HandshakeState;
pub use stream::TlsStream;

pub use rustls;
pub use tokio_util::sync::CancellationToken;
