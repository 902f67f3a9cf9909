//! `rdbkit keys` against `rdbkit stats` on the same generated file, in keys and in bytes
//! of file per second:
//!
//! ```text
//! keys/parquet/<N>MB   rdb_cli::keys::write, Parquet (SNAPPY, row groups) to io::sink
//! keys/csv/<N>MB       the same records as CSV
//! keys/stats/<N>MB     rdb_cli::stats::collect, the aggregate report's pass
//! ```
//! N = RDBKIT_BENCH_MB (default 256); the mix of benches/src/lib.rs, CRC64 verified.
//! Each iteration checks the key count the generator recorded.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rdb_cli::keys::{write, Format, Options, Source};
use rdb_parser::ParserBuilder;
use rdbkit_benches::generate_snapshot;

fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
}

fn keys(data: &[u8], format: Format) -> u64 {
    let sources = [Source {
        name: "bench.rdb",
        data,
    }];
    let (summary, _) = write(
        &sources,
        &ParserBuilder::new(),
        &Options::new(format),
        std::io::sink(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("keys: {e}"));
    summary.keys
}

fn stats(data: &[u8]) -> u64 {
    let options = rdb_cli::stats::Options::default();
    rdb_cli::stats::collect(data, &ParserBuilder::new(), &options, |_| {})
        .unwrap_or_else(|e| panic!("stats: {e}"))
        .keys
}

fn bench_keys(c: &mut Criterion) {
    let mb = size_mb();
    let snap = generate_snapshot(mb << 20, 0x5EED).unwrap_or_else(|e| panic!("generating: {e}"));
    let expected = snap.expected.keys;
    let start = Instant::now();
    assert_eq!(keys(&snap.data, Format::Parquet), expected, "keys written");
    let once = start.elapsed();
    let mut group = c.benchmark_group("keys");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time((once * 12).max(Duration::from_secs(3)))
        .throughput(Throughput::ElementsAndBytes {
            elements: expected,
            bytes: snap.data.len() as u64,
        });
    for (name, format) in [("parquet", Format::Parquet), ("csv", Format::Csv)] {
        group.bench_function(BenchmarkId::new(name, format!("{mb}MB")), |b| {
            b.iter(|| {
                let n = keys(black_box(&snap.data), format);
                assert_eq!(n, expected);
                n
            })
        });
    }
    group.bench_function(BenchmarkId::new("stats", format!("{mb}MB")), |b| {
        b.iter(|| {
            let n = stats(black_box(&snap.data));
            assert_eq!(n, expected);
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench_keys);
criterion_main!(benches);
