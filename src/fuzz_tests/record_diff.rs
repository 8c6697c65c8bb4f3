//! The differential target (`record_diff`): generated cases, the valid-stream control,
//! and the table of differences against RELIABILITY.md.

use super::differential;
use super::targets::Rng;

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
pub(super) fn diff_case(rng: &mut Rng) -> Vec<u8> {
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
pub(super) fn diff_valid_stream(config: u8) -> (Vec<u8>, usize) {
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
pub(super) fn differential_valid_streams_agree() {
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
pub(super) fn differential_generated_cases() {
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

/// Inputs on which the differential target once stopped (`fuzz/regressions/record_diff/`),
/// with the entry of the table that now explains each: every one runs to its end.
pub(super) fn differential_regressions() {
    const FOUND: &[(&str, &[u8], &str)] = &[
        (
            // A TLS 1.2 server: both layers refused a renegotiating ClientHello with a
            // warning; a malformed handshake message in the same step then got
            // `unexpected_message` from us (judged by its type) and `decode_error` from
            // rustls (judged by its body).
            "after-refused-renegotiation-2026-12-07",
            include_bytes!(
                "../../fuzz/regressions/record_diff/after-refused-renegotiation-2026-12-07"
            ),
            "handshake-type-judged-before-body",
        ),
        (
            // Both layers refused a first renegotiation request with a warning; a second,
            // malformed one is fatal here as one too many (with no alert, as rustls does
            // for a well-formed second one), and a `decode_error` in rustls, which decodes
            // its body first.
            "second-renegotiation-malformed-2026-12-07",
            include_bytes!(
                "../../fuzz/regressions/record_diff/second-renegotiation-malformed-2026-12-07"
            ),
            "handshake-type-judged-before-body",
        ),
        (
            // A TLS 1.2 record header with a length of exactly 2^14 + 2048: RFC 5246
            // allows it, and no AEAD record is that long. rustls's deframer refuses it from
            // the header; the native layer waited for the whole record. It now refuses it
            // from the header too, with record_overflow.
            "tls12-record-of-2-14-plus-2048-2026-12-07",
            include_bytes!(
                "../../fuzz/regressions/record_diff/tls12-record-of-2-14-plus-2048-2026-12-07"
            ),
            "oversized-record-alert",
        ),
        (
            // Both layers refused a renegotiation request with a warning, then the 33rd
            // empty record in a row: the native layer announces the failure with a fatal
            // alert after the shared warning, rustls stays silent.
            "empty-record-flood-after-refused-renegotiation-2026-12-07",
            include_bytes!(
                "../../fuzz/regressions/record_diff/empty-record-flood-after-refused-renegotiation-2026-12-07"
            ),
            "alert-where-rustls-sends-none",
        ),
        (
            // The same shared warning, then a record longer than the version allows:
            // record_overflow here, decode_error in rustls, each after the warning.
            "oversized-record-after-refused-renegotiation-2026-12-07",
            include_bytes!(
                "../../fuzz/regressions/record_diff/oversized-record-after-refused-renegotiation-2026-12-07"
            ),
            "oversized-record-alert",
        ),
    ];
    for (name, input, entry) in FOUND {
        if std::env::var_os("DIFF_TRACE").is_some() {
            eprintln!("regression {name}");
        }
        let out = differential::record_diff(input);
        assert!(out.explained.contains(entry), "{name}: {out:?}");
    }
}

/// RELIABILITY.md lists the same intentional differences as the target's table.
pub(super) fn differences_are_documented() {
    let doc = include_str!("../../RELIABILITY.md");
    for d in differential::DIFFERENCES {
        assert!(
            doc.contains(&format!("`{}`", d.name)),
            "RELIABILITY.md lacks `{}`",
            d.name
        );
    }
}

/// The type-before-body difference when two renegotiation requests arrive in one step,
/// the first malformed: fatal here as one too many before either was answered (no alert
/// at all), and a `decode_error` in rustls, which decodes the first one's body. The
/// observations are those of a `record_diff` run whose input was lost before it was kept.
#[test]
fn two_renegotiation_requests_in_one_step_are_type_before_body() {
    use crate::fuzzing::{End, Observed, Reply};
    let native = Observed {
        delivered: Vec::new(),
        end: End::Failed("tls: peer misbehaved: TooManyRenegotiationRequests".into()),
        replies: Vec::new(),
    };
    let rustls = Observed {
        delivered: Vec::new(),
        end: End::Failed(
            "tls: received corrupt message of type MissingData(\"ProtocolVersion\")".into(),
        ),
        replies: vec![Reply::Alert(2, 50)],
    };
    let entry = differential::DIFFERENCES
        .iter()
        .find(|d| d.name == "handshake-type-judged-before-body")
        .unwrap();
    let differential::Explains::Whole(explains) = entry.explains else {
        panic!("a whole-step difference");
    };
    assert!(explains(&native, &rustls, &Default::default()));
}
