//! The tasks parked on a stream ([`ParkedTasks`]): one slot for a reader, one for a
//! writer (write, flush, shutdown) and one for a caller of `handshake()`.
//!
//! With `tokio::io::split` (or a stream shared otherwise), several tasks use one stream,
//! but the transport keeps only one waker per direction, so whoever takes the others'
//! turn wakes them: the end of the handshake wakes them all, a failure wakes them all,
//! and a read that writes (a KeyUpdate answer, an alert) wakes the writer.

use std::task::{Context, Poll, Waker};

/// Which of the stream's parked tasks a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Parked {
    Reader,
    Writer,
    /// A caller of `poll_handshake()` (or the `Handshake` future).
    Handshake,
}

/// The last waker parked in each slot.
#[derive(Debug, Default)]
pub(super) struct ParkedTasks {
    reader: Option<Waker>,
    writer: Option<Waker>,
    handshake: Option<Waker>,
}

impl ParkedTasks {
    fn slot(&mut self, parked: Parked) -> &mut Option<Waker> {
        match parked {
            Parked::Reader => &mut self.reader,
            Parked::Writer => &mut self.writer,
            Parked::Handshake => &mut self.handshake,
        }
    }

    /// Passes a call's `poll` on. If it is pending, remembers the waker of the task that
    /// is about to wait (cloned only when it changed). If it is ready and `held` (a poll
    /// left this task's waker with the transport, see `EngineIo::take_waker_held`), wakes
    /// the tasks parked here, whose turn it took.
    pub(super) fn park<T>(
        &mut self,
        parked: Parked,
        cx: &Context<'_>,
        held: bool,
        poll: Poll<T>,
    ) -> Poll<T> {
        if poll.is_ready() {
            if held {
                self.wake_all(cx);
            }
            return poll;
        }
        let slot = self.slot(parked);
        match slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        poll
    }

    /// Wakes the tasks parked here, except the one polling now.
    pub(super) fn wake_all(&mut self, cx: &Context<'_>) {
        let parked = [
            self.reader.take(),
            self.writer.take(),
            self.handshake.take(),
        ];
        for waker in parked.into_iter().flatten() {
            if !waker.will_wake(cx.waker()) {
                waker.wake();
            }
        }
    }

    /// Wakes the parked writer: a read wrote to the transport, whose write waker it may
    /// have been.
    pub(super) fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    /// The wakers parked in the slots other than `caller`'s: the tasks that wait on a
    /// handshake that `caller` drives. The caller's own slot is left out: the caller takes
    /// it over (and a waker stored by the same task may not `will_wake` its new one, which
    /// would cost an allocation on every poll of a lone handshake).
    pub(super) fn others(&self, caller: Parked) -> impl Iterator<Item = &Waker> {
        [
            (Parked::Reader, &self.reader),
            (Parked::Writer, &self.writer),
            (Parked::Handshake, &self.handshake),
        ]
        .into_iter()
        .filter(move |(slot, _)| *slot != caller)
        .filter_map(|(_, waker)| waker.as_ref())
    }
}
