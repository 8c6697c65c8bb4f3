//! The API-level checker (`api_sequences`) on generated cases: every configuration, with
//! operation sequences, peer actions and transport faults drawn from a fixed seed.

use super::sequences::{self, Op, Setup, Usage};
use super::targets::Rng;

/// One generated input: the configuration bytes, then operations, peer actions, the
/// interleaving and a fault schedule, in the layout `api_sequences` decodes.
pub(super) fn sequence_case(rng: &mut Rng, config: (u8, u8)) -> Vec<u8> {
    let mut input = vec![config.0, config.1];
    let word = |rng: &mut Rng, input: &mut Vec<u8>| {
        let size = match rng.below(4) {
            0 => rng.below(64),
            1 | 2 => rng.below(5_000),
            _ => rng.below(65_536),
        } as u16;
        input.extend(size.to_be_bytes());
    };
    let ops = rng.below(24);
    input.push(ops as u8);
    for _ in 0..ops {
        input.push(rng.next_u64() as u8);
        word(rng, &mut input);
    }
    let actions = rng.below(32);
    input.push(actions as u8);
    for _ in 0..actions {
        input.push(rng.next_u64() as u8);
        word(rng, &mut input);
    }
    input.push([0, 1, 2, 3, 5, 7][rng.below(6)]);
    let faults = rng.below(400);
    let calm = rng.below(2) == 0;
    for _ in 0..faults {
        input.push(if calm { rng.below(112) } else { rng.below(240) } as u8);
    }
    input
}

/// Inputs on which the checker once stopped (`fuzz/regressions/api_sequences/`): each now
/// runs to its end with every invariant holding.
pub(super) fn api_sequences_regressions() {
    const FOUND: &[(&str, &[u8])] = &[
        (
            "keyupdate-behind-a-finished-read-in-two-parts",
            include_bytes!(
                "../../fuzz/regressions/api_sequences/keyupdate-behind-a-finished-read-in-two-parts"
            ),
        ),
        (
            "idle-write-half-keeps-a-keyupdate-buffer",
            include_bytes!(
                "../../fuzz/regressions/api_sequences/idle-write-half-keeps-a-keyupdate-buffer"
            ),
        ),
        (
            "idle-halves-after-shutdown-before-the-handshake",
            include_bytes!(
                "../../fuzz/regressions/api_sequences/idle-halves-after-shutdown-before-the-handshake"
            ),
        ),
    ];
    for (name, input) in FOUND {
        if std::env::var_os("SEQ_TRACE").is_some() {
            eprintln!("regression {name}");
        }
        let out = sequences::api_sequences(input);
        println!("{name}: {out:?}");
    }
}

/// Every configuration: our side, version, layer, early data, large flights and
/// `keep_idle_buffers` (the first byte), with each use of our end and each peer (the
/// second).
pub(super) fn api_sequences_cases() {
    let mut rng = Rng::new(0xA9_15E9);
    let (mut clean, mut idle_checks, mut polls, mut key_updates) = (0, 0, 0, 0);
    let (mut bytes, mut deliveries, mut exports) = (0, 0, 0);
    let mut runs = 0;
    for a in 0..=127u8 {
        for b in [0u8, 1, 2, 4, 5, 6] {
            let input = sequence_case(&mut rng, (a, b));
            let out = sequences::api_sequences(&input);
            runs += 1;
            clean += usize::from(out.clean);
            idle_checks += out.idle_checks;
            key_updates += out.key_updates;
            polls = polls.max(out.polls);
            bytes += out.wire.bytes_read;
            deliveries += out.wire.deliveries;
            exports += usize::from(out.exports_compared);
        }
    }
    println!(
        "{runs} runs: {clean} clean, {idle_checks} idle checks, {key_updates} peer KeyUpdates, \
         at most {polls} polls in one, {bytes} bytes read in {deliveries} deliveries, \
         {exports} with exporters compared"
    );
    assert!(
        exports > runs / 2,
        "exporters compared in only {exports} of {runs} runs"
    );
    assert!(clean > runs / 2, "only {clean} of {runs} runs were clean");
    assert!(idle_checks > 50, "only {idle_checks} idle checks");
    assert!(key_updates > 20, "only {key_updates} peer KeyUpdates");

    // A KeyUpdate right behind the peer's last handshake flight, for each side and layer.
    for client in [false, true] {
        for rustls_layer in [false, true] {
            let setup = Setup {
                client,
                tls13: true,
                rustls_layer,
                early_data: false,
                long_alpn: false,
                big_chain: false,
                keep_idle_buffers: false,
                usage: Usage::Halves,
                lazytls_peer: false,
            };
            let ops = [Op::Read(100), Op::Write(10), Op::Flush, Op::Read(100)];
            let out = sequences::run(setup, &ops, &[(4, 0), (3, 50), (0, 0)], 1, Vec::new());
            assert!(out.clean, "{setup:?}: {out:?}");
        }
    }
}
