//! Writes a snapshot holding huge keys (plus a small one), streamed to the file:
//! `cargo run --release -p rdbkit-benches --example huge -- OUT.rdb KIND[,KIND...] MB`
//! KIND: string, list, hash, set or zset; MB is the size of each. One kind gives the key
//! `huge` (benches/memory.sh); several give `huge:<kind>` keys, in the order named
//! (benches/transcode.sh's file of a few giant keys).

fn main() -> Result<(), rdbkit_benches::BoxError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: huge OUT.rdb string|list|hash|set|zset[,...] MB";
    let out = args.next().ok_or(usage)?;
    let kinds = args.next().ok_or(usage)?;
    let mb: u64 = args.next().ok_or(usage)?.parse()?;
    let names: Vec<&str> = kinds.split(',').collect();
    let keys = names
        .iter()
        .map(|k| {
            let kind: rdbkit_benches::HugeKind = k.parse()?;
            let name = if names.len() == 1 {
                "huge".to_string()
            } else {
                format!("huge:{k}")
            };
            Ok((name.into_bytes(), kind, mb << 20))
        })
        .collect::<Result<Vec<_>, rdbkit_benches::BoxError>>()?;
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out)?);
    let counts = rdbkit_benches::write_huge_keys(file, &keys, 0x5EED)?;
    eprintln!(
        "{out}: {} keys of {mb} MB ({kinds}): {counts:?}",
        keys.len()
    );
    Ok(())
}
