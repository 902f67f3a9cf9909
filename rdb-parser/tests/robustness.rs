//! Damaged input never panics or hangs: every truncation point of a few snapshots, and
//! random bit flips, end in an error (or, for flips the format cannot notice without a
//! checksum, in a clean parse).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdb_parser::{Item, ParserBuilder};

/// Parses and decodes everything; returns the number of bytes after the trailer.
fn decode(data: &[u8], verify_checksum: bool) -> Result<u64, rdb_parser::Error> {
    let mut trailing = 0;
    let mut saw_eof = false;
    for item in ParserBuilder::new()
        .verify_checksum(verify_checksum)
        .parse(data)?
    {
        match item? {
            Item::Key(e) => {
                e.value.decode_all()?;
            }
            Item::Eof(eof) => {
                saw_eof = true;
                trailing = eof.trailing;
            }
            _ => {}
        }
    }
    assert!(
        saw_eof,
        "a parse that ends without error must have reached EOF"
    );
    Ok(trailing)
}

/// Snapshots to damage: the repository's committed fixtures, plus peer files when present.
fn samples(max_len: usize) -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("fixtures/servers")];
    for peer in ["redis-redis", "sripathikrishnan-redis-rdb-tools"] {
        dirs.push(root.join("../shared/fixtures/peers").join(peer));
    }
    let mut out = Vec::new();
    for dir in dirs {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rdb") {
                    let data = std::fs::read(&p).unwrap_or_default();
                    // Only whole files make a meaningful baseline.
                    if data.len() <= max_len && decode(&data, true).is_ok() {
                        out.push((p.display().to_string(), data));
                    }
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_truncation_is_an_error() {
    let samples = samples(16 * 1024);
    assert!(
        !samples.is_empty(),
        "fixtures/servers holds committed snapshots"
    );
    let started = Instant::now();
    let mut checked = 0u64;
    for (name, data) in &samples {
        // Some files carry bytes after the trailer (a replication EOF mark); cutting
        // those leaves a whole snapshot.
        let whole = data.len() - decode(data, true).unwrap_or(0) as usize;
        // Every cut of small files; a stride plus the tail of larger ones keeps this O(n).
        let stride = if whole <= 4096 { 1 } else { 13 };
        let cuts = (0..whole)
            .step_by(stride)
            .chain(whole.saturating_sub(64)..whole);
        for cut in cuts {
            let r = decode(data.get(..cut).unwrap_or_default(), true);
            assert!(r.is_err(), "{name} cut at {cut} of {} parsed", data.len());
            checked += 1;
        }
    }
    eprintln!(
        "{checked} truncations of {} files in {:?}",
        samples.len(),
        started.elapsed()
    );
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn bit_flips_never_panic_or_hang() {
    let samples = samples(64 * 1024);
    assert!(
        !samples.is_empty(),
        "fixtures/servers holds committed snapshots"
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut errors, mut clean, mut crc_checked) = (0u64, 0u64, 0u64);
    for (name, data) in &samples {
        let has_crc =
            data.get(5..9).is_some_and(|v| v >= &b"0005"[..]) || data.starts_with(b"VALKEY");
        let whole = data.len() - decode(data, true).unwrap_or(0) as usize;
        let crc_nonzero = data
            .get(whole.saturating_sub(8)..whole)
            .is_some_and(|c| c.iter().any(|&b| b != 0));
        for _ in 0..200 {
            let mut damaged = data.clone();
            let flips = 1 + rng.next() % 3;
            let mut in_header = false;
            for _ in 0..flips {
                let at = (rng.next() % data.len() as u64) as usize;
                in_header |= at < 9 || at >= whole;
                if let Some(b) = damaged.get_mut(at) {
                    *b ^= 1 << (rng.next() % 8);
                }
            }
            let started = Instant::now();
            // Without the checksum, so that the structural checks are what is exercised.
            match decode(&damaged, false) {
                Ok(_) => clean += 1,
                Err(_) => errors += 1,
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{name}: a damaged copy took {:?}",
                started.elapsed()
            );
            // With the checksum on, a damaged file that has one must never pass (unless the
            // flip rewrote the version to one without checksums).
            if has_crc && crc_nonzero && !in_header && damaged != *data {
                assert!(
                    decode(&damaged, true).is_err(),
                    "{name}: a flipped file passed its CRC"
                );
                crc_checked += 1;
            }
        }
    }
    eprintln!("bit flips: {errors} errors, {clean} parsed cleanly, {crc_checked} CRC-checked");
    assert!(crc_checked > 0);
}

/// A one-key RDB 9 file (no checksum) whose string value is the LZF stream `lzf`
/// declared to expand to `original_len` bytes.
fn file_with_lzf_string(lzf: &[u8], original_len: u8) -> Vec<u8> {
    let mut f = b"REDIS0009".to_vec();
    f.extend_from_slice(&[0xFE, 0x00, 0x00, 3, b'k', b'e', b'y', 0xC3]);
    f.push(lzf.len() as u8);
    f.push(original_len);
    f.extend_from_slice(lzf);
    f.extend_from_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
    f
}

fn lzf_error(lzf: &[u8], original_len: u8) -> String {
    let file = file_with_lzf_string(lzf, original_len);
    match decode(&file, false) {
        Ok(_) => panic!("corrupt LZF stream {lzf:02x?} decoded"),
        Err(e) => e.to_string(),
    }
}

/// The LZF decoder's refusals (our own decoder since the `lzf` crate was replaced) reach
/// the caller as errors naming the key and the offset of the string, not panics.
#[test]
fn corrupt_lzf_streams_are_errors_naming_key_and_offset() {
    // Valid: "a" then a 5-byte run copied from 1 back.
    let ok = file_with_lzf_string(&[0x00, b'a', 0x60, 0x00], 6);
    assert!(decode(&ok, false).is_ok());
    for (lzf, len, why) in [
        (&[0x00, b'a', 0x20, 0x05][..], 4, "before the start"),
        (&[0x05, b'a', b'b'][..], 6, "ends inside"),
        (&[0x00, b'a', 0xE0][..], 12, "ends inside"),
        (&[0x00, b'a', 0x60, 0x00][..], 3, "past the declared length"),
        (&[0x00, b'a', 0x20, 0x00][..], 9, "fewer than declared"),
    ] {
        let e = lzf_error(lzf, len);
        assert!(e.contains(why), "{lzf:02x?}: {e}");
        assert!(e.contains("\"key\""), "{lzf:02x?}: {e}");
        // The compressed bytes start at 19: magic 9, SELECTDB 2, type 1, key 4, C3, 2 lengths.
        assert!(e.contains("at byte 19"), "{lzf:02x?}: {e}");
    }
}
