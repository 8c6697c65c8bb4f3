//! The physical limits of the throughput figures (section `throughput`): the AEAD floor
//! (sealing and opening 16 KiB records with the provider crate's AES-128-GCM on one core,
//! no TLS), the CPU time per GB of the TCP transfers, and each one-core TLS figure as a
//! fraction of the limits.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs::aead;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring::aead;

use crate::support::{self, Figure, fmt_ratio, fmt_value};
use crate::throughput::XferRow;
use crate::{Flavor, Plan, Transport, figure_pair};

/// The record size of the floor: TLS's largest plaintext.
const RECORD: usize = 16 * 1024;

/// The AEAD's rates on one core, MB/s.
pub(crate) struct Floor {
    seal: f64,
    /// Each record sealed, then opened: what one core does for a one-way transfer whose
    /// two ends run on it.
    seal_and_open: f64,
}

/// Seals (`open == false`) or seals and opens records for `budget`; MB/s of records.
fn rate(budget: Duration, open: bool) -> f64 {
    let key = aead::UnboundKey::new(&aead::AES_128_GCM, &[7; 16]).expect("AES-128 key");
    let key = aead::LessSafeKey::new(key);
    let mut record = vec![0x5au8; RECORD + 16];
    // The TLS 1.3 record header, as the additional data.
    let header = [23u8, 3, 3, 0x40, 0x11];
    let nonce = |n: u64| {
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&n.to_be_bytes());
        aead::Nonce::assume_unique_for_key(bytes)
    };
    let mut n = 0u64;
    let t0 = Instant::now();
    while n == 0 || t0.elapsed() < budget {
        let tag = key
            .seal_in_place_separate_tag(nonce(n), aead::Aad::from(header), &mut record[..RECORD])
            .expect("seal");
        if open {
            record[RECORD..].copy_from_slice(tag.as_ref());
            let plain = key
                .open_in_place(nonce(n), aead::Aad::from(header), &mut record)
                .expect("open");
            black_box(plain);
        } else {
            let _ = black_box(tag);
        }
        n += 1;
    }
    (n as usize * RECORD) as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// Measures and prints the floor: the median of `plan.reps` samples of each rate. Its
/// figures are `aead_floor/seal` and `aead_floor/seal_then_open`.
pub(crate) fn aead_floor(plan: &Plan, figures: &mut Vec<Figure>) -> Floor {
    let budget = plan.handshake_budget;
    let median = |open| {
        let samples: Vec<f64> = (0..plan.reps).map(|_| rate(budget, open)).collect();
        support::median(&samples).expect("at least one sample")
    };
    let floor = Floor {
        seal: median(false),
        seal_and_open: median(true),
    };
    let open = 1.0 / (1.0 / floor.seal_and_open - 1.0 / floor.seal);
    println!();
    println!(
        "## The AEAD floor: {} AES-128-GCM on 16 KiB records, one core, no TLS, MB/s (median of {})",
        support::PROVIDER_NAME,
        plan.reps
    );
    println!(
        "seal {}   open {} (derived)   seal then open, one core: {}",
        fmt_value(Some(floor.seal)),
        fmt_value(Some(open)),
        fmt_value(Some(floor.seal_and_open))
    );
    figures.push(Figure::limit("aead_floor/seal".into(), "MB/s", floor.seal));
    figures.push(Figure::limit(
        "aead_floor/seal_then_open".into(),
        "MB/s",
        floor.seal_and_open,
    ));
    floor
}

/// The CPU time per GB of the TCP transfers of the largest size (both ends, every thread
/// of the process), and its figures.
pub(crate) fn cpu_per_gb(plan: &Plan, rows: &[XferRow], figures: &mut Vec<Figure>) {
    let largest = *plan.sizes.last().expect("at least one size");
    println!();
    println!(
        "## CPU time per GB over loopback TCP, {largest} MiB transfers, seconds (process CPU, both ends); median of {}",
        plan.reps
    );
    println!(
        "{:<15} {:<8} {:>8} {:>9} {:>8} {:>6} {:>7}",
        "runtime", "version", "lazytls", "lz-rustls", "tokio-r", "ratio", "r-ratio"
    );
    for row in rows {
        if row.transport != Transport::Tcp || row.size_mib != largest {
            continue;
        }
        let gb = (row.size_mib * crate::MIB) as f64 / 1e9;
        let per_gb = row
            .cpu
            .clone()
            .map(|s| s.iter().map(|c| c / gb).collect::<Vec<_>>());
        let name = format!("cpu_s_per_gb/{}", row.key());
        let [n, r] = figure_pair(&name, "s/GB", &per_gb);
        println!(
            "{:<15} {:<8} {:>8} {:>9} {:>8} {:>6} {:>7}",
            row.flavor.name(),
            row.version.name(),
            fmt_secs(n.lazytls),
            fmt_secs(r.lazytls),
            fmt_secs(n.tokio_rustls),
            fmt_ratio(n.ratio()),
            fmt_ratio(r.ratio()),
        );
        figures.extend([n, r]);
    }
}

fn fmt_secs(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// Each one-core (current_thread) figure of the largest size against its limits: the
/// AEAD floor, the plain transport, and the two together (on one core their times add).
pub(crate) fn fractions(
    plan: &Plan,
    rows: &[XferRow],
    floor: &Floor,
    plain: &[(Transport, Flavor, Option<f64>)],
) {
    let largest = *plan.sizes.last().expect("at least one size");
    println!();
    println!(
        "## One core against its limits ({largest} MiB, current_thread): MB/s, and as a fraction of the AEAD floor (seal then open) and of the limit it implies with the plain transport"
    );
    println!(
        "{:<7} {:<8} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>9}",
        "io", "version", "lazytls", "tokio-r", "plain", "limit", "lz/floor", "lz/limit", "tr/limit"
    );
    for row in rows {
        if row.flavor != Flavor::CurrentThread || row.size_mib != largest {
            continue;
        }
        let Some(&(_, _, Some(plain))) = plain
            .iter()
            .find(|(t, f, _)| *t == row.transport && *f == row.flavor)
        else {
            continue;
        };
        let limit = 1.0 / (1.0 / floor.seal_and_open + 1.0 / plain);
        let lazy = support::median(&row.mbps[0]);
        let tokio = support::median(&row.mbps[2]);
        println!(
            "{:<7} {:<8} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>9}",
            row.transport.name(),
            row.version.name(),
            fmt_value(lazy),
            fmt_value(tokio),
            fmt_value(Some(plain)),
            fmt_value(Some(limit)),
            fmt_ratio(lazy.map(|v| v / floor.seal_and_open)),
            fmt_ratio(lazy.map(|v| v / limit)),
            fmt_ratio(tokio.map(|v| v / limit)),
        );
    }
}
