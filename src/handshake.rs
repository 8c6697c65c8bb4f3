//! What only the handshake needs, in one value that is dropped when it ends: its fatal
//! bounds (the connector's or acceptor's token, the deadline, a permit), a server's
//! resolver and its pending answer, the tracing span and the start time. And the
//! handshake's I/O loop over an [`EngineIo`], which asks the resolver when the engine
//! needs a config. Nothing here exists after the handshake.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;
use rustls::ServerConfig;
use rustls::server::ClientHello;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, PollSemaphore, WaitForCancellationFutureOwned};

use crate::engine::HandshakeStatus;
use crate::engine_io::EngineIo;
use crate::error::Error;
use crate::info::ConnectionInfo;
use crate::options::Options;
use crate::trace::HandshakeSpan;

/// What an async resolver returns: the config for one ClientHello, or why there is none.
pub type ResolveFuture = Pin<Box<dyn Future<Output = Result<Arc<ServerConfig>, Error>> + Send>>;

pub(crate) type SyncResolver =
    dyn Fn(&ClientHello<'_>) -> Result<Arc<ServerConfig>, Error> + Send + Sync;
pub(crate) type AsyncResolver = dyn Fn(&ClientHello<'_>) -> ResolveFuture + Send + Sync;

/// How a server stream gets its config from the ClientHello.
#[derive(Clone)]
pub(crate) enum Resolver {
    Sync(Arc<SyncResolver>),
    Async(Arc<AsyncResolver>),
}

/// What one handshake needs, from its first poll to its end.
#[derive(Default)]
pub(crate) struct HandshakeContext {
    /// Fatal bounds (token, deadline, permit); `None` when nothing bounds the handshake.
    bounds: Option<Pin<Box<Driver>>>,
    /// Server: picks the config from the ClientHello; `resolving` is its pending answer.
    resolver: Option<Resolver>,
    /// In a `Mutex` only so the stream stays `Sync` with a future that is merely `Send`;
    /// it is reached through `get_mut`, never locked.
    resolving: Option<std::sync::Mutex<ResolveFuture>>,
    /// The handshake's tracing span (empty without the `tracing` feature).
    span: Option<HandshakeSpan>,
    started: Option<Instant>,
}

impl HandshakeContext {
    /// A context for a server stream that asks `resolver` for its config.
    pub(crate) fn resolving_with(resolver: Resolver) -> Self {
        HandshakeContext {
            resolver: Some(resolver),
            ..Default::default()
        }
    }

    /// The handshake's first poll: the clock, the bounds and the span start.
    pub(crate) fn begin(&mut self, options: &Options, client: bool) {
        self.started = Some(Instant::now());
        self.bounds = Driver::new(options);
        self.span = Some(HandshakeSpan::start(client));
    }

    fn took(&self) -> std::time::Duration {
        self.started.map_or_else(Default::default, |t| t.elapsed())
    }

    /// The handshake completed: its duration goes into `info`, and the span closes.
    pub(crate) fn completed(self, info: &mut ConnectionInfo) {
        info.handshake_duration = self.took();
        if let Some(span) = self.span {
            span.completed(info);
        }
    }

    /// The handshake failed with `e`: the span closes.
    pub(crate) fn failed(self, e: &Error) {
        let took = self.took();
        if let Some(span) = self.span {
            span.failed(e, took);
        }
    }

    /// Drives the handshake within its bounds; `Ready(Ok(()))` once it is complete. A
    /// `Pending` left the caller's waker with the transport, the deadline, the permits or
    /// the resolver, and says so to `core` ([`EngineIo::take_waker_held`]).
    pub(crate) fn poll_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        core: &mut EngineIo<IO>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let poll = self.poll_bounded(core, cx);
        if poll.is_pending() {
            core.note_waker_held();
        }
        poll
    }

    fn poll_bounded<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        core: &mut EngineIo<IO>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if let Some(bounds) = self.bounds.as_mut() {
            if let Poll::Ready(e) = bounds.as_mut().poll(cx) {
                return Poll::Ready(Err(e));
            }
            ready!(bounds.as_mut().poll_permit(cx))?;
        }
        self.poll_handshake_io(core, cx)
    }

    /// The handshake's I/O loop. Each turn writes, reads or returns, so it cannot spin.
    fn poll_handshake_io<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        core: &mut EngineIo<IO>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        loop {
            // Flush handshake bytes in the same poll that produced them.
            ready!(core.poll_write_tx(cx))?;
            match core.drive_handshake()? {
                HandshakeStatus::Done if !core.has_unsent() => {
                    ready!(core.poll_flush_io(cx))?;
                    return Poll::Ready(Ok(()));
                }
                HandshakeStatus::Done => continue,
                HandshakeStatus::NeedConfig => ready!(self.poll_resolve(core, cx))?,
                HandshakeStatus::NeedInput if core.has_unsent() => continue,
                HandshakeStatus::NeedInput => {
                    ready!(core.poll_flush_io(cx))?;
                    if ready!(core.poll_fill_rx(cx))? == 0 {
                        return Poll::Ready(Err(Error::HandshakeEof));
                    }
                }
            }
        }
    }

    /// Asks the resolver for the config of the ClientHello the engine holds, and hands it
    /// over. An async resolver's future is kept across polls.
    fn poll_resolve<IO>(
        &mut self,
        core: &mut EngineIo<IO>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let chosen = if let Some(pending) = self.resolving.as_mut() {
            let pending = pending
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let chosen = ready!(pending.as_mut().poll(cx));
            self.resolving = None;
            chosen
        } else {
            match (&self.resolver, core.client_hello()) {
                (Some(Resolver::Sync(resolve)), Some(hello)) => resolve(&hello),
                (Some(Resolver::Async(resolve)), Some(hello)) => {
                    let mut pending = resolve(&hello);
                    match pending.as_mut().poll(cx) {
                        Poll::Ready(chosen) => chosen,
                        Poll::Pending => {
                            self.resolving = Some(std::sync::Mutex::new(pending));
                            return Poll::Pending;
                        }
                    }
                }
                _ => Err(Error::NoServerConfig("no resolver for this stream".into())),
            }
        };
        match chosen {
            Ok(config) => Poll::Ready(core.set_server_config(config)),
            Err(e) => {
                core.reject_client_hello();
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// The fatal bounds of one handshake: the connector's or acceptor's token and the
    /// deadline. Built at the handshake's first poll, boxed (so the stream stays `Unpin`),
    /// and dropped when the handshake ends.
    struct Driver {
        #[pin]
        cancelled: Option<WaitForCancellationFutureOwned>,
        #[pin]
        deadline: Option<Sleep>,
        // Bounds handshakes in flight: one permit is held from the start of the handshake
        // to its end. The wait for it counts against the deadline.
        permits: Option<PollSemaphore>,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl Driver {
    /// `None` when there is nothing to bound the handshake with.
    fn new(options: &Options) -> Option<Pin<Box<Driver>>> {
        if options.shutdown_token.is_none()
            && options.handshake_timeout.is_none()
            && options.handshake_permits.is_none()
        {
            return None;
        }
        Some(Box::pin(Driver {
            cancelled: options
                .shutdown_token
                .clone()
                .map(CancellationToken::cancelled_owned),
            deadline: options.handshake_timeout.map(tokio::time::sleep),
            permits: options.handshake_permits.clone().map(PollSemaphore::new),
            permit: None,
        }))
    }

    /// Ready once this handshake holds a permit (at once when there is no cap). A closed
    /// semaphore fails the handshake with `Cancelled`.
    fn poll_permit(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.project();
        if this.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        let Some(permits) = this.permits.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match std::task::ready!(permits.poll_acquire(cx)) {
            Some(permit) => {
                *this.permit = Some(permit);
                Poll::Ready(Ok(()))
            }
            None => Poll::Ready(Err(Error::Cancelled)),
        }
    }
}

impl Future for Driver {
    /// Resolves with the fatal error once a bound is hit.
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Error> {
        let this = self.project();
        if let Some(cancelled) = this.cancelled.as_pin_mut() {
            if cancelled.poll(cx).is_ready() {
                return Poll::Ready(Error::Cancelled);
            }
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            if deadline.poll(cx).is_ready() {
                return Poll::Ready(Error::HandshakeTimeout);
            }
        }
        Poll::Pending
    }
}
