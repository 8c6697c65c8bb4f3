//! Target 4 (`io_schedule`): generated I/O schedules.

use super::targets::{self, Rng};

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
pub(super) fn io_schedule_cases() {
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
