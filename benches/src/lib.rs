//! Shared input generators for the benches: deterministic snapshots written with
//! `rdb-writer`, and the full decode the benches time.
//!
//! ```text
//! REDIS0011 | AUX redis-ver, redis-bits, ctime, used-mem, aof-base | SELECTDB 0
//! per key: [FC expire, 20% of keys] type key value      mix by bytes: see `MIX`
//! FF crc64
//! ```
#![forbid(unsafe_code)]

use rdb_parser::format::type_id;
use rdb_parser::{Item, Parser, Value, Version};
use rdb_writer::{value, Compression, Writer};

/// What a snapshot holds, computed while writing it, so a bench can check a decode
/// against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Keys in the file.
    pub keys: u64,
    /// Strings count 1; lists, sets and sorted sets count members; hashes count fields.
    pub elements: u64,
    /// The decoded length of every element: member bytes, field plus value bytes, the
    /// decimal text of integer entries.
    pub element_bytes: u64,
}

/// A generated snapshot and what it holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub data: Vec<u8>,
    pub expected: Counts,
}

/// A tiny deterministic PRNG (xorshift64*): the same seed gives the same file everywhere.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's fixed point.
        XorShift(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let mut left = n;
        while left > 0 {
            let word = self.next_u64().to_le_bytes();
            let take = left.min(8);
            out.extend_from_slice(word.get(..take).unwrap_or_default());
            left -= take;
        }
    }
}

/// The kinds of key a production-like dump holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Counters: canonical integers, stored INT-encoded.
    IntString,
    /// 100 random bytes (session tokens, serialized blobs): incompressible.
    RandomString,
    /// JSON-like text longer than 20 bytes: stored LZF-compressed.
    TextString,
    SmallHash,
    SmallZSet,
    SmallSet,
    Intset,
    List,
    BigHash,
    BigSet,
    BigZSet,
}

/// Share of the file's bytes per kind, in percent: 70% strings, the rest collections.
const MIX: [(Kind, u64); 11] = [
    (Kind::IntString, 4),
    (Kind::RandomString, 36),
    (Kind::TextString, 30),
    (Kind::SmallHash, 8),
    (Kind::SmallZSet, 4),
    (Kind::SmallSet, 3),
    (Kind::Intset, 1),
    (Kind::List, 6),
    (Kind::BigHash, 4),
    (Kind::BigSet, 2),
    (Kind::BigZSet, 2),
];

/// Percentage of keys written with an EXPIRETIME_MS.
const EXPIRE_PERCENT: u64 = 20;

const WORDS: [&str; 16] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa",
];

/// Writes an RDB 11 snapshot of about `target_bytes` (it stops at the first key past
/// the target) with a production-like mix of keys. Deterministic in `seed`.
pub fn generate_snapshot(target_bytes: usize, seed: u64) -> Result<Snapshot, BoxError> {
    let mut per_kind = [0u64; MIX.len()];
    let mut total = 0u64;
    generate_with(target_bytes, seed, |w, rng, n, counts| {
        // Deficit scheduling: the kind furthest below its share of the bytes goes next,
        // so the mix holds at any size.
        let pick = MIX
            .iter()
            .zip(&per_kind)
            .enumerate()
            .max_by_key(|(_, ((_, share), done))| (total * share / 100) as i64 - **done as i64)
            .map_or(0, |(i, _)| i);
        let kind = MIX.get(pick).map_or(Kind::RandomString, |m| m.0);
        let before = w.bytes_written();
        write_key(w, rng, kind, n, counts)?;
        let size = w.bytes_written() - before;
        total += size;
        if let Some(done) = per_kind.get_mut(pick) {
            *done += size;
        }
        Ok(())
    })
}

/// A snapshot of short strings only (counters, 100-byte tokens, short words): times
/// key, length and string decoding.
pub fn generate_strings_only(target_bytes: usize, seed: u64) -> Result<Snapshot, BoxError> {
    generate_with(target_bytes, seed, |w, rng, n, counts| {
        let v = match n % 3 {
            0 => (rng.range(0, 2_000_000_000) as i64 - 1_000_000_000)
                .to_string()
                .into_bytes(),
            1 => small_value(rng),
            _ => {
                let mut v = Vec::with_capacity(100);
                rng.fill(&mut v, 100);
                v
            }
        };
        counts.elements += 1;
        counts.element_bytes += v.len() as u64;
        w.key_value(
            type_id::STRING,
            format!("k:{n}").as_bytes(),
            &value::string(&v, Compression::Lzf),
        )?;
        Ok(())
    })
}

/// A snapshot of hash listpacks stored uncompressed (100 to 500 fields each): times the
/// listpack walk alone.
pub fn generate_listpacks_only(target_bytes: usize, seed: u64) -> Result<Snapshot, BoxError> {
    generate_with(target_bytes, seed, |w, rng, n, counts| {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.range(100, 500))
            .map(|i| (format!("f{i}").into_bytes(), small_value(rng)))
            .collect();
        counts.elements += fields.len() as u64;
        counts.element_bytes += fields
            .iter()
            .map(|(f, v)| (f.len() + v.len()) as u64)
            .sum::<u64>();
        let encoded = value::hash_listpack(&fields, Compression::None)?;
        w.key_value(
            type_id::HASH_LISTPACK,
            format!("h:{n}").as_bytes(),
            &encoded,
        )?;
        Ok(())
    })
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The common frame: header, AUX fields, db 0, keys from `one` until the target size,
/// EOF and checksum. `one` adds what it wrote to the counts; keys are counted here.
fn generate_with(
    target_bytes: usize,
    seed: u64,
    mut one: impl FnMut(&mut Writer<Vec<u8>>, &mut XorShift, u64, &mut Counts) -> Result<(), BoxError>,
) -> Result<Snapshot, BoxError> {
    let mut rng = XorShift::new(seed);
    let mut w = Writer::new(
        Vec::with_capacity(target_bytes + (1 << 20)),
        Version::redis(11),
    )?;
    w.aux(b"redis-ver", b"7.2.4")?;
    w.aux(b"redis-bits", b"64")?;
    w.aux(b"ctime", b"1700000000")?;
    w.aux(
        b"used-mem",
        (target_bytes as u64 * 3).to_string().as_bytes(),
    )?;
    w.aux(b"aof-base", b"0")?;
    w.select_db(0)?;
    let mut expected = Counts::default();
    while (w.bytes_written() as usize) < target_bytes {
        if rng.chance(EXPIRE_PERCENT) {
            w.expire_ms(1_700_000_000_000 + rng.range(0, 90 * 86_400_000) as i64)?;
        }
        one(&mut w, &mut rng, expected.keys, &mut expected)?;
        expected.keys += 1;
    }
    Ok(Snapshot {
        data: w.finish()?,
        expected,
    })
}

fn write_key(
    w: &mut Writer<Vec<u8>>,
    rng: &mut XorShift,
    kind: Kind,
    n: u64,
    counts: &mut Counts,
) -> Result<(), BoxError> {
    let c = Compression::Lzf;
    let mut tally = |elements: u64, bytes: usize| {
        counts.elements += elements;
        counts.element_bytes += bytes as u64;
    };
    match kind {
        Kind::IntString => {
            let v = (rng.range(0, 2_000_000_000) as i64 - 1_000_000_000).to_string();
            tally(1, v.len());
            w.key_value(
                type_id::STRING,
                format!("counter:{n}").as_bytes(),
                &value::string(v.as_bytes(), c),
            )?;
        }
        Kind::RandomString => {
            let mut v = Vec::with_capacity(100);
            rng.fill(&mut v, 100);
            tally(1, v.len());
            w.key_value(
                type_id::STRING,
                format!("session:{n:08x}").as_bytes(),
                &value::string(&v, c),
            )?;
        }
        Kind::TextString => {
            let len = rng.range(40, 800) as usize;
            let v = json_text(rng, len);
            tally(1, v.len());
            w.key_value(
                type_id::STRING,
                format!("user:{n}:profile").as_bytes(),
                &value::string(&v, c),
            )?;
        }
        Kind::SmallHash => {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.range(3, 40))
                .map(|i| (format!("field{i}").into_bytes(), small_value(rng)))
                .collect();
            tally(
                fields.len() as u64,
                fields.iter().map(|(f, v)| f.len() + v.len()).sum(),
            );
            w.key_value(
                type_id::HASH_LISTPACK,
                format!("obj:{n}").as_bytes(),
                &value::hash_listpack(&fields, c)?,
            )?;
        }
        Kind::SmallZSet => {
            let members: Vec<(Vec<u8>, f64)> = (0..rng.range(3, 64))
                .map(|i| {
                    (
                        format!("player:{i}:{}", rng.range(0, 1000)).into_bytes(),
                        score(rng),
                    )
                })
                .collect();
            tally(
                members.len() as u64,
                members.iter().map(|(m, _)| m.len()).sum(),
            );
            w.key_value(
                type_id::ZSET_LISTPACK,
                format!("board:{n}").as_bytes(),
                &value::zset_listpack(&members, c)?,
            )?;
        }
        Kind::SmallSet => {
            let members: Vec<Vec<u8>> = (0..rng.range(3, 64))
                .map(|i| {
                    format!(
                        "tag:{i}:{}",
                        WORDS.get(rng.range(0, 16) as usize).unwrap_or(&"x")
                    )
                    .into_bytes()
                })
                .collect();
            tally(members.len() as u64, members.iter().map(Vec::len).sum());
            w.key_value(
                type_id::SET_LISTPACK,
                format!("tags:{n}").as_bytes(),
                &value::set_listpack(&members, c)?,
            )?;
        }
        Kind::Intset => {
            // Strictly increasing, so no member is dropped as a duplicate.
            let mut v = rng.range(0, 1000) as i64;
            let members: Vec<i64> = (0..rng.range(8, 400))
                .map(|_| {
                    v += 1 + rng.range(0, 5000) as i64;
                    v
                })
                .collect();
            tally(
                members.len() as u64,
                members.iter().map(|m| m.to_string().len()).sum(),
            );
            w.key_value(
                type_id::SET_INTSET,
                format!("ids:{n}").as_bytes(),
                &value::set_intset(&members, c)?,
            )?;
        }
        Kind::List => {
            let items: Vec<Vec<u8>> = (0..rng.range(200, 2000))
                .map(|i| {
                    if i % 3 == 0 {
                        rng.range(0, 100_000).to_string().into_bytes()
                    } else {
                        let len = rng.range(10, 80) as usize;
                        json_text(rng, len)
                    }
                })
                .collect();
            tally(items.len() as u64, items.iter().map(Vec::len).sum());
            w.key_value(
                type_id::LIST_QUICKLIST_2,
                format!("queue:{n}").as_bytes(),
                &value::list_quicklist2(&items, c)?,
            )?;
        }
        Kind::BigHash => {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.range(600, 2500))
                .map(|i| (format!("attr:{i}").into_bytes(), small_value(rng)))
                .collect();
            tally(
                fields.len() as u64,
                fields.iter().map(|(f, v)| f.len() + v.len()).sum(),
            );
            w.key_value(
                type_id::HASH,
                format!("big:obj:{n}").as_bytes(),
                &value::hash_plain(&fields, c),
            )?;
        }
        Kind::BigSet => {
            let members: Vec<Vec<u8>> = (0..rng.range(600, 2500))
                .map(|i| {
                    let mut m = format!("member:{i}:").into_bytes();
                    rng.fill(&mut m, 8);
                    m
                })
                .collect();
            tally(members.len() as u64, members.iter().map(Vec::len).sum());
            w.key_value(
                type_id::SET,
                format!("big:set:{n}").as_bytes(),
                &value::set_plain(&members, c),
            )?;
        }
        Kind::BigZSet => {
            let members: Vec<(Vec<u8>, f64)> = (0..rng.range(200, 1500))
                .map(|i| (format!("item:{i}").into_bytes(), score(rng)))
                .collect();
            tally(
                members.len() as u64,
                members.iter().map(|(m, _)| m.len()).sum(),
            );
            w.key_value(
                type_id::ZSET_2,
                format!("big:zset:{n}").as_bytes(),
                &value::zset_2(&members, c),
            )?;
        }
    }
    Ok(())
}

/// A short hash value: an integer, a word, or a few random bytes.
fn small_value(rng: &mut XorShift) -> Vec<u8> {
    match rng.range(0, 3) {
        0 => rng.range(0, 1_000_000).to_string().into_bytes(),
        1 => WORDS
            .get(rng.range(0, 16) as usize)
            .unwrap_or(&"x")
            .as_bytes()
            .to_vec(),
        _ => {
            let mut v = Vec::new();
            let n = rng.range(4, 32) as usize;
            rng.fill(&mut v, n);
            v
        }
    }
}

/// Scores as leaderboards hold them: mostly integers, some fractions.
fn score(rng: &mut XorShift) -> f64 {
    if rng.chance(70) {
        rng.range(0, 1_000_000) as f64
    } else {
        rng.range(0, 1 << 30) as f64 / 1024.0
    }
}

/// JSON-like text of about `len` bytes: repetitive keys, varying values, so LZF
/// compresses it to roughly half as it would a real cached document.
fn json_text(rng: &mut XorShift, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    out.push(b'{');
    let mut i = 0u64;
    while out.len() < len {
        let word = WORDS.get(rng.range(0, 16) as usize).unwrap_or(&"x");
        let item = match i % 3 {
            0 => format!("\"{word}\":{},", rng.range(0, 100_000)),
            1 => format!(
                "\"{word}_name\":\"{}\",",
                WORDS.get(rng.range(0, 16) as usize).unwrap_or(&"y")
            ),
            _ => format!("\"id\":\"{:x}\",", rng.next_u64() >> 20),
        };
        out.extend_from_slice(item.as_bytes());
        i += 1;
    }
    out.truncate(len.saturating_sub(1));
    out.push(b'}');
    out
}

/// Decodes every element of every key through the parser's public API and counts what it
/// saw: what the decode bench times and checks.
pub fn decode_all(data: &[u8]) -> Result<Counts, rdb_parser::Error> {
    let mut counts = Counts::default();
    for item in Parser::new(data)? {
        let Item::Key(entry) = item? else { continue };
        counts.keys += 1;
        let (elements, bytes) = decode_value(&entry.value)?;
        counts.elements += elements;
        counts.element_bytes += bytes;
    }
    Ok(counts)
}

/// Element count and decoded bytes of one value.
pub fn decode_value(value: &Value<'_>) -> Result<(u64, u64), rdb_parser::Error> {
    let (mut n, mut bytes) = (0u64, 0u64);
    match value {
        Value::String(s) => {
            n = 1;
            bytes = s.to_bytes()?.len() as u64;
        }
        Value::List(l) => {
            for e in l.iter() {
                n += 1;
                bytes += e?.len() as u64;
            }
        }
        Value::Set(s) => {
            for e in s.iter() {
                n += 1;
                bytes += e?.len() as u64;
            }
        }
        Value::ZSet(z) => {
            for p in z.iter() {
                let (member, score) = p?;
                n += 1;
                bytes += member.len() as u64;
                std::hint::black_box(score);
            }
        }
        Value::Hash(h) => {
            for f in h.iter() {
                let f = f?;
                n += 1;
                bytes += (f.field.len() + f.value.len()) as u64;
            }
        }
        Value::Stream(s) => {
            let mut it = s.entries();
            while let Some(e) = it.next_entry() {
                std::hint::black_box(e?);
                n += 1;
            }
        }
        Value::Module(_) => n = 1,
    }
    Ok((n, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel pipeline spans many batches here; file order must survive it.
    #[test]
    fn multi_batch_passthrough_reproduces_the_input() -> Result<(), BoxError> {
        use rdb_writer::convert::{convert, ConvertOptions};
        let snap = generate_snapshot(6 * rdb_pipeline::BATCH_BYTES, 11)?;
        let profile = rdb_writer::TargetProfile::for_version(11).ok_or("profile")?;
        let opts = ConvertOptions::new(profile);
        let mut offsets = Vec::new();
        let (out, summary) = convert(
            &snap.data,
            &rdb_parser::ParserBuilder::new(),
            &opts,
            Vec::new(),
            &mut |_| Ok(()),
            &mut |o| offsets.push(o),
        )?;
        assert_eq!(summary.keys_written, snap.expected.keys);
        assert!(
            out == snap.data,
            "passthrough output differs from its input"
        );
        assert!(
            offsets.windows(2).all(|w| matches!(w, [a, b] if a < b)),
            "keys reached the sink in file order"
        );
        Ok(())
    }

    #[test]
    fn generated_snapshot_decodes_to_what_was_written() -> Result<(), BoxError> {
        let snap = generate_snapshot(4 << 20, 7)?;
        assert!(snap.data.len() >= 4 << 20 && snap.data.len() < (4 << 20) + (1 << 20));
        assert_eq!(decode_all(&snap.data)?, snap.expected);
        // Deterministic in the seed.
        assert_eq!(
            generate_snapshot(1 << 20, 7)?.data,
            generate_snapshot(1 << 20, 7)?.data
        );
        assert_ne!(
            generate_snapshot(1 << 20, 8)?.data,
            generate_snapshot(1 << 20, 7)?.data
        );
        Ok(())
    }

    #[test]
    fn mix_matches_the_shares() -> Result<(), BoxError> {
        let snap = generate_snapshot(8 << 20, 1)?;
        let (mut by_type, mut expiring, mut keys) = ([0u64; 32], 0u64, 0u64);
        let mut encodings = std::collections::BTreeSet::new();
        for item in Parser::new(&snap.data)? {
            if let Item::Key(e) = item? {
                keys += 1;
                expiring += u64::from(e.expire_ms.is_some());
                if let Some(b) = by_type.get_mut(e.type_id as usize) {
                    *b += (e.raw_key.len() + e.raw_value.len()) as u64;
                }
                if let Value::String(s) = &e.value {
                    encodings.insert(s.stored().encoding_name());
                }
            }
        }
        let strings = by_type.first().copied().unwrap_or(0) as f64 / snap.data.len() as f64;
        assert!(
            (0.65..0.75).contains(&strings),
            "strings are {strings:.2} of the bytes"
        );
        let expiring = expiring as f64 / keys as f64;
        assert!(
            (0.17..0.23).contains(&expiring),
            "{expiring:.2} of keys expire"
        );
        assert_eq!(
            encodings.into_iter().collect::<Vec<_>>(),
            ["int", "lzf", "raw"]
        );
        for t in [2, 4, 5, 11, 16, 17, 18, 20] {
            assert!(by_type.get(t).is_some_and(|&b| b > 0), "no key of type {t}");
        }
        Ok(())
    }
}

/// The type of the one huge key [`write_huge_key`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugeKind {
    /// One string of the whole size, uncompressed.
    String,
    /// A quicklist 2 list of 8 KB listpack nodes of 100-byte elements.
    List,
    /// A hashtable-encoded hash of 20-byte fields with 100-byte values.
    Hash,
    /// A hashtable-encoded set of 100-byte members.
    Set,
    /// A `ZSET_2` sorted set of 100-byte members.
    ZSet,
}

impl std::str::FromStr for HugeKind {
    type Err = BoxError;
    fn from_str(s: &str) -> Result<Self, BoxError> {
        Ok(match s {
            "string" => HugeKind::String,
            "list" => HugeKind::List,
            "hash" => HugeKind::Hash,
            "set" => HugeKind::Set,
            "zset" => HugeKind::ZSet,
            other => {
                return Err(
                    format!("unknown kind {other:?}: string, list, hash, set or zset").into(),
                )
            }
        })
    }
}

/// Writes an RDB 11 snapshot holding one key `huge` of `kind` whose value takes about
/// `value_bytes`, plus one small key, streaming it to `out` piece by piece so that a value
/// of gigabytes needs only megabytes of memory to write. Returns what it holds.
pub fn write_huge_key<W: std::io::Write>(
    out: W,
    kind: HugeKind,
    value_bytes: u64,
    seed: u64,
) -> Result<Counts, BoxError> {
    write_huge_keys(out, &[(b"huge".to_vec(), kind, value_bytes)], seed)
}

/// As [`write_huge_key`], one huge key per `(name, kind, value_bytes)`, in that order,
/// then the small key.
pub fn write_huge_keys<W: std::io::Write>(
    out: W,
    keys: &[(Vec<u8>, HugeKind, u64)],
    seed: u64,
) -> Result<Counts, BoxError> {
    let mut rng = XorShift::new(seed);
    let mut w = Writer::new(out, Version::redis(11))?;
    w.aux(b"redis-ver", b"7.2.4")?;
    w.aux(b"redis-bits", b"64")?;
    w.select_db(0)?;
    w.resize_db(keys.len() as u64 + 1, 0)?;
    let mut counts = Counts::default();
    for (name, kind, value_bytes) in keys {
        huge_value(&mut w, &mut rng, name, *kind, *value_bytes, &mut counts)?;
    }
    w.key_value(
        type_id::STRING,
        b"small",
        &value::string(b"a small value", Compression::None),
    )?;
    counts.keys = keys.len() as u64 + 1;
    counts.elements += 1;
    counts.element_bytes += 13;
    w.finish()?;
    Ok(counts)
}

/// One huge key `name` of `kind`, streamed through `w` a megabyte at a time.
fn huge_value<W: std::io::Write>(
    w: &mut Writer<W>,
    rng: &mut XorShift,
    name: &[u8],
    kind: HugeKind,
    value_bytes: u64,
    counts: &mut Counts,
) -> Result<(), BoxError> {
    use rdb_writer::encode;
    const ELEMENT: usize = 100;
    let mut head = Vec::new();
    let mut piece = Vec::with_capacity(1 << 20);
    let element = |rng: &mut XorShift, n: usize| {
        let mut e = Vec::with_capacity(n);
        rng.fill(&mut e, n);
        e
    };
    // Flushes `piece` through the writer once it holds a megabyte.
    let flush = |w: &mut Writer<W>, piece: &mut Vec<u8>, force: bool| -> std::io::Result<()> {
        if force || piece.len() >= 1 << 20 {
            w.raw(piece)?;
            piece.clear();
        }
        Ok(())
    };
    match kind {
        HugeKind::String => {
            head.push(type_id::STRING);
            encode::string(&mut head, name, Compression::None);
            encode::length(&mut head, value_bytes);
            w.raw(&head)?;
            let mut left = value_bytes as usize;
            while left > 0 {
                let n = left.min(1 << 20);
                rng.fill(&mut piece, n);
                flush(w, &mut piece, true)?;
                left -= n;
            }
            counts.elements += 1;
            counts.element_bytes += value_bytes;
        }
        HugeKind::List => {
            let per_node = (rdb_writer::value::LIST_NODE_MAX_BYTES - 64) / (ELEMENT + 3);
            let nodes = (value_bytes as usize)
                .div_ceil(per_node * (ELEMENT + 3))
                .max(1);
            head.push(type_id::LIST_QUICKLIST_2);
            encode::string(&mut head, name, Compression::None);
            encode::length(&mut head, nodes as u64);
            w.raw(&head)?;
            for _ in 0..nodes {
                let mut lp = rdb_writer::ListpackBuilder::new();
                for _ in 0..per_node {
                    lp.push(&element(rng, ELEMENT));
                }
                encode::length(&mut piece, rdb_parser::format::quicklist_container::PACKED);
                encode::string(&mut piece, &lp.finish()?, Compression::None);
                flush(w, &mut piece, false)?;
            }
            counts.elements += (nodes * per_node) as u64;
            counts.element_bytes += (nodes * per_node * ELEMENT) as u64;
        }
        HugeKind::Hash | HugeKind::Set | HugeKind::ZSet => {
            let (type_byte, per) = match kind {
                HugeKind::Hash => (type_id::HASH, 20 + ELEMENT + 2),
                HugeKind::Set => (type_id::SET, ELEMENT + 1),
                _ => (type_id::ZSET_2, ELEMENT + 9),
            };
            let n = (value_bytes as usize / per).max(1);
            head.push(type_byte);
            encode::string(&mut head, name, Compression::None);
            encode::length(&mut head, n as u64);
            w.raw(&head)?;
            for i in 0..n {
                // The index first keeps members and fields distinct.
                let mut member = format!("{i:012}-").into_bytes();
                match kind {
                    HugeKind::Hash => {
                        member.extend_from_slice(&element(rng, 20 - member.len().min(20)));
                        encode::string(&mut piece, &member, Compression::None);
                        encode::string(&mut piece, &element(rng, ELEMENT), Compression::None);
                        counts.element_bytes += (member.len() + ELEMENT) as u64;
                    }
                    _ => {
                        member.extend_from_slice(&element(rng, ELEMENT - member.len()));
                        encode::string(&mut piece, &member, Compression::None);
                        if kind == HugeKind::ZSet {
                            encode::binary_double(&mut piece, (n - i) as f64);
                        }
                        counts.element_bytes += member.len() as u64;
                    }
                }
                flush(w, &mut piece, false)?;
            }
            counts.elements += n as u64;
        }
    }
    flush(w, &mut piece, true)?;
    Ok(())
}
