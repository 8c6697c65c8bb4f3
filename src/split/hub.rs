//! The meeting point of a split stream's two halves, kept apart from TLS and I/O so that
//! loom can check it (`RUSTFLAGS="--cfg loom"`; the models are at the bottom).
//!
//! What it holds:
//!
//! - `flags`, one `AtomicU8`: `SPLIT` (the engine was divided; the read half owns the
//!   receive side), `FAILED` (a sticky error is stored) and `OWED` (the read half left
//!   control bytes, a KeyUpdate answer or an alert, that the transport has not taken yet).
//!   The read half's steady path is this one `Acquire` load and nothing else.
//! - the slot, behind a mutex that is held only to move values in and out, never across
//!   I/O or crypto work:
//!   - `core`: the whole stream before the split (so whichever half polls first drives the
//!     handshake), the send side after it. `None` while a half has it checked out: the
//!     `Option` is the ownership token, and a half that finds it empty registers its
//!     waker and is woken by the check-in.
//!   - `recv`: the receive side, from the moment the engine is divided by the write half
//!     until the read half picks it up.
//!   - `requests`: what the read half asked the send side to send while the write half
//!     had it checked out; the write half applies them before it checks the core in.
//!   - the wakers of the halves, and the sticky error.

use std::task::Waker;

use crate::error::Error;
use crate::loom::{AtomicU8, Mutex, MutexGuard, Ordering};

const SPLIT: u8 = 0b001;
const FAILED: u8 = 0b010;
const OWED: u8 = 0b100;

/// Which half is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    Read = 0,
    Write = 1,
}

impl Half {
    fn other(self) -> Half {
        match self {
            Half::Read => Half::Write,
            Half::Write => Half::Read,
        }
    }
}

/// Requests from the read half to the send side; merged while they wait.
pub(crate) trait Merge: Default {
    fn is_empty(&self) -> bool;
    fn merge(&mut self, other: Self);
}

/// A snapshot of the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    /// Nothing needs the read half's attention: not failed, nothing owed.
    #[inline(always)]
    pub(crate) fn quiet(self) -> bool {
        self.0 & (FAILED | OWED) == 0
    }

    pub(crate) fn failed(self) -> bool {
        self.0 & FAILED != 0
    }

    pub(crate) fn owed(self) -> bool {
        self.0 & OWED != 0
    }

    pub(crate) fn split(self) -> bool {
        self.0 & SPLIT != 0
    }
}

/// What [`Hub::check_out`] found.
#[derive(Debug)]
pub(crate) enum CheckOut<C, R> {
    /// The receive side, waiting for the read half since the split.
    Recv(R),
    /// The core: the caller owns it until it checks it in.
    Core(C),
    /// The other half has the core; this half's waker is registered and the check-in
    /// wakes it.
    Busy,
    /// A half failed: the sticky error. Checked under the lock, so a half cannot wait
    /// for a core that a failure will never give back.
    Failed(Error),
}

struct Slot<C, R, Q> {
    core: Option<C>,
    recv: Option<R>,
    requests: Q,
    waiting: [Option<Waker>; 2],
    /// Wakers of halves waiting on the transport, woken only by a failure.
    watching: [Option<Waker>; 2],
    error: Option<Error>,
}

pub(crate) struct Hub<C, R, Q> {
    flags: AtomicU8,
    slot: Mutex<Slot<C, R, Q>>,
}

impl<C, R, Q> std::fmt::Debug for Hub<C, R, Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("flags", &Flags(self.flags.load(Ordering::Acquire)))
            .finish_non_exhaustive()
    }
}

impl<C, R, Q: Merge> Hub<C, R, Q> {
    pub(crate) fn new(core: C) -> Self {
        Hub {
            flags: AtomicU8::new(0),
            slot: Mutex::new(Slot {
                core: Some(core),
                recv: None,
                requests: Q::default(),
                waiting: [None, None],
                watching: [None, None],
                error: None,
            }),
        }
    }

    /// One `Acquire` load: a thread that sees `FAILED` sees the stored error, one that
    /// sees `SPLIT` sees the receive side in the slot (both are written under the lock
    /// before the flag is set with `Release`).
    #[inline(always)]
    pub(crate) fn flags(&self) -> Flags {
        Flags(self.flags.load(Ordering::Acquire))
    }

    fn lock(&self) -> MutexGuard<'_, Slot<C, R, Q>> {
        // A panic while the lock was held only ever interrupts a move of a value in or out
        // of the slot, which leaves it consistent.
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on what the slot holds now (the core and the waiting receive side, each
    /// unless checked out), under the lock.
    pub(crate) fn inspect<T>(&self, f: impl FnOnce(Option<&C>, Option<&R>) -> T) -> T {
        let slot = self.lock();
        f(slot.core.as_ref(), slot.recv.as_ref())
    }

    /// Takes the receive side if it is waiting (read half only), else the core; when the
    /// other half has the core, registers `waker` to be woken by its check-in.
    pub(crate) fn check_out(&self, half: Half, waker: &Waker) -> CheckOut<C, R> {
        let mut slot = self.lock();
        if let Some(e) = &slot.error {
            return CheckOut::Failed(e.duplicate());
        }
        if half == Half::Read {
            if let Some(recv) = slot.recv.take() {
                return CheckOut::Recv(recv);
            }
        }
        match slot.core.take() {
            Some(core) => CheckOut::Core(core),
            None => {
                register(&mut slot.waiting[half as usize], waker);
                CheckOut::Busy
            }
        }
    }

    /// Gives the core back. If the read half left requests meanwhile, they come back with
    /// the core instead (`Err`), to be applied first, unless `force` (they then stay for
    /// the next holder and `OWED` is set). `recv` is the receive side of an engine divided
    /// during this turn: it is left for the read half and `SPLIT` is set. `park`
    /// registers the caller's waker, so that the other half wakes it after it used the
    /// transport (whose waker slot it may have taken). The other half's registered waker
    /// is woken.
    pub(crate) fn check_in(
        &self,
        half: Half,
        core: C,
        recv: Option<R>,
        park: Option<&Waker>,
        force: bool,
    ) -> Result<(), (C, Q)> {
        let mut slot = self.lock();
        if recv.is_some() {
            slot.recv = recv;
            self.flags.fetch_or(SPLIT, Ordering::Release);
        }
        if !slot.requests.is_empty() {
            if !force {
                return Err((core, std::mem::take(&mut slot.requests)));
            }
            self.flags.fetch_or(OWED, Ordering::Release);
        }
        slot.core = Some(core);
        if let Some(waker) = park {
            register(&mut slot.waiting[half as usize], waker);
        }
        let other = slot.waiting[half.other() as usize].take();
        drop(slot);
        if let Some(waker) = other {
            waker.wake();
        }
        Ok(())
    }

    /// The read half has something to send. If the core is free it is returned, with
    /// `requests` and any left earlier, for the caller to apply and check in. Otherwise
    /// the write half has it: the requests are left for its check-in, which applies them.
    pub(crate) fn request(&self, requests: Q) -> Option<(C, Q)> {
        let mut slot = self.lock();
        match slot.core.take() {
            Some(core) => {
                let mut all = std::mem::take(&mut slot.requests);
                all.merge(requests);
                Some((core, all))
            }
            None => {
                slot.requests.merge(requests);
                None
            }
        }
    }

    /// Sets `SPLIT` when the read half divided the engine itself (it keeps the receive
    /// side, so nothing is left in the slot).
    pub(crate) fn mark_split(&self) {
        self.flags.fetch_or(SPLIT, Ordering::Release);
    }

    /// Whether `take_all` would find every part: the core checked in, and the receive
    /// side either held by the read half (`recv_held`) or in the slot, or not split.
    pub(crate) fn can_join(&self, recv_held: bool) -> bool {
        let slot = self.lock();
        slot.core.is_some() && (recv_held || slot.recv.is_some() || !self.flags().split())
    }

    /// Sets or clears `OWED`: the read half left bytes for the transport and must try
    /// again on its next poll (the write half may be idle).
    pub(crate) fn set_owed(&self, owed: bool) {
        if owed {
            self.flags.fetch_or(OWED, Ordering::Release);
        } else if self.flags().owed() {
            self.flags.fetch_and(!OWED, Ordering::Release);
        }
    }

    /// Makes `e` the sticky error of both halves, unless one is stored already; returns
    /// a copy of the stored one. Both halves' registered wakers are woken.
    pub(crate) fn fail(&self, e: Error) -> Error {
        let mut slot = self.lock();
        let stored = slot.error.get_or_insert(e).duplicate();
        self.flags.fetch_or(FAILED, Ordering::Release);
        let wakers = [
            slot.waiting[0].take(),
            slot.waiting[1].take(),
            slot.watching[0].take(),
            slot.watching[1].take(),
        ];
        drop(slot);
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
        stored
    }

    /// Registers the waker of a half about to wait on the transport, to be woken by a
    /// failure of the other half. Returns false, registering nothing, if a half has
    /// failed already (checked under the lock, so no failure is missed).
    pub(crate) fn watch(&self, half: Half, waker: &Waker) -> bool {
        let mut slot = self.lock();
        if slot.error.is_some() {
            return false;
        }
        register(&mut slot.watching[half as usize], waker);
        true
    }

    /// A copy of the sticky error.
    pub(crate) fn error(&self) -> Option<Error> {
        self.lock().error.as_ref().map(Error::duplicate)
    }

    /// Empties the hub for `unsplit`: the core (if checked in), the receive side (if not
    /// picked up) and the sticky error.
    pub(crate) fn take_all(&self) -> (Option<C>, Option<R>, Option<Error>) {
        let mut slot = self.lock();
        (slot.core.take(), slot.recv.take(), slot.error.take())
    }
}

/// Stores `waker`, cloning only when it changed.
fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(old) if old.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! Each model runs every interleaving of two threads (the halves) up to
    //! `LOOM_MAX_PREEMPTIONS` preemptions. A lost wake-up shows as a deadlock, which loom
    //! reports; a broken exclusion trips the `in_use` assertions.

    use super::*;
    use loom::future::block_on;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use loom::thread;
    use std::future::poll_fn;
    use std::task::Poll;

    /// A request bitmask standing in for the engine's alerts and KeyUpdate answers.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    struct Bits(u8);

    impl Merge for Bits {
        fn is_empty(&self) -> bool {
            self.0 == 0
        }
        fn merge(&mut self, other: Self) {
            self.0 |= other.0;
        }
    }

    /// The core of the model: a marker that must never be held twice, and a handshake
    /// state that the first holder advances.
    #[derive(Debug)]
    struct Core {
        in_use: Arc<AtomicBool>,
        handshake_done: bool,
        answered: u8,
    }

    type TestHub = Hub<Core, u32, Bits>;

    fn hub() -> (Arc<TestHub>, Arc<AtomicBool>) {
        let in_use = Arc::new(AtomicBool::new(false));
        let core = Core {
            in_use: in_use.clone(),
            handshake_done: false,
            answered: 0,
        };
        (Arc::new(Hub::new(core)), in_use)
    }

    /// Waits (as a task would) until the core is free, and takes it.
    async fn take(hub: &TestHub, half: Half) -> Core {
        poll_fn(|cx| match hub.check_out(half, cx.waker()) {
            CheckOut::Core(core) => Poll::Ready(core),
            CheckOut::Busy => Poll::Pending,
            other => panic!("unexpected {other:?}"),
        })
        .await
    }

    fn hold(core: &Core) {
        assert!(
            !core.in_use.swap(true, Ordering::AcqRel),
            "both halves hold the core"
        );
        thread::yield_now();
        core.in_use.store(false, Ordering::Release);
    }

    fn give_back(hub: &TestHub, half: Half, mut core: Core) {
        loop {
            match hub.check_in(half, core, None, None, false) {
                Ok(()) => return,
                Err((back, requests)) => {
                    core = back;
                    core.answered |= requests.0;
                }
            }
        }
    }

    /// Handshake ownership: both halves try to drive the handshake at the same instant.
    /// Exactly one drives it at a time, the other waits without a lost wake-up, and both
    /// end up seeing it done.
    #[test]
    fn loom_handshake_ownership() {
        loom::model(|| {
            let (hub, _) = hub();
            let drives = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = [Half::Read, Half::Write]
                .into_iter()
                .map(|half| {
                    let hub = hub.clone();
                    let drives = drives.clone();
                    thread::spawn(move || {
                        let mut core = block_on(take(&hub, half));
                        hold(&core);
                        if !core.handshake_done {
                            core.handshake_done = true;
                            drives.fetch_add(1, Ordering::Relaxed);
                        }
                        give_back(&hub, half, core);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(
                drives.load(Ordering::Relaxed),
                1,
                "one handshake, driven once"
            );
            let (core, _, _) = hub.take_all();
            assert!(core.expect("core checked in").handshake_done);
        });
    }

    /// The split: the write half divides the engine and leaves the receive side; the read
    /// half, polling at the same time, gets it (directly or after a wake-up).
    #[test]
    fn loom_receive_side_handover() {
        loom::model(|| {
            let (hub, _) = hub();
            let writer = {
                let hub = hub.clone();
                thread::spawn(move || {
                    let core = block_on(take(&hub, Half::Write));
                    hub.check_in(Half::Write, core, Some(7), None, false)
                        .map_err(|_| ())
                        .expect("no requests in this model");
                })
            };
            let got = block_on(poll_fn(|cx| match hub.check_out(Half::Read, cx.waker()) {
                CheckOut::Recv(r) => Poll::Ready(Some(r)),
                CheckOut::Core(core) => {
                    // The read half drove a turn itself before the split.
                    assert!(!hub.flags().split());
                    give_back(&hub, Half::Read, core);
                    Poll::Ready(None)
                }
                CheckOut::Busy => Poll::Pending,
                CheckOut::Failed(e) => panic!("no failure in this model: {e}"),
            }));
            writer.join().unwrap();
            let recv = got.or_else(|| hub.take_all().1);
            assert_eq!(recv, Some(7));
            assert!(hub.flags().split());
        });
    }

    /// Waking the other half, and requests: the read half asks for a KeyUpdate answer
    /// while the write half takes a turn that ends with its transport pending (it parks).
    /// Whoever applies the request, it is applied exactly once; if the read half applies
    /// it, its check-in must wake the parked writer (a lost wake-up is a deadlock here).
    #[test]
    fn loom_requests_and_wakeups() {
        loom::model(|| {
            let (hub, _) = hub();
            let writer = {
                let hub = hub.clone();
                thread::spawn(move || {
                    let mut turned = false;
                    block_on(poll_fn(|cx| {
                        if turned {
                            return Poll::Ready(());
                        }
                        let mut core = match hub.check_out(Half::Write, cx.waker()) {
                            CheckOut::Core(core) => core,
                            CheckOut::Busy => return Poll::Pending,
                            other => panic!("unexpected {other:?}"),
                        };
                        hold(&core);
                        turned = true;
                        // The read half may have applied its request before this turn.
                        let mut applied = core.answered > 0;
                        loop {
                            match hub.check_in(Half::Write, core, None, Some(cx.waker()), false) {
                                Ok(()) => break,
                                Err((back, requests)) => {
                                    core = back;
                                    core.answered += requests.0;
                                    applied = true;
                                }
                            }
                        }
                        // Applied here: done. Otherwise the transport is "pending": only
                        // the read half's check-in can wake this task.
                        if applied {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    }))
                })
            };
            if let Some((mut core, requests)) = hub.request(Bits(1)) {
                hold(&core);
                core.answered += requests.0;
                give_back(&hub, Half::Read, core);
            }
            writer.join().unwrap();
            let (core, _, _) = hub.take_all();
            assert_eq!(core.expect("core checked in").answered, 1);
        });
    }

    /// A read half about to wait on its transport registers for failures while the write
    /// half fails: it is either told at once or woken.
    #[test]
    fn loom_failure_wakes_a_half_waiting_on_its_transport() {
        loom::model(|| {
            let (hub, _) = hub();
            let reader = {
                let hub = hub.clone();
                thread::spawn(move || {
                    block_on(poll_fn(|cx| {
                        if hub.flags().failed() {
                            return Poll::Ready(());
                        }
                        // The transport is pending: watch for a failure, then wait.
                        if !hub.watch(Half::Read, cx.waker()) {
                            cx.waker().wake_by_ref();
                        }
                        Poll::Pending
                    }))
                })
            };
            hub.fail(Error::HandshakeEof);
            reader.join().unwrap();
        });
    }

    /// A sticky error published by one half while the other waits for the core: the
    /// waiter is woken and sees the first error; a second failure does not replace it.
    #[test]
    fn loom_sticky_error_reaches_both_halves() {
        loom::model(|| {
            let (hub, _) = hub();
            // The read half holds the core (say, mid-read), so the write half waits.
            let CheckOut::Core(core) = hub.check_out(Half::Read, Waker::noop()) else {
                unreachable!("the core starts free");
            };
            let writer = {
                let hub = hub.clone();
                thread::spawn(move || {
                    block_on(poll_fn(|cx| match hub.check_out(Half::Write, cx.waker()) {
                        CheckOut::Failed(e) => Poll::Ready(e),
                        CheckOut::Busy => Poll::Pending,
                        other => panic!("unexpected {other:?}"),
                    }))
                })
            };
            let first = hub.fail(Error::HandshakeEof);
            let second = hub.fail(Error::Cancelled);
            assert!(matches!(first, Error::HandshakeEof));
            assert!(
                matches!(second, Error::HandshakeEof),
                "the first error stays"
            );
            assert!(matches!(writer.join().unwrap(), Error::HandshakeEof));
            assert!(hub.flags().failed());
            drop(core);
        });
    }
}
