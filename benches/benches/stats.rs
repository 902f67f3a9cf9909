//! `rdbkit stats` throughput, in bytes of file per second:
//!
//! ```text
//! stats/full/<N>MB   the whole assessment pass (rdb_cli::stats::collect) over the
//!                    production-like mix of benches/src/lib.rs, CRC64 verified
//! ```
//! N = RDBKIT_BENCH_MB (default 256). Each iteration checks the key and element counts
//! the generator recorded, so a pass that skips keys fails instead of looking fast.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rdb_cli::stats::{collect, Options, Stats};
use rdb_parser::ParserBuilder;
use rdbkit_benches::generate_snapshot;

fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
}

fn run(data: &[u8]) -> Stats {
    collect(data, &ParserBuilder::new(), &Options::default(), |_| {})
        .unwrap_or_else(|e| panic!("stats: {e}"))
}

fn elements(s: &Stats) -> u64 {
    s.sections.kinds.types.values().map(|t| t.elements).sum()
}

fn bench_stats(c: &mut Criterion) {
    let mb = size_mb();
    let snap = generate_snapshot(mb << 20, 0x5EED).unwrap_or_else(|e| panic!("generating: {e}"));
    let start = Instant::now();
    let first = run(&snap.data);
    let once = start.elapsed();
    assert_eq!(first.keys, snap.expected.keys, "keys counted");
    assert_eq!(elements(&first), snap.expected.elements, "elements counted");
    let mut group = c.benchmark_group("stats");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time((once * 12).max(Duration::from_secs(3)))
        .throughput(Throughput::Bytes(snap.data.len() as u64));
    group.bench_function(BenchmarkId::new("full", format!("{mb}MB")), |b| {
        b.iter(|| {
            let s = run(black_box(&snap.data));
            assert_eq!(s.keys, snap.expected.keys);
            assert_eq!(elements(&s), snap.expected.elements);
            s.keys
        })
    });
    group.finish();
}

criterion_group!(benches, bench_stats);
criterion_main!(benches);
