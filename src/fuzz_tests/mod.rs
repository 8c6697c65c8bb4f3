//! The fuzz targets' logic under plain `cargo test` (issue 8), for toolchains where
//! cargo-fuzz cannot run and as a quick regression net where it can.
//!
//! The checks are not copied: `fuzz/src/targets.rs`, the file the cargo-fuzz binaries run,
//! is included below, so every assertion a fuzzer would trip trips here too. What this file
//! adds is the inputs: a few thousand deterministic cases per target from a small
//! xorshift generator, most of them structured mutations of real protocol bytes (ClientHellos
//! and server flights captured from live engines, records sealed by a live server or under
//! the fixed keys of `open_fixed`): bit flips, truncations, splices, re-chunking, and edits
//! of every length field the parser reads. Each test also keeps positive controls (valid
//! inputs that must succeed), so a harness that rejected everything would fail.
//!
//! `write_seed_corpora` (ignored) writes the seed corpora in `fuzz/corpus/` from the same
//! generators: `cargo test --lib write_seed_corpora -- --ignored`.
#![cfg(any(feature = "aws-lc-rs", feature = "ring"))]

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use crate::RecordLayer;
use crate::engine::{Engine, HandshakeStatus};

/// The shared target logic, compiled inside the crate.
#[allow(unreachable_pub, dead_code)]
mod targets {
    use crate as lazytls;
    include!("../fuzz/src/targets.rs");
}

/// The differential target's logic, compiled inside the crate.
#[allow(unreachable_pub, dead_code)]
mod differential {
    use super::targets::*;
    use crate as lazytls;

    const RSA_TEST_KEY: &str = include_str!("../tests/common/rsa_test_key.pem");

    include!("../fuzz/src/differential.rs");
}

use targets::{Rng, configs, join_chunks, op};

// ---------------------------------------------------------------------------------------
// Real protocol bytes
// ---------------------------------------------------------------------------------------

/// Moves an engine's outgoing bytes into `to`, returning them.
fn transfer(from: &mut Engine, to: &mut Engine) -> Vec<u8> {
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
    let mut c = Engine::client(client, name, RecordLayer::Native).unwrap();
    let mut s = Engine::server(server, RecordLayer::Native).unwrap();
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
fn real_flights() -> Vec<Flights> {
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
fn length_fields(wire: &[u8]) -> Vec<(usize, usize)> {
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
fn mutate(rng: &mut Rng, wire: &mut Vec<u8>, fields: &[(usize, usize)], others: &[Vec<u8>]) {
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
#[test]
fn server_handshake_cases() {
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
#[test]
fn client_handshake_cases() {
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

// ---------------------------------------------------------------------------------------
// Target 3: records
// ---------------------------------------------------------------------------------------

/// Valid application-data records under `open_fixed`'s fixed keys, in its framing
/// `framing % 3` (TLS 1.3 AES-128-GCM, TLS 1.2 AES-128-GCM, TLS 1.2 ChaCha20-Poly1305),
/// sealed here with the provider crate's AEAD, independently of the record layer.
fn fixed_records(framing: u8, plaintexts: &[&[u8]]) -> Vec<u8> {
    #[cfg(feature = "aws-lc-rs")]
    use aws_lc_rs::aead;
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    use ring::aead;

    let framing = framing % 3;
    let (alg, key) = if framing == 2 {
        (&aead::CHACHA20_POLY1305, &[7u8; 32][..])
    } else {
        (&aead::AES_128_GCM, &[7u8; 16][..])
    };
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
    let mut wire = Vec::new();
    for (seq, p) in plaintexts.iter().enumerate() {
        let mut nonce = [9u8; 12];
        for (n, s) in nonce[4..].iter_mut().zip((seq as u64).to_be_bytes()) {
            *n ^= s;
        }
        let mut body = p.to_vec();
        if framing == 0 {
            body.push(23); // the inner content type
        }
        let explicit = if framing == 1 { 8 } else { 0 };
        let len = (explicit + body.len() + 16) as u16;
        let header = [23, 3, 3, (len >> 8) as u8, len as u8];
        let aad: Vec<u8> = if framing == 0 {
            header.to_vec()
        } else {
            let mut aad = (seq as u64).to_be_bytes().to_vec();
            aad.extend([23, 3, 3]);
            aad.extend((p.len() as u16).to_be_bytes());
            aad
        };
        let nonce_value = aead::Nonce::assume_unique_for_key(nonce);
        let tag = key
            .seal_in_place_separate_tag(nonce_value, aead::Aad::from(&aad[..]), &mut body)
            .unwrap();
        wire.extend_from_slice(&header);
        if framing == 1 {
            wire.extend_from_slice(&nonce[4..]);
        }
        wire.extend_from_slice(&body);
        wire.extend_from_slice(tag.as_ref());
    }
    wire
}

/// `open_fixed`: valid records open (positive control), and mutated ones never panic or
/// yield plaintext that was not sealed.
#[test]
fn open_fixed_cases() {
    let plain: [&[u8]; 3] = [b"hello", &[0x55; 300], b""];
    let all: Vec<u8> = plain.concat();
    let mut rng = Rng::new(3);
    for framing in 0..3u8 {
        let wire = fixed_records(framing, &plain);
        assert_eq!(
            crate::fuzzing::open_fixed(framing, &wire),
            all,
            "framing {framing}"
        );
        let fields = length_fields(&wire);
        for i in 0..1500 {
            let mut w = wire.clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut w, &fields, &[]);
            }
            // Now and then the wrong framing: keys and nonces no longer match.
            let f = if i % 5 == 0 {
                rng.next_u64() as u8
            } else {
                framing
            };
            let got = crate::fuzzing::open_fixed(f, &w);
            if f % 3 == framing {
                assert!(
                    all.starts_with(&got),
                    "framing {framing}, case {i}: forged plaintext"
                );
            } else {
                assert!(got.is_empty(), "framing {framing} opened as {f}");
            }
            let mut input = vec![0u8, f];
            input.extend_from_slice(&w);
            targets::native_records(&input);
        }
    }
}

/// One op sequence for a live pair.
fn live_case(rng: &mut Rng, suites: usize) -> Vec<u8> {
    let sel = rng.below(2 * suites) as u8;
    let mut input = vec![1 | sel << 1];
    let tamper = rng.below(3) != 0;
    for _ in 0..1 + rng.below(10) {
        let op = match rng.below(20) {
            0..=7 => op::VALID,
            8..=10 => op::SPLIT,
            11..=13 => op::ANSWER,
            14..=16 if tamper => op::EDIT,
            17 if tamper => op::RAW,
            18 if tamper => op::REPLAY,
            _ => op::VALID,
        };
        input.push(op);
        if op == op::ANSWER || op == op::REPLAY {
            continue;
        }
        let len = match rng.below(10) {
            0..=6 => rng.below(200),
            7 | 8 => rng.below(5000),
            _ => rng.below(40_000),
        };
        let mut chunk = vec![0u8; len];
        rng.fill(&mut chunk);
        if op == op::RAW && rng.below(2) == 0 && len >= 5 {
            // Record-shaped junk reaches the AEAD rather than the header checks.
            let body = (len - 5) as u16;
            chunk[..5].copy_from_slice(&[23, 3, 3, (body >> 8) as u8, body as u8]);
        }
        input.extend_from_slice(&(len as u16).to_be_bytes());
        input.extend_from_slice(&chunk);
        match op {
            op::SPLIT => input.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes()),
            op::EDIT => {
                input.push(rng.next_u64() as u8);
                input.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes());
            }
            _ => {}
        }
    }
    input
}

/// Live pairs over every suite and both client record layers: valid, split, edited and
/// replayed records and raw junk, with the checks of `targets::native_records`.
#[test]
fn live_record_cases() {
    let suites = configs().per_suite.len();
    let mut rng = Rng::new(4);
    let (mut valid, mut delivered, mut failed) = (0, 0, 0);
    for _ in 0..3000 {
        let input = live_case(&mut rng, suites);
        let out = targets::native_records(&input);
        valid += usize::from(!out.tampered);
        delivered += usize::from(out.delivered > 0);
        failed += usize::from(out.failed);
    }
    println!("3000 live pairs: {valid} untampered, {delivered} delivered data, {failed} failed");
    // The mix reaches both ends: streams that deliver, and streams that fail.
    assert!(
        valid > 600 && delivered > 1200 && failed > 600,
        "valid {valid}, delivered {delivered}, failed {failed}"
    );
}

/// A client and a server engine with a completed handshake over configs `i` of
/// `configs().per_suite`, the client on `layer`, with the server's tickets read.
fn engine_pair(i: usize, layer: RecordLayer) -> (Engine, Engine) {
    let (client, server) = configs().per_suite[i].clone();
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = Engine::client(client, name, layer).unwrap();
    let mut s = Engine::server(server, RecordLayer::Native).unwrap();
    for _ in 0..20 {
        let cs = c.drive_handshake().unwrap();
        transfer(&mut c, &mut s);
        let ss = s.drive_handshake().unwrap();
        transfer(&mut s, &mut c);
        if cs == HandshakeStatus::Done && ss == HandshakeStatus::Done {
            let mut buf = [0u8; 64];
            assert!(matches!(
                c.read(&mut buf),
                Ok(crate::engine::ReadStatus::NeedInput)
            ));
            return (c, s);
        }
    }
    panic!("the handshake did not finish");
}

/// Errors are sticky inside the engine, on both record layers, and alert once: after a
/// rejected record (bad MAC, oversized), a second `Engine::read` fails again without
/// handing the record to rustls again (which used to trip rustls's
/// `debug_assert!(!self.sent_fatal_alert)` on the rustls layer, and queue a second alert in
/// release builds; fixed by `Engine::guard`). `fuzzing::Pair::feed_client` relies on this.
#[test]
fn engine_errors_are_sticky() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let mut failures = Vec::new();
    for i in 0..configs().per_suite.len() {
        for layer in [RecordLayer::Native, RecordLayer::Rustls] {
            for corruption in ["bad mac", "oversized"] {
                let (mut c, mut s) = engine_pair(i, layer);
                s.write(&[std::io::IoSlice::new(b"sticky")]).unwrap();
                let mut wire = s.tx().data().to_vec();
                let n = s.tx().len();
                s.tx().consume(n);
                if corruption == "bad mac" {
                    *wire.last_mut().unwrap() ^= 1;
                } else {
                    wire[3..5].copy_from_slice(&0xffffu16.to_be_bytes());
                }
                let spare = c.rx_spare();
                spare[..wire.len()].copy_from_slice(&wire);
                c.rx_commit(wire.len());
                let mut buf = [0u8; 64];
                assert!(c.read(&mut buf).is_err(), "{corruption} accepted");
                c.collect_alert();
                let alerted = c.tx().len();
                assert!(alerted > 0, "no alert for {corruption}");
                let again = catch_unwind(AssertUnwindSafe(|| {
                    let second = c.read(&mut buf).is_err();
                    c.collect_alert();
                    (second, c.tx().len())
                }));
                let what = format!(
                    "suite {i}, {} layer, {corruption}",
                    if layer == RecordLayer::Native {
                        "native"
                    } else {
                        "rustls"
                    }
                );
                match again {
                    Ok((true, len)) if len == alerted => {}
                    Ok((true, len)) => failures.push(format!(
                        "{what}: a second read queued another alert ({alerted} -> {len} bytes)"
                    )),
                    Ok((false, _)) => failures.push(format!("{what}: a second read succeeded")),
                    Err(_) => failures.push(format!("{what}: a second read panicked")),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "errors are not sticky in the engine:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Target 4: I/O schedules
// ---------------------------------------------------------------------------------------

/// One schedule input: flags, capacity, sizes, seed, then interleaved schedules with one
/// of a few personalities (calm, yielding, short, one byte, mixed, with rare fatal faults).
fn schedule_case(rng: &mut Rng) -> Vec<u8> {
    let mut input = vec![rng.next_u64() as u8, rng.next_u64() as u8];
    let size = |rng: &mut Rng| -> u16 {
        match rng.below(10) {
            0..=5 => rng.below(3000) as u16,
            6..=8 => rng.below(20_000) as u16,
            _ => rng.below(targets::MAX_TRANSFER + 1) as u16,
        }
    };
    let (c, s) = (size(rng), size(rng));
    input.extend_from_slice(&c.to_be_bytes());
    input.extend_from_slice(&s.to_be_bytes());
    input.extend_from_slice(&rng.next_u64().to_le_bytes());
    let personality = rng.below(6);
    let fatal_odds = if rng.below(3) == 0 { 400 } else { 0 };
    for _ in 0..rng.below(1500) {
        let b = match personality {
            0 => rng.below(112),
            1 => 112 + rng.below(56),
            2 => 168 + rng.below(40),
            3 => 208 + rng.below(32),
            _ => rng.below(240),
        } as u8;
        let b = if fatal_odds > 0 && rng.below(fatal_odds) == 0 {
            240 + rng.below(16) as u8
        } else {
            b
        };
        input.push(b);
    }
    input
}

/// A few thousand schedules; most inject no fatal fault, so they must deliver everything.
#[test]
fn io_schedule_cases() {
    // Regression: the empty input (nothing to send either way, no faults).
    assert!(targets::io_schedule(&[]).clean);
    let mut rng = Rng::new(5);
    let (mut clean, mut faulted, mut polls, mut calls) = (0, 0, 0, 0);
    for _ in 0..3000 {
        let out = targets::io_schedule(&schedule_case(&mut rng));
        polls = out.polls.max(polls);
        calls = out.io_calls.max(calls);
        if out.fatal_injected {
            faulted += 1;
        } else {
            assert!(out.clean);
            clean += 1;
        }
    }
    println!(
        "3000 schedules: {clean} without fatal faults (all delivered), {faulted} with; \
         at most {polls} polls and {calls} transport calls in one case"
    );
    assert!(
        clean > 1500 && faulted > 150,
        "clean {clean}, faulted {faulted}"
    );
}

// ---------------------------------------------------------------------------------------
// The differential target
// ---------------------------------------------------------------------------------------

/// Appends one differential operation with arguments drawn from `rng`.
fn diff_op(rng: &mut Rng, input: &mut Vec<u8>, op: u8) {
    use differential::diff_op as d;
    let chunk = |rng: &mut Rng, input: &mut Vec<u8>| {
        let len = match rng.below(10) {
            0..=7 => rng.below(64),
            _ => rng.below(20_000),
        };
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        input.extend_from_slice(&(len as u16).to_be_bytes());
        input.extend(bytes);
    };
    let small = |rng: &mut Rng| match rng.below(8) {
        0..=5 => rng.below(300) as u16,
        6 => (16_380 + rng.below(10)) as u16,
        _ => rng.next_u64() as u16,
    };
    input.push(op);
    match op {
        d::DATA => input.extend(small(rng).to_be_bytes()),
        d::KEY_UPDATE | d::ALERT | d::WRITE => {
            input.extend((rng.next_u64() as u16).to_be_bytes());
        }
        d::TICKET | d::RENEGOTIATE => chunk(rng, input),
        d::FRAGMENTED | d::RECORD => {
            input.push(rng.next_u64() as u8);
            chunk(rng, input);
            input.push(rng.next_u64() as u8);
        }
        d::COALESCED => {
            for _ in 0..2 {
                input.push([24, 4, 0, 1, 20][rng.below(5)]);
                chunk(rng, input);
            }
        }
        d::PADDED => {
            input.push([23, 21, 22, 20, 0, 99][rng.below(6)]);
            chunk(rng, input);
            input.extend(small(rng).to_be_bytes());
        }
        d::MUTATE => {
            input.push(rng.next_u64() as u8);
            input.extend(small(rng).to_be_bytes());
            input.push(rng.next_u64() as u8);
        }
        _ => {
            input.push(rng.next_u64() as u8);
            for _ in 0..3 {
                input.extend((rng.next_u64() as u16).to_be_bytes());
            }
        }
    }
}

/// A generated differential case: mostly data, with control records and mutations.
fn diff_case(rng: &mut Rng) -> Vec<u8> {
    let mut input = vec![rng.next_u64() as u8];
    for _ in 0..1 + rng.below(12) {
        let op = match rng.below(24) {
            0..=6 => differential::diff_op::DATA,
            7..=9 => differential::diff_op::FEED,
            _ => rng.below(13) as u8,
        };
        diff_op(rng, &mut input, op);
    }
    input
}

/// A differential input for `config`: data records of several sizes and (TLS 1.3) a
/// KeyUpdate requesting one back, fed in pieces, then a write. Returns it and the
/// plaintext bytes it carries.
fn diff_valid_stream(config: u8) -> (Vec<u8>, usize) {
    use differential::diff_op as d;
    let (client, _) = &differential::diff_configs()[usize::from(config >> 1)];
    let tls13 = client.crypto_provider().cipher_suites[0].tls13().is_some();
    let mut input = vec![config];
    let mut sent = 0;
    for (i, len) in [0u16, 1, 300, 16_384, 77].into_iter().enumerate() {
        input.extend([d::DATA, (len >> 8) as u8, len as u8]);
        sent += usize::from(len);
        if i == 2 && tls13 {
            input.extend([d::KEY_UPDATE, 1]);
        }
        if i == 3 && tls13 && config & 1 == 0 {
            // A well-formed ticket to our client (an empty chunk asks for one).
            input.extend([d::TICKET, 0, 0]);
        }
    }
    input.extend([d::FEED, 3, 0, 7, 1, 0, 60, 0, d::WRITE, 0]);
    (input, sent)
}

/// The differential target's positive control, over every suite and both sides: a valid
/// stream of data and key updates, fed in pieces, gives both layers the same plaintext,
/// with at most a KeyUpdate answer sent at another time.
#[test]
fn differential_valid_streams_agree() {
    for config in 0..2 * differential::diff_configs().len() as u8 {
        let (input, sent) = diff_valid_stream(config);
        let out = differential::record_diff(&input);
        // The one difference a valid stream shows is when a KeyUpdate answer goes out.
        let timing_only = out
            .explained
            .iter()
            .all(|&n| n == "key-update-answered-at-once");
        assert!(timing_only && !out.failed, "config {config}: {out:?}");
        assert_eq!(out.delivered, sent, "config {config}");
    }
}

/// The differential target on generated cases: control records and mutations over every
/// suite and both sides. Any difference outside the target's table fails the test;
/// `DIFF_TRACE=1` prints every step of every case.
#[test]
fn differential_generated_cases() {
    let mut rng = Rng::new(0xD1FF);
    let mut explained = std::collections::BTreeMap::new();
    let mut failed = 0;
    for _ in 0..1_500 {
        let case = diff_case(&mut rng);
        if std::env::var_os("DIFF_TRACE").is_some() {
            eprintln!("case {case:02x?}");
        }
        let out = differential::record_diff(&case);
        failed += usize::from(out.failed);
        for name in out.explained {
            *explained.entry(name).or_insert(0) += 1;
        }
    }
    // The generator reaches failures, and the table's entries.
    assert!(failed > 100, "only {failed} cases failed");
    println!("differences explained: {explained:?}");
}

/// RELIABILITY.md lists the same intentional differences as the target's table.
#[test]
fn differences_are_documented() {
    let doc = include_str!("../RELIABILITY.md");
    for d in differential::DIFFERENCES {
        assert!(
            doc.contains(&format!("`{}`", d.name)),
            "RELIABILITY.md lacks `{}`",
            d.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// Seed corpora
// ---------------------------------------------------------------------------------------

/// Writes the seed corpora of `fuzz/corpus/<target>/` (a few files each).
#[test]
#[ignore = "writes fuzz/corpus; run: cargo test --lib write_seed_corpora -- --ignored"]
fn write_seed_corpora() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let flights = real_flights();
    let suite_name = |i: usize| -> String {
        let (c, _) = &configs().per_suite[i];
        format!("{:?}", c.crypto_provider().cipher_suites[0].suite()).to_lowercase()
    };
    let (c_all, s_all) = &flights[0];
    write(
        "server_handshake",
        "client_hello_all_versions_alpn",
        &join_chunks(&c_all[..1]),
    );
    write(
        "server_handshake",
        "client_flights_all_versions",
        &join_chunks(c_all),
    );
    write(
        "client_handshake",
        "server_flights_all_versions",
        &join_chunks(s_all),
    );
    for (i, (c, s)) in flights.iter().enumerate().skip(1) {
        let tls12 = suite_name(i - 1).starts_with("tls_ecdhe");
        if tls12 && suite_name(i - 1).contains("chacha") || !tls12 && i == 1 {
            let v = if tls12 { "tls12" } else { "tls13" };
            write(
                "server_handshake",
                &format!("client_flights_{v}"),
                &join_chunks(c),
            );
            write(
                "client_handshake",
                &format!("server_flights_{v}"),
                &join_chunks(s),
            );
        }
    }
    for (framing, name) in [(0u8, "tls13_gcm"), (1, "tls12_gcm"), (2, "tls12_chacha")] {
        let mut fixed = vec![0u8, framing];
        fixed.extend(fixed_records(framing, &[b"hello", &[0x55; 300], b""]));
        write("native_records", &format!("open_fixed_{name}"), &fixed);
    }
    for sel in [0u8, 1, 6, 9] {
        let mut ops = vec![1 | sel << 1];
        for (op, len) in [
            (op::VALID, 5),
            (op::SPLIT, 300),
            (op::ANSWER, 0),
            (op::VALID, 0),
        ] {
            ops.push(op);
            if op != op::ANSWER {
                ops.extend_from_slice(&(len as u16).to_be_bytes());
                ops.extend(std::iter::repeat_n(0x41, len));
            }
            if op == op::SPLIT {
                ops.extend_from_slice(&7u16.to_be_bytes());
            }
        }
        ops.extend([op::EDIT, 0, 3, b'x', b'y', b'z', 0, 0, 20, op::ANSWER]);
        write("native_records", &format!("live_ops_{sel}"), &ops);
    }
    for config in 0..2 * differential::diff_configs().len() as u8 {
        write(
            "record_diff",
            &format!("valid_{config}"),
            &diff_valid_stream(config).0,
        );
    }
    let mut rng = Rng::new(0x5EED);
    for i in 0..24 {
        write(
            "record_diff",
            &format!("generated_{i}"),
            &diff_case(&mut rng),
        );
    }
    let mut rng = Rng::new(6);
    for (name, personality) in [("calm", 0u8), ("yielding", 112), ("one_byte", 208)] {
        let mut input = vec![0x00, 0x00, 0x04, 0x00, 0x10, 0x00];
        input.extend_from_slice(&rng.next_u64().to_le_bytes());
        input.extend(std::iter::repeat_n(personality, 200));
        write("io_schedule", name, &input);
    }
    let mut input = Vec::new();
    input.extend([0x13, 0x01, 0x20, 0x00, 0x20, 0x00]);
    input.extend_from_slice(&rng.next_u64().to_le_bytes());
    input.extend((0..400).map(|i| if i == 300 { 244 } else { (i * 37 % 240) as u8 }));
    write("io_schedule", "mixed_with_reset", &input);
}
