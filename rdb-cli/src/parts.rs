//! Several snapshots read as one: a cluster's shard backups given one by one, or a
//! directory written by `convert --shards` or `fetch --cluster` with its `manifest.json`.
//! Each part keeps the slot ranges its manifest gives, so a command can report keys that
//! sit outside them (a shard that holds keys it does not own loses them on import).

use std::path::{Component, Path, PathBuf};

use rdb_writer::slot::{key_slot, SlotRange};

use crate::Failure;

/// One input of a multi-file run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Where to read it (`-` is standard input).
    pub path: PathBuf,
    /// The slot ranges its manifest gives, inclusive; `None` without a manifest.
    pub slots: Option<Vec<SlotRange>>,
    /// The size and SHA-256 its manifest records, if it does.
    pub recorded: Recorded,
}

/// What a manifest says a file was when it was written: a part replaced, cut short or
/// swapped with another run's since then no longer matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub bytes: Option<u64>,
    /// Lower-case hex.
    pub sha256: Option<String>,
}

impl Part {
    /// A file given on its own: no slot ranges to check.
    pub fn file(path: impl Into<PathBuf>) -> Part {
        Part {
            path: path.into(),
            slots: None,
            recorded: Recorded::default(),
        }
    }

    /// How `data`, this part's bytes, differs from what its manifest records; `None` when
    /// it matches (or nothing is recorded).
    pub fn differs_from_manifest(&self, data: &[u8]) -> Option<String> {
        if let Some(bytes) = self.recorded.bytes {
            if bytes != data.len() as u64 {
                return Some(format!(
                    "the manifest records {bytes} bytes for this file, it has {}",
                    data.len()
                ));
            }
        }
        let want = self.recorded.sha256.as_deref()?;
        let got = sha256_hex(data);
        (got != want).then(|| {
            format!("the manifest records SHA-256 {want} for this file, its bytes hash to {got}")
        })
    }

    /// The name reports use for this part: the path as the user gave it.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// [`Part::name`] for a terminal: control characters escaped (`\u{1b}`), so a file
    /// name cannot send escape sequences.
    pub fn shown(&self) -> String {
        self.name()
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    /// The line that opens this part's section of a text report: `== NAME (slots R)`.
    pub fn heading(&self) -> String {
        let slots = self
            .slots
            .as_deref()
            .map(|r| format!(" (slots {})", ranges_text(r)))
            .unwrap_or_default();
        format!("== {}{slots}", self.shown())
    }

    /// Whether `key` hashes to a slot this part owns (always, without a manifest).
    pub fn owns(&self, key: &[u8]) -> bool {
        match &self.slots {
            None => true,
            Some(ranges) => owns(ranges, key),
        }
    }

    /// The part's slot ranges as JSON, `[[first, last], ...]`, or `null` without a
    /// manifest.
    pub fn slots_json(&self) -> serde_json::Value {
        match &self.slots {
            None => serde_json::Value::Null,
            Some(ranges) => ranges.iter().map(|&(lo, hi)| [lo, hi]).collect(),
        }
    }
}

/// Whether `key` hashes to a slot in `ranges`.
pub fn owns(ranges: &[SlotRange], key: &[u8]) -> bool {
    in_ranges(ranges, key_slot(key))
}

fn in_ranges(ranges: &[SlotRange], slot: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot))
}

/// Slot ranges as `convert --slots` takes them: `0-5460,16000`.
pub fn ranges_text(ranges: &[SlotRange]) -> String {
    ranges_joined(ranges, ",")
}

/// Slot ranges, `lo-hi` or a single slot each, joined by `separator`.
pub fn ranges_joined(ranges: &[SlotRange], separator: &str) -> String {
    let each: Vec<String> = ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    each.join(separator)
}

/// A key met in a part that does not own its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrayKey {
    /// Where its entry starts in the file.
    pub offset: u64,
    pub db: u64,
    pub key: Vec<u8>,
}

impl StrayKey {
    /// The key as reports show it: quoted, escaped (a terminal escape sequence in a key
    /// must not reach the terminal), with its slot.
    pub fn shown(&self) -> String {
        let mut s = String::from("\"");
        let _ = rdb_parser::error::write_escaped(&mut s, self.key.get(..64).unwrap_or(&self.key));
        if self.key.len() > 64 {
            s.push_str("...");
        }
        s.push_str(&format!("\" (slot {})", key_slot(&self.key)));
        s
    }
}

/// The keys of a part that hash outside its slot ranges: how many, and the first few in
/// file order (a cluster node loading the part would not own them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeysOutside {
    pub count: u64,
    /// The first [`KeysOutside::EXAMPLES`], in file order.
    pub examples: Vec<StrayKey>,
}

impl KeysOutside {
    /// Keys kept as examples.
    pub const EXAMPLES: usize = 5;

    /// Counts `key` (at `offset`, in `db`) if `ranges` do not hold its slot.
    pub fn check(&mut self, ranges: &[SlotRange], offset: u64, db: u64, key: &[u8]) {
        self.check_slot(ranges, key_slot(key), offset, db, key);
    }

    /// [`KeysOutside::check`] of a key whose `slot` is known.
    pub fn check_slot(
        &mut self,
        ranges: &[SlotRange],
        slot: u16,
        offset: u64,
        db: u64,
        key: &[u8],
    ) {
        if !in_ranges(ranges, slot) {
            self.count += 1;
            if self.examples.len() < Self::EXAMPLES {
                self.examples.push(StrayKey {
                    offset,
                    db,
                    key: key.to_vec(),
                });
            }
        }
    }

    /// Adds the tally of a later stretch of the same file.
    pub fn absorb(&mut self, later: KeysOutside) {
        self.count += later.count;
        let room = Self::EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(later.examples.into_iter().take(room));
    }

    /// The examples as one line: `"a" (slot 15495), "b" (slot 3300)`.
    pub fn examples_text(&self) -> String {
        let each: Vec<String> = self.examples.iter().map(StrayKey::shown).collect();
        each.join(", ")
    }

    /// `{"count": N, "examples": [key, ...]}`, each key a JSON string when it is UTF-8,
    /// else `{"base64": "..."}` (as in `docs/export-jsonl.md`).
    pub fn to_json(&self) -> serde_json::Value {
        let examples: Vec<serde_json::Value> = self
            .examples
            .iter()
            .map(|k| {
                let mut buf = Vec::new();
                crate::json::bytes(&mut buf, &k.key);
                serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null)
            })
            .collect();
        serde_json::json!({"count": self.count, "examples": examples})
    }
}

/// The slots a part's keys hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotsHeld([u64; 256]);

impl Default for SlotsHeld {
    fn default() -> Self {
        SlotsHeld([0; 256])
    }
}

impl SlotsHeld {
    /// Notes a key's `slot` ([`key_slot`]).
    pub fn add(&mut self, slot: u16) {
        let slot = usize::from(slot);
        if let Some(word) = self.0.get_mut(slot / 64) {
            *word |= 1 << (slot % 64);
        }
    }

    /// How many slots hold a key.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// The slots as inclusive ranges, ascending.
    pub fn ranges(&self) -> Vec<SlotRange> {
        let held = |slot: u16| {
            let slot = usize::from(slot);
            self.0
                .get(slot / 64)
                .is_some_and(|w| w & (1 << (slot % 64)) != 0)
        };
        let mut out: Vec<SlotRange> = Vec::new();
        for slot in 0..16384u16 {
            if !held(slot) {
                continue;
            }
            match out.last_mut() {
                Some((_, hi)) if *hi + 1 == slot => *hi = slot,
                _ => out.push((slot, slot)),
            }
        }
        out
    }
}

/// `failure` with the part's name in front, for a run over several files (exit codes
/// unchanged: a malformed part is a malformed input).
pub fn named(part: &Part, failure: Failure) -> Failure {
    let name = part.shown();
    match failure {
        Failure::Data(e) => Failure::Refused(format!("{name}: {e}")),
        Failure::Io(e) => Failure::Io(std::io::Error::new(e.kind(), format!("{name}: {e}"))),
        Failure::Refused(m) => Failure::Refused(format!("{name}: {m}")),
        Failure::Usage(m) => Failure::Usage(format!("{name}: {m}")),
        Failure::Verdict(code) => Failure::Verdict(code),
    }
}

/// Each argument as a part, except directories: the files their `manifest.json` lists
/// (`shards[].file`, relative to the directory, in its order) with their `slots`.
pub fn expand(args: &[PathBuf]) -> Result<Vec<Part>, Failure> {
    let mut out = Vec::new();
    for arg in args {
        if arg.as_os_str() != "-" && arg.is_dir() {
            out.extend(read_manifest(arg)?);
        } else {
            out.push(Part::file(arg.clone()));
        }
    }
    refuse_repeats(&out)?;
    Ok(out)
}

/// A file read twice (named twice, through a link, or listed twice by a manifest) would be
/// counted twice in every total: refused.
fn refuse_repeats(parts: &[Part]) -> Result<(), Failure> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: Vec<((u64, u64), &Part)> = Vec::new();
    for part in parts {
        if part.path.as_os_str() == "-" {
            continue;
        }
        // A part that cannot be read is reported by the command that opens it.
        let Ok(meta) = std::fs::metadata(&part.path) else {
            continue;
        };
        let id = (meta.dev(), meta.ino());
        if let Some((_, first)) = seen.iter().find(|(other, _)| *other == id) {
            return Err(Failure::Usage(format!(
                "{} and {} are the same file: each part is read once",
                first.shown(),
                part.shown()
            )));
        }
        seen.push((id, part));
    }
    Ok(())
}

/// The parts `dir/manifest.json` lists.
pub fn read_manifest(dir: &Path) -> Result<Vec<Part>, Failure> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::Usage(format!(
                "{}: a directory without manifest.json; give its .rdb files",
                dir.display()
            ))
        } else {
            Failure::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        }
    })?;
    // The manifest is read like a snapshot: no output of this run may replace it.
    if let Ok(meta) = std::fs::metadata(&path) {
        crate::output::protect_input(&meta);
    }
    let shown = Part::file(&path).shown();
    let parts =
        parse_manifest(dir, &text).map_err(|why| Failure::Usage(format!("{shown}: {why}")))?;
    slot_coverage(&parts).map_err(|why| {
        Failure::Usage(format!(
            "{shown}: {why}; give the files one by one to read them without the manifest's slots"
        ))
    })?;
    Ok(parts)
}

/// When the manifest gives every part slots, each of the 16384 slots belongs to exactly
/// one part, as `convert --slots` requires of a split: a part left out of the manifest or
/// two parts claiming a slot would otherwise pass unnoticed.
fn slot_coverage(parts: &[Part]) -> Result<(), String> {
    let Some(ranges): Option<Vec<&Vec<SlotRange>>> =
        parts.iter().map(|p| p.slots.as_ref()).collect()
    else {
        return Ok(());
    };
    let mut owner: Vec<Option<usize>> = vec![None; 16384];
    for (i, list) in ranges.iter().enumerate() {
        for &(lo, hi) in list.iter() {
            for slot in lo..=hi {
                let Some(cell) = owner.get_mut(usize::from(slot)) else {
                    continue;
                };
                if let Some(first) = *cell {
                    return Err(format!("slot {slot} is given to shards {first} and {i}"));
                }
                *cell = Some(i);
            }
        }
    }
    match owner.iter().position(Option::is_none) {
        Some(slot) => Err(format!("slot {slot} belongs to no shard")),
        None => Ok(()),
    }
}

fn parse_manifest(dir: &Path, text: &str) -> Result<Vec<Part>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let shards = v
        .get("shards")
        .and_then(|s| s.as_array())
        .ok_or("no \"shards\" list")?;
    let mut parts = Vec::new();
    for s in shards {
        let name = s
            .get("file")
            .and_then(|f| f.as_str())
            .ok_or("a shard without a \"file\" name")?;
        // Only names inside the directory: a manifest must not point elsewhere.
        let inside = Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(format!("shard file {name:?} is not inside the directory"));
        }
        let slots = match s.get("slots") {
            None | Some(serde_json::Value::Null) => None,
            Some(list) => Some(slot_ranges(list).ok_or_else(|| {
                format!("shard {name:?}: \"slots\" is not a list of [first, last] slot pairs")
            })?),
        };
        let recorded = Recorded {
            bytes: match s.get("bytes") {
                None | Some(serde_json::Value::Null) => None,
                Some(b) => Some(
                    b.as_u64()
                        .ok_or_else(|| format!("shard {name:?}: \"bytes\" is not a byte count"))?,
                ),
            },
            sha256: match s.get("sha256") {
                None | Some(serde_json::Value::Null) => None,
                Some(h) => Some(
                    h.as_str()
                        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                        .ok_or_else(|| {
                            format!("shard {name:?}: \"sha256\" is not 64 hexadecimal digits")
                        })?
                        .to_ascii_lowercase(),
                ),
            },
        };
        parts.push(Part {
            path: dir.join(name),
            slots,
            recorded,
        });
    }
    if parts.is_empty() {
        return Err("lists no shard files".into());
    }
    Ok(parts)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// `[[lo, hi], ...]` with 0 ≤ lo ≤ hi ≤ 16383.
fn slot_ranges(list: &serde_json::Value) -> Option<Vec<SlotRange>> {
    let slot = |v: &serde_json::Value| v.as_u64().filter(|&n| n < 16384).map(|n| n as u16);
    list.as_array()?
        .iter()
        .map(|pair| match pair.as_array()?.as_slice() {
            [lo, hi] => {
                let (lo, hi) = (slot(lo)?, slot(hi)?);
                (lo <= hi).then_some((lo, hi))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_gives_files_and_slots() {
        let text = r#"{"shards": [
            {"file": "shard-0.rdb", "slots": [[0, 5460]]},
            {"file": "shard-1.rdb", "slots": [[5461, 10922], [16000, 16383]]},
            {"file": "shard-2.rdb"}
        ]}"#;
        let parts = parse_manifest(Path::new("d"), text).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].path, Path::new("d/shard-0.rdb"));
        assert_eq!(parts[1].slots, Some(vec![(5461, 10922), (16000, 16383)]));
        assert_eq!(parts[2].slots, None);
        // "foo" is slot 12182: shard 1 does not own it, a part without slots owns all.
        assert!(!parts[0].owns(b"foo"));
        assert!(!parts[1].owns(b"foo"));
        assert!(parts[2].owns(b"foo"));
        assert!(parts[0].owns(b"{user1000}.following")); // slot 3443
        assert_eq!(
            parts[1].slots_json(),
            serde_json::json!([[5461, 10922], [16000, 16383]])
        );
        assert_eq!(parts[2].slots_json(), serde_json::Value::Null);
        assert_eq!(ranges_text(&[(0, 5460), (7, 7)]), "0-5460,7");
        assert_eq!(Part::file("d/a\u{1b}[2J.rdb").shown(), "d/a\\u{1b}[2J.rdb");
    }

    #[test]
    fn a_part_is_compared_with_the_size_and_hash_its_manifest_records() {
        // SHA-256 of "abc" (FIPS 180-2's first example).
        let abc = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        let text = format!(
            r#"{{"shards": [{{"file": "a.rdb", "bytes": 3, "sha256": "{abc}"}},
                            {{"file": "b.rdb", "bytes": 4}}, {{"file": "c.rdb"}}]}}"#
        );
        let parts = parse_manifest(Path::new("d"), &text).unwrap();
        assert_eq!(parts[0].differs_from_manifest(b"abc"), None);
        let swapped = parts[0].differs_from_manifest(b"abd").unwrap();
        assert!(swapped.contains("SHA-256") && swapped.contains(&abc.to_lowercase()));
        let cut = parts[1].differs_from_manifest(b"abc").unwrap();
        assert!(cut.contains("4 bytes") && cut.contains("it has 3"), "{cut}");
        assert_eq!(parts[2].differs_from_manifest(b"anything"), None);
        assert_eq!(Part::file("x").differs_from_manifest(b""), None);
    }

    #[test]
    fn every_slot_belongs_to_exactly_one_part_of_a_manifest() {
        let parts = |json: &str| parse_manifest(Path::new("d"), json).unwrap();
        let whole = parts(
            r#"{"shards": [{"file": "a", "slots": [[0, 8191]]},
                           {"file": "b", "slots": [[8192, 16383]]}]}"#,
        );
        assert_eq!(slot_coverage(&whole), Ok(()));
        let gap = parts(r#"{"shards": [{"file": "a", "slots": [[0, 8191]]}]}"#);
        assert_eq!(
            slot_coverage(&gap),
            Err("slot 8192 belongs to no shard".into())
        );
        let overlap = parts(
            r#"{"shards": [{"file": "a", "slots": [[0, 10000]]},
                           {"file": "b", "slots": [[8192, 16383]]}]}"#,
        );
        assert_eq!(
            slot_coverage(&overlap),
            Err("slot 8192 is given to shards 0 and 1".into())
        );
        // Without slots on every part there is nothing to cover.
        let loose = parts(r#"{"shards": [{"file": "a", "slots": [[0, 1]]}, {"file": "b"}]}"#);
        assert_eq!(slot_coverage(&loose), Ok(()));
    }

    #[test]
    fn integrity_fields_that_lie_about_their_type_are_refused() {
        for shard in [
            r#"{"file": "a", "bytes": -1}"#,
            r#"{"file": "a", "bytes": "1008"}"#,
            r#"{"file": "a", "bytes": 1e30}"#,
            r#"{"file": "a", "sha256": "abc"}"#,
            r#"{"file": "a", "sha256": 7}"#,
        ] {
            let text = format!(r#"{{"shards": [{shard}]}}"#);
            assert!(parse_manifest(Path::new("d"), &text).is_err(), "{shard}");
        }
    }

    #[test]
    fn keys_outside_are_counted_with_the_first_few() {
        let ranges = [(0u16, 5460u16)];
        let mut early = KeysOutside::default();
        let mut late = KeysOutside::default();
        for i in 0..20u64 {
            let key = format!("key:{i}");
            let tally = if i < 10 { &mut early } else { &mut late };
            tally.check(&ranges, i, 0, key.as_bytes());
        }
        let outside = (0..20)
            .filter(|i| key_slot(format!("key:{i}").as_bytes()) > 5460)
            .count() as u64;
        early.absorb(late);
        assert_eq!(early.count, outside);
        assert_eq!(early.examples.len(), outside.min(5) as usize);
        assert!(early.examples.windows(2).all(|w| w[0].offset < w[1].offset));
        let stray = StrayKey {
            offset: 0,
            db: 0,
            key: b"foo\x1b[2J".to_vec(),
        };
        assert_eq!(
            stray.shown(),
            format!("\"foo\\x1b[2J\" (slot {})", key_slot(b"foo\x1b[2J"))
        );
    }

    #[test]
    fn slots_held_are_ranges() {
        let mut held = SlotsHeld::default();
        for key in ["foo", "{user1000}.following", "{user1000}.followers"] {
            held.add(key_slot(key.as_bytes()));
        }
        assert_eq!(held.count(), 2);
        assert_eq!(held.ranges(), vec![(3443, 3443), (12182, 12182)]);
    }

    #[test]
    fn a_manifest_is_refused_when_it_points_outside_or_lies() {
        let bad = [
            r#"{"shards": [{"file": "../x.rdb"}]}"#,
            r#"{"shards": [{"file": "/etc/passwd"}]}"#,
            r#"{"shards": [{"file": "a.rdb", "slots": [[10, 5]]}]}"#,
            r#"{"shards": [{"file": "a.rdb", "slots": [[0, 16384]]}]}"#,
            r#"{"shards": []}"#,
            r#"{"files": []}"#,
            "not json",
        ];
        for text in bad {
            assert!(parse_manifest(Path::new("d"), text).is_err(), "{text}");
        }
    }
}
