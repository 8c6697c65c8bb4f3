//! Part of the API-level checker (see `checker` for what it does): the entry points,
//! one connection's setup and final checks, and the executor.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use lazytls::rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use lazytls::{HandshakeState, RecordLayer, TlsAcceptor, TlsConnector, TlsStream};

use super::checker::{ONE_RECORD_ROOM, PeerWire, Wire, WireStats, tracing};
use super::ours::{Op, ReaderDone, Shared, read_task, whole_task, write_task};
use super::peers::{
    AnyPeer, LazyPeer, Ledger, Peer, PeerCmds, Setup, Usage, lazy_peer_reader, lazy_peer_writer,
    run_configs,
};
use crate::fuzzing::targets::{Input, localhost};

// ---------------------------------------------------------------------------------------
// The executor
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Our end as the executor sees it between polls.
enum Ends {
    Whole(Shared<TlsStream<Wire>>),
    Halves(
        Shared<lazytls::TlsReadHalf<Wire>>,
        Shared<lazytls::TlsWriteHalf<Wire>>,
    ),
}

impl Ends {
    fn state(&self) -> HandshakeState {
        match self {
            Ends::Whole(s) => s.0.borrow().state(),
            Ends::Halves(r, _) => match r.0.borrow().info() {
                Some(_) => HandshakeState::Ready,
                None => HandshakeState::Handshaking,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Ends::Whole(s) => format!("{:?}", s.0.borrow()),
            Ends::Halves(r, w) => format!(
                "read half {}, write half {}",
                r.0.borrow().buffered_capacity(),
                w.0.borrow().buffered_capacity()
            ),
        }
    }

    /// Our end's keying material for `label`: the stream's, or each half's (which must
    /// agree); `None` until the handshake has completed.
    fn export(&self, label: &[u8]) -> Option<[u8; 32]> {
        let context = Some(&b"api_sequences"[..]);
        let done = |r: Result<[u8; 32], lazytls::Error>| match r {
            Ok(out) => Some(out),
            Err(lazytls::Error::Export(lazytls::ExportError::HandshakeNotComplete)) => None,
            Err(e) => panic!("a completed handshake refused to export: {e}"),
        };
        match self {
            Ends::Whole(s) => done(s.0.borrow().export_keying_material([0; 32], label, context)),
            Ends::Halves(r, w) => {
                let read = done(r.0.borrow().export_keying_material([0; 32], label, context));
                let write = done(w.0.borrow().export_keying_material([0; 32], label, context));
                assert_eq!(read, write, "the halves export different keying material");
                read
            }
        }
    }

    fn buffered_capacity(&self) -> usize {
        match self {
            Ends::Whole(s) => s.0.borrow().buffered_capacity(),
            Ends::Halves(r, w) => {
                let (r, w) = (r.0.borrow(), w.0.borrow());
                // Only the native layer is divided between the halves; otherwise both
                // report the one stream they share.
                let divided = r
                    .info()
                    .is_some_and(|i| i.record_layer == RecordLayer::Native);
                r.buffered_capacity() + if divided { w.buffered_capacity() } else { 0 }
            }
        }
    }
}

/// What `api_sequences` found, for callers that want figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceOutcome {
    /// Polls of our tasks.
    pub polls: usize,
    /// What the transport saw.
    pub wire: WireStats,
    /// Idle states in which the memory bound was checked.
    pub idle_checks: usize,
    /// The run ended without anything fatal, every byte delivered both ways.
    pub clean: bool,
    /// KeyUpdates the peer sent.
    pub key_updates: usize,
    /// Both ends completed the handshake and exported the same keying material.
    pub exports_compared: bool,
}

/// Target `api_sequences`: see `checker` for what it covers and checks.
pub fn api_sequences(data: &[u8]) -> SequenceOutcome {
    let mut input = Input::new(data);
    let setup = Setup::from_bytes(input.byte().unwrap_or(0), input.byte().unwrap_or(0));
    let n_ops = usize::from(input.byte().unwrap_or(0) % 24);
    let ops: Vec<Op> = (0..n_ops)
        .map(|_| Op::from_bytes(input.byte().unwrap_or(0), input.u16()))
        .collect();
    let n_actions = usize::from(input.byte().unwrap_or(0) % 32);
    let actions: Vec<(u8, u16)> = (0..n_actions)
        .map(|_| (input.byte().unwrap_or(0), input.u16()))
        .collect();
    let interleave = input.byte().unwrap_or(0);
    run(setup, &ops, &actions, interleave, input.rest().to_vec())
}

/// One run, from the pieces `api_sequences` decodes: our operations, the peer's actions
/// (a kind and a size each), how often the peer acts between our polls (every
/// `interleave`th turn; 0: only when we wait), and the transport's fault schedule.
pub fn run(
    setup: Setup,
    ops: &[Op],
    actions: &[(u8, u16)],
    interleave: u8,
    faults: Vec<u8>,
) -> SequenceOutcome {
    if tracing() {
        eprintln!(
            "{setup:?}\nops {ops:?}\nactions {actions:?}\ninterleave {interleave}, {} faults",
            faults.len()
        );
    }
    let (client_cfg, server_cfg) = run_configs(&setup);
    let configs = (Arc::new(client_cfg), Arc::new(server_cfg));
    if setup.early_data {
        // A first connection leaves the ticket that allows early data on the second.
        let first = Setup {
            usage: Usage::Whole,
            ..setup
        };
        let warm = one_connection(first, &configs, &[Op::Read(1)], &[(3, 1)], 0, Vec::new());
        assert!(warm.clean, "the first connection, for a ticket: {warm:?}");
    }
    one_connection(setup, &configs, ops, actions, interleave, faults)
}

fn one_connection(
    setup: Setup,
    configs: &(Arc<ClientConfig>, Arc<ServerConfig>),
    ops: &[Op],
    actions: &[(u8, u16)],
    interleave: u8,
    faults: Vec<u8>,
) -> SequenceOutcome {
    let wire = Wire::new(faults);
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    let stream = our_stream(setup, configs, &wire);
    let mut tasks: Vec<Task> = Vec::new();
    let mut peer = new_peer(setup, configs, &wire, &ledger, &mut tasks);

    let in_read = Rc::new(Cell::new(false));
    let peer_tasks = tasks.len();
    let ends = our_tasks(setup.usage, stream, ops, &ledger, &in_read, &mut tasks);
    let mut out = SequenceOutcome::default();
    drive(
        &mut tasks,
        peer_tasks,
        &mut peer,
        actions,
        interleave,
        &mut out,
        || {
            // Every task waits: when our end is idle after its handshake, it holds at most
            // one record's room.
            let idle = !setup.keep_idle_buffers
                && in_read.get()
                && !ledger.borrow().unflushed
                && ends.state() == HandshakeState::Ready;
            if idle {
                let held = ends.buffered_capacity();
                assert!(
                    held <= ONE_RECORD_ROOM,
                    "{setup:?}: {held} bytes held by an idle connection ({})",
                    ends.describe()
                );
            }
            idle
        },
    );
    drop(tasks);
    // Both ends derive the same keying material once both completed the handshake (and
    // the peer did not fail, after which rustls refuses).
    let label = b"EXPERIMENTAL-api-sequences";
    if let (Some(ours), Some(theirs)) = (ends.export(label), peer.export(label)) {
        assert_eq!(ours, theirs, "{setup:?}: exporters differ");
        out.exports_compared = true;
    }
    if let Ends::Halves(r, w) = ends {
        let (r, w) = (Rc::try_unwrap(r.0), Rc::try_unwrap(w.0));
        let (Ok(r), Ok(w)) = (r, w) else {
            panic!("the halves are still shared after their tasks")
        };
        assert!(r.into_inner().unsplit(w.into_inner()).is_ok(), "unsplit");
    }
    // Take in what is left (our close_notify).
    if let AnyPeer::Rustls(peer) = &mut peer {
        peer.pump();
    }
    if tracing() {
        eprintln!("{} polls, {:?}", out.polls, wire.stats());
    }
    check_totals(setup, &ledger.borrow(), &wire, &peer, &mut out);
    out
}

/// Our end, as `setup` asks, over `wire`.
fn our_stream(
    setup: Setup,
    (client_cfg, server_cfg): &(Arc<ClientConfig>, Arc<ServerConfig>),
    wire: &Wire,
) -> TlsStream<Wire> {
    let layer = if setup.rustls_layer {
        RecordLayer::Rustls
    } else {
        RecordLayer::Native
    };
    if setup.client {
        TlsConnector::new(client_cfg.clone())
            .record_layer(layer)
            .keep_idle_buffers(setup.keep_idle_buffers)
            .connect(localhost(), wire.clone())
    } else {
        TlsAcceptor::new(server_cfg.clone())
            .record_layer(layer)
            .keep_idle_buffers(setup.keep_idle_buffers)
            .accept(wire.clone())
    }
}

fn shared<T>(x: T) -> Shared<T> {
    Shared(Rc::new(RefCell::new(x)))
}

/// The peer `setup` asks for, on the other end of `wire`; a lazytls peer's reader and
/// writer tasks go into `tasks`.
fn new_peer(
    setup: Setup,
    (client_cfg, server_cfg): &(Arc<ClientConfig>, Arc<ServerConfig>),
    wire: &Wire,
    ledger: &Rc<RefCell<Ledger>>,
    tasks: &mut Vec<Task>,
) -> AnyPeer {
    if setup.lazytls_peer {
        let end = PeerWire(wire.clone());
        let stream = if setup.client {
            TlsAcceptor::new(server_cfg.clone()).accept(end)
        } else {
            TlsConnector::new(client_cfg.clone()).connect(localhost(), end)
        };
        let stream = shared(stream);
        let cmds = Rc::new(PeerCmds::default());
        let (l, w) = (ledger.clone(), wire.clone());
        tasks.push(Box::pin(lazy_peer_reader(stream.clone(), l, w)));
        let (l, w) = (ledger.clone(), wire.clone());
        tasks.push(Box::pin(lazy_peer_writer(
            stream.clone(),
            cmds.clone(),
            l,
            w,
        )));
        AnyPeer::Lazytls(LazyPeer {
            stream,
            wire: wire.clone(),
            ledger: ledger.clone(),
            cmds,
            closing: false,
            done: false,
            key_updates: 0,
        })
    } else {
        let conn: Connection = if setup.client {
            ServerConnection::new(server_cfg.clone())
                .expect("peer")
                .into()
        } else {
            ClientConnection::new(client_cfg.clone(), localhost())
                .expect("peer")
                .into()
        };
        AnyPeer::Rustls(Box::new(Peer {
            conn,
            wire: wire.clone(),
            ledger: ledger.clone(),
            outbox: Vec::new(),
            done: false,
            key_updates: 0,
            key_update_at_handoff: false,
        }))
    }
}

/// Our end's tasks for `usage`, into `tasks`, and our end as the executor sees it.
fn our_tasks(
    usage: Usage,
    stream: TlsStream<Wire>,
    ops: &[Op],
    ledger: &Rc<RefCell<Ledger>>,
    in_read: &Rc<Cell<bool>>,
    tasks: &mut Vec<Task>,
) -> Ends {
    match usage {
        Usage::Whole => {
            let s = shared(stream);
            tasks.push(Box::pin(whole_task(
                s.clone(),
                ops.to_vec(),
                ledger.clone(),
                in_read.clone(),
            )));
            Ends::Whole(s)
        }
        Usage::TokioSplit => {
            let s = shared(stream);
            let (r, w) = tokio::io::split(s.clone());
            let done = Rc::new(ReaderDone::default());
            let l = ledger.clone();
            tasks.push(Box::pin(read_task(
                r,
                ops.to_vec(),
                l,
                in_read.clone(),
                done.clone(),
            )));
            tasks.push(Box::pin(write_task(w, ops.to_vec(), ledger.clone(), done)));
            Ends::Whole(s)
        }
        Usage::Halves => {
            let (r, w) = stream.into_split();
            let (r, w) = (shared(r), shared(w));
            let done = Rc::new(ReaderDone::default());
            let l = ledger.clone();
            tasks.push(Box::pin(read_task(
                r.clone(),
                ops.to_vec(),
                l,
                in_read.clone(),
                done.clone(),
            )));
            tasks.push(Box::pin(write_task(
                w.clone(),
                ops.to_vec(),
                ledger.clone(),
                done,
            )));
            Ends::Halves(r, w)
        }
    }
}

/// The run's totals into `out`, and the invariants on them: transport reads within their
/// bound, and, when nothing fatal happened, every byte delivered both ways and the peer's
/// close_notify read.
fn check_totals(setup: Setup, l: &Ledger, wire: &Wire, peer: &AnyPeer, out: &mut SequenceOutcome) {
    out.wire = wire.stats();
    out.key_updates = peer.key_updates();
    let w = out.wire;
    let bound = 3 * w.deliveries + w.short_reads + 2 * (w.bytes_read / 16_384) + 8;
    assert!(
        w.reads <= bound,
        "{} transport reads for {} bytes in {} deliveries ({} short): bound {bound}",
        w.reads,
        w.bytes_read,
        w.deliveries,
        w.short_reads
    );
    if !l.fatal && !w.fatal {
        assert!(
            l.we_saw_eof,
            "{setup:?}: the peer's close_notify was never read"
        );
        assert_eq!(
            l.we_read, l.peer_sent,
            "{setup:?}: we missed bytes of the peer's"
        );
        assert_eq!(
            l.peer_read, l.we_wrote,
            "{setup:?}: the peer missed bytes of ours"
        );
        out.clean = true;
    }
}

/// Everything that moved: the transport's progress and the bytes either way.
fn progress(peer: &AnyPeer) -> usize {
    let l = peer.ledger().borrow();
    peer.wire().stats().progress + l.we_read + l.we_wrote + l.peer_read + l.peer_sent
}

/// Some task not done was woken.
fn any_woken(flags: &[Arc<Flag>], done: &[bool]) -> bool {
    flags
        .iter()
        .zip(done)
        .any(|(f, d)| !d && f.0.load(Ordering::Acquire))
}

/// Polls every task not done once without a wake-up: a task that completes or makes
/// progress then had lost its wake-up.
fn poll_unwoken(tasks: &mut [Task], done: &[bool], wakers: &[Waker], peer: &AnyPeer) {
    let before = progress(peer);
    for (i, task) in tasks.iter_mut().enumerate() {
        if !done[i] {
            let ready = task
                .as_mut()
                .poll(&mut Context::from_waker(&wakers[i]))
                .is_ready();
            assert!(
                !ready,
                "lost wake-up: task {i} completed when polled without one"
            );
        }
    }
    assert_eq!(
        before,
        progress(peer),
        "lost wake-up: a task made progress when polled without one"
    );
}

/// Polls the tasks whose wakers fired, lets the peer act (between polls, at the points
/// the input picks, and whenever every task waits), and checks for lost wake-ups and busy
/// loops, until our tasks are done and no task is woken. The first `peer_tasks` tasks are
/// a lazytls peer's, which need not finish (its reader waits for a close that our script
/// may never make). `on_idle` runs whenever every task waits; it returns whether it
/// checked anything.
#[allow(clippy::too_many_arguments)]
fn drive(
    tasks: &mut [Task],
    peer_tasks: usize,
    peer: &mut AnyPeer,
    actions: &[(u8, u16)],
    interleave: u8,
    out: &mut SequenceOutcome,
    mut on_idle: impl FnMut() -> bool,
) {
    let flags: Vec<Arc<Flag>> = tasks.iter().map(|_| Arc::new(Flag::default())).collect();
    for f in &flags {
        f.0.store(true, Ordering::Relaxed);
    }
    let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
    let mut done = vec![false; tasks.len()];
    let mut actions = actions.iter();
    let (mut last, mut stalled, mut turn) = (usize::MAX, 0, 0u32);
    loop {
        let ours_done = done[peer_tasks..].iter().all(|d| *d);
        if ours_done && !any_woken(&flags, &done) {
            return;
        }
        turn = turn.wrapping_add(1);
        if interleave != 0 && turn % u32::from(interleave) == 0 {
            if let Some(&(b, size)) = actions.next() {
                peer.act(b, size);
            }
        }
        let mut polled = false;
        for (i, task) in tasks.iter_mut().enumerate() {
            if done[i] || !flags[i].0.swap(false, Ordering::AcqRel) {
                continue;
            }
            polled = true;
            out.polls += 1;
            done[i] = task
                .as_mut()
                .poll(&mut Context::from_waker(&wakers[i]))
                .is_ready();
        }
        if polled {
            let now = progress(peer);
            stalled = if now == last { stalled + 1 } else { 0 };
            last = now;
            assert!(
                stalled < 2_000,
                "{stalled} polls without progress: a busy loop"
            );
            assert!(out.polls < 500_000, "more than 500,000 polls");
            continue;
        }
        out.idle_checks += usize::from(on_idle());
        if let Some(&(b, size)) = actions.next() {
            peer.act(b, size);
            continue;
        }
        if peer.finish() {
            continue;
        }
        if ours_done {
            return;
        }
        // The peer has nothing left to do and nobody was woken.
        poll_unwoken(tasks, &done, &wakers, peer);
        if any_woken(&flags, &done) {
            continue;
        }
        if peer.ledger().borrow().fatal || peer.done() {
            // Our end failed, or the peer closed the connection: a task may wait on a
            // transport that will never move again.
            return;
        }
        panic!("deadlock: every task waits, the peer is done, and nobody was woken");
    }
}
