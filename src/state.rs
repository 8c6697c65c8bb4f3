//! The handshake state: one `AtomicU8`, read with a single `Acquire` load on the fast path.
//!
//! Layout: the low two bits hold the [`HandshakeState`]; bit 2 is "read side closed"
//! (EOF or the peer's close_notify was reported); bit 3 is "write side closed" (our
//! shutdown ran). The fast path compares the whole byte, so a closed flag sends a call to
//! the slow path, which knows what to answer.
//!
//! Orderings: every transition is a `Release` store or RMW, so whatever the transitioning
//! thread wrote before it (the connection info, the sticky error) is visible to a thread
//! whose `Acquire` load sees the new state.

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

#[derive(Debug)]
pub(crate) struct State(AtomicU8);

impl State {
    pub(crate) fn new() -> Self {
        State(AtomicU8::new(IDLE))
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

    pub(crate) fn write_closed(&self) -> bool {
        self.0.load(Ordering::Acquire) & WRITE_CLOSED != 0
    }

    /// Test hook: reads see `read_ready()` false once this is set.
    #[cfg(test)]
    pub(crate) fn read_closed(&self) -> bool {
        self.0.load(Ordering::Acquire) & READ_CLOSED != 0
    }

    /// `Idle -> Handshaking`. Returns true for the caller that made the transition.
    /// `AcqRel`: the winner must see everything before it, and publish that it started.
    pub(crate) fn begin_handshake(&self) -> bool {
        self.0
            .compare_exchange(IDLE, HANDSHAKING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `Handshaking -> Ready`. `Release`: the connection info written before this store
    /// is visible to every `Acquire` load that sees `Ready`. Does nothing once `Failed`.
    pub(crate) fn complete_handshake(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Release, Ordering::Acquire, |s| {
                (s & STATE_MASK == HANDSHAKING).then_some((s & !STATE_MASK) | READY)
            });
    }

    /// `* -> Failed`, keeping the closed flags. `Release`: the sticky error stored before
    /// this is visible to a thread that sees `Failed`.
    pub(crate) fn fail(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Release, Ordering::Acquire, |s| {
                Some((s & !STATE_MASK) | FAILED)
            });
    }

    /// Sets the "read side closed" flag. `Release`, like every transition.
    pub(crate) fn close_read(&self) {
        self.0.fetch_or(READ_CLOSED, Ordering::Release);
    }

    /// Sets the "write side closed" flag. `Release`, like every transition.
    pub(crate) fn close_write(&self) {
        self.0.fetch_or(WRITE_CLOSED, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let s = State::new();
        assert_eq!(s.get(), HandshakeState::Idle);
        assert!(!s.read_ready() && !s.write_ready());
        assert!(s.begin_handshake());
        assert!(!s.begin_handshake(), "only one caller starts the handshake");
        assert_eq!(s.get(), HandshakeState::Handshaking);
        s.complete_handshake();
        assert!(s.read_ready() && s.write_ready());
        s.close_write();
        assert!(s.read_ready() && !s.write_ready());
        assert!(s.write_closed() && !s.read_closed());
        s.close_read();
        assert!(!s.read_ready());
        s.fail();
        assert_eq!(s.get(), HandshakeState::Failed);
        s.complete_handshake();
        assert_eq!(s.get(), HandshakeState::Failed, "failure is sticky");
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! The state machine under every interleaving of two threads (a split stream's
    //! halves). Run with `RUSTFLAGS="--cfg loom" cargo test --lib --release loom`.
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    /// Both halves try to start the handshake at once: exactly one does.
    #[test]
    fn loom_one_half_starts_the_handshake() {
        loom::model(|| {
            let state = Arc::new(State::new());
            let other = {
                let state = state.clone();
                thread::spawn(move || state.begin_handshake())
            };
            let here = state.begin_handshake();
            let there = other.join().unwrap();
            assert!(here ^ there, "exactly one caller starts the handshake");
            assert_eq!(state.get(), HandshakeState::Handshaking);
        });
    }

    /// What the completing half wrote before `Ready` (the connection info) is visible to
    /// the other half once its fast-path load sees `Ready`.
    #[test]
    fn loom_ready_publishes_what_came_before() {
        loom::model(|| {
            let state = Arc::new(State::new());
            let info = Arc::new(AtomicUsize::new(0));
            let writer = {
                let (state, info) = (state.clone(), info.clone());
                thread::spawn(move || {
                    state.begin_handshake();
                    info.store(42, Ordering::Relaxed);
                    state.complete_handshake();
                })
            };
            if state.read_ready() {
                assert_eq!(info.load(Ordering::Relaxed), 42);
            }
            writer.join().unwrap();
            assert!(state.read_ready() && state.write_ready());
        });
    }

    /// A failure racing the end of the handshake and a half-close: `Failed` wins whatever
    /// the order, and the closed flags survive it.
    #[test]
    fn loom_failure_is_sticky() {
        loom::model(|| {
            let state = Arc::new(State::new());
            state.begin_handshake();
            let completer = {
                let state = state.clone();
                thread::spawn(move || {
                    state.complete_handshake();
                    state.close_write();
                })
            };
            state.fail();
            completer.join().unwrap();
            assert_eq!(state.get(), HandshakeState::Failed);
            assert!(!state.read_ready() && !state.write_ready());
            assert!(state.write_closed());
        });
    }
}
