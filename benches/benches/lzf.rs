//! LZF decompression throughput on the generator's compressed strings (JSON-like text, as
//! in the production-like mix): the `lzf` crate against `rdb_parser::lzf::decompress`.
//!
//! ```text
//! lzf/lzf_crate/<M>MB     lzf::decompress
//! lzf/rdb_parser/<M>MB    rdb_parser::lzf::decompress
//! ```
//! Throughput counts decompressed bytes; each iteration checks the total. M is the size of
//! the generated snapshot the strings come from, min(RDBKIT_BENCH_MB, 64).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rdb_parser::{Item, Parser, RdbString, Value};

fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
        .min(64)
}

fn lzf(c: &mut Criterion) {
    let mb = size_mb();
    let snap = rdbkit_benches::generate_snapshot(mb << 20, 0x5EED)
        .unwrap_or_else(|e| panic!("generating: {e}"));
    let mut streams: Vec<(&[u8], usize)> = Vec::new();
    for item in Parser::new(&snap.data).unwrap_or_else(|e| panic!("{e}")) {
        if let Item::Key(e) = item.unwrap_or_else(|e| panic!("{e}")) {
            if let Value::String(s) = &e.value {
                if let RdbString::Lzf {
                    compressed,
                    original_len,
                } = s.stored()
                {
                    streams.push((compressed, original_len));
                }
            }
        }
    }
    let total: usize = streams.iter().map(|s| s.1).sum();
    assert!(total > 0, "the generator wrote no LZF strings");
    let mut group = c.benchmark_group("lzf");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(total as u64));
    let size = format!("{mb}MB");
    group.bench_function(BenchmarkId::new("lzf_crate", &size), |b| {
        b.iter(|| {
            let n: usize = streams
                .iter()
                .map(|&(c, n)| lzf::decompress(black_box(c), n).map_or(0, |v| v.len()))
                .sum();
            assert_eq!(n, total);
        })
    });
    group.bench_function(BenchmarkId::new("rdb_parser", &size), |b| {
        b.iter(|| {
            let n: usize = streams
                .iter()
                .map(|&(c, n)| rdb_parser::lzf::decompress(black_box(c), n).map_or(0, |v| v.len()))
                .sum();
            assert_eq!(n, total);
        })
    });
    group.finish();
}

criterion_group!(benches, lzf);
criterion_main!(benches);
