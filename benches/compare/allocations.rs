//! Allocation tables of the `throughput` section: heap allocations and bytes requested per
//! transfer (the first transfer on a fresh connection) and per handshake, from the counts
//! the throughput samples took.

use crate::support::{Figure, Version};
use crate::throughput::XferRow;
use crate::{Flavor, N_LIBS, Plan, Samples, Transport, figure_pair, three};

/// Both allocation tables, and their figures.
pub(crate) fn tables(plan: &Plan, rows: &[XferRow], figures: &mut Vec<Figure>) {
    per_transfer(plan, rows, figures);
    per_handshake(rows, figures);
}

/// Allocations and bytes per transfer, per row.
fn per_transfer(plan: &Plan, rows: &[XferRow], figures: &mut Vec<Figure>) {
    println!();
    println!(
        "## Heap allocations and bytes requested per transfer: the first transfer on a fresh connection,"
    );
    println!(
        "## both ends, whole process; median of {}; lazytls / lz-rustls / tokio-rustls",
        plan.reps
    );
    println!(
        "{:<7} {:<15} {:<8} {:>6} {:>22} {:>34}",
        "io", "runtime", "version", "size", "allocs/transfer", "bytes/transfer"
    );
    for row in rows {
        println!(
            "{:<7} {:<15} {:<8} {:>4}Mi {:>22} {:>34}",
            row.transport.name(),
            row.flavor.name(),
            row.version.name(),
            row.size_mib,
            three(&row.allocs),
            three(&row.bytes),
        );
        figures.extend(figure_pair(
            &format!("allocs_per_transfer/{}", row.key()),
            "allocs",
            &row.allocs,
        ));
        figures.extend(figure_pair(
            &format!("bytes_allocated_per_transfer/{}", row.key()),
            "bytes",
            &row.bytes,
        ));
    }
}

/// Handshake allocations (client + server), pooled over the sizes of each configuration.
fn per_handshake(rows: &[XferRow], figures: &mut Vec<Figure>) {
    println!();
    println!(
        "## Allocations per handshake (client + server, counted apart from the transfer); lazytls / lz-rustls / tokio-rustls"
    );
    println!(
        "{:<7} {:<15} {:<8} {:>22} {:>34}",
        "io", "runtime", "version", "allocs", "bytes"
    );
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        for transport in [Transport::Duplex, Transport::Tcp] {
            for version in Version::all() {
                let mut allocs: Samples = Default::default();
                let mut bytes: Samples = Default::default();
                for row in rows.iter().filter(|r| {
                    r.flavor == flavor && r.transport == transport && r.version == version
                }) {
                    for i in 0..N_LIBS {
                        allocs[i].extend(&row.hs_allocs[i]);
                        bytes[i].extend(&row.hs_bytes[i]);
                    }
                }
                let key = format!("{}/{}/{}", transport.name(), flavor.name(), version.name());
                println!(
                    "{:<7} {:<15} {:<8} {:>22} {:>34}",
                    transport.name(),
                    flavor.name(),
                    version.name(),
                    three(&allocs),
                    three(&bytes),
                );
                figures.extend(figure_pair(
                    &format!("allocs_per_handshake/{key}"),
                    "allocs",
                    &allocs,
                ));
                figures.extend(figure_pair(
                    &format!("bytes_allocated_per_handshake/{key}"),
                    "bytes",
                    &bytes,
                ));
            }
        }
    }
}
