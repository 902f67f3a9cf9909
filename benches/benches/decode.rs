//! Decode throughput: every element of every key of a generated snapshot, through the
//! parser's public API, in bytes of file per second.
//!
//! ```text
//! decode/full/<N>MB         production-like mix (benches/src/lib.rs), N = RDBKIT_BENCH_MB (256)
//! decode/strings/<M>MB      short strings and INT strings only: key, length, string decode
//! decode/listpack_walk/<M>MB  uncompressed hash listpacks only: the listpack entry walk
//! ```
//! Each iteration checks the key, element and byte counts the generator recorded, so a
//! decode that skips work fails instead of looking fast. M = min(N, 32).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rdbkit_benches::{
    decode_all, generate_listpacks_only, generate_snapshot, generate_strings_only, BoxError,
    Snapshot,
};

const SEED: u64 = 0x5EED;

/// The full-decode input size, from `RDBKIT_BENCH_MB` (default 256).
fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
}

fn bench_decode(
    c: &mut Criterion,
    name: &str,
    mb: usize,
    make: fn(usize, u64) -> Result<Snapshot, BoxError>,
) {
    let snap = make(mb << 20, SEED).unwrap_or_else(|e| panic!("generating {name}: {e}"));
    let expected = snap.expected;
    // One untimed, checked decode: it warms the input and sizes the measurement so ten
    // samples fit whatever RDBKIT_BENCH_MB asks for.
    let start = Instant::now();
    let first = decode_all(&snap.data).unwrap_or_else(|e| panic!("decoding {name}: {e}"));
    assert_eq!(
        first, expected,
        "{name}: decoded counts differ from what was written"
    );
    let once = start.elapsed();
    let mut group = c.benchmark_group("decode");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time((once * 12).max(Duration::from_secs(3)))
        .throughput(Throughput::Bytes(snap.data.len() as u64));
    group.bench_function(BenchmarkId::new(name, format!("{mb}MB")), |b| {
        b.iter(|| {
            let got = decode_all(black_box(&snap.data))
                .unwrap_or_else(|e| panic!("decoding {name}: {e}"));
            assert_eq!(
                got, expected,
                "{name}: decoded counts differ from what was written"
            );
            got
        })
    });
    group.finish();
}

fn full(c: &mut Criterion) {
    bench_decode(c, "full", size_mb(), generate_snapshot);
}

fn primitives(c: &mut Criterion) {
    let mb = size_mb().min(32);
    bench_decode(c, "strings", mb, generate_strings_only);
    bench_decode(c, "listpack_walk", mb, generate_listpacks_only);
}

criterion_group!(benches, full, primitives);
criterion_main!(benches);
