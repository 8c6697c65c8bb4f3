//! Handshake tracing, behind the `tracing` feature; without it everything here is empty
//! and compiles away.
//!
//! One `debug`-level span per handshake (`tls_handshake`) with the side, and once it ends,
//! SNI, ALPN, version, suite, duration and outcome. A peer's misbehaviour is an ordinary
//! outcome: it is logged at `debug`, never at `error`.

use crate::error::Error;
use crate::info::ConnectionInfo;

/// The span of one handshake.
#[derive(Debug)]
pub(crate) struct HandshakeSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl HandshakeSpan {
    pub(crate) fn start(client: bool) -> Self {
        #[cfg(feature = "tracing")]
        {
            let side = if client { "client" } else { "server" };
            let span = tracing::debug_span!(
                "tls_handshake",
                side,
                sni = tracing::field::Empty,
                alpn = tracing::field::Empty,
                version = tracing::field::Empty,
                suite = tracing::field::Empty,
                duration_us = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            tracing::trace!(parent: &span, "handshake started");
            HandshakeSpan { span }
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = client;
            HandshakeSpan {}
        }
    }

    pub(crate) fn completed(self, info: &ConnectionInfo) {
        #[cfg(feature = "tracing")]
        {
            let span = &self.span;
            if let Some(sni) = &info.sni {
                span.record("sni", sni.as_str());
            }
            if let Some(alpn) = &info.alpn {
                span.record("alpn", String::from_utf8_lossy(alpn).as_ref());
            }
            if let Some(version) = info.protocol_version {
                span.record("version", tracing::field::debug(version));
            }
            if let Some(suite) = info.cipher_suite {
                span.record("suite", tracing::field::debug(suite.suite()));
            }
            span.record("duration_us", info.handshake_duration.as_micros() as u64);
            span.record("outcome", "ok");
            tracing::debug!(parent: span, resumed = info.resumed, "handshake complete");
        }
        #[cfg(not(feature = "tracing"))]
        let _ = info;
    }

    pub(crate) fn failed(self, error: &Error, took: std::time::Duration) {
        #[cfg(feature = "tracing")]
        {
            let span = &self.span;
            span.record("duration_us", took.as_micros() as u64);
            span.record("outcome", tracing::field::display(error));
            tracing::debug!(parent: span, %error, "handshake failed");
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (error, took);
    }
}

/// A TCP accept error the listener skipped or backed off from.
pub(crate) fn accept_error(error: &std::io::Error, backoff: Option<std::time::Duration>) {
    #[cfg(feature = "tracing")]
    match backoff {
        Some(pause) => tracing::debug!(%error, ?pause, "tls listener: accept failed, backing off"),
        None => tracing::trace!(%error, "tls listener: accept failed for one connection, skipped"),
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (error, backoff);
}
