//! `rdbkit verify` throughput: CRC64 plus the deep check of every value of a generated
//! snapshot, on all cores, in bytes of file per second.
//!
//! ```text
//! verify/full/<N>MB      production-like mix (benches/src/lib.rs), N = RDBKIT_BENCH_MB (256)
//! ```
//! Each iteration asserts the key count the generator recorded and a clean verdict, so a
//! check that skips keys fails instead of looking fast.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rdbkit_benches::generate_snapshot;

const SEED: u64 = 0x5EED;

fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
}

fn full(c: &mut Criterion) {
    let mb = size_mb();
    let snap = generate_snapshot(mb << 20, SEED).unwrap_or_else(|e| panic!("generating: {e}"));
    let keys = snap.expected.keys;
    let check = |data: &[u8]| {
        let report = rdb_cli::verify::verify(data, |_| {});
        assert!(
            report.ok(),
            "generated snapshot flagged: {:?}",
            report.problems.first()
        );
        assert_eq!(report.keys, keys, "verify saw a different number of keys");
        report.keys
    };
    let start = Instant::now();
    check(&snap.data);
    let once = start.elapsed();
    let mut group = c.benchmark_group("verify");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time((once * 12).max(Duration::from_secs(3)))
        .throughput(Throughput::Bytes(snap.data.len() as u64));
    group.bench_function(BenchmarkId::new("full", format!("{mb}MB")), |b| {
        b.iter(|| check(black_box(&snap.data)))
    });
    group.finish();
}

criterion_group!(benches, full);
criterion_main!(benches);
