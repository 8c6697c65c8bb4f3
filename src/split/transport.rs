//! Splitting the transport: `TcpStream` and `UnixStream` into their owned halves (true
//! full duplex, no lock), anything else with `tokio::io::split`. The type is recognized at
//! run time, so `into_split` works for every transport without a trait to implement.
//! (Under `--cfg loom` tokio has no `net`: everything goes through `tokio::io::split`.)

use std::any::Any;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
#[cfg(not(loom))]
use tokio::net::{TcpStream, tcp};
#[cfg(all(unix, not(loom)))]
use tokio::net::{UnixStream, unix};

pub(crate) enum ReadIo<IO> {
    #[cfg(not(loom))]
    Tcp(tcp::OwnedReadHalf),
    #[cfg(all(unix, not(loom)))]
    Unix(unix::OwnedReadHalf),
    Other(ReadHalf<IO>),
}

pub(crate) enum WriteIo<IO> {
    #[cfg(not(loom))]
    Tcp(tcp::OwnedWriteHalf),
    #[cfg(all(unix, not(loom)))]
    Unix(unix::OwnedWriteHalf),
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

pub(crate) fn split<IO: AsyncRead + AsyncWrite + 'static>(io: IO) -> (ReadIo<IO>, WriteIo<IO>) {
    #[cfg(not(loom))]
    let io = match cast::<IO, TcpStream>(io) {
        Ok(tcp) => {
            let (r, w) = tcp.into_split();
            return (ReadIo::Tcp(r), WriteIo::Tcp(w));
        }
        Err(io) => io,
    };
    #[cfg(all(unix, not(loom)))]
    let io = match cast::<IO, UnixStream>(io) {
        Ok(unix) => {
            let (r, w) = unix.into_split();
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
    match (read, write) {
        (ReadIo::Other(r), WriteIo::Other(w)) => r.unsplit(w),
        #[cfg(not(loom))]
        (ReadIo::Tcp(r), WriteIo::Tcp(w)) => {
            let tcp = r.reunite(w).map_err(|_| ()).expect(SAME);
            cast::<TcpStream, IO>(tcp).map_err(|_| ()).expect(SAME)
        }
        #[cfg(all(unix, not(loom)))]
        (ReadIo::Unix(r), WriteIo::Unix(w)) => {
            let unix = r.reunite(w).map_err(|_| ()).expect(SAME);
            cast::<UnixStream, IO>(unix).map_err(|_| ()).expect(SAME)
        }
        #[allow(unreachable_patterns)]
        _ => unreachable!("{SAME}"),
    }
}

impl<IO: AsyncRead + AsyncWrite> AsyncRead for ReadIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(not(loom))]
            ReadIo::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            #[cfg(all(unix, not(loom)))]
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
            #[cfg(not(loom))]
            WriteIo::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            #[cfg(all(unix, not(loom)))]
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
            #[cfg(not(loom))]
            WriteIo::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            #[cfg(all(unix, not(loom)))]
            WriteIo::Unix(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteIo::Other(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            #[cfg(not(loom))]
            WriteIo::Tcp(w) => w.is_write_vectored(),
            #[cfg(all(unix, not(loom)))]
            WriteIo::Unix(w) => w.is_write_vectored(),
            WriteIo::Other(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(not(loom))]
            WriteIo::Tcp(w) => Pin::new(w).poll_flush(cx),
            #[cfg(all(unix, not(loom)))]
            WriteIo::Unix(w) => Pin::new(w).poll_flush(cx),
            WriteIo::Other(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(not(loom))]
            WriteIo::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            #[cfg(all(unix, not(loom)))]
            WriteIo::Unix(w) => Pin::new(w).poll_shutdown(cx),
            WriteIo::Other(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
