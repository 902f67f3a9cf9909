//! Writes a generated snapshot (the benches' production-like mix) to a file:
//! `cargo run --release -p rdbkit-benches --example generate -- OUT.rdb [MB] [SEED]`

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: generate OUT.rdb [MB] [SEED]")?;
    let mb: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(256);
    let seed: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(0x5EED);
    let snap = rdbkit_benches::generate_snapshot(mb << 20, seed)?;
    std::fs::write(&out, &snap.data)?;
    eprintln!(
        "{out}: {} bytes, {} keys",
        snap.data.len(),
        snap.expected.keys
    );
    Ok(())
}
