//! Conversion throughput, in bytes of input per second:
//!
//! ```text
//! convert/to_rdb9/<N>MB        RDB 11 -> RDB 9: listpacks re-packed as ziplists, quicklist v2
//!                              as v1, set listpacks as intsets or sets, streams as v1
//! convert/passthrough/<N>MB    RDB 11 -> RDB 11: every item copied as stored
//! convert/split3/<N>MB         RDB 11 -> 3 cluster shards (slot routing, 3 writers)
//! ```
//! N = RDBKIT_BENCH_MB (default 256). Each iteration checks the number of keys written,
//! so a conversion that skips work fails instead of looking fast.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rdb_parser::ParserBuilder;
use rdb_writer::convert::{convert, ConvertOptions, ConvertSummary};
use rdb_writer::TargetProfile;
use rdbkit_benches::generate_snapshot;

fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
}

fn run(data: &[u8], opts: &ConvertOptions, out: &mut Vec<u8>) -> ConvertSummary {
    out.clear();
    let (_, summary) = convert(
        data,
        &ParserBuilder::new(),
        opts,
        &mut *out,
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("convert: {e}"));
    summary
}

fn bench(c: &mut Criterion) {
    let mb = size_mb();
    let snap = generate_snapshot(mb << 20, 0x5EED).unwrap_or_else(|e| panic!("generating: {e}"));
    let mut out = Vec::with_capacity(snap.data.len() + (snap.data.len() >> 2));
    let mut group = c.benchmark_group("convert");
    for (name, version) in [("to_rdb9", 9u32), ("passthrough", 11)] {
        let opts = ConvertOptions::new(
            TargetProfile::for_version(version).unwrap_or_else(|| panic!("profile")),
        );
        let start = Instant::now();
        let first = run(&snap.data, &opts, &mut out);
        assert_eq!(
            first.keys_written, snap.expected.keys,
            "{name}: keys written"
        );
        if version == 11 {
            assert_eq!(out, snap.data, "passthrough reproduces the input");
        } else {
            assert!(first.transcoded > 0, "{name}: something was re-encoded");
        }
        let once = start.elapsed();
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time((once * 12).max(Duration::from_secs(3)))
            .throughput(Throughput::Bytes(snap.data.len() as u64));
        group.bench_function(BenchmarkId::new(name, format!("{mb}MB")), |b| {
            b.iter(|| {
                let s = run(black_box(&snap.data), &opts, &mut out);
                assert_eq!(s.keys_written, snap.expected.keys);
                s.keys_written
            })
        });
    }
    let slots = rdb_writer::slot::SlotMap::even(3).unwrap_or_else(|e| panic!("{e}"));
    let opts =
        ConvertOptions::new(TargetProfile::for_version(11).unwrap_or_else(|| panic!("profile")));
    let split = |data: &[u8]| {
        let outs: Vec<Vec<u8>> = (0..3)
            .map(|_| Vec::with_capacity(data.len() / 3 + (1 << 20)))
            .collect();
        let (outs, s) = rdb_writer::convert::convert_split(
            data,
            &ParserBuilder::new(),
            &opts,
            outs,
            Some(&slots),
            &mut |_| Ok(()),
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("split: {e}"));
        assert_eq!(s.keys_written, snap.expected.keys, "split: keys written");
        outs.iter().map(Vec::len).sum::<usize>()
    };
    group.bench_function(BenchmarkId::new("split3", format!("{mb}MB")), |b| {
        b.iter(|| split(black_box(&snap.data)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
