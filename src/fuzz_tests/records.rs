//! Target 3 (`native_records`): records sealed under `open_fixed`'s fixed keys, op
//! sequences for live pairs, and the engine's sticky errors.

use rustls::pki_types::ServerName;

use super::handshakes::{length_fields, mutate, transfer};
use super::targets::{self, Rng, configs, op};
use crate::RecordLayer;
use crate::engine::{HandshakeStatus, TestEngine};

/// Valid application-data records under `open_fixed`'s fixed keys, in its framing
/// `framing % 3` (TLS 1.3 AES-128-GCM, TLS 1.2 AES-128-GCM, TLS 1.2 ChaCha20-Poly1305),
/// sealed here with the provider crate's AEAD, independently of the record layer.
pub(super) fn fixed_records(framing: u8, plaintexts: &[&[u8]]) -> Vec<u8> {
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
pub(super) fn open_fixed_cases() {
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
pub(super) fn live_record_cases() {
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
fn engine_pair(i: usize, layer: RecordLayer) -> (TestEngine, TestEngine) {
    let (client, server) = configs().per_suite[i].clone();
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = TestEngine::client(client, name, layer).unwrap();
    let mut s = TestEngine::server(server, RecordLayer::Native).unwrap();
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
pub(super) fn engine_errors_are_sticky() {
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
