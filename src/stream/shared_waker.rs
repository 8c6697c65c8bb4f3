//! A waker that wakes every task waiting on the handshake ([`SharedWaker`]).
//!
//! A transport keeps one waker per direction, but two tasks may wait on one handshake: the
//! reader and the writer of a `tokio::io::split` stream, or the two halves of `into_split`
//! before their engine is divided. The handshake reads the transport on behalf of both,
//! so it registers a waker that wakes both: otherwise the last task to poll takes the
//! slot, and if it stops waiting (its future was dropped, or it went on to something
//! else), the other sleeps through the flight it waits for.

use std::sync::Arc;
use std::task::{Wake, Waker};

/// Wakes each of its wakers.
struct SharedWaker(Vec<Waker>);

impl Wake for SharedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for waker in &self.0 {
            waker.wake_by_ref();
        }
    }
}

/// A waker for the handshake's polls: `current` itself when no other task is parked, or
/// one that also wakes the parked tasks (allocated; the handshake's path may allocate).
pub(super) fn for_handshake<'a>(
    current: &Waker,
    parked: impl IntoIterator<Item = &'a Waker>,
) -> Option<Waker> {
    let others: Vec<Waker> = parked
        .into_iter()
        .filter(|w| !w.will_wake(current))
        .cloned()
        .collect();
    if others.is_empty() {
        return None;
    }
    let mut all = others;
    all.push(current.clone());
    Some(Waker::from(Arc::new(SharedWaker(all))))
}
