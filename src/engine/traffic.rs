//! The traffic phase: the record layer that carries application data after the
//! handshake. Either rustls's own (its unbuffered connection goes on), or the native
//! layer, whole, or taken apart by a split stream into its receive side and its send side.
//! Each method is one `match` over the layers.

use super::Buffers;
use super::buffered::BufferedClient;
use super::record::{Native, ReadStep, Recv, Requests, Send};
use super::unbuffered::{Rustls, Step, WriteOp};
use crate::error::{Error, Invariant};

/// The record layer of the traffic phase.
pub(super) enum Layer {
    /// rustls's unbuffered connection carries the records.
    Rustls(Rustls),
    /// The native layer, both directions (a whole stream).
    Native(Native),
    /// The native layer's receive direction (a split stream's read half).
    Recv(Box<Recv>),
    /// The native layer's send direction (a split stream's write half).
    Send(Box<Send>),
    /// rustls's buffered client connection: a client whose config enables early data.
    Buffered(Box<BufferedClient>),
}

impl Layer {
    /// Opens one buffered record into `out` (or serves the rest of an opened one). What
    /// it asks to send lands in `tx` (a whole stream) or in `requests` (a receive side).
    pub(super) fn read(
        &mut self,
        bufs: &mut Buffers,
        out: &mut [u8],
        out_n: &mut usize,
        requests: &mut Requests,
    ) -> Result<ReadStep, Error> {
        match self {
            Layer::Native(native) => native.read(&mut bufs.rx, &mut bufs.tx, out, out_n),
            Layer::Recv(recv) => recv.read(&mut bufs.rx, out, out_n, requests),
            Layer::Rustls(conn) => Ok(
                match bufs.process(conn, None, out, out_n, &mut WriteOp::None)? {
                    Step::Continue | Step::PeerClosed => ReadStep::Progress,
                    Step::BlockedHandshake | Step::Traffic | Step::Closed => ReadStep::NeedInput,
                },
            ),
            Layer::Buffered(client) => client.read(bufs, out, out_n),
            Layer::Send(_) => Err(Invariant::WrongDirection.into()),
        }
    }

    /// Seals `data` (at most one batch) into `tx`; returns the bytes taken.
    pub(super) fn seal(&mut self, bufs: &mut Buffers, data: &[u8]) -> Result<usize, Error> {
        match self {
            Layer::Native(native) => native.write(&mut bufs.tx, data),
            Layer::Send(send) => send.write(&mut bufs.tx, data),
            Layer::Buffered(client) => client.seal(bufs, data),
            Layer::Rustls(conn) => {
                let mut op = WriteOp::Encrypt { data, done: 0 };
                run_write_op(conn, bufs, &mut op)?;
                Ok(match op {
                    WriteOp::Encrypt { done, .. } => done,
                    _ => 0,
                })
            }
            Layer::Recv(_) => Err(Invariant::WrongDirection.into()),
        }
    }

    /// Seals a close_notify alert into `tx`.
    pub(super) fn close_notify(&mut self, bufs: &mut Buffers) -> Result<(), Error> {
        match self {
            Layer::Native(native) => native.close_notify(&mut bufs.tx),
            Layer::Send(send) => send.close_notify(&mut bufs.tx),
            Layer::Buffered(client) => {
                client.close_notify(bufs);
                Ok(())
            }
            Layer::Rustls(conn) => {
                run_write_op(conn, bufs, &mut WriteOp::CloseNotify { done: false })
            }
            Layer::Recv(_) => Err(Invariant::WrongDirection.into()),
        }
    }

    /// Sends a TLS 1.3 KeyUpdate that asks the peer to update too.
    pub(super) fn refresh_traffic_keys(&mut self, bufs: &mut Buffers) -> Result<(), Error> {
        match self {
            Layer::Native(native) => native.refresh_traffic_keys(&mut bufs.tx),
            Layer::Send(send) => send.refresh_traffic_keys(&mut bufs.tx),
            Layer::Buffered(client) => client.refresh_traffic_keys(bufs),
            Layer::Rustls(conn) => {
                run_write_op(conn, bufs, &mut WriteOp::RefreshKeys { done: false })
            }
            Layer::Recv(_) => Err(Invariant::WrongDirection.into()),
        }
    }

    /// A send side seals what its receive side asked for; the other layers answered at
    /// once, as they read.
    pub(super) fn answer(&mut self, bufs: &mut Buffers, requests: Requests) -> Result<(), Error> {
        match self {
            Layer::Send(send) => send.answer(&mut bufs.tx, requests),
            Layer::Native(_) | Layer::Recv(_) | Layer::Rustls(_) | Layer::Buffered(_) => Ok(()),
        }
    }
}

/// Runs rustls until it has done `op` and lets us send (a completed handshake always does).
fn run_write_op(conn: &mut Rustls, bufs: &mut Buffers, op: &mut WriteOp<'_>) -> Result<(), Error> {
    let mut n = 0;
    loop {
        match bufs.process(conn, None, &mut [], &mut n, op)? {
            Step::Continue | Step::PeerClosed => continue,
            Step::Traffic => return Ok(()),
            // Unreachable after a completed handshake; refuse rather than spin.
            Step::BlockedHandshake | Step::Closed => return Err(Invariant::CannotSendNow.into()),
        }
    }
}
