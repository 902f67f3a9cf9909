//! CRC64 (Jones, as Redis) throughput: the `crc64` crate the project used before against
//! `rdb_parser::crc64` (the `crc-fast` crate's SIMD fold) and `crc64_parallel` on all cores.
//!
//! ```text
//! crc64/crc64_crate/<N>MB      crc64::crc64, table-driven
//! crc64/rdb_parser/<N>MB       rdb_parser::crc64
//! crc64/parallel/<N>MB         rdb_parser::crc64_parallel, one piece per core, combined
//! ```
//! N = min(RDBKIT_BENCH_MB, 256). Every iteration checks the checksum against the crate's.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
        .min(256)
}

fn crc(c: &mut Criterion) {
    let mb = size_mb();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..mb << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let want = crc64::crc64(0, &data);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("crc64");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(data.len() as u64));
    let size = format!("{mb}MB");
    group.bench_function(BenchmarkId::new("crc64_crate", &size), |b| {
        b.iter(|| assert_eq!(crc64::crc64(0, black_box(&data)), want))
    });
    group.bench_function(BenchmarkId::new("rdb_parser", &size), |b| {
        b.iter(|| assert_eq!(rdb_parser::crc64(0, black_box(&data)), want))
    });
    group.bench_function(BenchmarkId::new("parallel", &size), |b| {
        b.iter(|| assert_eq!(rdb_parser::crc64_parallel(black_box(&data), threads), want))
    });
    group.finish();
}

criterion_group!(benches, crc);
criterion_main!(benches);
