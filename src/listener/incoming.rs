//! [`Incoming`]: a listener's connections as a `futures_core::Stream` (feature
//! `futures-io`; the `tonic` feature's stream is built on it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpListener;

use super::{LISTENER_ERROR_PAUSE, TlsListener, TransportListener};
use crate::stream::TlsStream;

/// What one accept gives: a connection, or `None` after the shutdown.
type Accepted<L> = io::Result<
    Option<(
        TlsStream<<L as TransportListener>::Io>,
        <L as TransportListener>::Addr,
    )>,
>;

/// One accept in progress.
type PendingAccept<L> = Pin<Box<dyn Future<Output = Accepted<L>> + Send>>;

/// The connections a [`TlsListener`] accepts, as a `futures_core::Stream`; from
/// [`TlsListener::incoming`].
///
/// An error of the listening socket itself is an item; the next accept then waits a
/// second first, so a consumer that polls again at once (as tonic and most loops do) does
/// not spin on a socket that keeps failing.
///
/// # Cancellation safety
///
/// Dropping it between items loses no connection; dropping it while an accept is pending
/// loses none either, as [`TlsListener::accept`] is cancel-safe.
#[cfg_attr(docsrs, doc(cfg(feature = "futures-io")))]
#[must_use = "streams do nothing unless polled"]
#[cfg_attr(not(feature = "futures-io"), allow(unreachable_pub))]
pub struct Incoming<L: TransportListener = TcpListener> {
    listener: Arc<TlsListener<L>>,
    pending: Option<PendingAccept<L>>,
    /// The last item was an error of the listening socket.
    pause: bool,
    ended: bool,
}

impl<L> Incoming<L>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: Send + 'static,
    L::Addr: Send + 'static,
{
    pub(crate) fn new(listener: TlsListener<L>) -> Self {
        Incoming {
            listener: Arc::new(listener),
            pending: None,
            pause: false,
            ended: false,
        }
    }
}

impl<L: TransportListener> std::fmt::Debug for Incoming<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("accepting", &self.pending.is_some())
            .field("ended", &self.ended)
            .finish()
    }
}

impl<L> futures_core::Stream for Incoming<L>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: Send + 'static,
    L::Addr: Send + 'static,
{
    type Item = io::Result<(TlsStream<L::Io>, L::Addr)>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let pending = this.pending.get_or_insert_with(|| {
            let listener = this.listener.clone();
            let pause = std::mem::take(&mut this.pause);
            Box::pin(async move {
                if pause {
                    tokio::time::sleep(LISTENER_ERROR_PAUSE).await;
                }
                listener.accept_until_shutdown().await
            })
        });
        let accepted = std::task::ready!(pending.as_mut().poll(cx));
        this.pending = None;
        Poll::Ready(match accepted {
            Ok(Some(connection)) => Some(Ok(connection)),
            Ok(None) => {
                this.ended = true;
                None
            }
            Err(e) => {
                this.pause = true;
                Some(Err(e))
            }
        })
    }
}

impl<L> futures_core::FusedStream for Incoming<L>
where
    L: TransportListener + Send + Sync + 'static,
    L::Io: Send + 'static,
    L::Addr: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.ended
    }
}
