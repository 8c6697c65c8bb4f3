//! What rustls's handshake is given of the incoming bytes: whole records, one more each
//! time it has deframed all it was given ([`RecordFeed`]).
//!
//! Why not all of them: the native record layer takes over from rustls's connection the
//! moment the handshake completes. A record that rustls processed after the handshake's
//! last message would be handled by rustls and then lost with its state at the hand-off:
//! a KeyUpdate right behind the peer's Finished moved rustls's sending key and queued an
//! answer that `dangerous_into_kernel_connection` drops (rustls does not check for it).
//! Given one record at a time, rustls stops at the end of the handshake, and everything
//! after it stays in `rx` for the record layer that carries the connection.
//!
//! It also tells where the bytes rustls has not seen start. rustls joins a handshake
//! message that spans records in place, so the bytes it was given no longer read as
//! records; the bytes after them still do, and the size of the next transport read is
//! judged from them ([`read_room`]).

use super::buffers::{MAX_RECORD, READ_MIN};

/// The length of a record header.
const HEADER: usize = 5;

/// How much of the incoming buffer rustls's handshake has been given.
#[derive(Debug)]
pub(super) struct RecordFeed {
    /// The end of the records given, counted from the front of `rx`. Past `rx.len()` while
    /// the last record given is partly here.
    end: usize,
    /// rustls deframed everything it was given: the next record goes to it.
    wants_more: bool,
}

impl Default for RecordFeed {
    fn default() -> Self {
        RecordFeed {
            end: 0,
            wants_more: true,
        }
    }
}

impl RecordFeed {
    /// How many leading bytes of `rx` rustls may see now: the records given so far, and
    /// the next one if rustls asked for more and its header is here.
    pub(super) fn limit(&mut self, rx: &[u8]) -> usize {
        if self.wants_more && self.end + HEADER <= rx.len() {
            self.end += HEADER + body_len(&rx[self.end..]);
            self.wants_more = false;
        }
        self.end.min(rx.len())
    }

    /// rustls discarded `n` bytes from the front of `rx`.
    pub(super) fn discarded(&mut self, n: usize) {
        self.end = self.end.saturating_sub(n);
    }

    /// rustls needs more. Returns whether the next record's header is already in `rx`
    /// (call rustls again) rather than on the wire (read first). While the last record
    /// given is only partly here, rustls waits for the rest of it, not for a new record:
    /// the next one goes to it only after that one was deframed.
    pub(super) fn blocked(&mut self, rx_len: usize) -> bool {
        if self.end > rx_len {
            return false;
        }
        self.wants_more = true;
        self.end + HEADER <= rx_len
    }

    /// Where the bytes rustls has not seen start in `rx` (see [`read_room`]).
    pub(super) fn unseen_from(&self) -> usize {
        self.end
    }
}

fn body_len(header: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([header[3], header[4]]))
}

/// The room the next transport read offers, judged from the records that start at `from`
/// in `rx` (`from` may lie past `rx.len()`, inside a record partly here):
///
/// - the rest of the record that is partly here, so that a connection waiting for it holds
///   that record and no more, and a large flight comes a record per read, never a byte;
/// - [`READ_MIN`] when the next record has not begun, or only part of its header is here;
/// - [`READ_MIN`] for a header that announces more than the largest record: it is rejected
///   once judged, and must not make the buffer grow first.
pub(crate) fn read_room(rx: &[u8], from: usize) -> usize {
    if from > rx.len() {
        return (from - rx.len()).min(MAX_RECORD);
    }
    let mut at = from;
    while let Some(header) = rx.get(at..at + HEADER) {
        let record = HEADER + body_len(header);
        if record > MAX_RECORD {
            return READ_MIN;
        }
        if at + record > rx.len() {
            return at + record - rx.len();
        }
        at += record;
    }
    READ_MIN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: usize) -> Vec<u8> {
        let mut r = vec![22, 3, 3, (len >> 8) as u8, len as u8];
        r.resize(HEADER + len, 0);
        r
    }

    #[test]
    fn gives_one_record_each_time_rustls_is_blocked() {
        let rx = [record(10), record(20), record(3)[..4].to_vec()].concat();
        let mut feed = RecordFeed::default();
        assert_eq!(feed.limit(&rx), 15);
        assert_eq!(feed.limit(&rx), 15, "not blocked: the same records");
        assert!(feed.blocked(rx.len()));
        assert_eq!(feed.limit(&rx), 40);
        feed.discarded(15);
        let rx = &rx[15..];
        assert_eq!(feed.limit(rx), 25);
        assert!(
            !feed.blocked(rx.len()),
            "only part of the next header is here"
        );
        assert_eq!(feed.limit(rx), 25);
    }

    /// A record given while partly here: when it completes, rustls gets it alone, and the
    /// record after it only once rustls is blocked again (it used to get both at once, and
    /// a KeyUpdate right behind a Finished that came in two reads reached rustls).
    #[test]
    fn a_partial_record_completes_before_the_next_is_given() {
        let whole = [record(10), record(20)].concat();
        let mut feed = RecordFeed::default();
        assert_eq!(feed.limit(&whole[..8]), 8);
        assert!(!feed.blocked(8), "waits for the rest of the record given");
        assert_eq!(feed.limit(&whole), 15, "the completed record alone");
        assert!(feed.blocked(whole.len()));
        assert_eq!(feed.limit(&whole), 40);
    }

    #[test]
    fn room_is_the_rest_of_the_partial_record() {
        let whole = [record(100), record(200)].concat();
        assert_eq!(read_room(&whole, 0), READ_MIN);
        assert_eq!(read_room(&whole[..150], 0), 310 - 150);
        assert_eq!(read_room(&whole[..107], 0), READ_MIN, "a header fragment");
        assert_eq!(read_room(&whole[..150], 105), 160);
        assert_eq!(
            read_room(&whole[..150], 160),
            10,
            "inside a record given to rustls"
        );
        let huge = [0x17, 3, 3, 0xff, 0xff];
        assert_eq!(read_room(&huge, 0), READ_MIN);
    }
}
