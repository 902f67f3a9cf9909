//! Writes a generated snapshot (the benches' production-like mix) to a file:
//! `cargo run --release -p rdbkit-benches --example generate -- OUT.rdb [MB] [SEED]`

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    const USAGE: &str = "usage: generate OUT.rdb [MB] [SEED]";
    let out = args.next().ok_or(USAGE)?;
    // Not an output path: `--help` would otherwise become a 256 MB file named "--help".
    if out.starts_with('-') {
        println!("{USAGE}");
        return Ok(());
    }
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
