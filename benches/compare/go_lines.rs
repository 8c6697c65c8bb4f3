//! Go's `BenchmarkThroughput/MaxPacket/{1..64}MB/TLSv1{2,3}` lines (section `throughput`),
//! from the loopback TCP, multi_thread throughput rows, so that the figures compare with
//! Go's crypto/tls.

use crate::support::{self, Version, fmt_value};
use crate::throughput::XferRow;
use crate::{Flavor, Lib, Transport, WORKERS};

/// Go's BenchmarkThroughput format, from the loopback TCP, multi_thread figures.
pub(crate) fn go_table(rows: &[XferRow]) {
    println!();
    println!(
        "## Go format (loopback TCP, multi_thread with {WORKERS} workers, one-way, handshake excluded; see BENCHMARKS.md)"
    );
    for lib in Lib::ALL {
        println!("impl: {}", lib.name());
        let i = lib.index();
        for version in Version::all() {
            for row in rows.iter().filter(|r| {
                r.transport == Transport::Tcp
                    && r.flavor == Flavor::MultiThread
                    && r.version == version
            }) {
                let (Some(secs), Some(mbps)) =
                    (support::median(&row.secs[i]), support::median(&row.mbps[i]))
                else {
                    continue;
                };
                let iters = row.secs[i].len() * row.k;
                let name = format!(
                    "BenchmarkThroughput/MaxPacket/{}MB/{}-{WORKERS}",
                    row.size_mib,
                    version.go_name()
                );
                println!(
                    "{name:<46} {iters:>8} {:>14.0} ns/op {mbps:>10.2} MB/s {:>12} B/op {:>8} allocs/op",
                    secs * 1e9,
                    fmt_value(support::median(&row.bytes[i])),
                    fmt_value(support::median(&row.allocs[i])),
                );
            }
        }
    }
}
