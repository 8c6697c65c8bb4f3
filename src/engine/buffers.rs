//! Reusable byte buffers for the engine. They allocate when a connection first needs them
//! and grow only for large handshake flights; in the steady state they never allocate.

/// The largest plaintext one record carries.
pub(crate) const MAX_PLAINTEXT: usize = 16_384;

/// Room for one maximum TLS record (16 KiB plaintext plus the largest overhead rustls
/// accepts on receive), so one record always fits after compaction.
pub(crate) const MAX_RECORD: usize = 16_384 + 2_048 + 5;

/// How much ciphertext is buffered at most before a write waits for the transport: four
/// full records and a little (a KeyUpdate or an alert ahead of them). A large write then
/// goes out as one transport write of four records rather than four writes. That matters
/// most where reader and writer contend for a socket's lock in the kernel: in an A/B of
/// three alternating runs (BENCHMARKS.md), the full-duplex TCP figure went from 0.99-1.19x
/// to 1.17-1.28x tokio-rustls, and one-way TCP on multi_thread from 0.74-1.04x to
/// 0.93-1.17x. A flush gives the memory above one record back ([`TX_KEEP`]), so an idle
/// connection does not keep it.
pub(crate) const TX_BATCH: usize = 4 * MAX_PLAINTEXT + 512;

/// The working size of the outgoing buffer: a batch and a control record or two.
pub(crate) const TX_CAP: usize = TX_BATCH + 512;

/// What the outgoing buffer keeps after a flush: one full record, so that a connection
/// that writes a record at a time and flushes never reallocates.
pub(crate) const TX_KEEP: usize = MAX_RECORD;

/// The working size of the incoming buffer once full records stream in: room for three,
/// so that one transport read can bring several records when the transport holds them,
/// and they are opened in place one after another (fewer reads per byte). It grows there
/// only after reads that filled all their room, and shrinks back to one record when its
/// connection goes idle ([`Window::release`]).
pub(crate) const RX_CAP: usize = 3 * MAX_RECORD;

/// The first read from the transport asks for this much; the incoming buffer grows to
/// one whole record only when a record that large arrives (as rustls's deframer does).
pub(crate) const READ_MIN: usize = 4096;

/// How many released buffers a thread keeps for reuse (see [`Window::release`]).
const SPARE_BUFFERS: usize = 8;

/// How many bulk-sized receive buffers a thread keeps for reuse (see
/// [`Window::shed_to_one_record`]).
const SPARE_BULK_BUFFERS: usize = 4;

/// How many of each kind the process keeps beyond the threads' own: what a thread's full
/// list spills, for a thread whose list is empty.
const SHARED_SPARE_BUFFERS: usize = 32;
const SHARED_SPARE_BULK_BUFFERS: usize = 8;

type LocalList = std::cell::RefCell<Vec<Vec<u8>>>;
type SharedList = std::sync::Mutex<Vec<Vec<u8>>>;

thread_local! {
    /// Buffers that idle connections gave back, for the next window on this thread that
    /// needs one. Each is at most one record's size (bigger ones are cut or go to
    /// `SPARE_BULK`), so a thread keeps at most `SPARE_BUFFERS` × `MAX_RECORD` bytes here,
    /// and `SPARE_BULK_BUFFERS` × `RX_CAP` in `SPARE_BULK`.
    static SPARE: LocalList = const { std::cell::RefCell::new(Vec::new()) };
    /// Receive buffers grown for bulk reads ([`RX_CAP`]) that their connections stopped
    /// needing: a connection that waits keeps one record's room, and takes a bulk buffer
    /// from here again when the transport has more to give. Lending them, not keeping one
    /// per connection, is what lets a connection that waits with part of a record hold no
    /// more than that record, while streaming allocates nothing.
    static SPARE_BULK: LocalList = const { std::cell::RefCell::new(Vec::new()) };
}

/// The process's spares behind the threads' own. A task on a multi-threaded runtime
/// moves between workers: its connection releases a buffer on one thread and wants one on
/// another. The thread-local lists serve the common case without a lock; what one thread
/// gives beyond its list's room goes here, and a thread whose list is empty takes from
/// here before it allocates. So the buffers circulate however tasks move, and streaming
/// allocates nothing per record on any runtime.
static SHARED_SPARE: SharedList = std::sync::Mutex::new(Vec::new());
static SHARED_SPARE_BULK: SharedList = std::sync::Mutex::new(Vec::new());

/// One kind of spare buffer: a thread's list, and the process's behind it.
struct Spares {
    local: &'static std::thread::LocalKey<LocalList>,
    local_max: usize,
    shared: &'static SharedList,
    shared_max: usize,
}

const SMALL: Spares = Spares {
    local: &SPARE,
    local_max: SPARE_BUFFERS,
    shared: &SHARED_SPARE,
    shared_max: SHARED_SPARE_BUFFERS,
};

const BULK: Spares = Spares {
    local: &SPARE_BULK,
    local_max: SPARE_BULK_BUFFERS,
    shared: &SHARED_SPARE_BULK,
    shared_max: SHARED_SPARE_BULK_BUFFERS,
};

fn take_from(list: &mut Vec<Vec<u8>>, len: usize) -> Option<Vec<u8>> {
    let at = list.iter().position(|b| b.len() >= len)?;
    Some(list.swap_remove(at))
}

impl Spares {
    /// Takes a spare buffer of at least `len` bytes: this thread's first, then the
    /// process's.
    fn take(&self, len: usize) -> Option<Vec<u8>> {
        let local = self.local.try_with(|s| take_from(&mut s.borrow_mut(), len));
        if let Ok(Some(buf)) = local {
            return Some(buf);
        }
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        take_from(&mut shared, len)
    }

    /// Keeps `buf` for reuse if this thread's list or the process's has room; gives it
    /// back otherwise (with both full, or while the thread exits, it is freed).
    fn give(&self, buf: Vec<u8>) -> Option<Vec<u8>> {
        let mut buf = Some(buf);
        let _ = self.local.try_with(|s| {
            let mut spare = s.borrow_mut();
            if spare.len() < self.local_max {
                spare.extend(buf.take());
            }
        });
        let buf = buf?;
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if shared.len() < self.shared_max {
            shared.push(buf);
            return None;
        }
        Some(buf)
    }
}

/// A connection's byte buffers. The I/O core owns them and passes them to each
/// [`Engine`](super::Engine) call; the engine reads the peer's bytes from `rx` and writes
/// its own into `tx`. When they are released and grown is the I/O core's policy
/// (`engine_io.rs`).
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// Incoming TLS bytes not yet consumed.
    pub(crate) rx: Window,
    /// Outgoing TLS bytes not yet written to the transport.
    pub(crate) tx: Window,
    /// Decrypted bytes the caller's buffer had no room for (rustls's layer only).
    pub(crate) plain: Window,
    /// Where small write slices are gathered into one record.
    pub(crate) gather: Window,
    /// A server's 0-RTT early data, until the application takes it.
    pub(crate) early: Window,
    /// The peer's close_notify was processed.
    pub(crate) peer_closed: bool,
}

impl Buffers {
    /// Divides the buffers with the engine ([`Engine::split_off_send`](super::Engine::split_off_send)):
    /// the send direction's go to the returned set.
    pub(crate) fn split_off_send(&mut self) -> Buffers {
        Buffers {
            tx: std::mem::take(&mut self.tx),
            gather: std::mem::take(&mut self.gather),
            ..Buffers::default()
        }
    }

    /// Joins what [`Buffers::split_off_send`] divided.
    pub(crate) fn join(mut recv: Buffers, send: Buffers) -> Buffers {
        recv.tx = send.tx;
        recv.gather = send.gather;
        recv
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.rx.capacity()
            + self.tx.capacity()
            + self.plain.capacity()
            + self.gather.capacity()
            + self.early.capacity()
    }
}

/// Gives `buf` to the spares: a bulk-sized one as it is, any other cut to one record.
/// With the spares full, or while the thread exits, it is freed.
fn give_spare(mut buf: Vec<u8>) {
    if buf.len() > RX_CAP {
        // Grown for a handshake flight: bulk reads need no more than this.
        buf.truncate(RX_CAP);
        buf.shrink_to_fit();
    }
    if buf.len() > MAX_RECORD {
        let Some(returned) = BULK.give(buf) else {
            return;
        };
        buf = returned;
        // Cut in place (as a rule): spares stay small, and waking up costs nothing.
        buf.truncate(MAX_RECORD);
        buf.shrink_to_fit();
    }
    let _ = SMALL.give(buf);
}

/// A closed connection's buffers go to the spares too, so that a server that accepts and
/// closes connections takes each new connection's buffers from them.
impl Drop for Window {
    fn drop(&mut self) {
        self.start = 0;
        self.end = 0;
        self.release();
    }
}

/// A window `[start, end)` of valid bytes inside a `Vec<u8>`.
///
/// Used for incoming TLS bytes (filled from the transport, consumed by rustls), outgoing
/// TLS bytes (filled by rustls, drained to the transport) and decrypted plaintext that the
/// caller's buffer could not take yet.
#[derive(Debug, Default)]
pub(crate) struct Window {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Window {
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// The valid bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The valid bytes, mutably (rustls deframes in place).
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// Drops `n` bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes at least `want` bytes of spare room at the end, moving the valid bytes to the
    /// front first. Allocates only when the buffer has never been this large.
    pub(crate) fn reserve(&mut self, want: usize) {
        self.reserve_capped(want, usize::MAX);
    }

    /// [`Window::reserve`] for a buffer with a known working size `cap`: it grows by
    /// doubling (so a few growths reach the working size, however the traffic falls) but
    /// not past `cap` unless `want` itself needs more.
    pub(crate) fn reserve_capped(&mut self, want: usize, cap: usize) {
        if self.buf.len() - self.end >= want {
            return;
        }
        if self.buf.is_empty() {
            // A released window takes a spare buffer first: a connection that goes idle
            // and wakes up again costs no allocation.
            if let Some(spare) = SMALL.take(0) {
                self.buf = spare;
                if self.buf.len() >= want {
                    return;
                }
            }
        }
        self.compact();
        if self.buf.len() - self.end < want {
            // `resize` alone may double the capacity past `cap` (the incoming buffer kept
            // room for two records where one is all it ever needs).
            let len = (self.end + want).max((2 * self.buf.len()).min(cap));
            self.buf.reserve_exact(len - self.buf.len());
            self.buf.resize(len, 0);
        }
    }

    /// Doubles the buffer, up to `cap`, moving the valid bytes to the front: for a
    /// transport that had more to give than the room it was offered.
    pub(crate) fn grow_toward(&mut self, cap: usize) {
        let len = (2 * self.buf.len()).min(cap);
        if len <= self.buf.len() {
            return;
        }
        if let Some(bulk) = BULK.take(len) {
            self.move_into(bulk);
            return;
        }
        self.compact();
        self.buf.reserve_exact(len - self.buf.len());
        self.buf.resize(len, 0);
    }

    /// Holds at most one record's room: the valid bytes (at most one record) move to a
    /// one-record buffer, and a larger one goes to the thread's bulk spares, to be taken
    /// again by the next [`Window::grow_toward`] on this thread.
    pub(crate) fn shed_to_one_record(&mut self) {
        if self.buf.len() <= MAX_RECORD || self.len() > MAX_RECORD {
            return;
        }
        let small = SMALL
            .take(MAX_RECORD)
            .unwrap_or_else(|| vec![0; MAX_RECORD]);
        self.move_into(small);
    }

    /// Replaces the buffer with `buf`, copying the valid bytes to its front; the old
    /// buffer goes to the thread's spares.
    fn move_into(&mut self, mut buf: Vec<u8>) {
        let len = self.len();
        buf[..len].copy_from_slice(self.data());
        let old = std::mem::replace(&mut self.buf, buf);
        self.start = 0;
        self.end = len;
        give_spare(old);
    }

    /// Moves the valid bytes to the front, so that all the room is at the end.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// The spare room at the end, to be filled and then committed with [`Window::commit`].
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of the spare room as valid.
    pub(crate) fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// Appends bytes, growing if needed.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// The valid bytes, as a vector (no copy when they start at the front).
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.truncate(self.end);
        buf.drain(..self.start);
        buf
    }

    /// Gives an empty window's buffer back to this thread's spares, so that an idle
    /// connection holds no buffer (as OpenSSL's `SSL_MODE_RELEASE_BUFFERS` does). A buffer
    /// grown for bulk reads goes to the bulk spares, any other is cut to one record; with
    /// the spares full, it is freed.
    pub(crate) fn release(&mut self) {
        if !self.is_empty() || self.buf.is_empty() {
            return;
        }
        give_spare(std::mem::take(&mut self.buf));
    }

    /// A released window takes a spare buffer, if one is there, without allocating: a
    /// bulk-sized one when `bulk` (and any if none is), else one of at most a record.
    /// Returns whether the window now holds a buffer.
    pub(crate) fn adopt_spare(&mut self, bulk: bool) -> bool {
        debug_assert!(self.is_released());
        let spare = match bulk {
            true => BULK.take(RX_CAP).or_else(|| SMALL.take(0)),
            false => SMALL.take(0),
        };
        match spare {
            Some(buf) => {
                self.buf = buf;
                self.start = 0;
                self.end = 0;
                true
            }
            None => false,
        }
    }

    /// Whether the window holds no buffer (never had one, or released it).
    pub(crate) fn is_released(&self) -> bool {
        self.buf.is_empty()
    }

    /// Empties the window, keeping its buffer.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Bytes of heap this window holds.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Shrinks an empty window whose capacity grew past `keep` down to `keep` bytes.
    pub(crate) fn shrink_to_if_idle(&mut self, keep: usize) {
        if self.is_empty() && self.buf.len() > keep {
            self.buf.truncate(keep);
            self.buf.shrink_to(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_compacts_and_reuses() {
        let mut w = Window::default();
        w.extend(b"hello world");
        w.consume(6);
        assert_eq!(w.data(), b"world");
        let cap = w.capacity();
        w.reserve(6);
        assert_eq!(w.data(), b"world");
        assert_eq!(w.capacity(), cap, "compaction made room without growing");
        w.spare()[..1].copy_from_slice(b"!");
        w.commit(1);
        assert_eq!(w.data(), b"world!");
        w.consume(6);
        assert!(w.is_empty());
    }
}
