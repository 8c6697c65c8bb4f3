//! The server side: `TlsAcceptor`, with a fixed config or one chosen from the ClientHello.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ClientHello;

use crate::error::Error;
use crate::handshake::{ResolveFuture, Resolver};
use crate::options::{Options, option_methods};
use crate::stream::TlsStream;

#[derive(Clone)]
enum ConfigSource {
    Fixed(Arc<ServerConfig>),
    Resolver(Resolver),
}

/// Makes server [`TlsStream`]s. Cheap to clone; share one per configuration.
#[derive(Clone)]
pub struct TlsAcceptor {
    source: ConfigSource,
    options: Options,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            ConfigSource::Fixed(_) => "fixed",
            ConfigSource::Resolver(Resolver::Sync(_)) => "sync resolver",
            ConfigSource::Resolver(Resolver::Async(_)) => "async resolver",
        };
        f.debug_struct("TlsAcceptor")
            .field("config", &source)
            .field("options", &self.options)
            .finish()
    }
}

impl TlsAcceptor {
    /// An acceptor for this configuration, with no timeout and no token.
    ///
    /// The native record layer needs rustls's secret extraction, so if `config` does not
    /// enable it, the acceptor keeps a copy of it that does (`enable_secret_extraction`
    /// only allows handing the traffic keys to lazytls's record layer; nothing else
    /// changes). [`Self::config`] returns that copy.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        let config = if config.enable_secret_extraction {
            config
        } else {
            let mut copy = ServerConfig::clone(&config);
            copy.enable_secret_extraction = true;
            Arc::new(copy)
        };
        TlsAcceptor {
            source: ConfigSource::Fixed(config),
            options: Options::default(),
        }
    }

    /// An acceptor that picks each connection's config from its ClientHello (SNI, ALPN,
    /// cipher suites, signature schemes), as rustls's `Acceptor` reads it.
    ///
    /// An `Err` sends the client a `handshake_failure` alert and fails the stream with that
    /// error. The handshake deadline covers reading the ClientHello and the resolver.
    /// Return configs with `enable_secret_extraction` set to spare a per-connection copy
    /// (the native record layer needs it).
    pub fn with_resolver<F>(resolve: F) -> Self
    where
        F: Fn(&ClientHello<'_>) -> Result<Arc<ServerConfig>, Error> + Send + Sync + 'static,
    {
        TlsAcceptor {
            source: ConfigSource::Resolver(Resolver::Sync(Arc::new(resolve))),
            options: Options::default(),
        }
    }

    /// Like [`Self::with_resolver`], for a resolver that must wait (a certificate store, a
    /// database). It takes what it needs from the ClientHello and returns a `'static`
    /// future; the stream polls it in the connection's own task.
    pub fn with_async_resolver<F>(resolve: F) -> Self
    where
        F: Fn(&ClientHello<'_>) -> ResolveFuture + Send + Sync + 'static,
    {
        TlsAcceptor {
            source: ConfigSource::Resolver(Resolver::Async(Arc::new(resolve))),
            options: Options::default(),
        }
    }

    option_methods!();

    /// Answers a plaintext HTTP request on the TLS port with `HTTP/1.0 400 Bad Request`
    /// naming https, then closes (as Go's net/http does). The stream fails with
    /// [`Error::PlaintextHttp`] either way; without this option the client gets no answer.
    pub fn plaintext_http_response(mut self, answer: bool) -> Self {
        self.options.plaintext_http_response = answer;
        self
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    pub(crate) fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    /// The rustls configuration, for an acceptor with a fixed one.
    pub fn config(&self) -> Option<&Arc<ServerConfig>> {
        match &self.source {
            ConfigSource::Fixed(config) => Some(config),
            ConfigSource::Resolver(_) => None,
        }
    }

    /// Wraps `io` as the server end of a TLS connection. Does no I/O: the handshake runs
    /// on the first read, write or `handshake()`.
    pub fn accept<IO>(&self, io: IO) -> TlsStream<IO> {
        match &self.source {
            ConfigSource::Fixed(config) => {
                TlsStream::server(io, config.clone(), self.options.clone())
            }
            ConfigSource::Resolver(resolver) => {
                TlsStream::server_resolving(io, resolver.clone(), self.options.clone())
            }
        }
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor::new(config)
    }
}
