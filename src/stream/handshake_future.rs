//! The `Handshake` future: completes a stream's handshake, with an optional per-call
//! cancellation token. Built only on the slow path: after completion nothing here is
//! built or polled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::TlsStream;
use crate::error::Error;

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
