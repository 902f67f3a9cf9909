//! RESTORE command output rate (`rdbkit export --format restore` into `io::sink`), in
//! bytes of commands written per second:
//!
//! ```text
//! restore/same_version/<N>MB   RDB 11 -> RESTORE payloads for RDB 11 (values copied)
//! restore/to_rdb9/<N>MB        RDB 11 -> payloads for RDB 9 (listpacks as ziplists, ...)
//! restore/resp/<N>MB           plain commands (SET, RPUSH, HSET, ...), for comparison
//! ```
//! N = RDBKIT_BENCH_MB (default 256). Each iteration checks the number of keys written,
//! so an export that skips work fails instead of looking fast. For reference, librdb's
//! rdb-cli writes RESTORE commands at about 110 MB/s on this machine (shared/docs/peers.md).

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rdb_cli::export::{commands, CommandsOptions, CommandsSummary};
use rdb_parser::ParserBuilder;
use rdb_writer::convert::ConvertOptions;
use rdb_writer::TargetProfile;
use rdbkit_benches::generate_snapshot;

fn size_mb() -> usize {
    std::env::var("RDBKIT_BENCH_MB")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&mb: &usize| mb > 0)
        .unwrap_or(256)
}

/// Counts the bytes written and throws them away.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        std::io::sink().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run(data: &[u8], o: &CommandsOptions) -> (CommandsSummary, u64) {
    let mut sink = CountingSink(0);
    let s = commands(data, &ParserBuilder::new(), o, &mut sink, |_| {})
        .unwrap_or_else(|e| panic!("export: {e}"));
    (s, sink.0)
}

fn bench(c: &mut Criterion) {
    let mb = size_mb();
    let snap = generate_snapshot(mb << 20, 0x5EED).unwrap_or_else(|e| panic!("generating: {e}"));
    let mut group = c.benchmark_group("restore");
    for (name, version, restore) in [
        ("same_version", 11u32, true),
        ("to_rdb9", 9, true),
        ("resp", 11, false),
    ] {
        let o = CommandsOptions {
            restore,
            replace: false,
            convert: ConvertOptions::new(
                TargetProfile::for_version(version).unwrap_or_else(|| panic!("profile")),
            ),
        };
        let start = Instant::now();
        let (first, bytes) = run(&snap.data, &o);
        assert_eq!(first.keys, snap.expected.keys, "{name}: keys written");
        assert_eq!(first.bytes, bytes, "{name}: bytes counted");
        let once = start.elapsed();
        eprintln!(
            "restore/{name}: {} keys, {} commands, {:.1} MB of commands from {:.1} MB of input",
            first.keys,
            first.commands,
            bytes as f64 / 1e6,
            snap.data.len() as f64 / 1e6
        );
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time((once * 12).max(Duration::from_secs(3)))
            .throughput(Throughput::Bytes(bytes));
        group.bench_function(BenchmarkId::new(name, format!("{mb}MB")), |b| {
            b.iter(|| {
                let (s, n) = run(black_box(&snap.data), &o);
                assert_eq!(s.keys, snap.expected.keys);
                n
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
