//! Targets 1 and 2 (`server_handshake`, `client_handshake`): real flights from live
//! engines, the length fields of their records and hellos, and structured mutations of them.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use super::targets::{self, Rng, configs, join_chunks};
use crate::RecordLayer;
use crate::engine::{HandshakeStatus, TestEngine};

/// Moves an engine's outgoing bytes into `to`, returning them.
pub(super) fn transfer(from: &mut TestEngine, to: &mut TestEngine) -> Vec<u8> {
    let n = from.tx().len();
    let bytes = from.tx().data().to_vec();
    from.tx().consume(n);
    let mut off = 0;
    while off < bytes.len() {
        let spare = to.rx_spare();
        let take = spare.len().min(bytes.len() - off);
        spare[..take].copy_from_slice(&bytes[off..off + take]);
        to.rx_commit(take);
        off += take;
    }
    bytes
}

/// The flights of one handshake, each non-empty: (the client's, the server's).
type Flights = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The flights of a real handshake: (client flights, server flights), each non-empty.
fn flights(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Flights {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = TestEngine::client(client, name, RecordLayer::Native).unwrap();
    let mut s = TestEngine::server(server, RecordLayer::Native).unwrap();
    let (mut cf, mut sf) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let cs = c.drive_handshake().unwrap();
        let out = transfer(&mut c, &mut s);
        if !out.is_empty() {
            cf.push(out);
        }
        let ss = s.drive_handshake().unwrap();
        let out = transfer(&mut s, &mut c);
        if !out.is_empty() {
            sf.push(out);
        }
        if cs == HandshakeStatus::Done && ss == HandshakeStatus::Done {
            return (cf, sf);
        }
    }
    panic!("the handshake did not finish");
}

/// Real client and server flights for every configuration the targets use: the
/// all-versions pair with ALPN first, then one per suite.
pub(super) fn real_flights() -> Vec<Flights> {
    let c = configs();
    let mut out = vec![flights(c.client.clone(), c.server.clone())];
    for (client, server) in &c.per_suite {
        out.push(flights(client.clone(), server.clone()));
    }
    out
}

/// Where the length fields are in a flight: every record length, every handshake message
/// length, and inside Client/ServerHellos the session id, suites, compression, extension
/// block and per-extension lengths. Each entry is (offset, width in bytes).
pub(super) fn length_fields(wire: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut rec = 0;
    while rec + 5 <= wire.len() {
        out.push((rec + 3, 2));
        let len = usize::from(u16::from_be_bytes([wire[rec + 3], wire[rec + 4]]));
        let end = (rec + 5 + len).min(wire.len());
        if wire[rec] == 22 {
            let mut msg = rec + 5;
            while msg + 4 <= end {
                out.push((msg + 1, 3));
                let mlen = usize::from(wire[msg + 1]) << 16
                    | usize::from(wire[msg + 2]) << 8
                    | usize::from(wire[msg + 3]);
                if matches!(wire[msg], 1 | 2) {
                    hello_fields(
                        wire,
                        msg + 4,
                        (msg + 4 + mlen).min(end),
                        wire[msg] == 1,
                        &mut out,
                    );
                }
                msg += 4 + mlen;
            }
        }
        rec += 5 + len;
    }
    out
}

/// The vectors inside a Client- or ServerHello body at `start..end`.
fn hello_fields(w: &[u8], start: usize, end: usize, client: bool, out: &mut Vec<(usize, usize)>) {
    let mut p = start + 2 + 32; // version, random
    let mut field = |p: &mut usize, width: usize| -> Option<usize> {
        if *p + width > end {
            return None;
        }
        out.push((*p, width));
        let len = w[*p..*p + width]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        *p += width + len;
        Some(len)
    };
    if field(&mut p, 1).is_none() {
        return;
    }
    if client {
        if field(&mut p, 2).is_none() || field(&mut p, 1).is_none() {
            return;
        }
    } else {
        p += 3; // suite, compression
    }
    if p + 2 > end {
        return;
    }
    out.push((p, 2));
    p += 2;
    while p + 4 <= end {
        out.push((p + 2, 2));
        let len = usize::from(u16::from_be_bytes([w[p + 2], w[p + 3]]));
        p += 4 + len;
    }
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

/// One structured mutation of `wire`, whose length fields are `fields`, drawing a donor
/// from `others` for splices.
pub(super) fn mutate(
    rng: &mut Rng,
    wire: &mut Vec<u8>,
    fields: &[(usize, usize)],
    others: &[Vec<u8>],
) {
    if wire.is_empty() {
        wire.push(rng.next_u64() as u8);
        return;
    }
    let at = rng.below(wire.len());
    match rng.below(10) {
        0 | 1 => wire[at] ^= 1 << rng.below(8),
        2 => wire[at] = [0, 1, 0x7f, 0x80, 0xfe, 0xff][rng.below(6)],
        3 => wire.truncate(at),
        4 | 5 if !fields.is_empty() => {
            let (off, width) = fields[rng.below(fields.len())];
            if off + width <= wire.len() {
                let old = wire[off..off + width]
                    .iter()
                    .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
                let max = (1u64 << (8 * width)) - 1;
                let new = match rng.below(6) {
                    0 => old.wrapping_add(1),
                    1 => old.wrapping_sub(1),
                    2 => 0,
                    3 => max,
                    4 => old.wrapping_add(1 + rng.below(64) as u64),
                    _ => rng.next_u64(),
                } & max;
                for (i, b) in wire[off..off + width].iter_mut().enumerate() {
                    *b = (new >> (8 * (width - 1 - i))) as u8;
                }
            }
        }
        6 if !others.is_empty() => {
            // A splice: our head, then another flight's tail.
            let donor = &others[rng.below(others.len())];
            let from = rng.below(donor.len() + 1);
            wire.truncate(at);
            wire.extend_from_slice(&donor[from..]);
        }
        7 => {
            let n = 1 + rng.below(16.min(wire.len() - at));
            wire.drain(at..at + n);
        }
        8 => {
            let mut junk = vec![0u8; 1 + rng.below(16)];
            rng.fill(&mut junk);
            wire.splice(at..at, junk);
        }
        _ => {
            let tail = wire[at..].to_vec();
            wire.extend_from_slice(&tail);
        }
    }
}

/// Cuts `wire` into 1 to 5 chunks at random points.
fn rechunk(rng: &mut Rng, wire: &[u8]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = (0..rng.below(5))
        .map(|_| rng.below(wire.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([wire.len()]) {
        out.push(wire[prev..c].to_vec());
        prev = c;
    }
    out
}

/// A handshake-target input from real flights: some flights, mutated, re-chunked.
fn handshake_case(rng: &mut Rng, pool: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let flights = &pool[rng.below(pool.len())];
    let donors: Vec<Vec<u8>> = pool.iter().flatten().cloned().collect();
    let take = 1 + rng.below(flights.len());
    let mut chunks = Vec::new();
    for flight in &flights[..take] {
        let mut wire = flight.clone();
        let fields = length_fields(&wire);
        for _ in 0..rng.below(4) {
            mutate(rng, &mut wire, &fields, &donors);
        }
        wire.truncate(u16::MAX.into());
        chunks.extend(rechunk(rng, &wire));
    }
    if rng.below(10) == 0 {
        let mut junk = vec![0u8; rng.below(300)];
        rng.fill(&mut junk);
        chunks.push(junk);
    }
    chunks.truncate(targets::MAX_CHUNKS);
    join_chunks(&chunks)
}

// ---------------------------------------------------------------------------------------
// Targets 1 and 2
// ---------------------------------------------------------------------------------------

/// A few thousand mutated client flights against the server.
pub(super) fn server_handshake_cases() {
    let flights = real_flights();
    let pool: Vec<Vec<Vec<u8>>> = flights.iter().map(|(c, _)| c.clone()).collect();
    // Positive control: a real ClientHello alone gets the server going (it answers and
    // waits; it cannot complete without our keys), and nothing panics.
    for hello in &pool {
        assert!(!targets::server_handshake(&join_chunks(&hello[..1])));
    }
    let mut rng = Rng::new(1);
    for _ in 0..3000 {
        let input = handshake_case(&mut rng, &pool);
        targets::server_handshake(&input);
    }
    for _ in 0..300 {
        let mut junk = vec![0u8; rng.below(600)];
        rng.fill(&mut junk);
        targets::server_handshake(&junk);
    }
}

/// A few thousand mutated server flights against the client.
pub(super) fn client_handshake_cases() {
    let flights = real_flights();
    let pool: Vec<Vec<Vec<u8>>> = flights.iter().map(|(_, s)| s.clone()).collect();
    let mut rng = Rng::new(2);
    for _ in 0..3000 {
        let input = handshake_case(&mut rng, &pool);
        assert!(
            !targets::client_handshake(&input),
            "a client completed a handshake against replayed flights"
        );
    }
    for _ in 0..300 {
        let mut junk = vec![0u8; rng.below(600)];
        rng.fill(&mut junk);
        targets::client_handshake(&junk);
    }
}
