//! Splitting the transport: `TcpStream` and `UnixStream` into their owned halves (true
//! full duplex, no lock), anything else with `tokio::io::split`. The type is recognized at
//! run time, so `into_split` works for every transport without a trait to implement.
//!
//! Each transport with owned halves is one module with one `cfg`: where it does not exist
//! (under `--cfg loom` tokio has no `net`; Unix sockets only on Unix) its halves are the
//! uninhabited [`Absent`], and everything goes through `tokio::io::split`. The code below
//! the modules has no `cfg` at all.

use std::any::Any;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};

/// TCP's owned halves.
#[cfg(not(loom))]
mod tcp {
    pub(super) use tokio::net::TcpStream as Whole;
    pub(super) use tokio::net::tcp::{OwnedReadHalf as Read, OwnedWriteHalf as Write};

    pub(super) fn split(whole: Whole) -> (Read, Write) {
        whole.into_split()
    }

    pub(super) fn join(read: Read, write: Write) -> Option<Whole> {
        read.reunite(write).ok()
    }
}

#[cfg(loom)]
mod tcp {
    pub(super) use super::absent::*;
}

/// Unix sockets' owned halves.
#[cfg(all(unix, not(loom)))]
mod unix {
    pub(super) use tokio::net::UnixStream as Whole;
    pub(super) use tokio::net::unix::{OwnedReadHalf as Read, OwnedWriteHalf as Write};

    pub(super) fn split(whole: Whole) -> (Read, Write) {
        whole.into_split()
    }

    pub(super) fn join(read: Read, write: Write) -> Option<Whole> {
        read.reunite(write).ok()
    }
}

#[cfg(not(all(unix, not(loom))))]
mod unix {
    pub(super) use super::absent::*;
}

/// A transport that does not exist in this build: no value of it can be made.
#[cfg_attr(all(unix, not(loom)), allow(dead_code))]
mod absent {
    pub(crate) use super::Absent as Whole;
    pub(crate) use super::Absent as Read;
    pub(crate) use super::Absent as Write;

    pub(crate) fn split(whole: Whole) -> (Read, Write) {
        match whole {}
    }

    pub(crate) fn join(read: Read, _: Write) -> Option<Whole> {
        match read {}
    }
}

/// The halves of a transport this build does not have.
pub(crate) enum Absent {}

pub(crate) enum ReadIo<IO> {
    Tcp(tcp::Read),
    Unix(unix::Read),
    Other(ReadHalf<IO>),
}

pub(crate) enum WriteIo<IO> {
    Tcp(tcp::Write),
    Unix(unix::Write),
    Other(WriteHalf<IO>),
}

/// `value` as a `U`, if `T` is `U`.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    if let Some(u) = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
    {
        return Ok(u);
    }
    // The downcast failed, so nothing was taken.
    Err(slot.expect("value still in place"))
}

// Where a transport is `Absent`, its arm binds an uninhabited value.
#[cfg_attr(any(loom, not(unix)), allow(unreachable_code))]
pub(crate) fn split<IO: AsyncRead + AsyncWrite + 'static>(io: IO) -> (ReadIo<IO>, WriteIo<IO>) {
    let io = match cast::<IO, tcp::Whole>(io) {
        Ok(tcp) => {
            let (r, w) = tcp::split(tcp);
            return (ReadIo::Tcp(r), WriteIo::Tcp(w));
        }
        Err(io) => io,
    };
    let io = match cast::<IO, unix::Whole>(io) {
        Ok(unix) => {
            let (r, w) = unix::split(unix);
            return (ReadIo::Unix(r), WriteIo::Unix(w));
        }
        Err(io) => io,
    };
    let (r, w) = tokio::io::split(io);
    (ReadIo::Other(r), WriteIo::Other(w))
}

/// Joins halves made by one [`split`] call.
pub(crate) fn join<IO: AsyncRead + AsyncWrite + Unpin + 'static>(
    read: ReadIo<IO>,
    write: WriteIo<IO>,
) -> IO {
    const SAME: &str = "halves of one split are of one kind, from one transport";
    let joined = match (read, write) {
        (ReadIo::Other(r), WriteIo::Other(w)) => return r.unsplit(w),
        (ReadIo::Tcp(r), WriteIo::Tcp(w)) => tcp::join(r, w).and_then(|t| cast(t).ok()),
        (ReadIo::Unix(r), WriteIo::Unix(w)) => unix::join(r, w).and_then(|u| cast(u).ok()),
        _ => None,
    };
    joined.expect(SAME)
}

impl AsyncRead for Absent {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match *self {}
    }
}

impl AsyncWrite for Absent {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        match *self {}
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        match *self {}
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        match *self {}
    }
}

impl<IO: AsyncRead + AsyncWrite> AsyncRead for ReadIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadIo::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadIo::Unix(r) => Pin::new(r).poll_read(cx, buf),
            ReadIo::Other(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite> AsyncWrite for WriteIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteIo::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteIo::Unix(w) => Pin::new(w).poll_write(cx, buf),
            WriteIo::Other(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteIo::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteIo::Unix(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteIo::Other(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteIo::Tcp(w) => w.is_write_vectored(),
            WriteIo::Unix(w) => w.is_write_vectored(),
            WriteIo::Other(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteIo::Unix(w) => Pin::new(w).poll_flush(cx),
            WriteIo::Other(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteIo::Unix(w) => Pin::new(w).poll_shutdown(cx),
            WriteIo::Other(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
