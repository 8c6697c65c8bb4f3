//! Where a connection stands: one value, [`Lifecycle`], owned by the I/O core, and its
//! mirror for the fast path, [`State`], one `AtomicU8` read with a single `Acquire` load.
//!
//! Every layer asks the `Lifecycle`: handshaking, ready, read closed, write closed,
//! failed (with the sticky error). The stream writes the `State` from it in one place
//! ([`State::publish`]), at the end of a call that changed it.
//!
//! The `State` byte: the low two bits hold the [`HandshakeState`]; bit 2 is "read side
//! closed" (EOF or the peer's close_notify was reported); bit 3 is "write side closed"
//! (our shutdown ran). The fast path compares the whole byte, so a closed flag sends a
//! call to the slow path, which asks the `Lifecycle`.
//!
//! Orderings: a publish is a `Release` store, so whatever the publishing thread wrote
//! before it (the connection info, the sticky error) is visible to a thread whose
//! `Acquire` load sees the new state.

use crate::error::Error;
use crate::loom::{AtomicU8, Ordering};

/// Where a stream's handshake stands. Returned by [`TlsStream::state`](crate::TlsStream::state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeState {
    /// No I/O has happened yet.
    Idle,
    /// The handshake has started and has not finished.
    Handshaking,
    /// The handshake completed; reads and writes go straight to records.
    Ready,
    /// The connection failed; every later call returns the same error.
    Failed,
}

const IDLE: u8 = 0;
const HANDSHAKING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;
const STATE_MASK: u8 = 0b0011;
const READ_CLOSED: u8 = 0b0100;
const WRITE_CLOSED: u8 = 0b1000;

/// How the read side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// close_notify, or an accepted truncation: reads return `Ok(0)`.
    Clean,
    /// EOF without close_notify: reads return [`Error::Truncated`].
    Truncated,
}

/// Where a connection stands. Owned by its I/O core; see the module's documentation.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    phase: HandshakeState,
    /// The sticky error: set once, with `Failed`.
    error: Option<Error>,
    read_end: Option<ReadEnd>,
    /// Our shutdown ran: writes are refused.
    write_closed: bool,
    /// A transition happened since the last [`Lifecycle::take_changed`].
    changed: bool,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Lifecycle {
            phase: HandshakeState::Idle,
            error: None,
            read_end: None,
            write_closed: false,
            changed: true,
        }
    }

    pub(crate) fn phase(&self) -> HandshakeState {
        self.phase
    }

    /// The sticky error, once failed.
    pub(crate) fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    pub(crate) fn read_end(&self) -> Option<ReadEnd> {
        self.read_end
    }

    pub(crate) fn write_closed(&self) -> bool {
        self.write_closed
    }

    /// `Idle -> Handshaking`; nothing otherwise.
    pub(crate) fn begin_handshake(&mut self) {
        if self.phase == HandshakeState::Idle {
            self.set_phase(HandshakeState::Handshaking);
        }
    }

    /// `Handshaking -> Ready`; nothing otherwise (a failure is sticky).
    pub(crate) fn complete_handshake(&mut self) {
        if self.phase == HandshakeState::Handshaking {
            self.set_phase(HandshakeState::Ready);
        }
    }

    /// `* -> Failed`. The first error stays the sticky one.
    pub(crate) fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.set_phase(HandshakeState::Failed);
    }

    pub(crate) fn end_read(&mut self, end: ReadEnd) {
        self.read_end = Some(end);
        self.changed = true;
    }

    pub(crate) fn close_write(&mut self) {
        self.write_closed = true;
        self.changed = true;
    }

    /// The halves' lifecycles after a split: both ready, the read side's with how reading
    /// ended, the write side's with whether it was shut down.
    pub(crate) fn split(&self) -> (Lifecycle, Lifecycle) {
        debug_assert_eq!(self.phase, HandshakeState::Ready);
        let half = || Lifecycle {
            phase: HandshakeState::Ready,
            ..Lifecycle::new()
        };
        let read = Lifecycle {
            read_end: self.read_end,
            ..half()
        };
        let write = Lifecycle {
            write_closed: self.write_closed,
            ..half()
        };
        (read, write)
    }

    /// What [`Lifecycle::split`] took apart. A failure of either half is the split
    /// stream's to apply (it keeps it for both halves).
    pub(crate) fn join(read: &Lifecycle, write: &Lifecycle) -> Lifecycle {
        Lifecycle {
            phase: HandshakeState::Ready,
            read_end: read.read_end,
            write_closed: write.write_closed,
            ..Lifecycle::new()
        }
    }

    /// Whether a transition happened since the last call; forgets it.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn set_phase(&mut self, phase: HandshakeState) {
        self.phase = phase;
        self.changed = true;
    }

    /// The `State` byte for this value.
    fn byte(&self) -> u8 {
        let phase = match self.phase {
            HandshakeState::Idle => IDLE,
            HandshakeState::Handshaking => HANDSHAKING,
            HandshakeState::Ready => READY,
            HandshakeState::Failed => FAILED,
        };
        let read = if self.read_end.is_some() {
            READ_CLOSED
        } else {
            0
        };
        let write = if self.write_closed { WRITE_CLOSED } else { 0 };
        phase | read | write
    }
}

/// The fast path's mirror of a [`Lifecycle`].
#[derive(Debug)]
pub(crate) struct State(AtomicU8);

impl State {
    pub(crate) fn of(lifecycle: &Lifecycle) -> Self {
        State(AtomicU8::new(lifecycle.byte()))
    }

    /// The fast-path check for reads: ready, and reads not closed. One `Acquire` load.
    #[inline(always)]
    pub(crate) fn read_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) & !WRITE_CLOSED == READY
    }

    /// The fast-path check for writes: ready, and our write side not shut down. One
    /// `Acquire` load.
    #[inline(always)]
    pub(crate) fn write_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) & !READ_CLOSED == READY
    }

    pub(crate) fn get(&self) -> HandshakeState {
        match self.0.load(Ordering::Acquire) & STATE_MASK {
            IDLE => HandshakeState::Idle,
            HANDSHAKING => HandshakeState::Handshaking,
            READY => HandshakeState::Ready,
            _ => HandshakeState::Failed,
        }
    }

    /// The one write: mirrors `lifecycle`. `Release`: what was written before it (the
    /// connection info, the sticky error) is visible to every `Acquire` load that sees
    /// the new byte.
    pub(crate) fn publish(&self, lifecycle: &Lifecycle) {
        self.0.store(lifecycle.byte(), Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn transitions_and_their_mirror() {
        let mut life = Lifecycle::new();
        let s = State::of(&life);
        assert_eq!(s.get(), HandshakeState::Idle);
        assert!(!s.read_ready() && !s.write_ready());
        life.begin_handshake();
        life.begin_handshake();
        assert_eq!(life.phase(), HandshakeState::Handshaking);
        life.complete_handshake();
        s.publish(&life);
        assert!(s.read_ready() && s.write_ready());
        life.close_write();
        s.publish(&life);
        assert!(s.read_ready() && !s.write_ready());
        life.end_read(ReadEnd::Clean);
        s.publish(&life);
        assert!(!s.read_ready());
        life.fail(Error::HandshakeEof);
        life.fail(Error::Cancelled);
        life.complete_handshake();
        s.publish(&life);
        assert_eq!(s.get(), HandshakeState::Failed, "failure is sticky");
        assert!(
            matches!(life.error(), Some(Error::HandshakeEof)),
            "the first error stays"
        );
        assert!(life.write_closed() && life.read_end().is_some());
    }

    #[test]
    fn split_and_join_keep_the_closed_sides() {
        let mut life = Lifecycle::new();
        life.begin_handshake();
        life.complete_handshake();
        life.close_write();
        let (mut read, write) = life.split();
        read.end_read(ReadEnd::Truncated);
        let joined = Lifecycle::join(&read, &write);
        assert_eq!(joined.phase(), HandshakeState::Ready);
        assert_eq!(joined.read_end(), Some(ReadEnd::Truncated));
        assert!(joined.write_closed());
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! The mirror under every interleaving of two threads: a stream's task publishing
    //! while another thread reads `state()` through `&self`. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test --lib --release loom`.
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    /// What the publishing thread wrote before `Ready` (the connection info) is visible
    /// to a thread whose fast-path load sees `Ready`.
    #[test]
    fn loom_ready_publishes_what_came_before() {
        loom::model(|| {
            let state = Arc::new(State::of(&Lifecycle::new()));
            let info = Arc::new(AtomicUsize::new(0));
            let writer = {
                let (state, info) = (state.clone(), info.clone());
                thread::spawn(move || {
                    let mut life = Lifecycle::new();
                    life.begin_handshake();
                    info.store(42, Ordering::Relaxed);
                    life.complete_handshake();
                    state.publish(&life);
                })
            };
            if state.read_ready() {
                assert_eq!(info.load(Ordering::Relaxed), 42);
            }
            writer.join().unwrap();
            assert!(state.read_ready() && state.write_ready());
        });
    }

    /// A reader sees one published byte or the next, never a mix: a failure published
    /// after a half-close keeps the closed flag.
    #[test]
    fn loom_a_publish_is_seen_whole() {
        loom::model(|| {
            let mut life = Lifecycle::new();
            life.begin_handshake();
            life.complete_handshake();
            let state = Arc::new(State::of(&life));
            let publisher = {
                let state = state.clone();
                thread::spawn(move || {
                    life.close_write();
                    state.publish(&life);
                    life.fail(Error::HandshakeEof);
                    state.publish(&life);
                })
            };
            let seen = state.get();
            if seen == HandshakeState::Failed {
                assert!(!state.write_ready());
            }
            publisher.join().unwrap();
            assert_eq!(state.get(), HandshakeState::Failed);
            assert!(!state.read_ready() && !state.write_ready());
        });
    }
}
