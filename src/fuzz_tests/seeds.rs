//! The seed corpora of `fuzz/corpus/`, from the same generators as the tests.

use super::api_sequences::sequence_case;
use super::differential;
use super::handshakes::real_flights;
use super::record_diff::{diff_case, diff_valid_stream};
use super::records::fixed_records;
use super::targets::{Rng, configs, join_chunks, op};

/// Writes the seed corpora of `fuzz/corpus/<target>/` (a few files each).
pub(super) fn write_seed_corpora() {
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
    let mut rng = Rng::new(0xA9_5EED);
    for (i, config) in [
        (0u8, 0u8),
        (1, 1),
        (3, 2),
        (9, 1),
        (17, 0),
        (32, 1),
        (5, 2),
        (66, 1),
    ]
    .into_iter()
    .enumerate()
    {
        write(
            "api_sequences",
            &format!("generated_{i}"),
            &sequence_case(&mut rng, config),
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
