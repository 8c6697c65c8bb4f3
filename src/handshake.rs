//! The `Handshake` future and the handshake driver (fatal token and deadline). Both exist
//! only on the slow path: after completion nothing here is built or polled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, PollSemaphore, WaitForCancellationFutureOwned};

use crate::error::Error;
use crate::options::Options;
use crate::stream::TlsStream;

pin_project! {
    /// The fatal bounds of one handshake: the connector's or acceptor's token and the
    /// deadline. Built at the handshake's first poll, boxed (so the stream stays `Unpin`),
    /// and dropped when the handshake ends.
    pub(crate) struct Driver {
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
    pub(crate) fn new(options: &Options) -> Option<Pin<Box<Driver>>> {
        if options.cancel.is_none()
            && options.handshake_timeout.is_none()
            && options.handshake_permits.is_none()
        {
            return None;
        }
        Some(Box::pin(Driver {
            cancelled: options
                .cancel
                .clone()
                .map(CancellationToken::cancelled_owned),
            deadline: options.handshake_timeout.map(tokio::time::sleep),
            permits: options.handshake_permits.clone().map(PollSemaphore::new),
            permit: None,
        }))
    }

    /// Ready once this handshake holds a permit (at once when there is no cap). A closed
    /// semaphore fails the handshake with `Cancelled`.
    pub(crate) fn poll_permit(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
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

/// Future returned by [`TlsStream::handshake`]: completes the handshake.
///
/// Ready on its first poll once the handshake has completed (nothing is allocated then),
/// and returns the sticky error once it has failed.
///
/// # Cancellation safety
///
/// Dropping it loses nothing: the handshake's progress lives in the stream, and the next
/// read, write or `handshake()` resumes it. A token given with [`Handshake::cancel_on`]
/// behaves the same way: it ends this call with [`Error::Cancelled`] and leaves the
/// handshake resumable. The connector's or acceptor's own token and deadline are fatal.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Handshake<'a, IO> {
    stream: Option<&'a mut TlsStream<IO>>,
    cancel: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl<'a, IO> Handshake<'a, IO> {
    pub(crate) fn new(stream: &'a mut TlsStream<IO>) -> Self {
        Handshake {
            stream: Some(stream),
            cancel: None,
        }
    }

    /// Ends this call with [`Error::Cancelled`] when `token` is cancelled, without failing
    /// the stream: a later call resumes the handshake where it stopped. A token cancelled
    /// already ends the call before any I/O.
    pub fn cancel_on(mut self, token: &CancellationToken) -> Self {
        // After completion the call is ready at once; skip the allocation.
        let done = self
            .stream
            .as_ref()
            .is_some_and(|s| s.state() == crate::HandshakeState::Ready);
        if !done {
            self.cancel = Some(Box::pin(token.clone().cancelled_owned()));
        }
        self
    }
}

impl<IO> std::fmt::Debug for Handshake<'_, IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("state", &self.stream.as_ref().map(|s| s.state()))
            .field("cancellable", &self.cancel.is_some())
            .finish()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Future for Handshake<'_, IO> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let stream = this
            .stream
            .as_mut()
            .expect("Handshake polled after completion");
        // The per-call token only interrupts a handshake in progress: a completed one is
        // ready, and a failed one reports its own sticky error.
        if matches!(
            stream.state(),
            crate::HandshakeState::Idle | crate::HandshakeState::Handshaking
        ) {
            if let Some(cancel) = this.cancel.as_mut() {
                if cancel.as_mut().poll(cx).is_ready() {
                    this.stream = None;
                    return Poll::Ready(Err(Error::Cancelled));
                }
            }
        }
        let result = std::task::ready!(stream.poll_handshake(cx));
        this.stream = None;
        Poll::Ready(result)
    }
}
