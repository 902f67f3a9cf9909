//! Writes a snapshot holding ONE huge key (plus a small one), streamed to the file:
//! `cargo run --release -p rdbkit-benches --example huge -- OUT.rdb KIND MB`
//! KIND: string, list, hash, set or zset. Used by benches/memory.sh.

fn main() -> Result<(), rdbkit_benches::BoxError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: huge OUT.rdb string|list|hash|set|zset MB";
    let out = args.next().ok_or(usage)?;
    let kind: rdbkit_benches::HugeKind = args.next().ok_or(usage)?.parse()?;
    let mb: u64 = args.next().ok_or(usage)?.parse()?;
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let counts = rdbkit_benches::write_huge_key(file, kind, mb << 20, 0x5EED)?;
    eprintln!("{out}: one {mb} MB {kind:?} key: {counts:?}");
    Ok(())
}
